"""What one MQTT message means to the monitor: an event, a gate status, a gate's health,
or something to set aside. Pure functions: no broker, no database.

Everything arriving from the broker is untrusted. The topic says which gate and which
stream; the payload is validated against the v1 event contract (`mqtt.events`). A message
that fails becomes a `Rejected` record, kept with its reason, never an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from mqtt.events import Event, parse_event
from mqtt.topics import parse_gate_topic

GATE_STATES = ("online", "offline", "stopped")
# Larger payloads are no gate's: kept only in part, so a flood cannot fill the store.
MAX_KEPT_PAYLOAD = 16 * 1024
MAX_HEALTH_BYTES = 16 * 1024


@dataclass(frozen=True)
class EventRecord:
    """A valid event, with its time as epoch milliseconds and any fields v1 does not know."""

    event: Event
    ts_ms: int
    extra: str | None
    received_ms: int

    @property
    def gate_key(self) -> tuple[str, str]:
        return self.event.site, self.event.gate


@dataclass(frozen=True)
class StatusRecord:
    """A gate's retained status (`online`, `offline` by its last will, or `stopped`)."""

    site: str
    gate: str
    state: Literal["online", "offline", "stopped"]
    ts: str | None
    version: str | None
    received_ms: int


@dataclass(frozen=True)
class HealthRecord:
    """A gate's latest health figures, kept whole: gates may add fields at any time."""

    site: str
    gate: str
    figures: dict[str, Any]
    received_ms: int

    @property
    def text(self) -> str:
        return json.dumps(self.figures, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Rejected:
    """A message the monitor could not use, kept (payload capped) with the reason."""

    topic: str
    reason: str
    payload: bytes
    received_ms: int


@dataclass(frozen=True)
class Cleared:
    """An empty retained message: a gate's status or health was deleted on purpose."""

    topic: str


Record = EventRecord | StatusRecord | HealthRecord | Rejected | Cleared


def classify(prefix: str, topic: str, payload: bytes, received_ms: int) -> Record:
    """Turn one message into the record the store keeps; never raises on bad input."""
    where = parse_gate_topic(prefix, topic)
    if where is None or where.stream == "reply":
        return reject(topic, "not a gate's events, status or health topic", payload, received_ms)
    if not payload and where.stream != "events":
        return Cleared(topic)
    try:
        if where.stream == "events":
            return event_record(where.site, where.gate, payload, received_ms)
        if where.stream == "status":
            return status_record(where.site, where.gate, payload, received_ms)
        return health_record(where.site, where.gate, payload, received_ms)
    except ValueError as error:  # pydantic's ValidationError and json's errors are ValueErrors
        return reject(topic, describe(error), payload, received_ms)


def event_record(site: str, gate: str, payload: bytes, received_ms: int) -> EventRecord:
    event = parse_event(payload)
    if (event.site, event.gate) != (site, gate):
        raise ValueError(f"event of {event.site}/{event.gate} published on {site}/{gate}'s topic")
    extra = event.model_extra
    return EventRecord(
        event=event,
        ts_ms=epoch_ms(event.ts),
        extra=json.dumps(extra, ensure_ascii=False, sort_keys=True) if extra else None,
        received_ms=received_ms,
    )


def status_record(site: str, gate: str, payload: bytes, received_ms: int) -> StatusRecord:
    body = json_object(payload)
    state = body.get("state")
    if state not in GATE_STATES:
        raise ValueError(f"status state {state!r} is not one of {', '.join(GATE_STATES)}")
    return StatusRecord(
        site=site,
        gate=gate,
        state=state,
        ts=short_text(body.get("ts")),
        version=short_text(body.get("version")),
        received_ms=received_ms,
    )


def health_record(site: str, gate: str, payload: bytes, received_ms: int) -> HealthRecord:
    if len(payload) > MAX_HEALTH_BYTES:
        raise ValueError(f"health payload of {len(payload)} bytes (at most {MAX_HEALTH_BYTES})")
    return HealthRecord(site, gate, json_object(payload), received_ms)


def json_object(payload: bytes) -> dict[str, Any]:
    try:
        body = json.loads(payload)
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8: {error.reason}") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error.msg} at {error.pos}") from None
    if not isinstance(body, dict):
        raise ValueError(f"expected a JSON object, got {type(body).__name__}")
    return body


def short_text(value: object, limit: int = 64) -> str | None:
    return None if value is None else str(value)[:limit]


def epoch_ms(ts: str) -> int:
    """The event's `ts` (ISO 8601 UTC, milliseconds) as epoch milliseconds."""
    return round(datetime.fromisoformat(ts).timestamp() * 1000)


def reject(topic: str, reason: str, payload: bytes, received_ms: int) -> Rejected:
    return Rejected(
        topic, reason.replace("\0", "\\0")[:500], payload[:MAX_KEPT_PAYLOAD], received_ms
    )


def describe(error: ValueError) -> str:
    """One line that says what was wrong, without echoing the (untrusted) payload."""
    if isinstance(error, ValidationError):
        problems = [
            f"{'.'.join(str(part) for part in item['loc']) or 'message'}: {item['msg']}"
            for item in error.errors(include_url=False, include_input=False)
        ]
        return "; ".join(problems[:5])
    return str(error)
