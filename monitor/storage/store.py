"""The monitor's event store: SQLite by default, PostgreSQL for a central server.

One class speaks to both through the DB-API; the few differences (placeholders, column
types, how a write transaction starts, which errors pass) live in a `Dialect`. Every
write is one transaction: events are inserted with `ON CONFLICT DO NOTHING` on their key
(`id`; on PostgreSQL, whose events are partitioned by month, `(ts_ms, id)`), so a
message delivered twice, or to two monitors sharing the database, is stored once. The
gates' rows a batch touches are locked first, in one order, so that monitors sharing
PostgreSQL wait for each other instead of deadlocking (and a write that meets another
all the same is tried again).

URLs: `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`,
`postgresql://user@host:port/dbname` (anything libpq accepts; psycopg 3, loaded lazily).
"""

from __future__ import annotations

import logging
import random
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from monitor.errors import (
    StoreConflictError,
    StoreError,
    StoreRefusedError,
    StoreUnavailableError,
)
from monitor.intake.enrollment import EnrolledKey
from monitor.intake.ingest import (
    Cleared,
    EventRecord,
    HealthRecord,
    Record,
    Rejected,
    StatusRecord,
)
from monitor.storage import partitions, seqranges
from monitor.storage.presence_sql import (
    FORGET_PEOPLE,
    INSIDE,
    INSIDE_LATERAL,
    RECENT_MS,
    SCANS,
    SEE_PEOPLE,
)
from monitor.storage.records import (
    RETIRED,
    EventFilter,
    EventRow,
    Gap,
    GateRow,
    Person,
    Scan,
)
from monitor.storage.schema import (
    FILTERED_COLUMNS,
    FIRST_SCHEMA_VERSION,
    MIGRATIONS,
    SCHEMA,
    SCHEMA_VERSION,
    run_step,
)
from mqtt.db import enter_wal

log = logging.getLogger(__name__)

EVENT_COLUMNS = (
    "id", "site", "gate", "seq", "ts_ms", "direction", "type", "result", "reason",
    "credential", "subject", "name", "code_sha256", "latency_ms", "detail", "ts_trusted",
    "extra", "received_ms", "kid", "seq_believed", "cert_type", "cert_country",
)  # fmt: skip
# Rows per INSERT statement: under SQLite's and PostgreSQL's bound-parameter limits.
INSERT_CHUNK = 500

# `last_seq` moves with believed events only (see `seq_bound`); every SET reads the old row.
COUNT_NEW = """
INSERT INTO gates (site, gate, events, flagged, unauthenticated, last_seq,
    last_seq_received_ms, last_event_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (site, gate) DO UPDATE SET
    events = gates.events + excluded.events,
    flagged = gates.flagged + excluded.flagged,
    unauthenticated = gates.unauthenticated + excluded.unauthenticated,
    last_seq = CASE WHEN excluded.last_seq > gates.last_seq
                    THEN excluded.last_seq ELSE gates.last_seq END,
    last_seq_received_ms = CASE WHEN excluded.last_seq > gates.last_seq
                    THEN excluded.last_seq_received_ms ELSE gates.last_seq_received_ms END,
    last_event_ms = CASE WHEN excluded.last_event_ms > gates.last_event_ms
                         THEN excluded.last_event_ms ELSE gates.last_event_ms END
"""
# The batch's gates, made if new and locked in (site, gate) order, with what each seq
# is judged by: every writer takes the gate rows it needs in this one order, first.
LOCK_GATES = """
INSERT INTO gates (site, gate) VALUES {values}
ON CONFLICT (site, gate) DO UPDATE SET site = excluded.site
RETURNING site, gate, last_seq, last_seq_received_ms
"""
# Writes that meet another monitor's (PostgreSQL: a deadlock found, a serialization
# failure) are tried again at once, this many times, before the writer backs off.
CONFLICT_RETRIES = 5
CONFLICT_PAUSE_S = 0.05
# A seq is believed up to what its gate could have made since its last believed event:
# SEQ_RATE a second (beyond any camera's frame rate) plus SEQ_SLACK; a gate heard of for
# the first time, up to FIRST_SEQ_MAX (a busy gate takes decades to get there).
SEQ_RATE = 50
SEQ_SLACK = 10_000
FIRST_SEQ_MAX = 100_000_000
PRUNE_EVERY_MS = 3600 * 1000
SCHEMA_ROW = "SELECT value FROM meta WHERE key = 'schema'"
SQLITE_BUSY_TIMEOUT_S = 30.0  # how long a statement waits for another process's lock
# PostgreSQL: one process at a time makes a new store (an advisory lock's key).
CREATE_LOCK = 0x717267617465 + 1
SET_STATUS = """
INSERT INTO gates (site, gate, state, state_ts, version, state_received_ms)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (site, gate) DO UPDATE SET state = excluded.state, state_ts = excluded.state_ts,
    version = excluded.version, state_received_ms = excluded.state_received_ms
"""
RETIRE = "UPDATE gates SET state = ?, state_received_ms = ? WHERE site = ? AND gate = ?"
SET_HEALTH = """
INSERT INTO gates (site, gate, health, health_received_ms) VALUES (?, ?, ?, ?)
ON CONFLICT (site, gate) DO UPDATE SET health = excluded.health,
    health_received_ms = excluded.health_received_ms
"""
KEEP_REJECT = "INSERT INTO rejects (received_ms, topic, reason, payload) VALUES (?, ?, ?, ?)"

PRUNE_REJECTS_OLD = "DELETE FROM rejects WHERE received_ms < ?"
# The newest `max_rows` stay (rows received in the same millisecond as the last kept
# one stay too: the bound holds to within one batch).
PRUNE_REJECTS_MANY = """
DELETE FROM rejects WHERE received_ms < (
    SELECT received_ms FROM rejects ORDER BY received_ms DESC LIMIT 1 OFFSET ?
)
"""
# Far beyond any event's time: "before the end of time" without a special case.
END_OF_TIME_MS = 2**62
ROW_COLUMNS = (
    "id, ts_ms, site, gate, seq, direction, type, result, reason, credential, subject, name,"
    " latency_ms, detail, received_ms, cert_type, cert_country"
)
# Fields of EventFilter compared for equality, each a column of the same name (all but
# the time range).
FILTER_COLUMNS = tuple(
    field.name for field in fields(EventFilter) if field.name not in ("from_ms", "to_ms")
)
LAST_SEQS = "SELECT site, gate, last_seq FROM gates {where}"
# Events older than the retention are deleted; per gate, the highest seq deleted is kept
# in `meta` under this prefix, so the events before it are not reported as missing.
PRUNED_KEY = "pruned_seq:"
OLDEST = "SELECT id, site, gate, seq, ts_ms FROM events WHERE ts_ms < ? ORDER BY ts_ms LIMIT ?"
DELETE_OLDEST = "DELETE FROM events WHERE ts_ms >= ? AND ts_ms <= ? AND id IN ({ids})"
SET_META = """
INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value
"""
ENROLLED_ONLY_KEY = "enrolled_only"
KEEP_PRUNED = """
INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value
WHERE CAST(meta.value AS BIGINT) < CAST(excluded.value AS BIGINT)
"""


@dataclass(frozen=True)
class RejectLimits:
    """How much of what was set aside the store keeps: the newest rows, none too old."""

    max_rows: int = 10_000
    max_age_ms: int = 30 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Dialect:
    name: str
    blob: str
    begin_write: str
    transient: tuple[type[BaseException], ...]
    refused: tuple[type[BaseException], ...]
    missing_table: tuple[type[BaseException], ...] = ()
    # Failures of a transaction that met another one (tried again at once).
    conflict: tuple[type[BaseException], ...] = ()
    placeholder: str = "?"
    lock: str = ""  # what makes a SELECT lock its rows until the transaction ends
    # Whether a table of this name exists (1) or not (0).
    table_exists: str = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"

    def sql(self, text: str) -> str:
        return text if self.placeholder == "?" else text.replace("?", self.placeholder)


SQLITE = Dialect(
    name="sqlite",
    blob="BLOB",
    # IMMEDIATE takes the write lock up front: no deadlock between two writers upgrading.
    begin_write="BEGIN IMMEDIATE",
    transient=(sqlite3.OperationalError,),
    refused=(
        sqlite3.IntegrityError,
        sqlite3.DataError,
        sqlite3.InterfaceError,
        OverflowError,
        UnicodeError,
    ),
)


def postgres_dialect() -> Dialect:
    import psycopg

    return Dialect(
        name="postgresql",
        blob="BYTEA",
        begin_write="BEGIN",
        transient=(psycopg.OperationalError, psycopg.InterfaceError),
        refused=(psycopg.DataError, psycopg.IntegrityError, OverflowError, UnicodeError),
        missing_table=(psycopg.errors.UndefinedTable,),
        conflict=(psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected),
        placeholder="%s",
        lock=" FOR UPDATE",
        table_exists="SELECT COUNT(*) FROM pg_tables"
        " WHERE schemaname = current_schema() AND tablename = ?",
    )


class Store:
    """The event store of one database; not shared between threads (open one per thread)."""

    def __init__(
        self,
        url: str,
        *,
        create: bool = True,
        rejects: RejectLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.dialect, self._connect = resolve(url, create=create)
        self.reject_limits = rejects or RejectLimits()
        self.clock = clock
        self._pruned_ms = 0
        self._connection: Any = None
        with self._unavailable_as_error():
            if create:
                self._create_schema()
            self._migrate()
            self._check_schema()

    # ---- writing -------------------------------------------------------------------

    def write(self, records: Sequence[Record]) -> list[EventRecord]:
        """Store a batch in one transaction; returns the events that were new.

        Raises StoreUnavailableError when trying again later may work, StoreRefusedError when the
        database cannot hold some value of the batch (nothing of the batch is stored).
        """
        for attempt in range(CONFLICT_RETRIES):
            try:
                return self._write_once(records)
            except StoreConflictError as error:
                log.info("%s; trying again (%d)", error, attempt + 1)
                time.sleep(CONFLICT_PAUSE_S * random.uniform(0.5, 1.5))  # noqa: S311 - jitter
        return self._write_once(records)

    def _write_once(self, records: Sequence[Record]) -> list[EventRecord]:
        with self._transaction(self.dialect.begin_write) as cursor:
            events = unique_events(records)
            baselines = self._lock_gates(cursor, gate_keys(records))
            believed = believed_ids(events, baselines)
            new = [
                record if record.event.id in believed else replace(record, seq_believed=False)
                for record in self._insert_events(cursor, events, believed)
            ]
            self._count_new(cursor, new, believed)
            seqranges.record_new(cursor, self.dialect.sql, believed_seqs(new, believed))
            self._see_people(cursor, new)
            for record in records:
                self._apply(cursor, record)
            self._prune_rejects(cursor, records)
        return new

    def _lock_gates(
        self, cursor: Any, keys: list[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[int, int | None]]:
        """Make and lock the rows of these gates, in (site, gate) order, before anything
        else: two monitors writing the same gates wait for each other, never deadlock.
        Returns each gate's last believed seq and when it came."""
        if not keys:
            return {}
        values = ", ".join(["(?, ?)"] * len(keys))
        cursor.execute(
            self.dialect.sql(LOCK_GATES.format(values=values)),
            [part for key in keys for part in key],
        )
        return {(site, gate): (int(last), at) for site, gate, last, at in cursor.fetchall()}

    def _insert_events(
        self, cursor: Any, events: list[EventRecord], believed: set[str]
    ) -> list[EventRecord]:
        stored: set[str] = set()
        for start in range(0, len(events), INSERT_CHUNK):
            chunk = events[start : start + INSERT_CHUNK]
            cursor.execute(
                self.dialect.sql(insert_events_sql(len(chunk))), event_params(chunk, believed)
            )
            stored.update(row[0] for row in cursor.fetchall())
        return [record for record in events if record.event.id in stored]

    def _count_new(self, cursor: Any, new: list[EventRecord], believed: set[str]) -> None:
        per_gate: dict[tuple[str, str], list[EventRecord]] = {}
        for record in new:
            per_gate.setdefault(record.gate_key, []).append(record)
        rows = [
            gate_counts(site, gate, items, believed)
            for (site, gate), items in sorted(per_gate.items())
        ]
        if rows:
            cursor.executemany(self.dialect.sql(COUNT_NEW), rows)

    def _see_people(self, cursor: Any, new: list[EventRecord]) -> None:
        """Per person and site, the time of their latest granted scan (`people`)."""
        latest: dict[tuple[str, str], int] = {}
        for record in new:
            event = record.event
            if event.type == "scan" and event.result == "granted" and event.subject is not None:
                key = (event.site, event.subject)
                latest[key] = max(record.ts_ms, latest.get(key, record.ts_ms))
        if latest:
            rows = [(site, subject, ms) for (site, subject), ms in sorted(latest.items())]
            cursor.executemany(self.dialect.sql(SEE_PEOPLE), rows)

    def _prune_rejects(self, cursor: Any, records: Sequence[Record]) -> None:
        """Keep the rejects table bounded (junk can arrive faster than anyone reads it):
        with every batch that adds to it, and now and then for age alone."""
        now_ms = max(
            (record.received_ms for record in records if not isinstance(record, Cleared)),
            default=0,
        )
        adds = any(isinstance(record, Rejected) for record in records)
        if not adds and now_ms - self._pruned_ms < PRUNE_EVERY_MS:
            return
        self._pruned_ms = now_ms
        limits = self.reject_limits
        cursor.execute(self.dialect.sql(PRUNE_REJECTS_OLD), (now_ms - limits.max_age_ms,))
        cursor.execute(self.dialect.sql(PRUNE_REJECTS_MANY), (limits.max_rows - 1,))

    def _apply(self, cursor: Any, record: Record) -> None:
        """Status, health and rejects, in arrival order (a last will follows `online`)."""
        sql = self.dialect.sql
        match record:
            case StatusRecord(site, gate, state, ts, version, received_ms):
                cursor.execute(sql(SET_STATUS), (site, gate, state, ts, version, received_ms))
            case HealthRecord(site=site, gate=gate, received_ms=received_ms):
                cursor.execute(sql(SET_HEALTH), (site, gate, record.text, received_ms))
            case Rejected(topic, reason, payload, received_ms):
                cursor.execute(sql(KEEP_REJECT), (received_ms, topic, reason, payload))
            case Cleared(site=site, gate=gate, received_ms=received_ms) if record.retires:
                cursor.execute(sql(RETIRE), (RETIRED, received_ms, site, gate))
            case EventRecord() | Cleared():
                pass

    # ---- reading -------------------------------------------------------------------

    def gates(self) -> list[GateRow]:
        rows = self._read(
            "SELECT site, gate, state, state_ts, version, state_received_ms, health,"
            " health_received_ms, events, last_seq, last_event_ms, flagged, unauthenticated"
            " FROM gates ORDER BY site, gate"
        )
        return [GateRow.from_row(row) for row in rows]

    def recent_events(self, limit: int) -> list[EventRow]:
        rows = self._read(
            f"SELECT {ROW_COLUMNS} FROM events ORDER BY ts_ms DESC LIMIT ?",  # noqa: S608
            limit,
        )
        return [EventRow(*row) for row in reversed(rows)]

    def inside(
        self, before_ms: int | None = None, site: str | None = None, subject: str | None = None
    ) -> list[Scan]:
        """Whoever's last granted scan before `before_ms` (else ever) was an `in`, per site."""
        filters, params = subject_filters(site, subject, table="people.")
        before = END_OF_TIME_MS if before_ms is None else before_ms
        if self.dialect.name == "postgresql":
            bounds = (before, before, before - RECENT_MS, before)
            rows = self._read(INSIDE_LATERAL.format(filters=filters), *bounds, *params)
        else:
            rows = self._read(INSIDE.format(filters=filters), before, *params)
        return [Scan(*row) for row in rows]

    def scans(
        self, from_ms: int, to_ms: int, site: str | None = None, subject: str | None = None
    ) -> list[Scan]:
        """Granted scans in [from_ms, to_ms), by site, subject and time."""
        filters, params = subject_filters(site, subject)
        rows = self._read(SCANS.format(filters=filters), from_ms, to_ms, *params)
        return [Scan(*row) for row in rows]

    def gaps(self, site: str | None = None) -> list[Gap]:
        """Missing seq ranges per gate, from 1 (or above what the retention deleted) up to
        the highest believed seq received: the holes between the seq ranges received."""
        where, params = ("WHERE site = ?", [site]) if site else ("", [])
        # The highest seqs first: ranges read after them hold at least as much.
        tops = {
            (row[0], row[1]): int(row[2])
            for row in self._read(LAST_SEQS.format(where=where), *params)
        }
        ranges = seqranges.read_ranges(self._read(seqranges.ALL.format(where=where), *params))
        marks = self.pruned_marks()
        found: list[Gap] = []
        for (site_, gate), last in sorted(tops.items()):
            above = marks.get((site_, gate), 0)
            found += seqranges.holes(site_, gate, ranges.get((site_, gate), []), above, last)
        return found

    def pruned_marks(self) -> dict[tuple[str, str], int]:
        """Per gate, the highest seq the retention deleted."""
        end = PRUNED_KEY[:-1] + chr(ord(PRUNED_KEY[-1]) + 1)
        rows = self._read("SELECT key, value FROM meta WHERE key >= ? AND key < ?", PRUNED_KEY, end)
        marks = {}
        for key, value in rows:
            site, _, gate = key.removeprefix(PRUNED_KEY).partition("/")
            marks[(site, gate)] = int(value)
        return marks

    def events(
        self, where: EventFilter, before: tuple[int, str] | None = None, limit: int = 50
    ) -> list[EventRow]:
        """Events matching `where`, newest first; `before` (ts_ms, id) pages to older ones."""
        # On SQLite `+column` keeps a filter without a (column, ts_ms) index from choosing
        # an index of its own: the newest rows are then read through the time index and
        # the scan stops at `limit` matches, instead of sorting, say, a whole gate's events
        # by time. A filter with such an index reads it newest first.
        conditions, params = event_conditions(where, "+" if self.dialect.name == "sqlite" else "")
        if before is not None:
            conditions.append("(ts_ms < ? OR (ts_ms = ? AND id < ?))")
            params += [before[0], before[0], before[1]]
        clause = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = self._read(
            f"SELECT {ROW_COLUMNS} FROM events {clause} ORDER BY ts_ms DESC, id DESC LIMIT ?",  # noqa: S608
            *params,
            limit,
        )
        return [EventRow(*row) for row in rows]

    def events_after(self, site: str, gate: str, seq: int, limit: int = 500) -> list[EventRow]:
        """A gate's events above `seq`, in seq order (through the (site, gate, seq) index)."""
        rows = self._read(
            f"SELECT {ROW_COLUMNS} FROM events WHERE site = ? AND gate = ? AND seq > ?"  # noqa: S608
            " ORDER BY seq LIMIT ?",
            site,
            gate,
            seq,
            limit,
        )
        return [EventRow(*row) for row in rows]

    def people(self) -> list[Person]:
        """Every subject with each name their events carried, and when it was last seen."""
        rows = self._read(
            "SELECT subject, name, MAX(ts_ms) FROM events WHERE subject IS NOT NULL"
            " GROUP BY subject, name"
        )
        return [Person(*row) for row in rows]

    def sites(self) -> list[str]:
        return [row[0] for row in self._read("SELECT DISTINCT site FROM gates ORDER BY site")]

    def count_events(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM events")[0][0])

    def rejects(self, limit: int = 100) -> list[tuple[int, str, str, bytes]]:
        """The latest messages set aside: (received_ms, topic, reason, payload)."""
        rows = self._read(
            "SELECT received_ms, topic, reason, payload FROM rejects"
            " ORDER BY received_ms DESC LIMIT ?",
            limit,
        )
        return [(row[0], row[1], row[2], bytes(row[3])) for row in rows]

    # ---- retention -----------------------------------------------------------------

    def delete_events_before(self, cutoff_ms: int, limit: int = 10_000) -> int:
        """Delete up to `limit` of the oldest events with ts_ms < cutoff_ms, in one
        transaction; returns how many. Per gate the highest seq deleted is remembered.
        On PostgreSQL one monitor at a time does this (others find nothing to do)."""
        sql = self.dialect.sql
        with self._transaction(self.dialect.begin_write) as cursor:
            if not self._upkeep_claimed(cursor):
                return 0
            cursor.execute(sql(OLDEST), (cutoff_ms, limit))
            rows = cursor.fetchall()
            highest: dict[tuple[str, str], int] = {}
            for _, site, gate, seq, _ in rows:
                highest[(site, gate)] = max(seq, highest.get((site, gate), 0))
            self._keep_pruned(cursor, highest)
            for start in range(0, len(rows), INSERT_CHUNK):
                chunk = rows[start : start + INSERT_CHUNK]
                ids = [row[0] for row in chunk]
                # Within the chunk's time span: PostgreSQL finds them by its (ts_ms, id) key.
                span = [min(row[4] for row in chunk), max(row[4] for row in chunk)]
                marks_sql = ", ".join("?" * len(ids))
                cursor.execute(sql(DELETE_OLDEST.format(ids=marks_sql)), [*span, *ids])
        return len(rows)

    def forget_people_before(self, cutoff_ms: int) -> int:
        """People whose latest granted scan is older than `cutoff_ms` (the retention
        deleted it): no longer looked at by presence; returns how many."""
        with self._transaction(self.dialect.begin_write) as cursor:
            cursor.execute(self.dialect.sql(FORGET_PEOPLE), (cutoff_ms,))
            return int(cursor.rowcount)

    def drop_partitions_before(self, cutoff_ms: int) -> int:
        """PostgreSQL: drop each month's partition whose every event is older than
        `cutoff_ms`, one transaction each, the pruned marks kept first; returns how many
        events went. Nothing on SQLite, or while another monitor does it."""
        if self.dialect.name != "postgresql":
            return 0
        with self._transaction(self.dialect.begin_write) as cursor:
            doomed = partitions.past(cursor, cutoff_ms)
        gates = [(gate.site, gate.gate) for gate in self.gates()]
        dropped = 0
        for part in doomed:
            with self._transaction(self.dialect.begin_write) as cursor:
                if not self._upkeep_claimed(cursor):
                    break
                self._keep_pruned(cursor, partitions.highest_seqs(cursor, part.name, gates))
                cursor.execute(f"SELECT COUNT(*) FROM {part.name}")  # noqa: S608 - a catalog name
                count = int(cursor.fetchone()[0])
                partitions.drop(cursor, part.name)
            log.info("retention: dropped partition %s (%d events)", part.name, count)
            dropped += count
        return dropped

    def prepare_partitions(self, since_ms: int | None = None) -> list[str]:
        """PostgreSQL: this month's and next month's partitions (and every month from
        `since_ms`'s on: events loaded in bulk), where missing, made ahead so that events
        never wait for one; the names of those made."""
        if self.dialect.name != "postgresql":
            return []
        with self._transaction(self.dialect.begin_write) as cursor:
            if not self._upkeep_claimed(cursor):
                return []
            made = partitions.ensure_months(cursor, self._now_ms(), since_ms)
        for name in made:
            log.info("made partition %s", name)
        return made

    def partitions(self) -> list[partitions.Partition]:
        """PostgreSQL: the events table's partitions, oldest first ([] on SQLite)."""
        if self.dialect.name != "postgresql":
            return []
        with self._transaction("BEGIN") as cursor:
            return partitions.partitions(cursor)

    def _upkeep_claimed(self, cursor: Any) -> bool:
        return self.dialect.name != "postgresql" or partitions.try_upkeep_lock(cursor)

    def _keep_pruned(self, cursor: Any, highest: dict[tuple[str, str], int]) -> None:
        marks = [
            (f"{PRUNED_KEY}{site}/{gate}", str(seq))
            for (site, gate), seq in sorted(highest.items())
        ]
        if marks:
            cursor.executemany(self.dialect.sql(KEEP_PRUNED), marks)

    def refresh_statistics(self) -> None:
        """Sampled planner statistics for SQLite (PostgreSQL's autovacuum keeps its own)."""
        if self.dialect.name == "sqlite":
            with self._unavailable_as_error():
                cursor = self._connected().cursor()
                cursor.execute("PRAGMA analysis_limit = 1000")
                cursor.execute("ANALYZE")

    # ---- enrolled gate keys --------------------------------------------------------

    def enroll(self, key: EnrolledKey) -> bool:
        """Add a gate's public key; False if it was enrolled already."""
        with self._transaction(self.dialect.begin_write) as cursor:
            cursor.execute(
                self.dialect.sql(
                    "INSERT INTO gate_keys (site, gate, kid, public_key, enrolled_ms)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (site, gate, kid) DO NOTHING RETURNING kid"
                ),
                (key.site, key.gate, key.kid, key.public, key.enrolled_ms),
            )
            return cursor.fetchone() is not None

    def unenroll(self, site: str, gate: str, kid: str | None = None) -> int:
        """Remove one key of a gate (`kid`), or all of them; how many went."""
        sql, params = "DELETE FROM gate_keys WHERE site = ? AND gate = ?", [site, gate]
        if kid is not None:
            sql, params = sql + " AND kid = ?", [*params, kid]
        with self._transaction(self.dialect.begin_write) as cursor:
            cursor.execute(self.dialect.sql(sql), params)
            return int(cursor.rowcount)

    def enrolled_keys(self) -> list[EnrolledKey]:
        rows = self._read(
            "SELECT site, gate, kid, public_key, enrolled_ms FROM gate_keys"
            " ORDER BY site, gate, kid"
        )
        return [EnrolledKey(*row) for row in rows]

    def note_enrolled_only(self, required: bool) -> None:
        """What the monitor does with the events of gates not enrolled: set them aside
        (`--enrolled-only`) or store them as not authenticated; for the pages to say.
        Monitors sharing a store are meant to agree; the last one started is believed."""
        with self._transaction(self.dialect.begin_write) as cursor:
            cursor.execute(self.dialect.sql(SET_META), (ENROLLED_ONLY_KEY, str(required).lower()))

    def enrolled_only(self) -> bool:
        """Whether the monitor sets aside the events of gates not enrolled (False when no
        monitor has said: storing them as not authenticated is what it does by default)."""
        rows = self._read("SELECT value FROM meta WHERE key = ?", ENROLLED_ONLY_KEY)
        return bool(rows) and rows[0][0] == "true"

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # ---- plumbing ------------------------------------------------------------------

    def _now_ms(self) -> int:
        return round(self.clock() * 1000)

    def _read(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with self._transaction("BEGIN") as cursor:
            cursor.execute(self.dialect.sql(sql), params)
            return list(cursor.fetchall())

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Any]:
        """One transaction; database errors become StoreUnavailableError or StoreRefusedError."""
        with self._unavailable_as_error():
            connection = self._connected()
            cursor = connection.cursor()
            cursor.execute(begin)
            try:
                yield cursor
            except BaseException:
                self._rollback(connection)
                raise
            cursor.execute("COMMIT")

    @contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        try:
            yield
        except self.dialect.conflict as error:
            raise StoreConflictError(
                f"{self.dialect.name} store: a write met another one: {first_line(error)}"
            ) from error
        except self.dialect.transient as error:
            self._drop_connection()
            raise StoreUnavailableError(
                f"{self.dialect.name} store unavailable: {first_line(error)}"
            ) from error
        except self.dialect.refused as error:
            raise StoreRefusedError(
                f"{self.dialect.name} store refused the data: {first_line(error)}"
            ) from error

    def _rollback(self, connection: Any) -> None:
        try:
            connection.cursor().execute("ROLLBACK")
        except self.dialect.transient:
            self._drop_connection()

    def _connected(self) -> Any:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def _drop_connection(self) -> None:
        """Forget a connection that failed; the next use opens a fresh one."""
        if self.dialect.name == "postgresql" and self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    def _create_schema(self) -> None:
        """Make a new store at FIRST_SCHEMA_VERSION (the migrations take it on from there);
        a store that has a schema is left as it is. In one transaction, under the write
        lock (on PostgreSQL an advisory lock: its catalog does not serialize CREATE ...
        IF NOT EXISTS): of monitors starting together on a new store, one makes it."""
        with self._transaction(self.dialect.begin_write) as cursor:
            if self.dialect.name == "postgresql":
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (CREATE_LOCK,))
            cursor.execute(self.dialect.sql(self.dialect.table_exists), ("meta",))
            if cursor.fetchone()[0]:
                return
            for statement in SCHEMA.format(blob=self.dialect.blob).split(";"):
                if statement.strip():
                    cursor.execute(statement)
            cursor.execute(
                self.dialect.sql("INSERT INTO meta (key, value) VALUES ('schema', ?)"),
                (str(FIRST_SCHEMA_VERSION),),
            )

    def _migrate(self) -> None:
        """Bring a store of an earlier version up to SCHEMA_VERSION, one step a transaction.
        The version is read again under the write lock: of two processes opening an old
        store at once, one upgrades it and the other finds it done."""
        while self._schema_version() in MIGRATIONS:
            with self._transaction(self.dialect.begin_write) as cursor:
                cursor.execute(SCHEMA_ROW + self.dialect.lock)
                version = int(cursor.fetchone()[0])
                if version in MIGRATIONS:
                    run_step(MIGRATIONS[version], cursor, self.dialect.name, self._now_ms())
                cursor.execute(
                    self.dialect.sql("UPDATE meta SET value = ? WHERE key = 'schema'"),
                    (str(version + 1 if version in MIGRATIONS else version),),
                )
            log.info("monitor store %s at schema %d", redact(self.url), self._schema_version())

    def _schema_version(self) -> int:
        absent: tuple[type[BaseException], ...] = (
            StoreUnavailableError,
            *self.dialect.missing_table,
        )
        try:
            rows = self._read(SCHEMA_ROW)
        except absent:
            return 0  # no store here: _check_schema says so
        return int(rows[0][0]) if rows else 0

    def _check_schema(self) -> None:
        missing: tuple[type[BaseException], ...] = (
            StoreUnavailableError,
            *self.dialect.missing_table,
        )
        try:
            rows = self._read(SCHEMA_ROW)
        except missing as error:
            raise StoreError(
                f"{redact(self.url)} holds no qrgate monitor store ({first_line(error)})"
            ) from None
        version = int(rows[0][0]) if rows else 0
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{redact(self.url)} has store schema {version}; this qrgate uses {SCHEMA_VERSION}"
            )


def gate_keys(records: Sequence[Record]) -> list[tuple[str, str]]:
    """The gates a batch writes to, in the one order every writer locks them in."""
    keys: set[tuple[str, str]] = set()
    for record in records:
        match record:
            case EventRecord():
                keys.add(record.gate_key)
            case StatusRecord(site=site, gate=gate) | HealthRecord(site=site, gate=gate):
                keys.add((site, gate))
    return sorted(keys)


def believed_ids(
    events: list[EventRecord], baselines: dict[tuple[str, str], tuple[int, int | None]]
) -> set[str]:
    """The ids of the events whose seq is believable (see `seq_bound`), in batch order."""
    believed: set[str] = set()
    for record in events:
        key = record.gate_key
        last, last_ms = baselines.get(key, (0, None))
        if record.event.seq <= seq_bound(last, last_ms, record.received_ms):
            believed.add(record.event.id)
            if record.event.seq > last:
                baselines[key] = (record.event.seq, record.received_ms)
    return believed


def believed_seqs(new: list[EventRecord], believed: set[str]) -> dict[tuple[str, str], list[int]]:
    """Per gate, the seqs of the new events that were believed (what the ranges hold)."""
    found: dict[tuple[str, str], list[int]] = {}
    for record in new:
        if record.event.id in believed:
            found.setdefault(record.gate_key, []).append(record.event.seq)
    return found


def unique_events(records: Sequence[Record]) -> list[EventRecord]:
    """The batch's events, each id once (the first copy wins, as the database's would)."""
    seen: dict[str, EventRecord] = {}
    for record in records:
        if isinstance(record, EventRecord):
            seen.setdefault(record.event.id, record)
    return list(seen.values())


def insert_events_sql(rows: int) -> str:
    values = ", ".join(["(" + ", ".join("?" * len(EVENT_COLUMNS)) + ")"] * rows)
    columns = ", ".join(EVENT_COLUMNS)
    return f"INSERT INTO events ({columns}) VALUES {values} ON CONFLICT DO NOTHING RETURNING id"  # noqa: S608


def event_params(records: Sequence[EventRecord], believed: set[str]) -> list[object]:
    params: list[object] = []
    for record in records:
        event = record.event
        params.extend(
            (
                event.id, event.site, event.gate, event.seq, record.ts_ms, event.direction,
                event.type, event.result, event.reason, event.credential, event.subject,
                event.name, event.code_sha256, event.latency_ms, event.detail,
                event.ts_trusted, record.extra, record.received_ms, record.kid,
                event.id in believed, event.cert_type, event.cert_country,
            )
        )  # fmt: skip
    return params


def seq_bound(last_seq: int, last_received_ms: int | None, now_ms: int) -> int:
    """The highest seq believable now from a gate whose last believed one was `last_seq`."""
    if last_received_ms is None:
        return max(last_seq + SEQ_SLACK, FIRST_SEQ_MAX)
    elapsed_s = max(now_ms - last_received_ms, 0) // 1000
    return last_seq + SEQ_SLACK + SEQ_RATE * elapsed_s


def gate_counts(
    site: str, gate: str, new: list[EventRecord], believed: set[str]
) -> tuple[object, ...]:
    """One gate's row for COUNT_NEW from its new events of a batch."""
    trusted = [record for record in new if record.event.id in believed]
    top = max(trusted, key=lambda record: record.event.seq, default=None)
    return (
        site,
        gate,
        len(new),
        len(new) - len(trusted),
        sum(not record.authenticated for record in new),
        top.event.seq if top else 0,
        top.received_ms if top else None,
        max(record.ts_ms for record in new),
    )


def subject_filters(
    site: str | None, subject: str | None, table: str = ""
) -> tuple[str, list[str]]:
    """SQL conditions from fixed text, on the columns of `table` ("people.") when given;
    the values themselves are always bound parameters."""
    parts, params = [], []
    if site is not None:
        parts.append(f" AND {table}site = ?")
        params.append(site)
    if subject is not None:
        parts.append(f" AND {table}subject = ?")
        params.append(subject)
    return "".join(parts), params


def event_conditions(where: EventFilter, prefix: str = "") -> tuple[list[str], list[object]]:
    """SQL conditions from fixed text for a filter; the values are bound parameters."""
    conditions: list[str] = []
    params: list[object] = []
    for column in FILTER_COLUMNS:
        value = getattr(where, column)
        if value is not None:
            conditions.append(f"{'' if column in FILTERED_COLUMNS else prefix}{column} = ?")
            params.append(value)
    if where.from_ms is not None:
        conditions.append("ts_ms >= ?")
        params.append(where.from_ms)
    if where.to_ms is not None:
        conditions.append("ts_ms < ?")
        params.append(where.to_ms)
    return conditions, params


def resolve(url: str, *, create: bool) -> tuple[Dialect, Any]:
    """The dialect and a connection factory for a store URL."""
    scheme, separator, rest = url.partition("://")
    if separator and scheme == "sqlite" and rest.startswith("/") and len(rest) > 1:
        path = Path(rest[1:])
        if not create and not path.is_file():
            raise StoreError(f"no monitor store at {path} (is --db right?)")
        return SQLITE, lambda: connect_sqlite(path)
    if separator and scheme in ("postgresql", "postgres"):
        return postgres_dialect(), lambda: connect_postgres(url)
    raise StoreError(
        f"unsupported store URL {redact(url)!r}: expected sqlite:///PATH or postgresql://..."
    )


def connect_sqlite(path: Path) -> sqlite3.Connection:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreError(f"cannot create {path.parent}: {error.strerror}") from None
    connection = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=SQLITE_BUSY_TIMEOUT_S
    )
    # WAL lets reports read while the monitor writes; FULL makes a commit survive a
    # power cut, which is what allows the PUBACK to follow it.
    enter_wal(connection, SQLITE_BUSY_TIMEOUT_S)
    connection.execute("PRAGMA synchronous = FULL")
    return connection


def connect_postgres(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


def redact(url: str) -> str:
    """A store URL fit for logs: any password replaced."""
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", url)


def first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
