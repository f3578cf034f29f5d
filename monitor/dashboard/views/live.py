"""Live streams (server-sent events): new events for the Events page, the gate grid for
the Gates page. Every message carries the hub's update id; a browser that reconnects
sends the last one it saw (Last-Event-ID, or `after` in the URL when a page opens the
stream) and gets what it missed, or is told to reload when that is no longer kept."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from monitor.dashboard.context import Dashboard
from monitor.dashboard.filters import event_filter, matches
from monitor.dashboard.i18n import Locale
from monitor.dashboard.live import Update
from monitor.dashboard.views.common import Viewer, dashboard, guard
from monitor.dashboard.views.gates import gate_cards, grid_context
from monitor.storage.records import EventFilter

KEEPALIVE_S = 10.0  # also how often the gate grid is redrawn (ages, stale gates)
RETRY_MS = 2000

# Renders what an update means to one stream, or None when it means nothing there.
Renderer = Callable[[list[Update]], Awaitable[list[tuple[Update, str, str]]]]


def message(update_id: int, event: str, html: str) -> str:
    data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"id: {update_id}\nevent: {event}\n{data}\n"


def last_seen(request: Request) -> int:
    for value in (request.headers.get("last-event-id"), request.query_params.get("after")):
        if value and value.strip().isdigit():
            return int(value)
    return 0


def fragment(dash: Dashboard, template: str, locale: Locale, **context: object) -> str:
    full = {"_": locale.text, "locale": locale, "now_ms": dash.now_ms(), **context}
    return dash.templates.get_template(template).render(full)


async def stream(
    dash: Dashboard, last: int, render: Renderer, tick: Callable[[], Awaitable[str | None]]
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    while True:
        since = dash.hub.since(last)
        if since.missed:
            yield message(since.last_id, "reload", "missed")
            return
        if since.updates:
            rendered = await render(since.updates)
            for update, event, html in rendered:
                yield message(update.id, event, html)
            last = since.updates[-1].id
            if not rendered or rendered[-1][0].id != last:
                yield f"id: {last}\n\n"  # moves the browser's Last-Event-ID on
        if dash.hub.closed:
            return
        await dash.hub.wait(last, KEEPALIVE_S)
        if dash.hub.last_id == last and not dash.hub.closed:
            extra = await tick()
            yield extra if extra else ": keepalive\n\n"


def sse(body: AsyncIterator[str]) -> Response:
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@guard("events")
async def events(request: Request, viewer: Viewer) -> Response:
    dash = dashboard(request)
    where = event_filter(request.query_params, dash.settings.zone)
    names = viewer.can("names")
    if not names:
        where = EventFilter(**{**where.__dict__, "subject": None})
    variant = (str(names), viewer.locale.lang)

    async def render(updates: list[Update]) -> list[tuple[Update, str, str]]:
        out = []
        for update in updates:
            if update.kind == "event" and update.event and matches(where, update.event):
                html = update.rendered.get(variant)
                if html is None:
                    html = fragment(
                        dash, "events_rows.html", viewer.locale,
                        rows=[update.event], older=None, names=names, live_row=True,
                    )  # fmt: skip
                    update.rendered[variant] = html
                out.append((update, "scan", html))
        return out

    async def tick() -> str | None:
        return None

    return sse(stream(dash, last_seen(request), render, tick))


@guard("gates")
async def gates(request: Request, viewer: Viewer) -> Response:
    dash = dashboard(request)

    async def grid() -> str:
        context = grid_context(dash, await gate_cards(dash), viewer)
        return fragment(dash, "gates_grid.html", viewer.locale, **context)

    async def render(updates: list[Update]) -> list[tuple[Update, str, str]]:
        changed = [update for update in updates if update.kind == "gates"]
        return [(changed[-1], "gates", await grid())] if changed else []

    async def tick() -> str | None:
        return message(dash.hub.last_id, "gates", await grid())

    return sse(stream(dash, last_seen(request), render, tick))


routes = [
    Route("/live/events", events, name="live_events"),
    Route("/live/gates", gates, name="live_gates"),
]
