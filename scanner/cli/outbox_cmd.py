"""`qrgate outbox`: what waits for the broker, and sending parked events again."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import click

from scanner.cli.common import config_option, load
from scanner.config import NOT_FOUND, Config, file_problem
from scanner.errors import QrgateError


@click.group("outbox")
def outbox() -> None:
    """Events waiting for the broker in the gate's outbox."""


@outbox.command("status")
@config_option
@click.pass_context
def status(ctx: click.Context, config_path: Path | None) -> None:
    """How many events wait, how old the oldest is, how many are parked."""
    from mqtt.outbox import read_depth
    from scanner.mqttconfig import outbox_limits

    config = load_gate_config(ctx, config_path)
    with snapshot(config) as conn:
        depth = read_depth(conn, outbox_limits(config), time.time())
    age = "-" if depth.oldest_age_s is None else f"{depth.oldest_age_s:.0f} s"
    click.echo(f"waiting: {depth.rows} events, {depth.bytes} bytes ({depth.fill:.1%} of the limit)")
    click.echo(f"oldest:  {age}")
    click.echo(f"parked:  {depth.parked}")
    click.echo(f"kept:    {depth.kept} events acknowledged, kept for a resend")


@outbox.command("parked")
@config_option
@click.pass_context
def parked(ctx: click.Context, config_path: Path | None) -> None:
    """List events set aside after repeated refusals by the broker."""
    from mqtt.events import format_ts
    from mqtt.outbox import read_parked

    with snapshot(load_gate_config(ctx, config_path)) as conn:
        rows = read_parked(conn)
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
    from scanner.mqttconfig import open_outbox

    outbox = open_outbox(load_gate_config(ctx, config_path))
    try:
        released = outbox.release()
    finally:
        outbox.close()
    click.echo(f"{released} parked event(s) will be sent again")


def load_gate_config(ctx: click.Context, config_path: Path | None) -> Config:
    """The config of a gate that has run here (its store exists); never creates one."""
    config, _ = load(ctx, config_path)
    problem = file_problem(config.store.path)
    if problem == NOT_FOUND:
        raise QrgateError(
            f"no outbox at {config.store.path} (store.path): the gate has not run here"
        )
    if problem is not None:
        raise QrgateError(f"store.path {config.store.path}: {problem}")
    return config


@contextmanager
def snapshot(config: Config) -> Iterator[sqlite3.Connection]:
    """The gate's database, read without creating or changing a file (the gate may run)."""
    from scanner.state.store import open_snapshot

    with closing(open_snapshot(config.store.path)) as conn:
        yield conn
