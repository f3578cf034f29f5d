"""Gates: every gate's state and figures, live."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from monitor.dashboard.context import Dashboard
from monitor.dashboard.gatecards import GateCard, card
from monitor.dashboard.views.common import Viewer, dashboard, guard, render
from monitor.storage.records import GateRow


async def gate_cards(dash: Dashboard) -> list[GateCard]:
    """Every gate the store knows: those heard from, and those only enrolled so far;
    not those retired (their events stay, on the other pages)."""
    rows, keys, enrolled_only = await dash.read(
        lambda store: (store.gates(), store.enrolled_keys(), store.enrolled_only())
    )
    kids: dict[tuple[str, str], list[str]] = {}
    for key in keys:
        kids.setdefault((key.site, key.gate), []).append(key.kid)
    known = {(row.site, row.gate): row for row in rows}
    retired = {where for where, row in known.items() if row.retired}
    now = dash.now_ms()
    return [
        card(
            known.get(where) or GateRow(*where),
            now,
            dash.settings.stale_after_s,
            tuple(kids.get(where, ())),
            enrolled_only,
        )
        for where in sorted({*known, *kids} - retired)
    ]


def broker_down(dash: Dashboard) -> bool:
    """Only a monitor knows its broker connection; a dashboard alone does not say."""
    state = dash.monitor_state
    return state is not None and not state.snapshot().connected


def grid_context(dash: Dashboard, cards: list[GateCard], viewer: Viewer) -> dict[str, object]:
    """What the grid shows this reader: key ids to admins (who enroll them) only."""
    return {"cards": cards, "broker_down": broker_down(dash), "keys": viewer.can("keys")}


@guard("gates")
async def gates(request: Request, viewer: Viewer) -> Response:
    dash = dashboard(request)
    cards = await gate_cards(dash)
    context = {"after": dash.hub.last_id, **grid_context(dash, cards, viewer)}
    return await render(request, "gates.html", context, viewer)


routes = [Route("/gates", gates, name="gates")]
