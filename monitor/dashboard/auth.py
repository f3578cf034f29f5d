"""Accounts and sessions: who is logged in, logging in and out, adding accounts.

A session is a random token in an HttpOnly, SameSite=Strict cookie (Secure when served
over HTTPS, directly or behind a proxy that says so); the database keeps its SHA-256
and its expiry. A login is checked against a scrypt hash; an unknown name costs the
same hash, so timing does not tell which names exist.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from monitor.dashboard.context import Dashboard
from monitor.dashboard.db import DashboardStore, User
from monitor.dashboard.errors import DashboardError
from monitor.dashboard.passwords import (
    DEFAULT_COST,
    Cost,
    check_new_password,
    hash_password,
    verify_password,
)
from monitor.dashboard.roles import ROLES, is_role

COOKIE = "qrgate_session"
NAME_MAX = 64
# Verified when the name is unknown, so that such a login takes as long as any other.
_DECOY = hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    retry_after_s: float | None = None


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def current_user(dash: Dashboard, request: Request) -> User | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    now = dash.now_ms()
    return await dash.read(lambda store: store.session_user(digest(token), now))


async def log_in(dash: Dashboard, request: Request, name: str, password: str) -> LoginResult:
    """Check a login, counting failures per client address and per name."""
    keys = (f"ip:{client_of(request)}", f"user:{name.casefold()}")
    wait = dash.limiter.retry_after(keys)
    if wait is not None:
        return LoginResult(None, wait)
    user = await dash.read(lambda store: store.user(name))
    good = await dash.off_loop(verify_password, password, user.password if user else _DECOY)
    if user is None or not good:
        dash.limiter.failed(keys)
        return LoginResult(None, dash.limiter.retry_after(keys))
    dash.limiter.succeeded(keys)
    return LoginResult(user)


async def start_session(dash: Dashboard, request: Request, response: Response, user: User) -> None:
    token = secrets.token_urlsafe(32)
    now = dash.now_ms()
    expires = now + round(dash.settings.session_s * 1000)
    await dash.read(lambda store: store.add_session(digest(token), user.name, now, expires))
    response.set_cookie(
        COOKIE,
        token,
        max_age=round(dash.settings.session_s),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


async def end_session(dash: Dashboard, request: Request, response: Response) -> None:
    token = request.cookies.get(COOKIE)
    if token:
        await dash.read(lambda store: store.end_session(digest(token)))
    response.delete_cookie(COOKIE, httponly=True, samesite="strict")


def new_user(
    store: DashboardStore,
    name: str,
    role: str,
    password: str,
    *,
    now_ms: int,
    cost: Cost = DEFAULT_COST,
) -> User:
    """Add an account (or replace its role and password); DashboardError if not allowed."""
    if not name or len(name) > NAME_MAX or not name.isprintable() or name.strip() != name:
        raise DashboardError(f"an account name is 1 to {NAME_MAX} printable characters")
    if not is_role(role):
        raise DashboardError(f"role {role!r} is not one of {', '.join(ROLES)}")
    user = User(name, role, hash_password(check_new_password(password), cost), now_ms)
    store.put_user(user)
    return user
