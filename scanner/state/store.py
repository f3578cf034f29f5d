"""The gate's local state in SQLite: allowlist, revocations (of passes, subjects and health
certificates), gate mode, recent passages.

One database file (`store.path`) is shared with the event outbox of `mqtt/outbox.py`.
Each component creates its own tables and records how far it has migrated in
`schema_version(component, version)`; this one is component "store". The file runs in
WAL mode with synchronous=FULL, so a committed change survives a power cut, and with a
busy timeout, so the outbox and the CLI can write while the daemon reads.

A `Store` may be shared between threads (the daemon's decision loop and its command
handler): every call holds the store's lock. Any SQLite failure surfaces as
`StoreError`, naming the file.
"""

from __future__ import annotations

import logging
import math
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final, Literal, cast

from firmware.patterns import MODES, Mode
from mqtt.db import enter_wal
from scanner.credentials.badge import is_badge_id
from scanner.credentials.cccd import EARLIEST_YEAR, MAX_TEXT_CHARS
from scanner.errors import QrgateError

log = logging.getLogger(__name__)

AllowKind = Literal["badge", "cccd", "vnqr"]
ALLOW_KINDS: Final[frozenset[AllowKind]] = frozenset({"badge", "cccd", "vnqr"})

COMPONENT = "store"
BUSY_TIMEOUT_S = 5.0
SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version"
    " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
)
# MIGRATIONS[n] brings the schema from version n to n + 1. Append, never edit.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE allowlist (
            subject TEXT PRIMARY KEY NOT NULL,
            name TEXT,
            kinds TEXT NOT NULL,     -- comma-separated: badge,cccd,vnqr
            valid_from REAL,         -- epoch seconds, inclusive; NULL: always
            valid_until REAL         -- epoch seconds, exclusive; NULL: never expires
        ) WITHOUT ROWID""",
        """CREATE TABLE revocations (
            kind TEXT NOT NULL CHECK (kind IN ('jti', 'subject')),
            value TEXT NOT NULL,
            until REAL,              -- epoch seconds; NULL: for good
            PRIMARY KEY (kind, value)
        ) WITHOUT ROWID""",
        """CREATE TABLE passages (
            subject TEXT PRIMARY KEY NOT NULL,
            at REAL NOT NULL         -- epoch seconds of the last granted passage
        ) WITHOUT ROWID""",
        """CREATE TABLE gate_state (
            key TEXT PRIMARY KEY NOT NULL,   -- mode, allowlist_version
            value TEXT NOT NULL
        ) WITHOUT ROWID""",
    ),
    (
        """CREATE TABLE dcc_revocations (
            hash TEXT PRIMARY KEY NOT NULL,  -- 32 hex digits: an EU revocation-list hash
            until REAL                       -- epoch seconds; NULL: for good
        ) WITHOUT ROWID""",
    ),
    # The holder's birth date (YYYY-MM-DD; NULL: not given), to pair a badge with a
    # health certificate.
    ("ALTER TABLE allowlist ADD COLUMN birth_date TEXT",),
)
SCHEMA: Final = len(MIGRATIONS)


class StoreError(QrgateError):
    """The local store cannot be read or written, or was handed invalid data."""


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """One allowlisted subject: a badge id, a 12-digit CCCD number or a personal QR's QID."""

    subject: str
    name: str | None = None
    kinds: frozenset[AllowKind] = ALLOW_KINDS
    valid_from: float | None = None  # epoch seconds, inclusive
    valid_until: float | None = None  # epoch seconds, exclusive
    birth_date: date | None = None  # to pair a badge with a health certificate

    def __post_init__(self) -> None:
        problem = entry_problem(self)
        if problem:
            raise StoreError(f"allowlist entry {self.subject!r}: {problem}")

    def window_reason(self, now: float) -> Literal["not_yet_valid", "expired"] | None:
        """Why the entry does not hold at `now`, or None when it does."""
        if self.valid_from is not None and now < self.valid_from:
            return "not_yet_valid"
        if self.valid_until is not None and now >= self.valid_until:
            return "expired"
        return None


def entry_problem(entry: AllowEntry) -> str | None:
    if not isinstance(entry.subject, str) or not is_badge_id(entry.subject):
        return "subject must be 1 to 64 of A-Z a-z 0-9 _ -"
    if entry.name is not None and (
        len(entry.name) > MAX_TEXT_CHARS or any(ord(ch) < 0x20 for ch in entry.name)
    ):
        return f"name must be at most {MAX_TEXT_CHARS} characters, without control characters"
    if not entry.kinds or not entry.kinds <= ALLOW_KINDS:
        return "kinds must be one or more of badge, cccd, vnqr"
    return dates_problem(entry)


def dates_problem(entry: AllowEntry) -> str | None:
    born = entry.birth_date
    if born is not None and (type(born) is not date or born.year < EARLIEST_YEAR):
        return f"birth_date must be a calendar date from {EARLIEST_YEAR} on"
    bounds = [value for value in (entry.valid_from, entry.valid_until) if value is not None]
    if not all(math.isfinite(value) for value in bounds):
        return "validity bounds must be finite times"
    if len(bounds) == 2 and bounds[0] >= bounds[1]:
        return "valid_from must be before valid_until"
    return None


class Database:
    """One SQLite connection behind a lock, with SQLite errors turned into StoreError."""

    def __init__(self, connection: sqlite3.Connection, label: str) -> None:
        self._connection = connection
        self._lock = threading.RLock()
        self.label = label

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            raise StoreError(f"store {self.label}: {error}") from error

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock, self._errors():
            return self._connection.execute(sql, params).fetchall()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock at once (no upgrade deadlock)."""
        with self._lock, self._errors():
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
                self._connection.execute("COMMIT")
            except BaseException:
                if self._connection.in_transaction:
                    self._connection.rollback()
                raise

    def write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement in its own transaction; the number of rows it changed."""
        with self.transaction() as connection:
            return connection.execute(sql, params).rowcount

    def write_unsynced(self, sql: str, params: Sequence[Any]) -> None:
        """A commit that skips the fsync, for state whose last second may be lost.

        In WAL mode such a commit is appended to the log and becomes durable with the
        next synchronous commit to the same file, such as the outbox's event right after.
        """
        with self._lock, self._errors():
            self._connection.execute("PRAGMA synchronous=NORMAL")
            try:
                self._connection.execute(sql, params)
            finally:
                self._connection.execute("PRAGMA synchronous=FULL")

    def close(self) -> None:
        with self._lock:
            self._connection.close()


class Store:
    """The local store; open it with `Store.open`, `Store.open_readonly` or `Store.in_memory`."""

    def __init__(self, database: Database, *, readonly: bool = False) -> None:
        self._db = database
        self.readonly = readonly
        self.allowlist = Allowlist(database)
        self.revocations = Revocations(database)

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open for reading and writing, creating the file and migrating it as needed."""
        try:
            connection = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            enter_wal(connection, BUSY_TIMEOUT_S)
            connection.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as error:
            raise StoreError(f"store {path}: {error}") from error
        store = cls(Database(connection, str(path)))
        store._migrate()
        return store

    @classmethod
    def open_readonly(cls, path: Path) -> Store:
        """Open an existing store without changing it, nor creating any file."""
        try:
            connection = open_snapshot(path)
        except sqlite3.Error as error:
            raise StoreError(f"store {path}: {error}") from error
        store = cls(Database(connection, str(path)), readonly=True)
        found = store.schema_version()
        if found != SCHEMA:
            store.close()
            raise StoreError(
                f"store {path} is at schema version {found}, this qrgate reads {SCHEMA}: "
                "let the gate (qrgate run) or `qrgate allow list` migrate it first"
            )
        return store

    @classmethod
    def in_memory(cls) -> Store:
        """An empty store that lives as long as the object (tests, demo, a missing file)."""
        connection = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        store = cls(Database(connection, ":memory:"))
        store._migrate()
        return store

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def label(self) -> str:
        return self._db.label

    def schema_version(self) -> int:
        """This component's schema version in the file (0 before the first migration)."""
        tables = self._db.read("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'")
        if not tables:
            return 0
        rows = self._db.read("SELECT version FROM schema_version WHERE component = ?", (COMPONENT,))
        return int(rows[0][0]) if rows else 0

    def _migrate(self) -> None:
        with self._db.transaction() as connection:
            connection.execute(SCHEMA_VERSION_TABLE)
            row = connection.execute(
                "SELECT version FROM schema_version WHERE component = ?", (COMPONENT,)
            ).fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA:
                raise StoreError(
                    f"store {self.label} is at schema version {current}, newer than this "
                    f"qrgate knows ({SCHEMA}): it was written by a newer qrgate"
                )
            for version in range(current, SCHEMA):
                for statement in MIGRATIONS[version]:
                    connection.execute(statement)
            connection.execute(
                "INSERT INTO schema_version (component, version) VALUES (?, ?)"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (COMPONENT, SCHEMA),
            )
        if 0 < current < SCHEMA:
            log.info("store %s migrated from schema %d to %d", self.label, current, SCHEMA)

    def get_mode(self) -> Mode:
        """The persisted gate mode: normal until someone sets another."""
        rows = self._db.read("SELECT value FROM gate_state WHERE key = 'mode'")
        if not rows:
            return "normal"
        value = rows[0][0]
        if value not in MODES:
            # Only set_mode writes it; anything else is damage, and a gate fails closed.
            log.error("store %s holds an unknown gate mode %r: locking down", self.label, value)
            return "lockdown"
        return cast(Mode, value)

    def set_mode(self, mode: Mode) -> None:
        if mode not in MODES:
            raise StoreError(f"unknown gate mode {mode!r}; expected one of {', '.join(MODES)}")
        self._db.write(
            "INSERT INTO gate_state (key, value) VALUES ('mode', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (mode,),
        )

    def record_passage(self, subject: str, at: float) -> None:
        """Remember a granted passage for anti-passback (may lose the last second on power loss)."""
        self._db.write_unsynced(
            "INSERT INTO passages (subject, at) VALUES (?, ?)"
            " ON CONFLICT (subject) DO UPDATE SET at = excluded.at",
            (subject, at),
        )

    def passages_since(self, since: float) -> dict[str, float]:
        """Subjects granted at or after `since`, with the epoch time of their last passage."""
        rows = self._db.read("SELECT subject, at FROM passages WHERE at >= ?", (since,))
        return {subject: float(at) for subject, at in rows}

    def prune(self, now: float, passages_before: float) -> None:
        """Forget revocations that have run out and passages older than `passages_before`."""
        with self._db.transaction() as connection:
            connection.execute("DELETE FROM revocations WHERE until <= ?", (now,))
            connection.execute("DELETE FROM dcc_revocations WHERE until <= ?", (now,))
            connection.execute("DELETE FROM passages WHERE at < ?", (passages_before,))


class Allowlist:
    """Who may pass with a badge, a chip ID card or a personal QR code."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def add(self, entry: AllowEntry) -> None:
        """Add or update an entry (idempotent)."""
        self._db.write(UPSERT_ENTRY, entry_row(entry))

    def remove(self, subject: str) -> bool:
        """Remove an entry; False when it was not there (idempotent)."""
        return self._db.write("DELETE FROM allowlist WHERE subject = ?", (subject,)) > 0

    def get(self, subject: str) -> AllowEntry | None:
        rows = self._db.read(f"{SELECT_ENTRIES} WHERE subject = ?", (subject,))
        return entry_from_row(rows[0]) if rows else None

    def entries(self) -> list[AllowEntry]:
        """Every entry, by subject."""
        rows = self._db.read(f"{SELECT_ENTRIES} ORDER BY subject")
        return [entry_from_row(row) for row in rows]

    def __len__(self) -> int:
        return int(self._db.read("SELECT count(*) FROM allowlist")[0][0])

    def add_all(self, entries: Iterable[AllowEntry]) -> int:
        """Add or update many entries in one transaction; how many were given."""
        rows = [entry_row(entry) for entry in entries]
        with self._db.transaction() as connection:
            connection.executemany(UPSERT_ENTRY, rows)
        return len(rows)

    def import_csv(self, path: Path) -> int:
        """Add or update every entry of an HR export (see `scanner.state.allowcsv`); all or none."""
        from scanner.state.allowcsv import read_allowlist_csv

        return self.add_all(read_allowlist_csv(path))

    def replace_all(self, entries: Iterable[AllowEntry], version: int) -> bool:
        """Replace the whole allowlist with the centre's snapshot `version`, atomically.

        Snapshots only move forwards: one whose version is not newer than the stored one
        (a late or repeated delivery) changes nothing, and False is returned.
        """
        rows = [entry_row(entry) for entry in entries]
        with self._db.transaction() as connection:
            current = connection.execute(
                "SELECT value FROM gate_state WHERE key = 'allowlist_version'"
            ).fetchone()
            if current is not None and version <= int(current[0]):
                return False
            connection.execute("DELETE FROM allowlist")
            connection.executemany(UPSERT_ENTRY, rows)
            connection.execute(
                "INSERT INTO gate_state (key, value) VALUES ('allowlist_version', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(version),),
            )
        return True

    @property
    def version(self) -> int | None:
        """The version of the last snapshot from the centre; None if none came yet."""
        rows = self._db.read("SELECT value FROM gate_state WHERE key = 'allowlist_version'")
        return int(rows[0][0]) if rows else None


SELECT_ENTRIES = "SELECT subject, name, kinds, valid_from, valid_until, birth_date FROM allowlist"
UPSERT_ENTRY = (
    "INSERT INTO allowlist (subject, name, kinds, valid_from, valid_until, birth_date)"
    " VALUES (?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (subject) DO UPDATE SET name = excluded.name, kinds = excluded.kinds,"
    " valid_from = excluded.valid_from, valid_until = excluded.valid_until,"
    " birth_date = excluded.birth_date"
)


def entry_row(entry: AllowEntry) -> tuple[Any, ...]:
    kinds = ",".join(sorted(entry.kinds))
    born = entry.birth_date.isoformat() if entry.birth_date is not None else None
    return (entry.subject, entry.name, kinds, entry.valid_from, entry.valid_until, born)


def entry_from_row(row: Sequence[Any]) -> AllowEntry:
    subject, name, kinds, valid_from, valid_until, born = row
    return AllowEntry(
        subject,
        name,
        frozenset(cast(AllowKind, kind) for kind in kinds.split(",")),
        valid_from,
        valid_until,
        date.fromisoformat(born) if born is not None else None,
    )


class Revocations:
    """Passes (by `jti`), subjects (any credential) and health certificates (by the hashes
    of the EU revocation lists) that are refused, maybe until a time."""

    def __init__(self, database: Database) -> None:
        self._db = database

    def revoke(
        self, *, jti: str | None = None, subject: str | None = None, until: float | None = None
    ) -> None:
        """Refuse a pass or a subject until `until` (epoch seconds; None: for good).

        Revoking again replaces `until`: revoking until now lifts a revocation.
        """
        if (jti is None) == (subject is None):
            raise StoreError("revoke exactly one of jti or subject")
        kind, value = ("jti", jti) if jti is not None else ("subject", subject)
        self._db.write(
            "INSERT INTO revocations (kind, value, until) VALUES (?, ?, ?)"
            " ON CONFLICT (kind, value) DO UPDATE SET until = excluded.until",
            (kind, value, until),
        )

    def is_revoked(self, *, jti: str | None, subject: str | None, now: float) -> bool:
        """True when the pass id or the subject is revoked at `now`."""
        rows = self._db.read(
            "SELECT 1 FROM revocations WHERE ((kind = 'jti' AND value = ?)"
            " OR (kind = 'subject' AND value = ?)) AND (until IS NULL OR until > ?) LIMIT 1",
            (jti, subject, now),
        )
        return bool(rows)

    def revoke_dcc(self, hashes: Iterable[str], until: float | None = None) -> int:
        """Refuse the health certificates named by `hashes` (32 hex digits each, see
        `scanner.credentials.dcc.revocation`); how many were given."""
        rows = [(value, until) for value in hashes]
        if any(not _DCC_HASH.fullmatch(value) for value, _ in rows):
            raise StoreError("a health-certificate revocation hash is 32 lowercase hex digits")
        with self._db.transaction() as connection:
            connection.executemany(
                "INSERT INTO dcc_revocations (hash, until) VALUES (?, ?)"
                " ON CONFLICT (hash) DO UPDATE SET until = excluded.until",
                rows,
            )
        return len(rows)

    def is_dcc_revoked(self, hashes: Sequence[str], now: float) -> bool:
        """True when any of a certificate's revocation hashes is revoked at `now`."""
        if not hashes:
            return False
        marks = ", ".join("?" * len(hashes))
        rows = self._db.read(
            f"SELECT 1 FROM dcc_revocations WHERE hash IN ({marks})"  # noqa: S608 - only ?s
            " AND (until IS NULL OR until > ?) LIMIT 1",
            (*hashes, now),
        )
        return bool(rows)


_DCC_HASH = re.compile(r"[0-9a-f]{32}")


def open_snapshot(path: Path) -> sqlite3.Connection:
    """Read the gate's database without creating or changing any file.

    SQLite opens a WAL database read-only by creating its -wal and -shm files when they
    are missing, and leaves them behind, owned by whoever looked: as root, that locks the
    gate's service user out of its own store. Both exist while a connection (the running
    gate) has the database open, and then a read-only connection uses them as they are;
    without them the main file holds every commit, and `immutable=1` reads it without
    locks or side files.
    """
    live = all(Path(f"{path}{suffix}").exists() for suffix in ("-wal", "-shm"))
    options = "mode=ro" if live else "mode=ro&immutable=1"
    uri = f"{path.resolve().as_uri()}?{options}"
    return sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None)
