"""The dashboard's own tables (accounts, sessions, audit) beside the monitor's, and a pool
of store connections for the web server's worker threads.

The tables live in the monitor's database, SQLite or PostgreSQL alike, so a second
machine running `qrgate dashboard` over the same PostgreSQL shares the accounts and the
audit log. They are created when missing; the monitor's own schema is not touched.
Session tokens are stored as their SHA-256 only: reading the database gives no session.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from monitor.storage.store import Store

TABLES = """
CREATE TABLE IF NOT EXISTS dashboard_users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS dashboard_sessions (
    token_sha256 TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS dashboard_audit (
    ts_ms BIGINT NOT NULL,
    name TEXT NOT NULL,
    action TEXT NOT NULL,
    detail TEXT NOT NULL,
    client TEXT
);
CREATE INDEX IF NOT EXISTS dashboard_audit_time ON dashboard_audit (ts_ms)
"""


@dataclass(frozen=True)
class User:
    name: str
    role: str
    password: str  # the stored hash
    created_ms: int


@dataclass(frozen=True)
class AuditRow:
    ts_ms: int
    name: str
    action: str
    detail: str
    client: str | None


class DashboardStore(Store):
    """The monitor's store, plus the dashboard's accounts, sessions and audit log."""

    def __init__(self, url: str, *, create: bool = False) -> None:
        super().__init__(url, create=create)
        with self._transaction(self.dialect.begin_write) as cursor:
            for statement in TABLES.split(";"):
                cursor.execute(statement)

    # ---- accounts ------------------------------------------------------------------

    def user(self, name: str) -> User | None:
        rows = self._read(
            "SELECT name, role, password, created_ms FROM dashboard_users WHERE name = ?", name
        )
        return User(*rows[0]) if rows else None

    def users(self) -> list[User]:
        rows = self._read(
            "SELECT name, role, password, created_ms FROM dashboard_users ORDER BY name"
        )
        return [User(*row) for row in rows]

    def put_user(self, user: User) -> None:
        """Add an account, or replace its role and password."""
        self._write(
            "INSERT INTO dashboard_users (name, role, password, created_ms) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET role = excluded.role, password = excluded.password",
            user.name,
            user.role,
            user.password,
            user.created_ms,
        )

    def remove_user(self, name: str) -> bool:
        self._write("DELETE FROM dashboard_sessions WHERE name = ?", name)
        return self._write("DELETE FROM dashboard_users WHERE name = ?", name) > 0

    # ---- sessions ------------------------------------------------------------------

    def add_session(self, token_sha256: str, name: str, now_ms: int, expires_ms: int) -> None:
        self._write("DELETE FROM dashboard_sessions WHERE expires_ms <= ?", now_ms)
        self._write(
            "INSERT INTO dashboard_sessions (token_sha256, name, created_ms, expires_ms)"
            " VALUES (?, ?, ?, ?)",
            token_sha256,
            name,
            now_ms,
            expires_ms,
        )

    def session_user(self, token_sha256: str, now_ms: int) -> User | None:
        """The account of a session not expired, if the account still exists."""
        rows = self._read(
            "SELECT u.name, u.role, u.password, u.created_ms FROM dashboard_sessions AS s"
            " JOIN dashboard_users AS u ON u.name = s.name"
            " WHERE s.token_sha256 = ? AND s.expires_ms > ?",
            token_sha256,
            now_ms,
        )
        return User(*rows[0]) if rows else None

    def end_session(self, token_sha256: str) -> None:
        self._write("DELETE FROM dashboard_sessions WHERE token_sha256 = ?", token_sha256)

    # ---- audit ---------------------------------------------------------------------

    def add_audit(self, row: AuditRow) -> None:
        self._write(
            "INSERT INTO dashboard_audit (ts_ms, name, action, detail, client)"
            " VALUES (?, ?, ?, ?, ?)",
            row.ts_ms,
            row.name,
            row.action,
            row.detail,
            row.client,
        )

    def audit(self, limit: int = 200, before_ms: int | None = None) -> list[AuditRow]:
        """The latest audit rows, newest first."""
        rows = self._read(
            "SELECT ts_ms, name, action, detail, client FROM dashboard_audit"
            " WHERE ts_ms < ? ORDER BY ts_ms DESC LIMIT ?",
            before_ms if before_ms is not None else 2**62,
            limit,
        )
        return [AuditRow(*row) for row in rows]

    def _write(self, sql: str, *params: object) -> int:
        with self._transaction(self.dialect.begin_write) as cursor:
            cursor.execute(self.dialect.sql(sql), params)
            return int(cursor.rowcount)


class StorePool:
    """Up to `size` open stores, each used by one thread at a time (a store's connection
    is not shared between threads); opened lazily, closed together."""

    def __init__(self, url: str, size: int = 4) -> None:
        self.url = url
        self._free: queue.LifoQueue[DashboardStore] = queue.LifoQueue()
        self._slots = queue.Queue[None]()
        for _ in range(size):
            self._slots.put(None)
        self._opened: list[DashboardStore] = []

    @contextmanager
    def store(self) -> Iterator[DashboardStore]:
        self._slots.get()
        try:
            try:
                store = self._free.get_nowait()
            except queue.Empty:
                store = DashboardStore(self.url)
                self._opened.append(store)
            try:
                yield store
            finally:
                self._free.put(store)
        finally:
            self._slots.put(None)

    def close(self) -> None:
        for store in self._opened:
            store.close()
        self._opened.clear()
