"""What a gate says about itself: the retained `status` and the periodic `health` report."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from mqtt.events import format_ts
from mqtt.outbox import Depth

THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")  # the SoC's, on a Raspberry Pi
State = Literal["online", "offline", "stopped"]


def compact_json(body: Mapping[str, Any]) -> bytes:
    """UTF-8 JSON that always encodes: a character UTF-8 cannot carry (a lone surrogate
    from some untrusted input) becomes `?` rather than an exception in the publisher."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.encode("utf-8", "replace")


def status_payload(state: State, ts: float, version: str, fault: str | None = None) -> bytes:
    """`{"state", "ts", "version"}` for the retained status topic, and `fault` when the
    gate runs but cannot do its work (its store cannot be opened)."""
    body = {"state": state, "ts": format_ts(ts), "version": version}
    if fault is not None:
        body["fault"] = fault
    return compact_json(body)


def cpu_temperature_c(path: Path = THERMAL_ZONE) -> float | None:
    """The CPU temperature in °C, or None where the kernel does not expose it."""
    try:
        return round(int(path.read_text().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None


@dataclass
class LinkStats:
    """The publisher's own figures, reported under `mqtt` in health."""

    connected_since: str | None = None
    connects: int = 0
    refused: int = 0
    last_refusal: str | None = None
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class HealthReport:
    """One health message: the gate's figures (camera fps, decode ms, last scan...) as the
    daemon reports them, and the publisher's (uptime, outbox, link, CPU temperature)."""

    ts: float
    version: str
    uptime_s: float
    outbox: Depth | None  # None: the store cannot tell
    link: LinkStats
    gate: Mapping[str, Any]
    cpu_temp_c: float | None

    def to_json(self) -> bytes:
        return compact_json(
            {
                **self.gate,
                "ts": format_ts(self.ts),
                "version": self.version,
                "uptime_s": round(self.uptime_s, 1),
                "outbox": None if self.outbox is None else self.outbox.as_dict(),
                "mqtt": self.link.as_dict(),
                "cpu_temp_c": self.cpu_temp_c,
            }
        )
