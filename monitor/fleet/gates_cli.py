"""`qrgate gates enroll|remove|list`: the keys the monitor verifies each gate's events with."""

from __future__ import annotations

import time

import click

from monitor.cli import db_option, opened
from mqtt.topics import LEVEL


@click.group("gates")
def gates() -> None:
    """The gates the monitor knows, and the public keys their events are verified with.

    A gate signs each event with its own key (`qrgate event-key` on the gate shows the
    public half). Once a key is enrolled here, the monitor sets aside every event of that
    gate that the key did not sign; until then it stores them as not authenticated and
    says so. A running monitor picks up a change within seconds.
    """


# A key and its kid are base64url: one in 64 starts with "-", which is theirs, not an
# option; and half of those hold an "h", which must not be read as -h (help: --help).
TAKES_DASHED_VALUES = {"ignore_unknown_options": True, "help_option_names": ["--help"]}


@gates.command("enroll", context_settings=TAKES_DASHED_VALUES)
@click.argument("where", metavar="SITE/GATE")
@click.argument("public_key")
@db_option
def enroll(where: str, public_key: str, db: str) -> None:
    """Trust PUBLIC_KEY (as `qrgate event-key` prints it) for the events of SITE/GATE."""
    from monitor.intake.enrollment import EnrolledKey

    site, gate = split_gate(where)
    try:
        key = EnrolledKey.make(site, gate, public_key, round(time.time() * 1000))
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="PUBLIC_KEY") from None
    with opened(db, create=True) as store:
        added = store.enroll(key)
    state = "enrolled" if added else "already enrolled"
    click.echo(f"{site}/{gate}: key {key.kid} {state}")


@gates.command("remove", context_settings=TAKES_DASHED_VALUES)
@click.argument("where", metavar="SITE/GATE")
@click.argument("kid", required=False)
@db_option
def remove(where: str, kid: str | None, db: str) -> None:
    """Stop trusting one key of SITE/GATE (KID, from `qrgate gates list`), or all of them.

    With no key left the gate is no longer enrolled: its events are stored again, as not
    authenticated, unless the monitor runs with --enrolled-only.
    """
    site, gate = split_gate(where)
    with opened(db) as store:
        removed = store.unenroll(site, gate, kid)
    if not removed:
        raise click.ClickException(f"{site}/{gate} has no such key enrolled")
    click.echo(f"{site}/{gate}: {removed} key(s) removed")


@gates.command("list")
@db_option
def list_gates(db: str) -> None:
    """Every gate: its state, events stored, events not authenticated, enrolled keys."""
    from monitor.storage.records import GateRow

    with opened(db) as store:
        rows = {(row.site, row.gate): row for row in store.gates()}
        keys: dict[tuple[str, str], list[str]] = {}
        for key in store.enrolled_keys():
            keys.setdefault((key.site, key.gate), []).append(key.kid)
    lines = [("gate", "state", "events", "not authenticated", "seq jumps", "enrolled keys")]
    for site, gate in sorted({*rows, *keys}):
        row = rows.get((site, gate)) or GateRow(site, gate)
        enrolled = ", ".join(keys.get((site, gate), [])) or "NOT ENROLLED"
        lines.append(
            (
                f"{site}/{gate}",
                row.state or "unknown",
                str(row.events),
                str(row.unauthenticated),
                str(row.flagged),
                enrolled,
            )
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
    for line in lines:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))


def split_gate(where: str) -> tuple[str, str]:
    site, separator, gate = where.partition("/")
    if not separator or not LEVEL.fullmatch(site) or not LEVEL.fullmatch(gate):
        raise click.BadParameter(
            f"{where!r} is not SITE/GATE (each 1 to 64 of A-Z a-z 0-9 _ -)", param_hint="SITE/GATE"
        )
    return site, gate
