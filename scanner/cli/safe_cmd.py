"""`qrgate safe-state`: drive the relay, LEDs and buzzer to their inactive state."""

from __future__ import annotations

from pathlib import Path

import click

from scanner.cli.common import config_option, load


@click.command("safe-state")
@config_option
@click.pass_context
def safe_state(ctx: click.Context, config_path: Path | None) -> None:
    """Turn the relay, LEDs and buzzer off, each at its configured polarity.

    For systemd ExecStopPost=, which runs after every stop of the gate, a crash
    included. The outputs stay driven off after the command ends, where the kernel
    keeps a released line's level; the pull resistor of docs/wiring.md does the rest.
    Exits 0 when every output was driven, 1 when one could not be, 78 on a bad config.
    """
    # Imported here: `qrgate --help` loads every command module and must stay light.
    from firmware.pins import ROLE_NAMES, make_pin_factory
    from firmware.safe import safe_state as drive_safe
    from scanner.daemon.hardware import output_pins

    config, _ = load(ctx, config_path)
    factory = make_pin_factory(config.gpio.pin_factory)
    driven = drive_safe(output_pins(config.gpio), factory)
    click.echo(
        "safe state: "
        + ", ".join(
            f"{ROLE_NAMES[pin.role]} GPIO{pin.pin} off ({'high' if pin.high else 'low'})"
            for pin in driven
        )
    )
