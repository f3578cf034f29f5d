"""`qrgate allow add|remove|list|import`: the local allowlist for badges, ID cards and
personal QR codes."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import cast

import click

from scanner.cli.common import config_option, load
from scanner.cli.stores import reading_store, writing_store
from scanner.state.allowcsv import parse_birth_date, parse_when
from scanner.state.store import ALLOW_KINDS, AllowEntry, AllowKind, StoreError

KINDS = tuple(sorted(ALLOW_KINDS))


@click.group("allow")
def allow() -> None:
    """The local allowlist: who may pass with a badge, a chip ID card (CCCD) or a
    personal QR code (PC-COVID / VNeID).

    Every command is idempotent. Dates are in the gate's local time: YYYY-MM-DD,
    DD/MM/YYYY, or a full ISO 8601 time.
    """


@allow.command("add")
@click.argument("subject")
@click.option("--name", default=None, help="The holder's name, shown in events.")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    type=click.Choice(KINDS),
    help="Credential kinds it admits (repeat; default: all).",
)
@click.option("--valid-from", default="", help="First valid day (or exact time).")
@click.option("--valid-until", default="", help="Last valid day, inclusive (or exact end time).")
@click.option(
    "--birth-date", default="", help="The holder's, to pair a badge with a health certificate."
)
@config_option
@click.pass_context
def add(
    ctx: click.Context,
    *,
    subject: str,
    name: str | None,
    kinds: tuple[str, ...],
    valid_from: str,
    valid_until: str,
    birth_date: str,
    config_path: Path | None,
) -> None:
    """Allow SUBJECT (a badge id, the 12-digit number of a chip ID card, or the QID of a
    personal QR code), or update it."""
    config, _ = load(ctx, config_path)
    try:
        entry = AllowEntry(
            subject,
            name,
            frozenset(cast(tuple[AllowKind, ...], kinds)) or ALLOW_KINDS,
            parse_when(valid_from, end_of_day=False),
            parse_when(valid_until, end_of_day=True),
            parse_birth_date(birth_date),
        )
    except StoreError as error:
        raise click.UsageError(str(error)) from None
    with writing_store(config.store.path) as store:
        before = store.allowlist.get(subject)
        store.allowlist.add(entry)
    verb = "added" if before is None else "unchanged" if before == entry else "updated"
    click.echo(f"{verb}: {describe(entry)}")


@allow.command("remove")
@click.argument("subject")
@config_option
@click.pass_context
def remove(ctx: click.Context, subject: str, config_path: Path | None) -> None:
    """Remove SUBJECT from the allowlist (fine if it is not there)."""
    config, _ = load(ctx, config_path)
    with writing_store(config.store.path) as store:
        removed = store.allowlist.remove(subject)
    click.echo(f"removed: {subject}" if removed else f"{subject} was not on the allowlist")


@allow.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@config_option
@click.pass_context
def list_entries(ctx: click.Context, as_json: bool, config_path: Path | None) -> None:
    """Show the allowlist."""
    config, _ = load(ctx, config_path)
    with reading_store(config.store.path) as store:
        entries = store.allowlist.entries()
        version = store.allowlist.version
    for entry in entries:
        click.echo(
            json.dumps(entry_json(entry), ensure_ascii=False) if as_json else describe(entry)
        )
    if not as_json:
        snapshot = f", centre snapshot {version}" if version is not None else ""
        click.echo(f"{len(entries)} allowed{snapshot}", err=True)


@allow.command("import")
@click.argument(
    "csv_file", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@config_option
@click.pass_context
def import_csv(ctx: click.Context, csv_file: Path, config_path: Path | None) -> None:
    """Add or update every entry of an HR export: subject, name, valid_until.

    A header row may name the columns (then valid_from, kinds and birth_date may be
    given too).
    Entries not in the file stay. A file with a bad line imports nothing.
    """
    config, _ = load(ctx, config_path)
    with writing_store(config.store.path) as store:
        count = store.allowlist.import_csv(csv_file)
        total = len(store.allowlist)
    click.echo(f"imported {count} entries from {csv_file}; {total} allowed in all")


def describe(entry: AllowEntry) -> str:
    """One line per entry: subject, kinds, validity, birth date, name."""
    kinds = "+".join(sorted(entry.kinds))
    window = ""
    if entry.valid_from is not None:
        window += f" from {show_time(entry.valid_from, end=False)}"
    if entry.valid_until is not None:
        window += f" until {show_time(entry.valid_until, end=True)}"
    if entry.birth_date is not None:
        window += f" born {entry.birth_date.isoformat()}"
    return f"{entry.subject}  [{kinds}]{window}" + (f"  {entry.name}" if entry.name else "")


def show_time(epoch_s: float, *, end: bool) -> str:
    """A bound as it was likely given: a day when it falls on local midnight."""
    moment = datetime.fromtimestamp(epoch_s)
    if moment.time() != time():
        return moment.astimezone().isoformat(timespec="seconds")
    # An end bound at midnight is exclusive: the last valid day is the one before.
    return (moment.date() - timedelta(days=1) if end else moment.date()).isoformat()


def entry_json(entry: AllowEntry) -> dict[str, object]:
    return {
        "subject": entry.subject,
        "name": entry.name,
        "kinds": sorted(entry.kinds),
        "valid_from": entry.valid_from,
        "valid_until": entry.valid_until,
        "birth_date": entry.birth_date.isoformat() if entry.birth_date else None,
    }
