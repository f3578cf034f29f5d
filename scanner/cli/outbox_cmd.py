"""`qrgate outbox`: what waits for the broker, and sending parked events again."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from scanner.cli.common import config_option, load
from scanner.errors import QrgateError

if TYPE_CHECKING:
    from mqtt.outbox import Outbox


@click.group("outbox")
def outbox() -> None:
    """Events waiting for the broker in the gate's outbox."""


@outbox.command("status")
@config_option
@click.pass_context
def status(ctx: click.Context, config_path: Path | None) -> None:
    """How many events wait, how old the oldest is, how many are parked."""
    depth = open_outbox(ctx, config_path).depth()
    age = "-" if depth.oldest_age_s is None else f"{depth.oldest_age_s:.0f} s"
    click.echo(f"waiting: {depth.rows} events, {depth.bytes} bytes ({depth.fill:.1%} of the limit)")
    click.echo(f"oldest:  {age}")
    click.echo(f"parked:  {depth.parked}")


@outbox.command("parked")
@config_option
@click.pass_context
def parked(ctx: click.Context, config_path: Path | None) -> None:
    """List events set aside after repeated refusals by the broker."""
    from mqtt.events import format_ts

    rows = open_outbox(ctx, config_path).parked()
    for row in rows:
        click.echo(
            f"seq {row.seq}  {row.site}/{row.gate}  id {row.id}  recorded {format_ts(row.created)}"
            f"  refused {row.attempts}x: {row.last_error}"
        )
    if not rows:
        click.echo("no parked events")


@outbox.command("retry")
@config_option
@click.pass_context
def retry(ctx: click.Context, config_path: Path | None) -> None:
    """Send the parked events again (after fixing what made the broker refuse them)."""
    released = open_outbox(ctx, config_path).release()
    click.echo(f"{released} parked event(s) will be sent again")


def open_outbox(ctx: click.Context, config_path: Path | None) -> Outbox:
    """The gate's outbox; never creates one where the gate has not run."""
    from scanner.mqttconfig import open_outbox as open_configured

    config, _ = load(ctx, config_path)
    if not config.store.path.is_file():
        raise QrgateError(
            f"no outbox at {config.store.path} (store.path): the gate has not run here"
        )
    return open_configured(config)
