"""Events: the live stream, newest first, filtered by the query string; older pages by
a cursor (the last event's time and id) rather than an offset, so paging stays fast
however far back it goes."""

from __future__ import annotations

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitor.dashboard.filters import CHOICES as FILTERED
from monitor.dashboard.filters import event_filter, local_input, query
from monitor.dashboard.tables import events_table
from monitor.dashboard.views.common import Page, Viewer, dashboard, guard, render, table_routes
from monitor.storage.records import EventFilter, EventRow

# The filters' choices, and the credentials offered (the filter takes any credential).
CHOICES = {**FILTERED, "credential": ("pass", "badge", "cccd", "vnqr", "dcc")}


def cursor(params: QueryParams) -> tuple[int, str] | None:
    ts, _, event_id = (params.get("before") or "").partition(":")
    return (int(ts), event_id) if ts.isdigit() and event_id else None


async def page_of_events(
    request: Request, viewer: Viewer, export: bool
) -> tuple[EventFilter, list[EventRow], str | None]:
    """The events of this view, and the query string of the next (older) page."""
    dash = dashboard(request)
    where = event_filter(request.query_params, dash.settings.zone)
    if not viewer.can("names"):
        where = EventFilter(**{**where.__dict__, "subject": None})
    size = dash.settings.export_max if export else dash.settings.page_size
    before = cursor(request.query_params)
    rows = await dash.read(lambda store: store.events(where, before, size + 1))
    older = None
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1]
        older = query(request.query_params, before=f"{last.ts_ms}:{last.id}")
    return where, rows, older


async def events_page(request: Request, viewer: Viewer, export: bool) -> Page:
    dash = dashboard(request)
    where, rows, older = await page_of_events(request, viewer, export)
    zone = dash.settings.zone
    live = cursor(request.query_params) is None and (
        where.to_ms is None or where.to_ms > dash.now_ms()
    )
    sites = await dash.read(lambda store: store.gates())
    return Page(
        "events.html",
        "Events",
        {
            "where": where,
            "rows": rows,
            "older": older,
            "live": live,
            "after": dash.hub.last_id,
            "query": request.url.query,
            "from_value": local_input(where.from_ms, zone),
            "to_value": local_input(where.to_ms, zone),
            "choices": CHOICES,
            "sites": sorted({gate.site for gate in sites}),
            "gates": sorted({gate.gate for gate in sites}),
            "names": viewer.can("names"),
        },
        table=events_table(rows, viewer.can("names")),
        filename="events",
    )


@guard("events")
async def older_rows(request: Request, viewer: Viewer) -> Response:
    """The next page's rows and its own "older" button, for htmx to append."""
    _, rows, older = await page_of_events(request, viewer, False)
    context = {"rows": rows, "older": older, "names": viewer.can("names")}
    return await render(request, "events_rows.html", context, viewer)


routes = [
    *table_routes("/events", events_page, "events"),
    Route("/events/rows", older_rows, name="events_rows"),
]
