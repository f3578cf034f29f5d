"""CSRF protection for every form: a random cookie per browser, and in each form a token
that is that cookie's HMAC under a key of this server. A page on another site can make
the browser send the cookie (it is SameSite=Strict, so even that only in old browsers)
but cannot read it, so it cannot compute the token. A request whose Origin header names
another site is refused as well."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request

COOKIE = "qrgate_csrf"
FIELD = "csrf"


def cookie_value(request: Request) -> str:
    """This browser's CSRF cookie, or a new one (the response sets it: see `new_cookie`)."""
    value = request.cookies.get(COOKIE)
    if value and len(value) >= 32:
        return value
    fresh = getattr(request.state, "new_csrf_cookie", None) or secrets.token_urlsafe(32)
    request.state.new_csrf_cookie = fresh
    return str(fresh)


def new_cookie(request: Request) -> str | None:
    """A cookie made while handling this request, which the response must set."""
    return getattr(request.state, "new_csrf_cookie", None)


def token(request: Request, key: bytes) -> str:
    return hmac.new(key, cookie_value(request).encode(), hashlib.sha256).hexdigest()


def valid(request: Request, key: bytes, offered: object) -> bool:
    """The form's token matches the cookie, and the request comes from our own pages."""
    cookie = request.cookies.get(COOKIE)
    if not cookie or not isinstance(offered, str) or not same_origin(request):
        return False
    expected = hmac.new(key, cookie.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, offered)


def same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None:  # not sent by every client: the token decides alone
        return True
    parts = urlsplit(origin)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)
