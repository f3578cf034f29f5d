"""The topic layout (contract): `{prefix}/{site}/{gate}/{events|status|health|reply|cmd/NAME}`.

Topic levels come from validated configuration only, never from scanned data; each
level is checked again here so that no caller can smuggle a wildcard or a separator in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mqtt.errors import TopicError

LEVEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STREAMS = ("events", "status", "health", "reply")
# The gate's modes: each a command of its own, and what health's "mode" reports.
MODES = ("normal", "lockdown", "emergency")
COMMANDS = (
    "open",
    "lockdown",
    "normal",
    "emergency",
    "allowlist",
    "revoke",
    "keys",
    "trustlist",
    "resend",
)


def check_level(name: str, value: str) -> str:
    if not LEVEL.fullmatch(value):
        raise TopicError(f"{name} {value!r} is not a valid topic level (1-64 of A-Z a-z 0-9 _ -)")
    return value


def check_prefix(prefix: str) -> str:
    levels = prefix.split("/")
    bad = any(not level or any(ch in level for ch in "+#\0") for level in levels)
    if bad or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in prefix):
        raise TopicError(
            f"topic prefix {prefix!r} must be '/'-separated non-empty levels "
            "without '+', '#' or control characters"
        )
    return prefix


@dataclass(frozen=True)
class GateTopics:
    """Every topic one gate publishes to or listens on."""

    prefix: str
    site: str
    gate: str

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        check_level("site", self.site)
        check_level("gate", self.gate)

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.site}/{self.gate}"

    @property
    def events(self) -> str:
        return f"{self.base}/events"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def health(self) -> str:
        return f"{self.base}/health"

    @property
    def reply(self) -> str:
        return f"{self.base}/reply"

    def command(self, name: str) -> str:
        """The topic for a command to this gate alone."""
        return f"{self.base}/cmd/{check_level('command', name)}"

    def site_command(self, name: str) -> str:
        """The topic for a command to every gate of the site."""
        return f"{self.prefix}/{self.site}/cmd/{check_level('command', name)}"

    @property
    def command_filters(self) -> tuple[str, str]:
        """Subscriptions that receive this gate's commands and its site's."""
        return f"{self.base}/cmd/+", f"{self.prefix}/{self.site}/cmd/+"


@dataclass(frozen=True)
class GateTopic:
    """A parsed topic of some gate: which gate, and which stream or command."""

    site: str
    gate: str
    stream: str


def monitor_filters(prefix: str) -> tuple[str, ...]:
    """Subscriptions that see every gate's events, status and health under `prefix`."""
    check_prefix(prefix)
    return tuple(f"{prefix}/+/+/{stream}" for stream in ("events", "status", "health"))


def parse_gate_topic(prefix: str, topic: str) -> GateTopic | None:
    """`P/site/gate/stream` → its parts; None for anything else (commands included)."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    parts = topic[len(head) :].split("/")
    if len(parts) != 3 or parts[2] not in STREAMS:
        return None
    site, gate, stream = parts
    if not (LEVEL.fullmatch(site) and LEVEL.fullmatch(gate)):
        return None
    return GateTopic(site, gate, stream)
