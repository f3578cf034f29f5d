"""What one MQTT message means to the monitor: an event, a gate status, a gate's health,
or something to set aside. Pure functions: no broker, no database.

Everything arriving from the broker is untrusted. The topic says which gate and which
stream; the payload is validated against the v1 event contract (`mqtt.events`), and an
event of an enrolled gate must carry its signature (`monitor.intake.enrollment`). A message
that fails, for whatever reason, becomes a `Rejected` record, kept with its reason,
never an exception. What is kept is bounded: a reject's payload, an event's fields v1
does not know, a health message's size and depth.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from monitor.intake.enrollment import Enrollment
from monitor.text import encodable, printable
from mqtt.events import Event, read_event
from mqtt.signing import detach
from mqtt.topics import parse_gate_topic

GATE_STATES = ("online", "offline", "stopped")
# A reject keeps its payload up to this size: a whole event, a flood of junk only in part.
MAX_KEPT_PAYLOAD = 2 * 1024
MAX_REASON = 500
MAX_HEALTH_BYTES = 16 * 1024
MAX_HEALTH_DEPTH = 16
# Fields of an event that v1 does not know are kept up to this size (JSON, UTF-8).
MAX_EXTRA_BYTES = 4 * 1024
DROPPED_FIELDS = "_dropped_fields"
NOT_ENROLLED = None  # the `kid` of an event whose gate has no enrolled key


@dataclass(frozen=True)
class EventRecord:
    """A valid event, with its time as epoch milliseconds and any fields v1 does not know."""

    event: Event
    ts_ms: int
    extra: str | None
    received_ms: int
    kid: str | None = NOT_ENROLLED  # the enrolled key its signature verified with
    seq_believed: bool = True  # the store says otherwise for a seq beyond belief

    @property
    def authenticated(self) -> bool:
        return self.kid is not None

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
    """An empty retained message: a gate's status or health was deleted on purpose. A
    cleared status retires the gate (docs/monitor.md, Retiring a gate: after `qrgate
    fleet retire`, whoever runs the broker clears it)."""

    topic: str
    site: str
    gate: str
    stream: str
    received_ms: int

    @property
    def retires(self) -> bool:
        return self.stream == "status"


Record = EventRecord | StatusRecord | HealthRecord | Rejected | Cleared


def classify(
    prefix: str,
    topic: str,
    payload: bytes,
    received_ms: int,
    enrollment: Enrollment | None = None,
) -> Record:
    """Turn one message into the record the store keeps; never raises on bad input."""
    try:
        return read_message(prefix, topic, payload, received_ms, enrollment or Enrollment())
    except ValueError as error:  # an invalid event's error and json's errors are ValueErrors
        return reject(topic, str(error), payload, received_ms)
    except RecursionError:
        return reject(topic, "nested too deeply", payload, received_ms)
    except Exception as error:  # noqa: BLE001 - whatever a message does, it is set aside
        return reject(topic, f"unreadable ({type(error).__name__})", payload, received_ms)


def read_message(
    prefix: str, topic: str, payload: bytes, received_ms: int, enrollment: Enrollment
) -> Record:
    where = parse_gate_topic(prefix, topic)
    if where is None or where.stream == "reply":
        return reject(topic, "not a gate's events, status or health topic", payload, received_ms)
    if not payload and where.stream != "events":
        return Cleared(topic, where.site, where.gate, where.stream, received_ms)
    if where.stream == "events":
        return event_record(where.site, where.gate, payload, received_ms, enrollment)
    if where.stream == "status":
        return status_record(where.site, where.gate, payload, received_ms)
    return health_record(where.site, where.gate, payload, received_ms)


def event_record(
    site: str,
    gate: str,
    payload: bytes,
    received_ms: int,
    enrollment: Enrollment | None = None,
) -> EventRecord:
    """A v1 event: read from the bytes its signature covers, when it carries one."""
    signed = detach(payload)
    event, extra = read_event(signed.body if signed else payload)
    if event.sig is not None:
        raise ValueError("sig: not the signed form (it must be the last member, see docs/mqtt.md)")
    if (event.site, event.gate) != (site, gate):
        raise ValueError(f"event of {event.site}/{event.gate} published on {site}/{gate}'s topic")
    kid = (enrollment or Enrollment()).authenticate(site, gate, event, signed)
    return EventRecord(
        event=event,
        ts_ms=epoch_ms(event.ts),
        extra=kept_extra(extra),
        received_ms=received_ms,
        kid=kid,
    )


def kept_extra(extra: dict[str, Any] | None) -> str | None:
    """Fields v1 does not know, as JSON of at most MAX_EXTRA_BYTES: when they do not fit,
    the small ones are kept (by name) and the count of the others noted."""
    if not extra:
        return None
    whole = json.dumps(extra, ensure_ascii=False, sort_keys=True)
    if len(whole.encode()) <= MAX_EXTRA_BYTES:
        return whole
    kept: dict[str, Any] = {}
    room = MAX_EXTRA_BYTES - 64  # for the braces and the count of dropped fields
    for name in sorted(extra):
        size = len(json.dumps({name: extra[name]}, ensure_ascii=False).encode())
        if size <= room:
            kept[name] = extra[name]
            room -= size
    kept[DROPPED_FIELDS] = len(extra) - len(kept)
    return json.dumps(kept, ensure_ascii=False, sort_keys=True)


def status_record(site: str, gate: str, payload: bytes, received_ms: int) -> StatusRecord:
    body = json_object(payload)
    state = body.get("state")
    if not isinstance(state, str) or state not in GATE_STATES:
        given = repr(printable(state, 40)) if isinstance(state, str) else type(state).__name__
        raise ValueError(f"status state {given} is not one of {', '.join(GATE_STATES)}")
    return StatusRecord(
        site=site,
        gate=gate,
        state=state,  # type: ignore[arg-type]  # one of GATE_STATES, checked above
        ts=short_text(body.get("ts")),
        version=short_text(body.get("version")),
        received_ms=received_ms,
    )


def health_record(site: str, gate: str, payload: bytes, received_ms: int) -> HealthRecord:
    if len(payload) > MAX_HEALTH_BYTES:
        raise ValueError(f"health payload of {len(payload)} bytes (at most {MAX_HEALTH_BYTES})")
    figures = storable(json_object(payload), MAX_HEALTH_DEPTH)
    assert isinstance(figures, dict)  # an object stays an object
    return HealthRecord(site, gate, figures, received_ms)


def storable(value: Any, depth: int) -> Any:
    """A parsed JSON value any store and any JSON reader takes: text encodable as UTF-8,
    numbers finite (1e400 reads as infinity), nesting bounded."""
    if depth < 0:
        raise ValueError(f"health nested deeper than {MAX_HEALTH_DEPTH} levels")
    if isinstance(value, dict):
        return {encodable(str(k)): storable(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(item, depth - 1) for item in value]
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


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
    """A status text field as shown: a string, made printable; anything else is blank."""
    return printable(value, limit) if isinstance(value, str) else None


def epoch_ms(ts: str) -> int:
    """The event's `ts` (ISO 8601 UTC, milliseconds) as epoch milliseconds."""
    return round(datetime.fromisoformat(ts).timestamp() * 1000)


def reject(topic: str, reason: str, payload: bytes, received_ms: int) -> Rejected:
    return Rejected(
        printable(topic, 512),
        printable(reason, MAX_REASON),
        payload[:MAX_KEPT_PAYLOAD],
        received_ms,
    )
