"""Filters read from the query string alone, so that a view is a bookmark: the same URL
shows the same events to whoever may see them."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, tzinfo
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from monitor.storage.records import EventFilter, EventRow
from mqtt.events import CERT_TYPES

# Query parameters that select events, each an EventFilter field of the same name.
EQUALITY = (
    "site", "gate", "direction", "result", "reason", "credential", "subject", "cert_type",
    "cert_country",
)  # fmt: skip
CHOICES = {"direction": ("in", "out"), "result": ("granted", "denied"), "cert_type": CERT_TYPES}
COUNTRY = re.compile(r"[A-Z]{2}")
TEXT_MAX = 128


def event_filter(params: QueryParams, zone: tzinfo) -> EventFilter:
    values: dict[str, object] = {}
    for key in EQUALITY:
        value = (params.get(key) or "").strip()[:TEXT_MAX]
        if key == "cert_country":
            value = country_code(value)
        if value and value in CHOICES.get(key, (value,)):
            values[key] = value
    values["from_ms"] = moment(params.get("from"), zone)
    values["to_ms"] = moment(params.get("to"), zone)
    return EventFilter(**values)  # type: ignore[arg-type]


def country_code(value: str) -> str:
    """An ISO 3166-1 alpha-2 code as events carry it ("vn" reads as "VN"); "" if none."""
    code = value.upper() if value.isascii() else ""
    return code if COUNTRY.fullmatch(code) else ""


def moment(value: str | None, zone: tzinfo) -> int | None:
    """A date or `YYYY-MM-DDTHH:MM` (a browser's datetime-local) in the site's zone."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    return round(parsed.timestamp() * 1000)


def day_bounds(value: str | None, zone: tzinfo, today: date) -> tuple[date, int, int]:
    """A day (default today) and its [start, end) in epoch ms, midnight to midnight."""
    try:
        chosen = date.fromisoformat(value) if value else today
    except ValueError:
        chosen = today
    start = datetime.combine(chosen, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(chosen + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    return chosen, round(start.timestamp() * 1000), round(end.timestamp() * 1000)


def local_input(ms: int | None, zone: tzinfo) -> str:
    """Epoch ms as a datetime-local input value, in the site's zone."""
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=zone).strftime("%Y-%m-%dT%H:%M")


def query(params: QueryParams, **changes: object) -> str:
    """The query string with some parameters changed (None removes one)."""
    merged = {key: value for key, value in params.items() if key not in changes}
    merged |= {key: str(value) for key, value in changes.items() if value is not None}
    return urlencode(merged)


def matches(where: EventFilter, event: EventRow) -> bool:
    """Whether a live event belongs in a filtered view."""
    for key in EQUALITY:
        wanted = getattr(where, key)
        if wanted is not None and getattr(event, key) != wanted:
            return False
    ts_ms: int = event.ts_ms
    if where.from_ms is not None and ts_ms < where.from_ms:
        return False
    return where.to_ms is None or ts_ms < where.to_ms
