"""The monitor's reports as pages, each with its CSV export: on site now, attendance
per day, contacts of a person, gaps; and the messages set aside (rejects)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from starlette.requests import Request

from monitor import reports
from monitor.dashboard.db import DashboardStore
from monitor.dashboard.filters import day_bounds, local_input
from monitor.dashboard.tables import rejects_table
from monitor.dashboard.views.common import Page, Viewer, dashboard, table_routes
from monitor.dashboard.views.people import period

REJECTS_SHOWN = 500


async def onsite(request: Request, viewer: Viewer, export: bool) -> Page:
    """Officers see who; viewers see how many, per site."""
    dash = dashboard(request)
    site = request.query_params.get("site") or None
    now = dash.now_ms()
    report = await dash.read(lambda store: reports.onsite(store, now, site))
    counts = sorted(Counter(row.site for row in report.rows).items())
    names = viewer.can("names")
    return Page(
        "onsite.html",
        "On site now",
        {"report": report if names else None, "counts": counts, "site": site or ""},
        table=report if names else None,
        filename="onsite",
    )


async def attendance(request: Request, viewer: Viewer, export: bool) -> Page:
    dash = dashboard(request)
    zone = dash.settings.zone
    today = datetime.fromtimestamp(dash.now_ms() / 1000, tz=zone).date()
    day, start, end = day_bounds(request.query_params.get("date"), zone, today)
    site = request.query_params.get("site") or None
    now = dash.now_ms()
    report = await dash.read(
        lambda store: reports.attendance(store, day.isoformat(), start, end, now_ms=now, site=site)
    )
    return Page(
        "report.html",
        "Attendance",
        {"report": report, "form": "attendance", "day": day.isoformat(), "site": site or ""},
        table=report,
        filename=f"attendance-{day.isoformat()}",
    )


async def contacts(request: Request, viewer: Viewer, export: bool) -> Page:
    dash = dashboard(request)
    subject = (request.query_params.get("subject") or "").strip()[:100]
    start, end = period(request, dash.now_ms())
    now = dash.now_ms()
    report = None
    if subject:
        report = await dash.read(
            lambda store: reports.contacts(store, subject, start, end, now_ms=now)
        )
    zone = dash.settings.zone
    return Page(
        "report.html",
        "Contacts",
        {
            "report": report,
            "form": "contacts",
            "subject": subject,
            "from_value": local_input(start, zone),
            "to_value": local_input(end, zone),
        },
        table=report,
        filename=f"contacts-{subject}",
        audit=f"contacts subject={subject!r} from={start} to={end}" if subject else None,
    )


async def gaps(request: Request, viewer: Viewer, export: bool) -> Page:
    """Only gates whose counters say something is missing are looked at, each through
    its index: the page stays fast on millions of events."""
    dash = dashboard(request)
    site = request.query_params.get("site") or None

    def find(store: DashboardStore) -> reports.Report:
        gates = [g for g in store.gates() if g.last_seq != g.events and site in (None, g.site)]
        return reports.gaps_report(store.gaps_of([(g.site, g.gate) for g in gates]))

    report = await dash.read(find)
    return Page(
        "report.html",
        "Gaps",
        {"report": report, "form": "gaps", "site": site or ""},
        table=report,
        filename="gaps",
    )


async def rejects(request: Request, viewer: Viewer, export: bool) -> Page:
    dash = dashboard(request)
    report = rejects_table(await dash.read(lambda store: store.rejects(REJECTS_SHOWN)))
    return Page("report.html", "Rejects", {"report": report, "form": None}, report, "rejects")


routes = [
    *table_routes("/onsite", onsite, "counts"),
    *table_routes("/attendance", attendance, "reports"),
    *table_routes("/contacts", contacts, "reports"),
    *table_routes("/gaps", gaps, "gates"),
    *table_routes("/rejects", rejects, "reports"),
]
