"""Logging in and out, the language switch, accounts (admins) and the audit log."""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from monitor.dashboard import audit, auth, csrf
from monitor.dashboard.errors import DashboardError
from monitor.dashboard.i18n import LANG_COOKIE, LANGS
from monitor.dashboard.roles import ROLES
from monitor.dashboard.tables import audit_table, users_table
from monitor.dashboard.views.common import (
    Page,
    Viewer,
    csrf_refusal,
    dashboard,
    form_guard,
    guard,
    locale_of,
    render,
    table_routes,
)

NAME_FIELD_MAX = 200
AUDIT_SHOWN = 500


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of ours only, never another site."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/gates"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc and "\\" not in target else "/gates"


async def login_page(request: Request, message: str | None = None, status: int = 200) -> Response:
    context = {"message": message, "next": safe_next(request.query_params.get("next"))}
    return await render(request, "login.html", context, None, status)


async def login_form(request: Request) -> Response:
    return await login_page(request)


async def login(request: Request) -> Response:
    dash = dashboard(request)
    locale = locale_of(request)
    form = await request.form()
    if not csrf.valid(request, dash.key, form.get(csrf.FIELD)):
        return await csrf_refusal(request, None)
    name = str(form.get("name", ""))[:NAME_FIELD_MAX]
    result = await auth.log_in(dash, request, name, str(form.get("password", "")))
    if result.user is None:
        await audit.record(dash, request, name, "login_failed", "")
        if result.retry_after_s is not None:
            minutes = max(1, math.ceil(result.retry_after_s / 60))
            message = locale.text(
                "Too many failed logins. Try again in {minutes} min.", minutes=minutes
            )
            response = await login_page(request, message, 429)
            response.headers["Retry-After"] = str(math.ceil(result.retry_after_s))
            return response
        return await login_page(request, locale.text("Wrong name or password."), 401)
    response = RedirectResponse(safe_next(str(form.get("next", ""))), 303)
    await auth.start_session(dash, request, response, result.user)
    await audit.record(dash, request, result.user.name, "login", f"role={result.user.role}")
    return response


@form_guard("gates")
async def logout(request: Request, viewer: Viewer, form: FormData) -> Response:
    dash = dashboard(request)
    response = RedirectResponse("/login", 303)
    await auth.end_session(dash, request, response)
    await audit.record(dash, request, viewer.user.name, "logout", "")
    return response


async def language(request: Request) -> Response:
    """A reading preference, not a change of data: a plain link sets it."""
    lang = request.path_params["lang"]
    response = RedirectResponse(safe_next(request.query_params.get("next")), 303)
    if lang in LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response


async def accounts_page(request: Request, viewer: Viewer, error: str | None = None) -> Response:
    dash = dashboard(request)
    users = await dash.read(lambda store: store.users())
    context = {"report": users_table(users), "roles": ROLES, "error": error}
    return await render(request, "accounts.html", context, viewer, 400 if error else 200)


@guard("accounts")
async def accounts(request: Request, viewer: Viewer) -> Response:
    return await accounts_page(request, viewer)


@form_guard("accounts")
async def put_account(request: Request, viewer: Viewer, form: FormData) -> Response:
    dash = dashboard(request)
    name, role = str(form.get("name", "")).strip(), str(form.get("role", ""))
    password = str(form.get("password", ""))
    now, cost = dash.now_ms(), dash.settings.password_cost
    try:
        await dash.read(
            lambda store: auth.new_user(store, name, role, password, now_ms=now, cost=cost)
        )
    except DashboardError as error:
        return await accounts_page(request, viewer, str(error))
    await audit.record(dash, request, viewer.user.name, "account", f"put {name!r} role={role}")
    return RedirectResponse("/accounts", 303)


@form_guard("accounts")
async def remove_account(request: Request, viewer: Viewer, form: FormData) -> Response:
    dash = dashboard(request)
    name = str(form.get("name", ""))
    if name == viewer.user.name:
        return await accounts_page(request, viewer, "an account cannot remove itself")
    await dash.read(lambda store: store.remove_user(name))
    await audit.record(dash, request, viewer.user.name, "account", f"remove {name!r}")
    return RedirectResponse("/accounts", 303)


async def audit_log(request: Request, viewer: Viewer, export: bool) -> Page:
    dash = dashboard(request)
    rows = await dash.read(
        lambda store: store.audit(dash.settings.export_max if export else AUDIT_SHOWN)
    )
    report = audit_table(rows)
    return Page("report.html", "Audit log", {"report": report, "form": None}, report, "audit")


async def home(request: Request) -> Response:
    return RedirectResponse("/gates", 303)


routes = [
    Route("/", home),
    Route("/login", login_form, name="login"),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"], name="logout"),
    Route("/lang/{lang}", language, name="lang"),
    Route("/accounts", accounts, name="accounts"),
    Route("/accounts", put_account, methods=["POST"]),
    Route("/accounts/remove", remove_account, methods=["POST"], name="accounts_remove"),
    *table_routes("/audit", audit_log, "audit"),
]
