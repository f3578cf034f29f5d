"""`qrgate run`: the gate daemon, in the foreground (systemd Type=notify).

The plain forms of this command reach the gate without click (`scanner.cli.daemon`);
this is the command as the group knows it: its help, and the forms only click parses.
"""

from __future__ import annotations

from pathlib import Path

import click

from scanner.cli.common import config_option, level_given
from scanner.cli.daemon import run_gate


@click.command("run")
@config_option
@click.pass_context
def run(ctx: click.Context, config_path: Path | None) -> int:
    """Run the gate: camera, decisions, relay and LEDs, events to the broker.

    Logs to stderr (journald under systemd). SIGTERM or Ctrl-C stops it with the relay
    off; SIGHUP reloads the gate mode, the pass keys and the trust list, and logs what
    it read. Exits 78 on a bad config.
    """
    return run_gate(config_path, level_given=level_given(ctx))
