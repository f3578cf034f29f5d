"""`qrgate pass issue` (sign a pass, optionally as a QR image) and `qrgate pass check`."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import click

from scanner.cli.common import FILE, config_option, load

# QR images (see docs/passes.md): error correction M (15 % of the code may be lost to
# glare, a cracked screen or a worn badge; segno raises it for free when the version
# allows), the standard 4-module quiet zone, 8 px per module for phone screens (a pass
# is about 600 px wide) and 0.6 mm per module for printing (about 46 mm: fits a badge).
QR_ERROR = "m"
QUIET_ZONE = 4
PNG_PX_PER_MODULE = 8
SVG_MM_PER_MODULE = Decimal("0.6")  # decimal: the SVG then says 46.2mm, not 46.19999mm
EXIT_DENIED = 1
DURATION_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}


def parse_duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    """A duration such as 30s, 90m, 12h, 7d or 1d12h, in seconds."""
    text = value.strip().lower()
    if not re.fullmatch(r"(?:[0-9]+[smhd])+", text):
        raise click.BadParameter(
            f"{value!r}: expected a number and a unit s, m, h or d (12h, 1d12h)"
        )
    seconds = sum(
        int(n) * DURATION_UNITS[unit] for n, unit in re.findall(r"([0-9]+)([smhd])", text)
    )
    if seconds <= 0:
        raise click.BadParameter(f"{value!r}: must be longer than 0")
    return float(seconds)


def parse_instant(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """An ISO 8601 instant as epoch seconds; one without an offset is UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: expected an ISO 8601 time such as 2026-01-05T08:00:00+07:00"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


@click.group("pass")
def pass_group() -> None:
    """Signed passes: issue one, or check any payload as the gate would."""


@pass_group.command("issue")
@click.option(
    "--key",
    "key_path",
    required=True,
    type=FILE,
    help="Private key (PEM) from `qrgate keys new`.",
)
@click.option("--kid", required=True, help="The key's id, as in jwks.json.")
@click.option("--subject", required=True, help="Who the pass is for (e.g. the worker id).")
@click.option("--name", default=None, help="The holder's name, shown in events.")
@click.option(
    "--valid-for",
    default="12h",
    callback=parse_duration,
    show_default=True,
    help="How long the pass is valid: 30s, 90m, 12h, 7d.",
)
@click.option(
    "--site",
    "sites",
    multiple=True,
    help="A site that accepts the pass (repeat for several; default: all).",
)
@click.option(
    "--png",
    type=FILE,
    help="Also write the QR code as PNG (phone screens).",
)
@click.option(
    "--svg",
    type=FILE,
    help="Also write the QR code as SVG (printing, 0.6 mm modules).",
)
def issue(
    *,
    key_path: Path,
    kid: str,
    subject: str,
    name: str | None,
    valid_for: float,
    sites: tuple[str, ...],
    png: Path | None,
    svg: Path | None,
) -> None:
    """Print a signed pass (a compact JWS, what the QR code holds)."""
    from scanner.credentials.keys import check_kid, load_private_key
    from scanner.credentials.passes import is_text, issue_pass

    for label, value in (("--subject", subject), ("--name", name), *(("--site", s) for s in sites)):
        if value is not None and not is_text(value):
            raise click.BadParameter("must be 1 to 256 characters", param_hint=label)
    token = issue_pass(
        load_private_key(key_path),
        check_kid(kid),
        subject,
        now=time.time(),
        valid_for_s=valid_for,
        name=name,
        sites=sites,
    )
    click.echo(token)
    write_qr(token, png, svg)


def write_qr(token: str, png: Path | None, svg: Path | None) -> None:
    import segno

    code = segno.make(token, error=QR_ERROR, micro=False)
    if png is not None:
        code.save(str(png), kind="png", scale=PNG_PX_PER_MODULE, border=QUIET_ZONE)
    if svg is not None:
        code.save(str(svg), kind="svg", unit="mm", scale=SVG_MM_PER_MODULE, border=QUIET_ZONE)
    for path in (png, svg):
        if path is not None:
            size = code.symbol_size(border=QUIET_ZONE)[0]
            click.echo(
                f"QR version {code.version}-{code.error}, {size} modules wide: {path}", err=True
            )


@pass_group.command("check")
@click.argument("payload")
@click.option(
    "--at",
    "at",
    callback=parse_instant,
    default=None,
    metavar="ISO8601",
    help="Judge at this instant instead of now (2021-05-03T20:00:00+02:00; no offset: UTC).",
)
@config_option
@click.pass_context
def check(ctx: click.Context, payload: str, at: float | None, config_path: Path | None) -> None:
    """The gate's decision for PAYLOAD, offline, as JSON; exit 0 if granted, 1 if denied.

    Changes nothing: no passage and no repeat is recorded. PAYLOAD `-` reads the
    payload from standard input (any bytes; one final newline, as echo adds, is dropped).
    Put `--` before a payload that starts with `-`. A health certificate's JSON adds
    its type and issuing country (cert_type, cert_country).
    """
    from scanner.cli.stores import reading_store
    from scanner.clock import SystemClock
    from scanner.decision.policy import Policy

    config, _ = load(ctx, config_path)
    data = read_payload(payload)
    with reading_store(config.store.path) as store:
        policy = Policy.from_config(config, store, SystemClock(), readonly=True)
        decision = policy.evaluate(data, at=at)
    click.echo(json.dumps(decision.as_dict(), ensure_ascii=False))
    if decision.credential == "dcc" and decision.subject and policy.subject_stand_in:
        click.echo(not_the_gates_subject(policy.subject_stand_in), err=True)
    if not decision.granted:
        ctx.exit(EXIT_DENIED)


def not_the_gates_subject(why: str) -> str:
    return (
        f"qrgate: note: the subject is not the gate's: the gate's subject key {why} (the"
        " gate makes it at its first start), so this check used a key of its own; the"
        " gate's subject for this certificate differs, and a revocation of it is not"
        " seen here"
    )


def read_payload(argument: str) -> bytes:
    """The payload's exact bytes: argv as the OS gave it (any non-UTF-8 kept), or stdin."""
    if argument != "-":
        return os.fsencode(argument)
    data = sys.stdin.buffer.read()
    return data.removesuffix(b"\n")
