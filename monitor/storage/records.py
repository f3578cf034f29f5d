"""Plain rows the store hands out: to the live view, and to the reports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from monitor.intake.ingest import EventRecord

RETIRED = "retired"  # the state a gate is given when its retained status is cleared


@dataclass(frozen=True)
class Scan:
    """A granted scan: what presence on a site is made of."""

    site: str
    subject: str
    name: str | None
    gate: str
    direction: str
    ts_ms: int
    cert_type: str | None = None  # the health certificate it was made with, if any
    cert_country: str | None = None


@dataclass(frozen=True)
class Gap:
    """Events `first`..`last` (inclusive) of one gate were never received."""

    site: str
    gate: str
    first: int
    last: int

    @property
    def missing(self) -> int:
        return self.last - self.first + 1


@dataclass(frozen=True)
class GateRow:
    """What the monitor knows of one gate: status, last health, events counted."""

    site: str
    gate: str
    state: str | None = None
    state_ts: str | None = None
    version: str | None = None
    state_received_ms: int | None = None
    health: dict[str, Any] | None = None
    health_received_ms: int | None = None
    events: int = 0
    last_seq: int = 0
    last_event_ms: int = 0
    flagged: int = 0  # events whose seq was not believed
    unauthenticated: int = 0  # events stored while the gate was not enrolled

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> GateRow:
        site, gate, state, state_ts, version, state_ms, health, health_ms, *counts = row
        return cls(
            site, gate, state, state_ts, version, state_ms,
            health_figures(health), health_ms, *counts,
        )  # fmt: skip

    @property
    def retired(self) -> bool:
        """Its retained status was cleared: the gate left the fleet (its events stay)."""
        return self.state == RETIRED

    @property
    def missing(self) -> int:
        """Events not received, counted from seq 1 to the highest believed seq seen."""
        return max(self.last_seq - (self.events - self.flagged), 0)


@dataclass(frozen=True)
class EventRow:
    """One stored event as the dashboard lists it and the live view shows it (every v1
    field a person reads)."""

    id: str
    ts_ms: int
    site: str
    gate: str
    seq: int
    direction: str
    type: str
    result: str | None
    reason: str | None
    credential: str | None
    subject: str | None
    name: str | None
    latency_ms: float | None
    detail: str | None
    received_ms: int
    cert_type: str | None = None  # a health certificate's type and issuing country
    cert_country: str | None = None

    @classmethod
    def from_record(cls, record: EventRecord) -> EventRow:
        event = record.event
        return cls(
            event.id, record.ts_ms, event.site, event.gate, event.seq, event.direction,
            event.type, event.result, event.reason, event.credential, event.subject,
            event.name, event.latency_ms, event.detail, record.received_ms, event.cert_type,
            event.cert_country,
        )  # fmt: skip


@dataclass(frozen=True)
class EventFilter:
    """Which events to list: each field None means any; times are [from_ms, to_ms)."""

    site: str | None = None
    gate: str | None = None
    direction: str | None = None
    result: str | None = None
    reason: str | None = None
    credential: str | None = None
    subject: str | None = None
    cert_type: str | None = None
    cert_country: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None


@dataclass(frozen=True)
class Person:
    """A subject and a name their events carried, and when that name was last seen."""

    subject: str
    name: str | None
    last_ms: int


def health_figures(text: str | None) -> dict[str, Any] | None:
    """Stored health as figures; whatever cannot be read (an older monitor stored it, a
    hand-made row) is no health at all rather than a monitor that cannot start."""
    try:
        figures = json.loads(text) if text else None
    except (ValueError, RecursionError):
        return None
    return figures if isinstance(figures, dict) else None
