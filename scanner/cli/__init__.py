"""The `qrgate` command: the daemon's own invocation straight to the gate, everything else
through the click group (`scanner.cli.group`), whose sub-commands load only when they run.

`qrgate run` is what systemd starts and what stays resident: it is recognised here
(`scanner.cli.daemon`) and runs without click, so the gate does not carry the CLI's
parser, help and usage machinery for its whole life. Any other form of it (`--help`,
an unknown option, a value click would refuse) goes to the group, which answers exactly
as before. Errors of our own become one line and an exit code: 78 config, 1 failure,
2 usage.
"""

from __future__ import annotations

import sys

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and map errors to exit codes."""
    sys.exit(run(argv))


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and return its exit code instead of exiting."""
    from scanner.cli.daemon import daemon_invocation, run_daemon

    invocation = daemon_invocation(sys.argv[1:] if argv is None else argv)
    if invocation is None:
        from scanner.cli.group import run_group

        return run_group(argv)
    try:
        return run_daemon(invocation)
    except (Exception, KeyboardInterrupt) as error:  # re-raised unless ours
        code = plain_error_code(error)
        if code is None:
            raise
        return code


def plain_error_code(error: BaseException) -> int | None:
    """Exit code for an error that needs no click to report: ours (shown as one line on
    stderr), Ctrl-C and a closed pipe; None for anything else."""
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, BrokenPipeError):
        return EXIT_FAILURE
    code = own_error_code(error)
    if code is not None:
        print(f"qrgate: {error}", file=sys.stderr, flush=True)
    return code


def own_error_code(error: BaseException) -> int | None:
    """Exit code for errors of our packages (each has its own base), else None."""
    from scanner.errors import QrgateError

    if isinstance(error, QrgateError):
        return error.exit_code
    for module_name, base_name in OTHER_BASES:
        module = sys.modules.get(module_name)
        base = getattr(module, base_name, None)
        if isinstance(base, type) and isinstance(error, base):
            return EXIT_FAILURE
    return None


# Checked through sys.modules: a package that was never imported cannot have raised.
OTHER_BASES = (
    ("firmware.errors", "FirmwareError"),
    ("mqtt.errors", "MqttError"),
    ("monitor.errors", "MonitorError"),
)
