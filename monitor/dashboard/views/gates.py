"""Gates: every gate's state and figures, live."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitor.dashboard.context import Dashboard
from monitor.dashboard.gatecards import GateCard, card
from monitor.dashboard.views.common import Viewer, dashboard, guard, render


async def gate_cards(dash: Dashboard) -> list[GateCard]:
    rows = await dash.read(lambda store: store.gates())
    now = dash.now_ms()
    return [card(row, now, dash.settings.stale_after_s) for row in rows]


def broker_down(dash: Dashboard) -> bool:
    """Only a monitor knows its broker connection; a dashboard alone does not say."""
    state = dash.monitor_state
    return state is not None and not state.snapshot().connected


def grid_context(dash: Dashboard, cards: list[GateCard]) -> dict[str, object]:
    return {"cards": cards, "broker_down": broker_down(dash)}


@guard("gates")
async def gates(request: Request, viewer: Viewer) -> Response:
    dash = dashboard(request)
    cards = await gate_cards(dash)
    context = {"after": dash.hub.last_id, **grid_context(dash, cards)}
    return await render(request, "gates.html", context, viewer)


routes = [Route("/gates", gates, name="gates")]
