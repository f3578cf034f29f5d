"""`qrgate monitor` (subscribe, store, show) and `qrgate report ...` (read the store)."""

from __future__ import annotations

import logging
import re
import secrets
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click

from monitor.dashboard.options import http_options

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_DB = "sqlite:///./qrgate-monitor.db"
PERSISTENT_SESSION_S = 7 * 24 * 3600
STATS_EVERY_S = 60.0
REFRESH_S = 0.5

ExistingFile = click.Path(exists=True, dir_okay=False, path_type=Path)


def db_option(func: F) -> F:
    return click.option(
        "--db",
        default=DEFAULT_DB,
        show_default=True,
        envvar="QRGATE_MONITOR_DB",
        help="Event store: sqlite:///PATH (relative), sqlite:////PATH (absolute) or "
        "postgresql://USER@HOST[:PORT]/DB. Also $QRGATE_MONITOR_DB.",
    )(func)


# The parameters `login_options` adds.
LOGIN_OPTIONS = ("ca_file", "cert_file", "key_file", "username", "password_file")


def login_options(func: F) -> F:
    """How to prove who we are to the broker (as the gates do)."""
    options = [
        click.option(
            "--ca-file", type=ExistingFile, help="CA certificate(s) to verify the broker (TLS)."
        ),
        click.option("--cert-file", type=ExistingFile, help="Client certificate (TLS)."),
        click.option(
            "--key-file", type=ExistingFile, help="Client certificate's private key (TLS)."
        ),
        click.option("--username", default=None, help="MQTT user name."),
        click.option("--password-file", type=ExistingFile, help="File holding the MQTT password."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


# ---- qrgate monitor -------------------------------------------------------------------


@click.command("monitor")
@click.option("--broker", required=True, help="mqtt://HOST[:1883] or mqtts://HOST[:8883] (TLS).")
@db_option
@click.option("--prefix", default="qrgate", show_default=True, help="The gates' topic prefix.")
@click.option(
    "--client-id",
    default=None,
    help="MQTT client id; the broker keeps the session under it, so keep it stable "
    "(default: qrgate-monitor-HOSTNAME).",
)
@click.option(
    "--shared",
    "shared_group",
    default=None,
    help="Take events through the MQTT v5 shared subscription $share/GROUP/...: "
    "monitors of one group split the events between them. Clean sessions unless "
    "--session-expiry says otherwise; what a dead member held comes back from the gates "
    "(qrgate report gaps --resend).",
)
@click.option(
    "--session-expiry",
    type=click.IntRange(0, 2**32 - 1),
    default=None,
    help="Seconds the broker keeps our session (and queues events) while we are away "
    "[default: 604800, a week; with --shared: 0, a clean session].",
)
@click.option("--quiet", is_flag=True, help="No live view: log only (for a service).")
@login_options
@click.option(
    "--http",
    default=None,
    help="Also serve the web dashboard on HOST:PORT (e.g. 127.0.0.1:8080; loopback unless "
    "TLS or --insecure). Needs the `dashboard` extra.",
)
@click.option(
    "--retain-days",
    type=click.FloatRange(min=1),
    default=None,
    help="Delete events older than this many days (checked hourly; default: keep all).",
)
@click.option(
    "--enrolled-only",
    is_flag=True,
    help="Set aside the events of gates with no enrolled key (qrgate gates enroll), "
    "instead of storing them as not authenticated.",
)
@click.option(
    "--keep-rejects",
    type=click.IntRange(1, 10_000_000),
    default=10_000,
    show_default=True,
    help="Messages set aside that the store keeps (the newest).",
)
@click.option(
    "--rejects-days",
    type=click.FloatRange(min=0, min_open=True),
    default=30.0,
    show_default=True,
    help="Days a message set aside is kept.",
)
@click.option(
    "--metrics",
    "metrics_address",
    default=None,
    metavar="[HOST:]PORT",
    help="Serve Prometheus metrics at http://HOST:PORT/metrics (HOST: 127.0.0.1 if omitted).",
)
@click.option(
    "--homeassistant",
    "ha_discovery",
    is_flag=False,
    flag_value="homeassistant",
    default=None,
    metavar="[PREFIX]",
    help="Publish Home Assistant MQTT discovery for every gate (discovery prefix: "
    "homeassistant unless given).",
)
@click.option(
    "--homeassistant-personal",
    "ha_personal",
    is_flag=True,
    help="Include the subject and name in the scans shown to Home Assistant.",
)
@http_options
def monitor(
    *,
    broker: str,
    db: str,
    prefix: str,
    client_id: str | None,
    shared_group: str | None,
    session_expiry: int | None,
    quiet: bool,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    username: str | None,
    password_file: Path | None,
    enrolled_only: bool,
    keep_rejects: int,
    rejects_days: float,
    http: str | None,
    retain_days: float | None,
    metrics_address: str | None,
    ha_discovery: str | None,
    ha_personal: bool,
    **dashboard: Any,
) -> None:
    """Subscribe to every gate's events, status and health; store events once each.

    Events are acknowledged to the broker only after they are committed to the store.
    Shows a live table of gates and the latest events unless --quiet. Stop with Ctrl-C
    or SIGTERM: what has arrived is stored first.
    """
    from monitor.intake.state import RECENT_EVENTS, LiveState
    from monitor.intake.subscriber import Settings, Subscriber
    from monitor.storage.retention import Upkeep, UpkeepPolicy
    from monitor.storage.store import RejectLimits, Store

    endpoint = monitor_broker(
        broker,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        username=username,
        password_file=password_file,
    )
    command_key, command_kid = dashboard["command_key"], dashboard["command_kid"]
    if (command_key is None) != (command_kid is None):
        raise click.UsageError("--command-key and --command-kid go together")
    if command_key is not None and http is None and ha_discovery is None:
        raise click.UsageError(
            "--command-key signs the dashboard's and Home Assistant's commands: "
            "add --http or --homeassistant"
        )
    settings = Settings(
        endpoint,
        client_id=client_id or default_client_id(),
        prefix=prefix,
        shared_group=shared_group,
        session_expiry_s=session_expiry_for(shared_group, session_expiry),
        enrolled_only=enrolled_only,
    )
    web = dashboard_settings(http, dashboard)
    rejects = RejectLimits(max_rows=keep_rejects, max_age_ms=round(rejects_days * 86_400_000))
    store = Store(db, rejects=rejects)
    with ExitStack() as running:
        state = running.enter_context(served(web, db, endpoint, prefix)) if web else LiveState()
        state.seed(store.gates(), store.recent_events(RECENT_EVENTS))
        observers = [serve_metrics(metrics_address, state, running)] if metrics_address else []
        if ha_discovery is not None:
            options = HomeAssistantOptions(ha_discovery, ha_personal, command_key, command_kid)
            observers.append(link_home_assistant(options, settings, running))
        subscriber = Subscriber(settings, store, state, observers=observers)
        running.callback(Upkeep(db, UpkeepPolicy(retain_days)).start().stop)
        try:
            with stop_on_sigterm() as stopping:
                subscriber.start()
                (wait_quietly if quiet else show_live)(state, stopping)
        finally:
            subscriber.stop()
            store.close()
            log.info("stopped; %s", state.snapshot().counters)


def dashboard_settings(http: str | None, options: dict[str, Any]) -> Any:
    from monitor.dashboard.options import collect

    return None if http is None else collect(http, **options)


@contextmanager
def served(options: Any, db: str, broker: Any, prefix: str) -> Iterator[Any]:
    """The dashboard served beside the monitor; yields the live state that feeds it."""
    try:
        from monitor.dashboard.cli import serving
        from monitor.dashboard.feed import Feed, PublishingState
    except ImportError as error:
        raise click.UsageError(
            f"--http needs the dashboard extra (pip install 'qrgate[dashboard]'): {error}"
        ) from None

    with serving(db, options, broker=broker, prefix=prefix) as dash:
        state = PublishingState(Feed(dash.hub, dash.people))
        dash.monitor_state = state
        yield state


def serve_metrics(address: str, state: Any, extras: ExitStack) -> Callable[..., None]:
    """Start the Prometheus endpoint (closed with `extras`); its observer of new events."""
    from monitor.integrations.metrics import Metrics, MetricsError, parse_address

    try:
        host, port = parse_address(address)
    except MetricsError as error:
        raise click.BadParameter(str(error), param_hint="--metrics") from None
    metrics = Metrics(state)
    metrics.serve(host, port)
    extras.callback(metrics.close)
    return metrics.observe


@dataclass(frozen=True)
class HomeAssistantOptions:
    discovery: str
    personal: bool
    command_key: Path | None
    command_kid: str | None


def link_home_assistant(
    options: HomeAssistantOptions, settings: Any, extras: ExitStack
) -> Callable[..., None]:
    """Start the Home Assistant link (stopped with `extras`); its observer of batches."""
    from importlib.metadata import PackageNotFoundError, version

    from monitor.integrations.homeassistant import CommandKey, Discovery, HomeAssistant
    from mqtt.errors import TopicError
    from mqtt.remote import load_signing_key

    key = None
    if options.command_key is not None and options.command_kid is not None:
        key = CommandKey(load_signing_key(options.command_key), options.command_kid)
    try:
        own_version = version("qrgate")
    except PackageNotFoundError:
        own_version = ""
    try:
        discovery = Discovery(
            prefix=settings.prefix,
            discovery=options.discovery,
            base=f"{settings.prefix}-ha",
            personal=options.personal,
            commands=key is not None,
            version=own_version,
        )
    except TopicError as error:
        raise click.BadParameter(str(error), param_hint="--homeassistant") from None
    link = HomeAssistant(discovery, settings.broker, f"{settings.client_id}-ha", key)
    link.start()
    extras.callback(link.stop)
    return link.observe


def session_expiry_for(shared_group: str | None, asked: int | None) -> int:
    """A persistent session alone; a clean one in a shared group unless asked otherwise
    (a dead member's persistent session keeps taking its share: docs/monitor.md)."""
    if asked is not None:
        if shared_group is not None and asked > 0:
            log.warning(
                "--shared with a persistent session (--session-expiry %d): while this "
                "monitor is away the broker keeps queueing its share of the events for it; "
                "watch qrgate_gate_missing_events",
                asked,
            )
        return asked
    return 0 if shared_group is not None else PERSISTENT_SESSION_S


def read_secret(path: Path | None) -> str | None:
    return None if path is None else path.read_text(encoding="utf-8").rstrip("\r\n")


def default_client_id() -> str:
    return "qrgate-monitor-" + (re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()) or "host")


@contextmanager
def stop_on_sigterm() -> Iterator[threading.Event]:
    """An event set by SIGTERM or Ctrl-C, so the monitor stops the same way on both."""
    stopping = threading.Event()

    def handle(_signal: int, _frame: FrameType | None) -> None:
        stopping.set()

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield stopping
    except KeyboardInterrupt:
        stopping.set()
    finally:
        signal.signal(signal.SIGTERM, previous)


def wait_quietly(state: Any, stopping: threading.Event) -> None:
    """Log a line of counters now and then until told to stop."""
    while not stopping.wait(STATS_EVERY_S):
        snapshot = state.snapshot()
        log.info("%s; broker %s", snapshot.counters, "connected" if snapshot.connected else "down")
        unenrolled = [f"{gate.site}/{gate.gate}" for gate in snapshot.unenrolled]
        if unenrolled:
            log.warning("not enrolled, events not authenticated: %s", ", ".join(unenrolled))


def show_live(state: Any, stopping: threading.Event) -> None:
    """Redraw the gates and events until told to stop; log lines print above the view."""
    from rich.live import Live
    from rich.logging import RichHandler

    from monitor.reporting.view import render

    root = logging.getLogger()
    with Live(render(state.snapshot(), now_ms()), refresh_per_second=4) as live:
        handlers = root.handlers[:]
        root.handlers[:] = [RichHandler(console=live.console, show_path=False)]
        try:
            while not stopping.wait(REFRESH_S):
                live.update(render(state.snapshot(), now_ms()))
        finally:
            root.handlers[:] = handlers


def now_ms() -> int:
    return round(time.time() * 1000)


# ---- qrgate report ... ----------------------------------------------------------------


def zone_option(func: F) -> F:
    return click.option(
        "--tz",
        "zone",
        default="UTC",
        show_default=True,
        callback=to_zone,
        help="Time zone for times shown and for day boundaries, e.g. Asia/Ho_Chi_Minh.",
    )(func)


def format_option(func: F) -> F:
    return click.option(
        "--format",
        "form",
        type=click.Choice(["table", "csv", "json"]),
        default="table",
        show_default=True,
    )(func)


def to_zone(_ctx: click.Context, _param: click.Parameter, value: str) -> tzinfo:
    if value.upper() in ("UTC", "Z"):
        return UTC
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {value!r}") from None


def report_options(func: F) -> F:
    return db_option(format_option(zone_option(func)))


@click.group("report")
def report() -> None:
    """Reports from the monitor's store: onsite, attendance, contacts, gaps.

    Presence comes from granted scans only, with the direction each event carries.
    Times are ISO 8601, UTC unless --tz says otherwise.
    """


@report.command("onsite")
@click.option("--site", default=None, help="Only this site.")
@report_options
def onsite(site: str | None, db: str, form: str, zone: tzinfo) -> None:
    """Who is inside now: their last granted scan at the site was an `in`."""
    from monitor.reporting import reports

    with opened(db) as store:
        show(reports.onsite(store, now_ms(), site), form, zone)


@report.command("attendance")
@click.option("--date", "day", default=None, help="YYYY-MM-DD in --tz (default: today).")
@click.option("--site", default=None, help="Only this site.")
@report_options
def attendance(day: str | None, site: str | None, db: str, form: str, zone: tzinfo) -> None:
    """Per person and site on one day: first in, last out, time on site.

    Someone still inside at midnight counts up to midnight on that day, and from
    midnight on the next. Today counts up to now.
    """
    from monitor.reporting import reports

    chosen = parse_day(day, zone)
    start = datetime.combine(chosen, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(chosen + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    with opened(db) as store:
        found = reports.attendance(
            store, chosen.isoformat(), ms(start), ms(end), now_ms=now_ms(), site=site
        )
        show(found, form, zone)


@report.command("contacts")
@click.option("--subject", required=True, help="The person whose contacts to find.")
@click.option("--from", "start", required=True, help="Start: ISO 8601 date or time (in --tz).")
@click.option("--to", "end", required=True, help="End (excluded): ISO 8601 date or time.")
@report_options
def contacts(*, subject: str, start: str, end: str, db: str, form: str, zone: tzinfo) -> None:
    """Everyone whose time on site overlapped SUBJECT's, at the same site, and for how long."""
    from monitor.reporting import reports

    from_ms, to_ms = parse_moment(start, zone, "--from"), parse_moment(end, zone, "--to")
    if to_ms <= from_ms:
        raise click.BadParameter("must be after --from", param_hint="--to")
    with opened(db) as store:
        show(reports.contacts(store, subject, from_ms, to_ms, now_ms=now_ms()), form, zone)


@report.command("gaps")
@click.option("--site", default=None, help="Only this site.")
@report_options
@click.option(
    "--resend",
    is_flag=True,
    help="Ask each gate to send again what is missing (a signed resend command per gate, "
    "as qrgate cmd signs it); needs --broker, --command-key and --command-kid.",
)
@click.option("--broker", default=None, help="mqtt://HOST[:1883] or mqtts://HOST[:8883].")
@click.option("--prefix", default="qrgate", show_default=True, help="The gates' topic prefix.")
@click.option("--command-key", type=ExistingFile, help="The centre's command key (PEM).")
@click.option("--command-kid", default=None, help="That key's id in the gates' key set.")
@login_options
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 600),
    default=10.0,
    show_default=True,
    help="Seconds to wait for the gates' replies.",
)
@click.option(
    "--wait",
    type=click.FloatRange(0, 3600),
    default=0.0,
    show_default=True,
    help="Then wait up to this many seconds for the events to be stored, and report "
    "what is still missing.",
)
@click.pass_context
def gaps(
    ctx: click.Context, /, site: str | None, db: str, form: str, zone: tzinfo, **options: Any
) -> None:
    """Missing seq ranges per gate: events the store has not received (yet).

    With --resend, each gate with gaps is asked for them, and each gate online for what
    it kept after the last event stored; the replies go to stderr. Exits 1 if a gate did
    not answer, refused, or (with --wait) events asked for are still missing.
    """
    from monitor.reporting import reports

    sender = resend_sender(options) if options["resend"] else None
    with opened(db) as store:
        complete = True
        if sender is not None:
            complete = ask_to_resend(store, site, sender, options["wait"])
        show(reports.gaps(store, site), form, zone)
    ctx.exit(0 if complete else 1)


def resend_sender(options: dict[str, Any]) -> Any:
    """The command key and broker for --resend; usage errors for what is missing."""
    from monitor.fleet.resend import Sender
    from mqtt.remote import CommandError, load_signing_key

    needed = [name for name in ("broker", "command_key", "command_kid") if not options[name]]
    if needed:
        wanted = ", ".join("--" + name.replace("_", "-") for name in needed)
        raise click.UsageError(f"--resend needs {wanted}")
    login = {name: options[name] for name in LOGIN_OPTIONS}
    endpoint = monitor_broker(options["broker"], **login)
    try:
        key = load_signing_key(options["command_key"])
    except CommandError as error:
        raise click.BadParameter(str(error), param_hint="--command-key") from None
    broker = endpoint.settings(f"qrgate-resend-{secrets.token_hex(6)}")
    return Sender(broker, options["prefix"], key, options["command_kid"], options["timeout"])


def monitor_broker(
    url: str,
    *,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    username: str | None,
    password_file: Path | None,
) -> Any:
    """--broker and the `login_options`, as the monitor takes them; usage errors for
    those that do not go together."""
    from monitor.intake.subscriber import Broker

    if (cert_file is None) != (key_file is None):
        raise click.UsageError("--cert-file and --key-file go together")
    if password_file is not None and username is None:
        raise click.UsageError("--password-file needs --username")
    try:
        endpoint = Broker.from_url(
            url,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            username=username,
            password=read_secret(password_file),
        )
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--broker") from None
    if (ca_file or cert_file) and not endpoint.tls:
        raise click.UsageError("--ca-file/--cert-file need an mqtts:// broker URL")
    return endpoint


def ask_to_resend(store: Any, site: str | None, sender: Any, wait_s: float) -> bool:
    """Ask, tell on stderr what each gate answered, wait if asked to; True when every
    gate said yes and nothing asked for is still missing."""
    from monitor.fleet.resend import plan_for, wait_until_filled
    from mqtt.errors import MqttError

    asks = plan_for(store, site)
    try:
        answers = sender.resend(asks)
    except MqttError as error:
        raise click.ClickException(f"cannot ask the gates: {error}") from None
    for answer in answers:
        detail = f" ({answer.detail})" if answer.detail else ""
        click.echo(
            f"resend {answer.site}/{answer.gate}: {answer.asked} missing asked for, "
            f"and what it kept after the last stored: {answer.outcome}{detail}",
            err=True,
        )
    left = (
        wait_until_filled(store.count_events, lambda: store.gaps(site), asks, wait_s)
        if wait_s
        else []
    )
    return all(answer.ok for answer in answers) and not left


@contextmanager
def opened(db: str, create: bool = False) -> Iterator[Any]:
    """The store for one command; a report's reader learns, on stderr, what in the store
    nothing vouches for (events of gates not enrolled, seq jumps)."""
    from monitor.storage.store import Store

    store = Store(db, create=create)
    try:
        yield store
        note_what_is_not_vouched_for(store)
    finally:
        store.close()


def note_what_is_not_vouched_for(store: Any) -> None:
    from monitor.reporting.output import trust_notes

    enrolled = {(key.site, key.gate) for key in store.enrolled_keys()}
    rows = [
        (row.site, row.gate, row.unauthenticated, row.flagged, (row.site, row.gate) in enrolled)
        for row in store.gates()
    ]
    trust_notes(rows, sys.stderr)


def show(found: Any, form: str, zone: tzinfo) -> None:
    from rich.console import Console

    from monitor.reporting.output import render

    render(found, form, zone, Console(soft_wrap=False))


def parse_day(value: str | None, zone: tzinfo) -> date:
    if value is None:
        return datetime.now(zone).date()
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not YYYY-MM-DD", param_hint="--date") from None


def parse_moment(value: str, zone: tzinfo, hint: str) -> int:
    """ISO 8601 date or date-time; without an offset, in `zone`."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=hint) from None
    return ms(moment if moment.tzinfo else moment.replace(tzinfo=zone))


def ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)
