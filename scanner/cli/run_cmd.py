"""`qrgate run`: the gate daemon, in the foreground (systemd Type=notify)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from scanner.cli.common import config_option, load

log = logging.getLogger(__name__)


@click.command("run")
@config_option
@click.pass_context
def run(ctx: click.Context, config_path: Path | None) -> int:
    """Run the gate: camera, decisions, relay and LEDs, events to the broker.

    Logs to stderr (journald under systemd). SIGTERM or Ctrl-C stops it with the relay
    off; SIGHUP reloads the gate mode, the pass keys and the trust list, and logs what
    it read. Exits 78 on a bad config.
    """
    from scanner.daemon.assemble import build_daemon

    config, found = load(ctx, config_path)
    log.info(
        "gate %s/%s, config %s", config.gate.site, config.gate.id, found or "built-in defaults"
    )
    return build_daemon(config).run()
