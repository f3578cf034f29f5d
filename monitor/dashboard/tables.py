"""Tables the reports module does not make: events, rejects, the audit log, accounts.
Each is a `monitor.reporting.reports.Report`, so pages and CSV exports render them as they render
the reports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.dashboard.db import AuditRow, User
from monitor.reporting.reports import CERT_COLUMNS, Column, Report
from monitor.storage.records import EventRow

PERSONAL = ("subject", "name")

EVENT_COLUMNS = (
    Column("ts_ms", "time", "time"),
    Column("site", "site"),
    Column("gate", "gate"),
    Column("seq", "seq", "count"),
    Column("direction", "direction"),
    Column("type", "type"),
    Column("result", "result"),
    Column("reason", "reason"),
    Column("credential", "credential"),
    Column("subject", "subject"),
    Column("name", "name"),
    *CERT_COLUMNS,
    Column("latency_ms", "latency ms", "count"),
)


def without_names(columns: Sequence[Column]) -> tuple[Column, ...]:
    return tuple(column for column in columns if column.key not in PERSONAL)


def events_table(rows: Sequence[EventRow], names: bool) -> Report:
    columns = EVENT_COLUMNS if names else without_names(EVENT_COLUMNS)
    return Report("Events", columns, rows)


@dataclass(frozen=True)
class RejectRow:
    received_ms: int
    topic: str
    reason: str
    payload: str


PAYLOAD_SHOWN = 300


def rejects_table(rows: Sequence[tuple[int, str, str, bytes]]) -> Report:
    shown = [
        RejectRow(at, topic, reason, payload[:PAYLOAD_SHOWN].decode("utf-8", "replace"))
        for at, topic, reason, payload in rows
    ]
    return Report(
        "Rejects",
        (
            Column("received_ms", "received", "time"),
            Column("topic", "topic"),
            Column("reason", "reason"),
            Column("payload", "payload"),
        ),
        shown,
    )


def audit_table(rows: Sequence[AuditRow]) -> Report:
    return Report(
        "Audit log",
        (
            Column("ts_ms", "time", "time"),
            Column("name", "who"),
            Column("action", "action"),
            Column("detail", "detail"),
            Column("client", "client"),
        ),
        rows,
    )


def users_table(rows: Sequence[User]) -> Report:
    return Report(
        "Accounts",
        (Column("name", "name"), Column("role", "role"), Column("created_ms", "created", "time")),
        rows,
    )
