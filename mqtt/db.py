"""SQLite connections and versioned migrations for the gate's one database file.

The file at `store.path` is shared: each component (the outbox, the command replay memory,
the scanner's store) keeps its own tables and records its schema version in the shared
table `schema_version(component, version)`, so components migrate independently.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from mqtt.errors import StoreError

BUSY_TIMEOUT_MS = 5000
WAL_RETRY_S = 0.01
Synchronous = Literal["FULL", "NORMAL"]


def connect(path: Path, synchronous: Synchronous = "FULL") -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, with a busy timeout.

    `synchronous=FULL` syncs every commit: the row survives a power cut once commit returns.
    A `path` starting with `file:` is an SQLite URI (e.g. a shared in-memory database).
    """
    uri = str(path).startswith("file:")
    try:
        if not uri:
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, uri=uri)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        enter_wal(conn, BUSY_TIMEOUT_MS / 1000)
        conn.execute(f"PRAGMA synchronous = {synchronous}")
    except (OSError, sqlite3.Error) as error:
        raise StoreError(f"cannot open the database {path}: {error}") from error
    return conn


def enter_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """Switch a database to WAL. Switching a new one needs it to itself, and SQLite says
    "database is locked" at once, without the busy timeout's wait, while another process
    opening it at the same moment holds it: try again for up to `timeout_s`, as a busy
    statement would have waited."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(WAL_RETRY_S)


def migrate(conn: sqlite3.Connection, component: str, migrations: Sequence[str]) -> int:
    """Bring `component`'s tables to version len(migrations); return that version.

    migrations[i] is the SQL script from version i to i+1. All of it runs in one
    IMMEDIATE transaction, so two processes opening the file at once cannot both migrate.
    """
    target = len(migrations)
    with transaction(conn):
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            "component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        found = conn.execute(
            "SELECT version FROM schema_version WHERE component = ?", (component,)
        ).fetchone()
        current = found[0] if found else 0
        if current > target:
            raise StoreError(
                f"the database holds {component} schema version {current}; "
                f"this qrgate knows up to {target}: upgrade qrgate"
            )
        for script in migrations[current:]:
            for statement in split_statements(script):
                conn.execute(statement)
        conn.execute(
            "INSERT INTO schema_version (component, version) VALUES (?, ?) "
            "ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            (component, target),
        )
    return target


def split_statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        raise ValueError(f"incomplete SQL statement in migration: {current.strip()[:60]}")
    return statements


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT; ROLLBACK on any exception, a failed COMMIT included."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
