"""People: search by subject or name (without diacritics), and one person's passages,
stays and the gates they used over a period. Every look-up is audited."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitor.dashboard import audit
from monitor.dashboard.filters import local_input, moment
from monitor.dashboard.views.common import Viewer, dashboard, guard, render
from monitor.reporting import reports
from monitor.storage.records import Scan

DAY_MS = 86_400_000
DEFAULT_DAYS = 14
QUERY_MAX = 100


@dataclass(frozen=True)
class GateUse:
    site: str
    gate: str
    times: int


def period(request: Request, now_ms: int) -> tuple[int, int]:
    """[from, to) from the query string; by default the last 14 days up to now."""
    zone = dashboard(request).settings.zone
    end = moment(request.query_params.get("to"), zone) or now_ms
    start = moment(request.query_params.get("from"), zone) or end - DEFAULT_DAYS * DAY_MS
    return (start, end) if start < end else (end - DEFAULT_DAYS * DAY_MS, end)


@guard("people")
async def search(request: Request, viewer: Viewer) -> Response:
    dash = dashboard(request)
    wanted = (request.query_params.get("q") or "").strip()[:QUERY_MAX]
    found = dash.people.search(wanted) if wanted else []
    if wanted:
        detail = f"q={wanted!r} ({len(found)} found)"
        await audit.record(dash, request, viewer.user.name, "person_search", detail)
    context = {"q": wanted, "found": found, "loading": not dash.people.loaded.is_set()}
    return await render(request, "people.html", context, viewer)


@guard("people")
async def person(request: Request, viewer: Viewer) -> Response:
    dash = dashboard(request)
    subject = request.path_params["subject"][:QUERY_MAX]
    start, end = period(request, dash.now_ms())
    found = await dash.read(lambda store: reports.presence(store, start, end, subject=subject))
    await audit.record(
        dash, request, viewer.user.name, "person", f"subject={subject!r} from={start} to={end}"
    )
    people = sorted(found.values(), key=lambda person: person.site)
    scans: list[Scan] = sorted(
        (scan for person in people for scan in person.scans), key=lambda scan: -scan.ts_ms
    )
    used = Counter((scan.site, scan.gate) for scan in scans)
    zone = dash.settings.zone
    context = {
        "subject": subject,
        "names": dash.people.names_of(subject) or [p.name for p in people if p.name],
        "people": people,
        "scans": scans,
        "gates_used": [GateUse(site, gate, times) for (site, gate), times in sorted(used.items())],
        "from_ms": start,
        "to_ms": end,
        "from_value": local_input(start, zone),
        "to_value": local_input(end, zone),
    }
    return await render(request, "person.html", context, viewer)


routes = [
    Route("/people", search, name="people"),
    Route("/people/{subject}", person, name="person"),
]
