"""The audit log: who looked up whom, asked for contacts, exported what, sent which
command, and every login, with the time and the client's address."""

from __future__ import annotations

from starlette.requests import Request

from monitor.dashboard.auth import client_of
from monitor.dashboard.context import Dashboard
from monitor.dashboard.db import AuditRow

DETAIL_MAX = 1000


async def record(dash: Dashboard, request: Request, who: str, action: str, detail: str) -> None:
    row = AuditRow(dash.now_ms(), who, action, detail[:DETAIL_MAX], client_of(request))
    await dash.read(lambda store: store.add_audit(row))
