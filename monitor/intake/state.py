"""What the monitor knows right now, for the live view: gates, latest events, counters.

Written by the subscriber's threads, read by the view: every change and every snapshot
is taken under one lock, and a snapshot is a copy the view may keep.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field, replace

from monitor.intake.ingest import Cleared, EventRecord, HealthRecord, Record, Rejected, StatusRecord
from monitor.storage.records import EventRow, GateRow

RECENT_EVENTS = 15


@dataclass(frozen=True)
class Counters:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0


@dataclass(frozen=True)
class Snapshot:
    gates: tuple[GateRow, ...]
    recent: tuple[EventRow, ...]
    counters: Counters
    connected: bool
    store_problem: str | None
    enrolled: frozenset[tuple[str, str]] = frozenset()  # gates whose events are verified

    @property
    def unenrolled(self) -> list[GateRow]:
        """The gates whose events are not authenticated: no key of theirs is enrolled."""
        return [gate for gate in self.gates if (gate.site, gate.gate) not in self.enrolled]


@dataclass
class LiveState:
    gates: dict[tuple[str, str], GateRow] = field(default_factory=dict)
    recent: deque[EventRow] = field(default_factory=lambda: deque(maxlen=RECENT_EVENTS))
    counters: Counters = field(default_factory=Counters)
    connected: bool = False
    store_problem: str | None = None
    enrolled: frozenset[tuple[str, str]] = frozenset()
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def seed(self, gates: list[GateRow], recent: list[EventRow]) -> None:
        """Start from what the store already holds."""
        with self._lock:
            self.gates = {(gate.site, gate.gate): gate for gate in gates if not gate.retired}
            self.recent.extend(recent)

    def set_connected(self, connected: bool) -> None:
        with self._lock:
            self.connected = connected

    def set_enrolled(self, gates: frozenset[tuple[str, str]]) -> None:
        with self._lock:
            self.enrolled = gates

    def set_store_problem(self, problem: str | None) -> None:
        with self._lock:
            self.store_problem = problem

    def stored(self, records: list[Record], new: list[EventRecord]) -> None:
        """A batch was written: `new` are its events the store did not have yet."""
        with self._lock:
            events = sum(isinstance(record, EventRecord) for record in records)
            rejected = sum(isinstance(record, Rejected) for record in records)
            self.counters = Counters(
                received=self.counters.received + len(records),
                stored=self.counters.stored + len(new),
                duplicates=self.counters.duplicates + events - len(new),
                rejected=self.counters.rejected + rejected,
            )
            for record in records:
                self._apply(record)
            for event in sorted(new, key=lambda record: record.ts_ms):
                self._count(event)

    def _apply(self, record: Record) -> None:
        match record:
            case StatusRecord(site, gate, state, ts, version, received_ms):
                self._update(
                    site, gate, state=state, state_ts=ts, version=version,
                    state_received_ms=received_ms,
                )  # fmt: skip
            case HealthRecord(site, gate, figures, received_ms):
                self._update(site, gate, health=figures, health_received_ms=received_ms)
            case Cleared(site=site, gate=gate) if record.retires:
                self.gates.pop((site, gate), None)
            case EventRecord() | Rejected() | Cleared():
                pass

    def _count(self, record: EventRecord) -> None:
        site, gate = record.gate_key
        known = self.gates.get(record.gate_key, GateRow(site, gate))
        believed = record.seq_believed
        self._update(
            site,
            gate,
            events=known.events + 1,
            last_seq=max(known.last_seq, record.event.seq) if believed else known.last_seq,
            flagged=known.flagged + (not believed),
            unauthenticated=known.unauthenticated + (not record.authenticated),
            last_event_ms=max(known.last_event_ms, record.ts_ms),
        )
        self.recent.append(EventRow.from_record(record))

    def _update(self, site: str, gate: str, **changes: object) -> None:
        known = self.gates.get((site, gate), GateRow(site, gate))
        # `changes` are GateRow fields by construction; mypy cannot check **kwargs of replace.
        self.gates[(site, gate)] = replace(known, **changes)  # type: ignore[arg-type]

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                gates=tuple(self.gates[key] for key in sorted(self.gates)),
                recent=tuple(self.recent),
                counters=self.counters,
                connected=self.connected,
                store_problem=self.store_problem,
                enrolled=self.enrolled,
            )
