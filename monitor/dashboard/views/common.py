"""What every view shares: who is looking (and may they), rendering a page, and one route
pair per table page: `/PAGE` as HTML and `/PAGE.csv` as its export."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from monitor.dashboard import audit, csrf
from monitor.dashboard.auth import current_user
from monitor.dashboard.context import Dashboard
from monitor.dashboard.db import User
from monitor.dashboard.export import csv_response
from monitor.dashboard.i18n import LANG_COOKIE, Locale, negotiate
from monitor.dashboard.roles import allows
from monitor.reporting.reports import Report

# The menu: (path, label, permission), in the order shown.
NAV = (
    ("/gates", "Gates", "gates"),
    ("/events", "Events", "events"),
    ("/people", "People", "people"),
    ("/onsite", "On site", "counts"),
    ("/attendance", "Attendance", "reports"),
    ("/contacts", "Contacts", "reports"),
    ("/gaps", "Gaps", "gates"),
    ("/rejects", "Rejects", "reports"),
    ("/commands", "Commands", "commands"),
    ("/accounts", "Accounts", "accounts"),
    ("/audit", "Audit log", "audit"),
)


@dataclass(frozen=True)
class Viewer:
    """Who is looking, and how they read."""

    user: User
    locale: Locale

    def can(self, permission: str) -> bool:
        return allows(self.user.role, permission)


@dataclass
class Page:
    """What a page view hands to the renderer: its template and context, and the table
    its CSV export writes (None: the page has no export)."""

    template: str
    title: str
    context: dict[str, Any] = field(default_factory=dict)
    table: Report | None = None
    filename: str = "export"
    audit: str | None = None  # what looking at this page writes to the audit log


View = Callable[[Request, Viewer], Awaitable[Response]]
FormView = Callable[[Request, Viewer, FormData], Awaitable[Response]]
Builder = Callable[[Request, Viewer, bool], Awaitable[Page]]


def dashboard(request: Request) -> Dashboard:
    dash: Dashboard = request.app.state.dashboard
    return dash


def locale_of(request: Request) -> Locale:
    dash = dashboard(request)
    lang = negotiate(request.headers.get("accept-language"), request.cookies.get(LANG_COOKIE))
    return Locale(lang, dash.settings.zone)


async def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    viewer: Viewer | None = None,
    status: int = 200,
) -> HTMLResponse:
    dash = dashboard(request)
    locale = viewer.locale if viewer else locale_of(request)
    full = {
        "request": request,
        "_": locale.text,
        "locale": locale,
        "viewer": viewer,
        "nav": [item for item in NAV if viewer and viewer.can(item[2])],
        "csrf_token": csrf.token(request, dash.key),
        "now_ms": dash.now_ms(),
        "zone_name": dash.settings.zone_name,
        "here": request.url.path,
        **context,
    }
    html = await dash.off_loop(dash.templates.get_template(template).render, full)
    response = HTMLResponse(html, status, headers={"Cache-Control": "no-store"})
    fresh = csrf.new_cookie(request)
    if fresh:
        response.set_cookie(
            csrf.COOKIE,
            fresh,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
    return response


async def refusal(request: Request, viewer: Viewer | None, message: str, status: int) -> Response:
    return await render(request, "message.html", {"message": message}, viewer, status)


def guard(permission: str) -> Callable[[View], Callable[[Request], Awaitable[Response]]]:
    """A view for logged-in accounts with `permission`; others go to the login page
    (or get 401 where a page makes no sense, like a live stream) or get 403."""

    def wrap(view: View) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(view)
        async def guarded(request: Request) -> Response:
            user = await current_user(dashboard(request), request)
            if user is None:
                return to_login(request)
            viewer = Viewer(user, locale_of(request))
            if not viewer.can(permission):
                return await refusal(
                    request, viewer, viewer.locale.text("You may not see this page."), 403
                )
            return await view(request, viewer)

        return guarded

    return wrap


def form_guard(permission: str) -> Callable[[FormView], Callable[[Request], Awaitable[Response]]]:
    """A form's target: as `guard`, and the form's CSRF token must be right (403 if not)."""

    def wrap(view: FormView) -> Callable[[Request], Awaitable[Response]]:
        @guard(permission)
        @functools.wraps(view)
        async def checked(request: Request, viewer: Viewer) -> Response:
            form = await request.form()
            if not csrf.valid(request, dashboard(request).key, form.get(csrf.FIELD)):
                return await csrf_refusal(request, viewer)
            return await view(request, viewer, form)

        return checked

    return wrap


async def csrf_refusal(request: Request, viewer: Viewer | None) -> Response:
    locale = viewer.locale if viewer else locale_of(request)
    return await refusal(
        request, viewer, locale.text("The form has expired; please try again."), 403
    )


def to_login(request: Request) -> Response:
    if request.url.path.startswith("/live/"):
        return Response("log in first", 401)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", 303)


def table_routes(path: str, builder: Builder, permission: str) -> list[Route]:
    """`path` renders the page; `path.csv` exports its table (needs `export` too)."""

    @guard(permission)
    async def html(request: Request, viewer: Viewer) -> Response:
        page = await builder(request, viewer, False)
        if page.audit:
            await audit.record(dashboard(request), request, viewer.user.name, *page_audit(page))
        return await render(request, page.template, {"page": page, **page.context}, viewer)

    @guard(permission)
    async def export(request: Request, viewer: Viewer) -> Response:
        if not viewer.can("export"):
            return await refusal(
                request, viewer, viewer.locale.text("You may not see this page."), 403
            )
        page = await builder(request, viewer, True)
        if page.table is None:
            return await refusal(request, viewer, viewer.locale.text("Page not found."), 404)
        detail = f"{path}.csv?{request.url.query}".rstrip("?") + f" ({len(page.table.rows)} rows)"
        await audit.record(dashboard(request), request, viewer.user.name, "export", detail)
        return csv_response(page.table, dashboard(request).settings.zone, page.filename)

    name = path.strip("/")
    return [
        Route(path, html, name=name),
        Route(f"{path}.csv", export, name=f"{name}_csv"),
    ]


def page_audit(page: Page) -> tuple[str, str]:
    action, _, detail = (page.audit or "").partition(" ")
    return action, detail
