"""The `qrgate` click group: one group whose sub-commands load only when they run.

Each sub-command lives in its own module (`COMMANDS` maps name to "module:object"),
so `qrgate safe-state` under systemd does not pay for numpy, the decoders or crypto.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from scanner._version import __version__
from scanner.cli import EXIT_FAILURE, plain_error_code
from scanner.logs import LEVELS, configure_logging

COMMANDS: dict[str, str] = {
    "check-config": "scanner.cli.config_cmd:check_config",
    "run": "scanner.cli.run_cmd:run",
    "demo": "scanner.cli.demo_cmd:demo",
    "keys": "scanner.cli.keys_cmd:keys",
    "pass": "scanner.cli.pass_cmd:pass_group",
    "dcc": "scanner.cli.dcc_cmd:dcc",
    "allow": "scanner.cli.allow_cmd:allow",
    "safe-state": "scanner.cli.safe_cmd:safe_state",
    "decode": "scanner.cli.decode_cmd:decode",
    "monitor": "monitor.cli:monitor",
    "report": "monitor.cli:report",
    "dashboard": "monitor.dashboard.cli:dashboard",
    "gates": "monitor.fleet.gates_cli:gates",
    "event-key": "scanner.cli.eventkey_cmd:event_key",
    "fleet": "monitor.fleet.cli:fleet",
    "cmd": "scanner.cli.cmd_cmd:cmd",
    "outbox": "scanner.cli.outbox_cmd:outbox",
    "doctor": "scanner.cli.doctor_cmd:doctor",
    "aim": "scanner.cli.aim_cmd:aim",
}


class LazyGroup(click.Group):
    """A group that imports a sub-command's module only when that command is used."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module_name, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module_name), attribute)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qrgate")
@click.option(
    "--log-level",
    type=click.Choice(LEVELS, case_sensitive=False),
    default=None,
    help="Log verbosity (default: log.level from the config, else info).",
)
@click.pass_context
def cli(ctx: click.Context, log_level: str | None) -> None:
    """qrgate: a QR-code gate scanner for a Raspberry Pi.

    Reads the code a worker shows to the camera, decides locally whether it is valid,
    drives LEDs, buzzer and the turnstile relay, and publishes every scan over MQTT.
    """
    ctx.obj = {"log_level": log_level}
    configure_logging(log_level or "info")


def run_group(argv: list[str] | None = None) -> int:
    """Run the group and return its exit code instead of exiting."""
    try:
        result = cli.main(args=argv, prog_name="qrgate", standalone_mode=False)
    except (Exception, KeyboardInterrupt) as error:  # noqa: BLE001 - re-raised unless ours
        return report(error)
    return result if isinstance(result, int) else 0


def report(error: BaseException) -> int:
    """Show an error the way its kind deserves and give its exit code."""
    match error:
        case click.exceptions.Exit():
            code = error.exit_code
        case click.ClickException():
            error.show()
            code = error.exit_code
        case click.exceptions.Abort():
            click.echo("Aborted.", err=True)
            code = EXIT_FAILURE
        case _:
            plain = plain_error_code(error)
            if plain is None:
                raise error  # unexpected: the traceback is what a developer needs
            code = plain
    return code
