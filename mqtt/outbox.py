"""The outbox: each event is durable on disk before the gate acts, and stays until the
broker has acknowledged it.

One row per event in SQLite (WAL). `append` allocates the gate's next `seq` and writes
the row in one transaction with `synchronous=FULL`, so once it returns the event survives
a crash or a power cut, and a `seq` is never handed out twice. A row stops waiting only
through `ack` (the broker accepted it). The outbox is bounded: when full, `append` refuses
(`OutboxFullError`) rather than drop an older event. A row the broker keeps refusing while it
accepts others is *parked*: kept and counted, no longer sent, until it is released.

Acknowledged rows are *kept* for `keep_acked_s` (the signed bytes as they were sent), so
that the centre can ask for them again (`request_resend`: a `resend` command) when the
broker lost what it had accepted. Kept rows never take room from new events: when the
limits are reached, the oldest kept rows go first; only waiting rows fill the outbox.

Failing storage: a reserve file beside the database (`mqtt.reserve`) is given up when a
write of the drain side finds the disk full, so that acknowledged rows can always leave.
A database found damaged (SQLite says "malformed", and `PRAGMA quick_check` agrees) makes
the outbox `unusable`: from then on `append` refuses, since what it would record could
not be read back and sent. `Outbox.unusable_store` is an empty outbox in memory that
refuses every append from the start, for a gate whose database cannot be opened at all.

Thread safety: appends (frame thread) and the drain side (publisher thread: `pending`,
`ack`, `refuse`, `depth`) use separate connections, each behind its own lock, so a slow
drain never holds an append back beyond SQLite's own write lock; the write-ahead log is
folded into the database by `mqtt.checkpointer`, so that an append pays for one sync and
never for a checkpoint.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, TypedDict, TypeVar, Unpack

from mqtt import db
from mqtt.errors import InvalidEventError, OutboxFullError, StoreError, StoreUnavailableError
from mqtt.events import EVENT_VERSION, MAX_SEQ, CertType, Event, EventType, event_of, format_ts
from mqtt.reserve import RESERVE_BYTES, Reserve, reserve_path
from mqtt.signing import EventSigner

log = logging.getLogger(__name__)
T = TypeVar("T")
BACKSTOP_CHECKPOINT_PAGES = 10_000
COMPONENT = "outbox"
MIGRATIONS = (
    """
    CREATE TABLE outbox_seq (
        site TEXT NOT NULL,
        gate TEXT NOT NULL,
        last INTEGER NOT NULL,
        PRIMARY KEY (site, gate)
    ) WITHOUT ROWID;
    CREATE TABLE outbox (
        entry INTEGER PRIMARY KEY AUTOINCREMENT,
        site TEXT NOT NULL,
        gate TEXT NOT NULL,
        seq INTEGER NOT NULL,
        id TEXT NOT NULL,
        created REAL NOT NULL,
        payload BLOB NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        parked INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE outbox_depth (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        rows INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        parked INTEGER NOT NULL
    );
    INSERT INTO outbox_depth VALUES (1, 0, 0, 0);
    CREATE TRIGGER outbox_added AFTER INSERT ON outbox BEGIN
        UPDATE outbox_depth SET rows = rows + 1, bytes = bytes + length(NEW.payload);
    END;
    CREATE TRIGGER outbox_removed AFTER DELETE ON outbox BEGIN
        UPDATE outbox_depth
        SET rows = rows - 1, bytes = bytes - length(OLD.payload), parked = parked - OLD.parked;
    END;
    CREATE TRIGGER outbox_parked AFTER UPDATE OF parked ON outbox BEGIN
        UPDATE outbox_depth SET parked = parked + NEW.parked - OLD.parked;
    END;
    """,
    # Version 2: acknowledged rows kept for resending (`acked`: when; `resend`: asked for
    # again). `rows`/`bytes` count the rows waiting, `kept`/`kept_bytes` the others.
    """
    ALTER TABLE outbox ADD COLUMN acked REAL;
    ALTER TABLE outbox ADD COLUMN resend INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE outbox_depth ADD COLUMN kept INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE outbox_depth ADD COLUMN kept_bytes INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX outbox_waiting ON outbox (entry) WHERE acked IS NULL AND parked = 0;
    CREATE INDEX outbox_kept ON outbox (site, gate, seq) WHERE acked IS NOT NULL;
    CREATE INDEX outbox_resend ON outbox (entry) WHERE resend = 1;
    DROP TRIGGER outbox_removed;
    CREATE TRIGGER outbox_removed AFTER DELETE ON outbox WHEN OLD.acked IS NULL BEGIN
        UPDATE outbox_depth
        SET rows = rows - 1, bytes = bytes - length(OLD.payload), parked = parked - OLD.parked;
    END;
    CREATE TRIGGER outbox_forgotten AFTER DELETE ON outbox WHEN OLD.acked IS NOT NULL BEGIN
        UPDATE outbox_depth SET kept = kept - 1, kept_bytes = kept_bytes - length(OLD.payload);
    END;
    CREATE TRIGGER outbox_acked AFTER UPDATE OF acked ON outbox
    WHEN OLD.acked IS NULL AND NEW.acked IS NOT NULL BEGIN
        UPDATE outbox_depth
        SET rows = rows - 1, bytes = bytes - length(OLD.payload), parked = parked - OLD.parked,
            kept = kept + 1, kept_bytes = kept_bytes + length(OLD.payload);
    END;
    """,
)
# The most a `resend` command may ask for at once (the centre asks again for more).
MAX_RESEND = 10_000
# Kept rows given up at once when an append needs their room.
EVICT_BATCH = 64


@dataclass(frozen=True)
class OutboxLimits:
    """How much the outbox may hold, and when a refused row is set aside."""

    max_rows: int = 500_000
    max_bytes: int = 256 * 1024 * 1024
    max_refusals: int = 5
    reserve_bytes: int = RESERVE_BYTES  # kept free for the drain side; 0: no reserve
    keep_acked_s: float = 0.0  # how long acknowledged rows are kept for resending


class EventFields(TypedDict, total=False):
    """The optional fields of an event (see mqtt.events.Event)."""

    ts_trusted: bool
    result: Literal["granted", "denied"] | None
    reason: str | None
    credential: str | None
    subject: str | None
    name: str | None
    code_sha256: str | None
    latency_ms: float | None
    detail: str | None
    cert_type: CertType | None
    cert_country: str | None


@dataclass(frozen=True)
class Pending:
    """A row waiting for the broker: `entry` orders rows, `payload` is the event's JSON."""

    entry: int
    seq: int
    site: str
    gate: str
    payload: bytes


@dataclass(frozen=True)
class Depth:
    """How much waits, for health reports: `fill` is the larger of rows and bytes used
    over their limits (1.0 = full); `oldest_age_s` is None when nothing waits. `kept`:
    acknowledged events kept for resending (they give their room up to new ones)."""

    rows: int
    bytes: int
    parked: int
    oldest_age_s: float | None
    fill: float
    kept: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Resend:
    """What a `resend` request found: rows marked to go out again, rows still waiting
    (they go out anyway), and asked-for seqs the outbox no longer holds."""

    resending: int
    waiting: int
    gone: int


@dataclass(frozen=True)
class Parked:
    """A row set aside after repeated refusals, as an operator sees it."""

    entry: int
    seq: int
    id: str
    site: str
    gate: str
    attempts: int
    last_error: str | None
    created: float


class Outbox:
    """The durable queue of one gate's events, in the gate's database file."""

    def __init__(
        self,
        path: Path,
        site: str,
        gate: str,
        direction: Literal["in", "out"],
        limits: OutboxLimits | None = None,
        *,
        clock: Callable[[], float] = time.time,
        signer: EventSigner | None = None,
    ) -> None:
        self.path = path
        # Events are signed once, here, and the signed bytes kept: every resend is identical.
        self.signer = signer
        self.site, self.gate, self.direction = site, gate, direction
        self.limits = limits or OutboxLimits()
        self._clock = clock
        self._writer = db.connect(path, "FULL")
        # Checkpoints sync the database file: `mqtt.checkpointer` runs them, off the frame
        # path; appends checkpoint only if the WAL grows past ~40 MB regardless.
        self._writer.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_CHECKPOINT_PAGES}")
        # Acks need no sync: an acked row that reappears after a power cut is sent again,
        # a duplicate that consumers drop by id. Never a loss.
        self._drain = db.connect(path, "NORMAL")
        # Nor the drain side: a checkpoint's sync, if it hung, would hang the publisher.
        self._drain.execute("PRAGMA wal_autocheckpoint = 0")
        self._write_lock = threading.Lock()
        self._drain_lock = threading.Lock()
        # The publisher checkpoints when this grows; it is bumped and reset under different
        # locks, so it is approximate, which only ever moves a checkpoint a little.
        self.appended_since_checkpoint = 0
        self.unusable: str | None = None  # why nothing can be recorded (a damaged file)
        try:
            db.migrate(self._writer, COMPONENT, MIGRATIONS)
        except sqlite3.Error as error:
            raise StoreError(f"cannot prepare the outbox in {path}: {error}") from error
        self.reserve = Reserve(reserve_path(path), self.limits.reserve_bytes)
        self.reserve.ensure()

    @classmethod
    def unusable_store(
        cls, site: str, gate: str, direction: Literal["in", "out"], reason: str
    ) -> Outbox:
        """An empty outbox in memory that records nothing (every append refuses with
        `reason`): for a gate whose database cannot be opened, which must still run and
        say so in its status and health rather than exit and be restarted for ever."""
        memory = Path(f"file:qrgate-{uuid.uuid4().hex}?mode=memory&cache=shared")
        outbox = cls(memory, site, gate, direction, OutboxLimits(reserve_bytes=0))
        outbox.unusable = reason
        return outbox

    def append(self, type: EventType, *, ts: float, **fields: Unpack[EventFields]) -> Event:
        """Record one event durably and return it (with its id and seq).

        `ts` is the gate's wall clock in epoch seconds. Raises OutboxFullError when the outbox
        is at its limit, InvalidEventError for fields that make no valid event, StoreError when
        the disk refuses; in every case nothing was recorded and no seq was used.
        """
        with self._write_lock:
            self._refuse_if_unusable()
            try:
                with db.transaction(self._writer) as conn:
                    event = self._event(type, ts, self._next_seq(conn), fields)
                    payload = self._payload(event)
                    self._check_room(conn, len(payload))
                    conn.execute(
                        "INSERT INTO outbox (site, gate, seq, id, created, payload) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (self.site, self.gate, event.seq, event.id, self._clock(), payload),
                    )
                self.appended_since_checkpoint += 1
            except sqlite3.Error as error:
                self._note_failure(error)
                failure = StoreUnavailableError if self.unusable else StoreError
                raise failure(f"cannot record the event in {self.path}: {error}") from error
            except UnicodeError as error:  # text no UTF-8 encoder takes (a lone surrogate)
                raise InvalidEventError(f"not a valid event: {error}") from None
        return event

    def _next_seq(self, conn: sqlite3.Connection) -> int:
        row = conn.execute(
            "INSERT INTO outbox_seq (site, gate, last) VALUES (?, ?, 1) "
            "ON CONFLICT (site, gate) DO UPDATE SET last = last + 1 RETURNING last",
            (self.site, self.gate),
        ).fetchone()
        return int(row[0])

    def _event(self, type: EventType, ts: float, seq: int, fields: EventFields) -> Event:
        try:
            return event_of(
                {
                    "v": EVENT_VERSION,
                    "id": str(uuid.uuid4()),
                    "seq": seq,
                    "ts": format_ts(ts),
                    "site": self.site,
                    "gate": self.gate,
                    "direction": self.direction,
                    "type": type,
                    "kid": self.signer.kid if self.signer else None,
                    **fields,
                }
            )
        except (ValueError, OverflowError, OSError) as error:
            raise InvalidEventError(f"not a valid event: {error}") from None

    def _payload(self, event: Event) -> bytes:
        body = event.to_json()
        return self.signer.sign(body) if self.signer else body

    def _check_room(self, conn: sqlite3.Connection, size: int) -> None:
        """Room for one more row: kept rows give theirs up, oldest first; waiting rows
        never do, and when they alone fill the outbox it refuses."""
        limits = self.limits
        while True:
            rows, used, kept, kept_bytes = conn.execute(
                "SELECT rows, bytes, kept, kept_bytes FROM outbox_depth"
            ).fetchone()
            if rows + 1 > limits.max_rows or used + size > limits.max_bytes:
                raise OutboxFullError(
                    f"the outbox is full ({rows} events, {used} bytes; limits "
                    f"{limits.max_rows} events, {limits.max_bytes} bytes): "
                    "the broker has not taken events for a long time"
                )
            if rows + kept + 1 <= limits.max_rows and used + kept_bytes + size <= limits.max_bytes:
                return
            conn.execute(
                "DELETE FROM outbox WHERE entry IN (SELECT entry FROM outbox "
                "WHERE acked IS NOT NULL ORDER BY entry LIMIT ?)",
                (EVICT_BATCH,),
            )

    def pending(self, after: int = 0, limit: int = 64) -> list[Pending]:
        """Up to `limit` rows to send, oldest first, after entry `after`; parked rows skipped."""
        rows = self._read(
            "SELECT entry, seq, site, gate, payload FROM outbox "
            "WHERE acked IS NULL AND parked = 0 AND entry > ? ORDER BY entry LIMIT ?",
            (after, limit),
        )
        return [Pending(*row) for row in rows]

    def to_resend(self, limit: int) -> list[Pending]:
        """Up to `limit` kept rows the centre asked for again, oldest first."""
        rows = self._read(
            "SELECT entry, seq, site, gate, payload FROM outbox "
            "WHERE resend = 1 ORDER BY entry LIMIT ?",
            (limit,),
        )
        return [Pending(*row) for row in rows]

    def ack(self, entries: Sequence[int]) -> None:
        """The broker accepted these rows (sent for the first time, or again): they stop
        waiting, and are kept for resending while `keep_acked_s` says so, else deleted."""
        if not entries:
            return
        if self.limits.keep_acked_s > 0:
            now = self._clock()
            self._write_drain(
                lambda conn: conn.executemany(
                    "UPDATE outbox SET acked = coalesce(acked, ?), resend = 0 WHERE entry = ?",
                    [(now, entry) for entry in entries],
                )
            )
        else:
            self._write_drain(
                lambda conn: conn.executemany(
                    "DELETE FROM outbox WHERE entry = ?", [(entry,) for entry in entries]
                )
            )
        # Changes grow the write-ahead log too: they count towards the next checkpoint.
        self.appended_since_checkpoint += len(entries)

    def request_resend(self, ranges: Sequence[tuple[int, int]], after: int | None = None) -> Resend:
        """Mark this gate's kept rows with a seq in `ranges` (inclusive), or above
        `after`, to be sent again (at most MAX_RESEND in all, lowest seqs first)."""

        def mark(conn: sqlite3.Connection) -> Resend:
            marked = waiting = gone = 0
            for first, last in ranges:
                found = self._mark_resend(conn, first, last, MAX_RESEND - marked)
                marked += found[0]
                waiting += found[1]
                gone += (last - first + 1) - found[0] - found[1]
            if after is not None and after < MAX_SEQ and marked < MAX_RESEND:
                marked += self._mark_resend(conn, after + 1, MAX_SEQ, MAX_RESEND - marked)[0]
            return Resend(marked, waiting, gone)

        return self._write_drain(mark)

    def _mark_resend(
        self, conn: sqlite3.Connection, first: int, last: int, room: int
    ) -> tuple[int, int]:
        """(rows marked, rows still waiting) among seqs first..last of this gate."""
        where = "site = ? AND gate = ? AND seq BETWEEN ? AND ?"
        marked = conn.execute(
            f"UPDATE outbox SET resend = 1 WHERE entry IN (SELECT entry FROM outbox "  # noqa: S608
            f"WHERE {where} AND acked IS NOT NULL ORDER BY seq LIMIT ?)",
            (self.site, self.gate, first, last, max(room, 0)),
        ).rowcount
        waiting = conn.execute(
            f"SELECT COUNT(*) FROM outbox WHERE {where} AND acked IS NULL",  # noqa: S608
            (self.site, self.gate, first, last),
        ).fetchone()[0]
        return int(marked), int(waiting)

    def forget_acked(self) -> int:
        """Delete kept rows acknowledged longer than `keep_acked_s` ago; how many."""
        cutoff = self._clock() - self.limits.keep_acked_s
        gone = self._write_drain(
            lambda conn: (
                conn.execute(
                    "DELETE FROM outbox WHERE acked IS NOT NULL AND acked < ?", (cutoff,)
                ).rowcount
            )
        )
        self.appended_since_checkpoint += gone
        return int(gone)

    def refuse(self, entry: int, reason: str, *, singled_out: bool) -> bool:
        """Count a refusal of one row; return True when the row is now parked.

        Only a row `singled_out` (refused while the broker accepted others) is parked, after
        `max_refusals` refusals: a broker refusing everything (an ACL on the whole topic)
        must not make the gate set its whole backlog aside.
        """

        def update(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, "
                "parked = parked OR (? AND attempts + 1 >= ?) WHERE entry = ? RETURNING parked",
                (reason, singled_out, self.limits.max_refusals, entry),
            ).fetchone()
            return bool(row and row[0])

        return self._write_drain(update)

    def depth(self) -> Depth:
        """Rows, bytes and parked rows waiting, and the age of the oldest sendable row."""
        try:
            with self._drain_lock:
                return read_depth(self._drain, self.limits, self._clock())
        except sqlite3.Error as error:
            self._note_failure(error)
            raise StoreError(f"cannot read the outbox in {self.path}: {error}") from error

    def parked(self) -> list[Parked]:
        """Every parked row, oldest first."""
        return [Parked(*row) for row in self._read(PARKED_ROWS)]

    def release(self, reason_prefix: str = "") -> int:
        """Send parked rows again (refusals forgotten), those whose last error starts
        with `reason_prefix` (all by default: an operator's `qrgate outbox retry`);
        return how many."""

        def update(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "UPDATE outbox SET parked = 0, attempts = 0 WHERE parked = 1 "
                "AND substr(coalesce(last_error, ''), 1, ?) = ?",
                (len(reason_prefix), reason_prefix),
            ).rowcount

        return self._write_drain(update)

    def close(self) -> None:
        with self._write_lock, self._drain_lock:
            self._writer.close()
            self._drain.close()

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        try:
            with self._drain_lock:
                return self._drain.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            self._note_failure(error)
            raise StoreError(f"cannot read the outbox in {self.path}: {error}") from error

    def _write_drain(self, change: Callable[[sqlite3.Connection], T]) -> T:
        """One transaction of the drain side; on a full disk, once more after giving up
        the reserve."""
        try:
            try:
                return self._drain_transaction(change)
            except sqlite3.Error as error:
                if not (is_disk_full(error) and self.reserve.release()):
                    raise
                return self._drain_transaction(change)
        except sqlite3.Error as error:
            self._note_failure(error)
            raise StoreError(f"cannot update the outbox in {self.path}: {error}") from error

    def _drain_transaction(self, change: Callable[[sqlite3.Connection], T]) -> T:
        with self._drain_lock, db.transaction(self._drain) as conn:
            return change(conn)

    def _refuse_if_unusable(self) -> None:
        if self.unusable is not None:
            raise StoreUnavailableError(f"{self.unusable}: nothing can be recorded")

    def _note_failure(self, error: sqlite3.Error) -> None:
        """After an error SQLite calls corruption, check the whole file (quick_check)
        and remember what it found."""
        if self.unusable is not None or not is_corruption(error):
            return
        finding = integrity_problem(self.path) or str(error)
        self.unusable = f"the database {self.path} is damaged ({finding.splitlines()[-1]})"
        log.error("%s", self.unusable)


PARKED_ROWS = (
    "SELECT entry, seq, id, site, gate, attempts, last_error, created FROM outbox "
    "WHERE parked = 1 ORDER BY entry"
)


def read_parked(conn: sqlite3.Connection) -> list[Parked]:
    """The parked rows in the database `conn` is open on (read-only connections too)."""
    return [Parked(*row) for row in conn.execute(PARKED_ROWS)]


def read_depth(conn: sqlite3.Connection, limits: OutboxLimits, now: float) -> Depth:
    """The outbox's depth in the database `conn` is open on, read-only connections included
    (`qrgate doctor` looks at a gate's outbox without opening it for writing, perhaps
    before the daemon has brought it to version 2: then nothing is kept)."""
    columns = {row[1] for row in conn.execute("PRAGMA table_info(outbox_depth)")}
    if "kept" in columns:
        rows, used, parked, kept = conn.execute(
            "SELECT rows, bytes, parked, kept FROM outbox_depth"
        ).fetchone()
        waiting = "acked IS NULL AND parked = 0"
    else:
        rows, used, parked = conn.execute("SELECT rows, bytes, parked FROM outbox_depth").fetchone()
        kept, waiting = 0, "parked = 0"
    oldest = conn.execute(
        f"SELECT created FROM outbox WHERE {waiting} ORDER BY entry LIMIT 1"  # noqa: S608
    ).fetchone()
    age = max(0.0, now - oldest[0]) if oldest else None
    fill = max(rows / limits.max_rows, used / limits.max_bytes)
    return Depth(rows, used, parked, age, round(fill, 6), kept)


# SQLite's primary result codes (the low byte of an extended code).
SQLITE_CORRUPT, SQLITE_FULL, SQLITE_NOTADB = 11, 13, 26


def primary_code(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def is_disk_full(error: sqlite3.Error) -> bool:
    return primary_code(error) == SQLITE_FULL


def is_corruption(error: sqlite3.Error) -> bool:
    return primary_code(error) in (SQLITE_CORRUPT, SQLITE_NOTADB)


def integrity_problem(path: Path) -> str | None:
    """What `PRAGMA quick_check` finds wrong in the database at `path` (its first
    finding), or None when it finds it sound. Read-only; a file that cannot even be
    opened counts as damaged."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = conn.execute("PRAGMA quick_check(1)").fetchall()
        finally:
            conn.close()
    except sqlite3.Error as error:
        return str(error)
    finding = str(rows[0][0]) if rows else "no answer"
    return None if finding == "ok" else finding
