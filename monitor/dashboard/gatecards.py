"""A gate as the Gates page shows it: its state (with `stale` for a gate that says it is
online but has not reported for a while), the figures of its last health message, read
leniently as the terminal view reads them, and whether its events are authenticated:

- `verified`: a key of the gate is enrolled; its events are stored only once its
  signature verified (those stored before the enrollment are counted apart);
- `not_enrolled`: no key enrolled; its events are stored, not authenticated;
- `set_aside`: no key enrolled, and the monitor runs with `--enrolled-only`: its events
  are set aside, not stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from monitor.reporting.view import figure
from monitor.storage.records import GateRow
from mqtt.topics import MODES

Trust = Literal["verified", "not_enrolled", "set_aside"]


@dataclass(frozen=True)
class GateCard:
    site: str
    gate: str
    state: str  # online | offline | stopped | stale | unknown
    state_ms: int | None
    last_event_ms: int | None
    events: int
    missing: int
    outbox: float | None
    fill: float | None
    fps: float | None
    decode_ms: float | None
    cpu_temp_c: float | None
    mode: str | None
    faults: dict[str, str]
    health_ms: int | None
    version: str | None
    trust: Trust = "not_enrolled"
    unauthenticated: int = 0  # events stored without a signature checked
    kids: tuple[str, ...] = ()  # the gate's enrolled keys


def card(
    gate: GateRow,
    now_ms: int,
    stale_after_s: float,
    kids: tuple[str, ...] = (),
    enrolled_only: bool = False,
) -> GateCard:
    health = gate.health or {}
    return GateCard(
        site=gate.site,
        gate=gate.gate,
        state=state_of(gate, now_ms, stale_after_s),
        state_ms=gate.state_received_ms,
        last_event_ms=gate.last_event_ms or None,
        events=gate.events,
        missing=gate.missing,
        outbox=number(figure(health, "outbox")),
        fill=number(dig(health, "outbox", "fill")),
        fps=number(figure(health, "fps")),
        decode_ms=number(figure(health, "decode")),
        cpu_temp_c=number(health.get("cpu_temp_c")),
        mode=mode_of(health),
        faults=faults_of(health),
        health_ms=gate.health_received_ms,
        version=gate.version,
        trust=trust_of(kids, enrolled_only),
        unauthenticated=gate.unauthenticated,
        kids=kids,
    )


def trust_of(kids: tuple[str, ...], enrolled_only: bool) -> Trust:
    if kids:
        return "verified"
    return "set_aside" if enrolled_only else "not_enrolled"


def state_of(gate: GateRow, now_ms: int, stale_after_s: float) -> str:
    if gate.state != "online":
        return gate.state or "unknown"
    heard = max(gate.health_received_ms or 0, gate.state_received_ms or 0)
    return "stale" if now_ms - heard > stale_after_s * 1000 else "online"


def dig(health: dict[str, Any], *path: str) -> Any:
    value: Any = health
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def mode_of(health: dict[str, Any]) -> str | None:
    mode = health.get("mode")
    return mode if mode in MODES else None


def faults_of(health: dict[str, Any]) -> dict[str, str]:
    faults = health.get("faults")
    if not isinstance(faults, dict):
        return {}
    return {str(area)[:32]: str(message)[:200] for area, message in list(faults.items())[:10]}
