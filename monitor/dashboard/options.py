"""The options of the dashboard, shared by `qrgate monitor --http` and `qrgate dashboard`.
Plain click: importable without the dashboard's extra installed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_HTTP = "127.0.0.1:8080"
DEFAULT_ZONE = "Asia/Ho_Chi_Minh"
ExistingFile = click.Path(exists=True, dir_okay=False, path_type=Path)


@dataclass(frozen=True)
class HttpOptions:
    """How to serve the pages; shared by `qrgate monitor --http` and `qrgate dashboard`."""

    http: str
    zone: tzinfo
    zone_name: str
    insecure: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    command_key: Path | None = None
    command_kid: str | None = None
    stale_after: float = 90.0


def http_options(func: F) -> F:
    """The dashboard's options (besides --http, whose default differs per command)."""
    options = [
        click.option(
            "--tz",
            "zone",
            default=DEFAULT_ZONE,
            show_default=True,
            help="The sites' time zone: times shown and day boundaries.",
        ),
        click.option(
            "--insecure",
            is_flag=True,
            help="Serve a non-loopback address without TLS (a network you trust only).",
        ),
        click.option("--tls-cert", type=ExistingFile, help="Serve HTTPS: certificate (PEM)."),
        click.option("--tls-key", type=ExistingFile, help="Serve HTTPS: its private key (PEM)."),
        click.option(
            "--command-key",
            type=ExistingFile,
            help="The centre's command signing key (PEM): enables Commands for admins, and "
            "Home Assistant's requests with --homeassistant.",
        ),
        click.option("--command-kid", default=None, help="That key's id in the gates' key set."),
        click.option(
            "--stale-after",
            type=click.FloatRange(1),
            default=90.0,
            show_default=True,
            help="Seconds without a health message after which an online gate shows as stale.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def collect(http: str, zone: str, **options: Any) -> HttpOptions:
    """The options as given; usage errors for those that do not go together."""
    if (options["tls_cert"] is None) != (options["tls_key"] is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    if (options["command_key"] is None) != (options["command_kid"] is None):
        raise click.UsageError("--command-key and --command-kid go together")
    return HttpOptions(http, zone_named(zone), zone, **options)


def zone_named(name: str) -> tzinfo:
    if name.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {name!r}", param_hint="--tz") from None
