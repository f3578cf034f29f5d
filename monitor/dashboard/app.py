"""The dashboard's web application: routes of every page module, static files, security
headers, and the live hub bound to the server's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.dashboard.context import HERE, Dashboard
from monitor.dashboard.views import accounts, commands, events, gates, live, people, reports
from monitor.dashboard.views.common import locale_of, refusal
from monitor.errors import StoreError

log = logging.getLogger(__name__)

# Scripts and styles from our own files only; no frames, no plugins, no foreign forms.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


def load_people(dash: Dashboard) -> None:
    """Everyone the store knows, for the search; in the background (a scan of the store)."""
    try:
        with dash.pool.store() as store:
            dash.people.load(store.people())
    except StoreError as error:
        log.error("people search: cannot read the store: %s", error)


def create_app(dash: Dashboard) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        dash.hub.attach(asyncio.get_running_loop())
        threading.Thread(target=load_people, args=(dash,), daemon=True).start()
        yield
        dash.hub.close()

    async def not_found(request: Request, error: Exception) -> Response:
        status = error.status_code if isinstance(error, HTTPException) else 500
        text = "Page not found." if status == 404 else "You may not see this page."
        return await refusal(request, None, locale_of(request).text(text), status)

    routes = [
        *accounts.routes,
        *gates.routes,
        *events.routes,
        *people.routes,
        *reports.routes,
        *commands.routes,
        *live.routes,
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: not_found},
    )
    app.state.dashboard = dash
    app.add_middleware(SecurityHeaders)
    return app
