"""The centre's side of commands: sign one, send it to a gate or a whole site, and collect
the gates' replies (what `qrgate cmd` does)."""

from __future__ import annotations

import json
import queue
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mqtt.commands import check_args
from mqtt.errors import CommandRejectedError, MqttError, TopicError
from mqtt.link import Acked, Connected, Link, Lost, Received, Signal, Subscribed, Waker
from mqtt.settings import BrokerSettings
from mqtt.topics import COMMANDS, check_level, check_prefix

SigningKey = Ed25519PrivateKey | EllipticCurvePrivateKey


class CommandError(MqttError):
    """A command that cannot be signed or delivered."""


def load_signing_key(path: Path) -> SigningKey:
    """A private key in PEM (as `qrgate keys new` writes it): Ed25519 or P-256."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as error:
        raise CommandError(f"cannot load the signing key {path}: {error}") from None
    if not isinstance(key, Ed25519PrivateKey | EllipticCurvePrivateKey):
        raise CommandError(f"{path}: a command key is Ed25519 (EdDSA) or P-256 (ES256)")
    algorithm_for(key)
    return key


def algorithm_for(key: SigningKey) -> str:
    if isinstance(key, Ed25519PrivateKey):
        return "EdDSA"
    if isinstance(key.curve, SECP256R1):
        return "ES256"
    raise CommandError(f"EC keys must be on P-256 for ES256, not {key.curve.name}")


@dataclass(frozen=True)
class SignedCommand:
    """A signed command and where it goes; `gate` None addresses every gate of `site`."""

    name: str
    id: str
    site: str
    gate: str | None
    token: str

    def topic(self, prefix: str) -> str:
        scope = f"{self.site}/{self.gate}" if self.gate else self.site
        return f"{prefix}/{scope}/cmd/{self.name}"

    def reply_filter(self, prefix: str) -> str:
        return f"{prefix}/{self.site}/{self.gate or '+'}/reply"


def sign_command(
    name: str,
    *,
    key: SigningKey,
    kid: str,
    site: str,
    gate: str | None = None,
    args: dict[str, Any] | None = None,
    lifetime_s: float = 60.0,
    now: float | None = None,
) -> SignedCommand:
    """Sign a command as gates verify it (see mqtt.commands); CommandError if it is bad."""
    if name not in COMMANDS:
        raise CommandError(f"unknown command {name!r}; one of: {', '.join(COMMANDS)}")
    try:
        check_level("site", site)
        if gate is not None:
            check_level("gate", gate)
        checked = check_args(name, args)
    except (TopicError, CommandRejectedError) as error:
        raise CommandError(f"{name}: {error}") from None
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {
        "cmd": name,
        "site": site,
        "jti": str(uuid.uuid4()),
        "iat": int(issued),
        "exp": int(issued + lifetime_s),
        "args": checked,
    }
    if gate is not None:
        claims["gate"] = gate
    token = jwt.encode(claims, key, algorithm=algorithm_for(key), headers={"kid": kid})
    return SignedCommand(name, claims["jti"], site, gate, token)


@dataclass(frozen=True)
class GateReply:
    site: str
    gate: str
    reply: dict[str, Any]

    @property
    def ok(self) -> bool:
        return self.reply.get("outcome") == "ok"


def send_command(
    broker: BrokerSettings,
    prefix: str,
    command: SignedCommand,
    *,
    timeout_s: float = 10.0,
    expect: int | None = None,
) -> list[GateReply]:
    """Publish `command` and collect replies that echo its id, until `expect` replies
    came (1 for a gate command) or `timeout_s` passed."""
    check_prefix(prefix)
    exchange = _Exchange(broker, prefix, [command], (command.reply_filter(prefix),))
    try:
        return exchange.run(timeout_s, expect or (1 if command.gate else None))
    finally:
        exchange.close()


def send_commands(
    broker: BrokerSettings,
    prefix: str,
    commands: list[SignedCommand],
    *,
    timeout_s: float = 10.0,
) -> list[GateReply]:
    """Publish many gate commands over one connection and collect the replies that echo
    their ids, until each has one or `timeout_s` passed (what `qrgate report gaps
    --resend` does for a whole fleet)."""
    check_prefix(prefix)
    if not commands:
        return []
    exchange = _Exchange(broker, prefix, commands, (f"{prefix}/+/+/reply",))
    try:
        return exchange.run(timeout_s, len(commands))
    finally:
        exchange.close()


class _Exchange:
    """Connect, subscribe to replies, publish the commands, collect: one thread, one link."""

    def __init__(
        self,
        broker: BrokerSettings,
        prefix: str,
        commands: list[SignedCommand],
        reply_filters: tuple[str, ...],
    ) -> None:
        self._prefix = prefix
        self._commands = commands
        self._ids = {command.id for command in commands}
        self._reply_filters = reply_filters
        self._signals: queue.Queue[Signal] = queue.Queue()
        self._waker = Waker()
        self._link = Link(broker, self._signals, 1)
        self._replies: list[GateReply] = []
        self._published: set[int] = set()

    def run(self, timeout_s: float, expect: int | None) -> list[GateReply]:
        self._link.open()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and (expect is None or len(self._replies) < expect):
            self._link.pump(min(0.1, max(0.0, deadline - time.monotonic())), self._waker)
            while not self._signals.empty():
                self._on(self._signals.get_nowait())
        return self._replies

    def _on(self, signal: Signal) -> None:
        match signal:
            case Connected(refused=None):
                self._link.subscribe(self._reply_filters)
            case Connected(refused=reason) | Lost(reason=reason):
                raise CommandError(f"broker {self._link.broker.address}: {reason}")
            case Subscribed(refused=refused) if refused:
                raise CommandError(f"the broker refused the reply subscription: {refused}")
            case Subscribed():
                self._publish_all()
            case Acked(mid=mid, accepted=False) if mid in self._published:
                raise CommandError(f"the broker refused the command: {signal.reason}")
            case Received(topic=topic, payload=payload):
                self._collect(topic, payload)

    def _publish_all(self) -> None:
        for command in self._commands:
            mid = self._link.publish(command.topic(self._prefix), command.token.encode())
            if mid is not None:
                self._published.add(mid)

    def _collect(self, topic: str, payload: bytes) -> None:
        try:
            reply = json.loads(payload)
        except ValueError:
            return
        if (
            isinstance(reply, dict)
            and isinstance(reply.get("id"), str)
            and reply["id"] in self._ids
        ):
            site, gate = topic[len(self._prefix) + 1 :].split("/")[:2]
            self._replies.append(GateReply(site, gate, reply))

    def close(self) -> None:
        self._link.close()
        self._waker.close()
