"""The monitor's reports as pages, each with its CSV export: on site now, attendance
per day, contacts of a person, gaps; and the messages set aside (rejects)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitor.dashboard import audit
from monitor.dashboard.context import Dashboard
from monitor.dashboard.filters import day_bounds, local_input
from monitor.dashboard.tables import rejects_table
from monitor.dashboard.views.common import (
    Page,
    Viewer,
    dashboard,
    form_guard,
    refusal,
    render,
    table_routes,
)
from monitor.dashboard.views.people import period
from monitor.fleet.resend import Answer, plan_for
from monitor.reporting import reports
from mqtt.errors import MqttError

REJECTS_SHOWN = 500


async def onsite(request: Request, viewer: Viewer, export: bool) -> Page:
    """Officers see who; viewers see how many, per site, and with which certificate."""
    dash = dashboard(request)
    site = request.query_params.get("site") or None
    now = dash.now_ms()
    report = await dash.read(lambda store: reports.onsite(store, now, site))
    counts = sorted(Counter(row.site for row in report.rows).items())
    names = viewer.can("names")
    context = {
        "report": report if names else None,
        "counts": counts,
        "certificates": certificate_counts(report.rows),
        "site": site or "",
    }
    return Page(
        "onsite.html", "On site now", context, table=report if names else None, filename="onsite"
    )


CertCount = tuple[str | None, str | None, int]  # type, country (None: none), people


def certificate_counts(rows: Sequence[reports.OnsiteRow]) -> dict[str, list[CertCount]]:
    """Per site where anyone came in with a health certificate: how many of those inside
    came in with which (type and country), and without one; most first."""
    found = Counter((row.site, row.cert_type, row.cert_country) for row in rows)
    with_one = {site for site, kind, country in found if kind or country}
    per_site: dict[str, list[CertCount]] = {}
    for (site, kind, country), count in sorted(
        found.items(), key=lambda item: (item[0][0], -item[1], item[0][1] or "", item[0][2] or "")
    ):
        if site in with_one:
            per_site.setdefault(site, []).append((kind, country, count))
    return per_site


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
    """The gaps from the seq ranges kept per gate: the page stays fast on millions of
    events. Officers and admins may ask the gates to send what is missing, when the
    dashboard holds the centre's command key."""
    dash = dashboard(request)
    site = request.query_params.get("site") or None
    report = await dash.read(lambda store: reports.gaps(store, site))
    return gaps_page(report, site, can_resend(dash, viewer))


def gaps_page(
    report: reports.Report, site: str | None, resend: bool, answers: list[Answer] | None = None
) -> Page:
    context = {"report": report, "form": "gaps", "site": site or "", "resend": resend}
    return Page("report.html", "Gaps", {**context, "answers": answers}, report, "gaps")


def can_resend(dash: Dashboard, viewer: Viewer) -> bool:
    return dash.commands is not None and viewer.can("resend")


@form_guard("resend")
async def resend(request: Request, viewer: Viewer, form: FormData) -> Response:
    """Ask each gate for what is missing (monitor.fleet.resend), then show the gaps and what
    each gate answered; written to the audit log."""
    dash = dashboard(request)
    sender = dash.commands
    site = str(form.get("site") or "") or None
    if sender is None:
        return await refusal(request, viewer, viewer.locale.text("You may not see this page."), 403)
    asked = await dash.read(lambda store: plan_for(store, site))
    try:
        answers = await dash.off_loop(sender.resend, asked)
    except MqttError as error:
        answers = [Answer(ask.site, ask.gate, ask.asked, f"failed: {error}", None) for ask in asked]
    said = ", ".join(f"{a.site}/{a.gate}: {a.outcome}" for a in answers) or "no gate to ask"
    await audit.record(dash, request, viewer.user.name, "resend", f"site={site or '*'} -> {said}")
    report = await dash.read(lambda store: reports.gaps(store, site))
    page = gaps_page(report, site, True, answers)
    return await render(request, page.template, {"page": page, **page.context}, viewer)


async def rejects(request: Request, viewer: Viewer, export: bool) -> Page:
    dash = dashboard(request)
    report = rejects_table(await dash.read(lambda store: store.rejects(REJECTS_SHOWN)))
    return Page("report.html", "Rejects", {"report": report, "form": None}, report, "rejects")


routes = [
    Route("/gaps/resend", resend, methods=["POST"], name="gaps_resend"),
    *table_routes("/onsite", onsite, "counts"),
    *table_routes("/attendance", attendance, "reports"),
    *table_routes("/contacts", contacts, "reports"),
    *table_routes("/gaps", gaps, "gates"),
    *table_routes("/rejects", rejects, "reports"),
]
