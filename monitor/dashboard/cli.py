"""`qrgate dashboard` (the pages over an existing store, e.g. on a second machine reading
PostgreSQL), `qrgate dashboard user add|list|remove`, and the options `qrgate monitor
--http` shares with it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from monitor.cli import DEFAULT_DB, ExistingFile, db_option, read_secret, stop_on_sigterm
from monitor.dashboard.options import DEFAULT_HTTP, HttpOptions, collect, http_options

log = logging.getLogger(__name__)


@contextmanager
def serving(
    db: str,
    options: HttpOptions,
    *,
    broker: Any = None,
    prefix: str = "qrgate",
    feed_from_store: bool = False,
) -> Iterator[Any]:
    """The dashboard served until the block ends; yields its Dashboard. With
    `feed_from_store`, live updates come from polling the store (no monitor here)."""
    from monitor.dashboard.app import create_app
    from monitor.dashboard.context import Dashboard, Settings
    from monitor.dashboard.db import DashboardStore, StorePool
    from monitor.dashboard.feed import Feed, StorePoller
    from monitor.dashboard.server import Bind, Tls, WebServer, check_exposure

    bind = Bind.parse(options.http)
    tls = Tls(options.tls_cert, options.tls_key) if options.tls_cert and options.tls_key else None
    check_exposure(bind, tls, options.insecure)
    DashboardStore(db).close()  # the dashboard's tables exist before the first page
    settings = Settings(db, options.zone, options.zone_name, stale_after_s=options.stale_after)
    dash = Dashboard(settings, StorePool(db), commands=command_sender(options, broker, prefix))
    poller = StorePoller(db, Feed(dash.hub, dash.people)).start() if feed_from_store else None
    server = WebServer(create_app(dash), bind, tls, on_stop=dash.hub.close).start()
    dash.url = server.url
    try:
        yield dash
    finally:
        server.stop()
        if poller is not None:
            poller.stop()
        dash.pool.close()


def command_sender(options: HttpOptions, broker: Any, prefix: str) -> Any:
    """Commands need the key and a broker; without either the page says they are off."""
    if options.command_key is None or options.command_kid is None:
        return None
    if broker is None:
        raise click.UsageError("--command-key needs --broker: commands go through it")
    from monitor.dashboard.commands import CommandSender

    settings = broker.settings("")  # each command gets a client id of its own
    return CommandSender.from_key_file(settings, prefix, options.command_key, options.command_kid)


# ---- qrgate dashboard -----------------------------------------------------------------


@click.group("dashboard", invoke_without_command=True)
@click.option("--http", default=DEFAULT_HTTP, show_default=True, help="HOST:PORT to serve on.")
@db_option
@http_options
@click.option("--broker", default=None, help="mqtt://HOST or mqtts://HOST: for Commands only.")
@click.option("--prefix", default="qrgate", show_default=True, help="The gates' topic prefix.")
@click.option("--ca-file", type=ExistingFile, help="CA certificate(s) of the broker (TLS).")
@click.option("--username", default=None, help="MQTT user name (for Commands).")
@click.option("--password-file", type=ExistingFile, help="File holding the MQTT password.")
@click.pass_context
def dashboard(ctx: click.Context, /, db: str, broker: str | None, prefix: str, **rest: Any) -> None:
    """Serve the dashboard over an existing store, without subscribing to the broker.

    For a second machine reading the monitor's PostgreSQL, or pages apart from the
    monitor. Live pages follow the store (polled twice a second). Log in with an account
    made by `qrgate dashboard user add`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from monitor.intake.subscriber import Broker

    ca_file, username = rest.pop("ca_file"), rest.pop("username")
    password = read_secret(rest.pop("password_file"))
    options = collect(**rest)
    endpoint = None
    if broker is not None:
        try:
            endpoint = Broker.from_url(
                broker, ca_file=ca_file, username=username, password=password
            )
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--broker") from None
    from monitor.storage.retention import Upkeep, UpkeepPolicy

    upkeep = Upkeep(db, UpkeepPolicy()).start()  # the planner's statistics, on SQLite
    try:
        with (
            stop_on_sigterm() as stopping,
            serving(db, options, broker=endpoint, prefix=prefix, feed_from_store=True),
        ):
            wait(stopping)
    finally:
        upkeep.stop()


def wait(stopping: threading.Event) -> None:
    while not stopping.wait(1.0):
        pass


@dashboard.group("user")
def user() -> None:
    """Dashboard accounts: viewer (gates and counts), officer (names, people, contacts,
    exports), admin (commands, accounts)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "officer", "admin"]), required=True)
@click.option(
    "--password-file",
    type=ExistingFile,
    help="Read the password from this file (default: ask for it).",
)
@db_option
def user_add(name: str, role: str, password_file: Path | None, db: str) -> None:
    """Add account NAME, or give it a new role and password."""
    from monitor.dashboard.auth import new_user
    from monitor.dashboard.db import DashboardStore

    password = read_secret(password_file)
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    store = DashboardStore(db, create=True)
    try:
        new_user(store, name, role, password, now_ms=now_ms())
    finally:
        store.close()
    click.echo(f"account {name}: {role}")


@user.command("list")
@db_option
def user_list(db: str) -> None:
    """Every account and its role."""
    from monitor.dashboard.db import DashboardStore

    store = DashboardStore(db)
    try:
        for account in store.users():
            click.echo(f"{account.name}\t{account.role}")
    finally:
        store.close()


@user.command("remove")
@click.argument("name")
@db_option
def user_remove(name: str, db: str) -> None:
    """Remove account NAME and end its sessions."""
    from monitor.dashboard.db import DashboardStore
    from monitor.dashboard.errors import DashboardError

    store = DashboardStore(db)
    try:
        if not store.remove_user(name):
            raise DashboardError(f"no account {name!r}")
    finally:
        store.close()
    click.echo(f"removed {name}")


def now_ms() -> int:
    import time

    return round(time.time() * 1000)


__all__ = ["DEFAULT_DB", "HttpOptions", "collect", "dashboard", "http_options", "serving"]
