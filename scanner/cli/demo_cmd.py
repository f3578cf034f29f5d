"""`qrgate demo`: a whole simulated gate on this machine, no hardware, no config."""

from __future__ import annotations

import logging

import click


@click.command("demo")
@click.option("--forever", is_flag=True, help="Keep showing the cards until Ctrl-C.")
@click.option("--no-broker", is_flag=True, help="Run without the private mosquitto.")
@click.pass_context
def demo(ctx: click.Context, forever: bool, no_broker: bool) -> int:
    """Run a gate with generated passes, badges and an ID card shown to a replayed camera.

    Everything lives in a temporary folder: a signing key and the keys the gate trusts,
    an allowlist, the camera's frames, the gate's store and outbox. The pins are
    simulated and drawn in the terminal; events come back from a private mosquitto when
    it is installed. The scenario takes about 15 s and ends with a summary that checks
    every outcome (exit 0 when all are right). Ctrl-C stops it.
    """
    from rich.console import Console

    from scanner.cli.common import level_given
    from scanner.demo.run import run_demo

    if not level_given(ctx):
        logging.getLogger().setLevel(logging.WARNING)  # the panel tells the story
    return run_demo(Console(soft_wrap=True), forever=forever, broker=not no_broker)
