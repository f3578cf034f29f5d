"""`qrgate run` without click: the daemon's own invocation recognised, and the gate run.

systemd starts `qrgate run` (the config from $QRGATE_CONFIG); tests, the demo and the
benchmarks add `-c FILE` and sometimes `--log-level LEVEL` before `run`. Those forms
are recognised here, and only those: any other argument list gives None and goes to the
click group, which parses it and answers `--help`, a usage error or a refused value as
for every command. A recognised form means what click makes of it (a test compares the
two), so the daemon starts the same whichever way it was reached.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from scanner.logs import LEVELS, configure_logging

if TYPE_CHECKING:
    from scanner.config import Config

log = logging.getLogger(__name__)

LOG_LEVEL = "--log-level"
CONFIG = ("-c", "--config")


@dataclass(frozen=True)
class Invocation:
    """`qrgate [--log-level LEVEL] run [-c FILE]`, as click would parse it."""

    config_path: Path | None = None
    log_level: str | None = None


def daemon_invocation(args: Sequence[str]) -> Invocation | None:
    """The invocation `args` spell, or None for anything but the plain forms."""
    taken = take_option(list(args), LOG_LEVEL)
    if taken is None or taken[1][:1] != ["run"]:
        return None
    log_level, after = taken
    taken = take_option(after[1:], *CONFIG)
    if taken is None or taken[1]:
        return None
    config = taken[0]
    if log_level is not None and not (log_level.isascii() and log_level.lower() in LEVELS):
        return None
    if config is not None and not plain_file_value(config):
        return None
    return Invocation(
        None if config is None else Path(config),
        None if log_level is None else log_level.lower(),
    )


def take_option(args: list[str], *names: str) -> tuple[str | None, list[str]] | None:
    """The value of an option given at the head of `args` (`NAME VALUE` or
    `--name=VALUE`; None if it is not there) and the arguments after it; None for a
    form left to click: a missing value, or one that looks like an option."""
    head, rest = (args[0], args[1:]) if args else ("", [])
    value: str | None = None
    if head in names and rest:
        value, rest = rest[0], rest[1:]
    elif head.partition("=")[0] in names and head.startswith("--") and "=" in head:
        value = head.partition("=")[2]
    elif head in names:
        return None
    else:
        return None, args
    return None if value.startswith("-") else (value, rest)


def plain_file_value(value: str) -> bool:
    """What click.Path(dir_okay=False) takes without a word: a path that is missing, or
    that is no folder and can be read."""
    try:
        mode = os.stat(value).st_mode
    except OSError:
        return True
    return not stat.S_ISDIR(mode) and os.access(value, os.R_OK)


def run_daemon(invocation: Invocation) -> int:
    """Log as the group does, then run the gate as `qrgate run` does."""
    configure_logging(invocation.log_level or "info")
    return run_gate(invocation.config_path, level_given=invocation.log_level is not None)


def run_gate(config_path: Path | None, *, level_given: bool) -> int:
    """Load the config, build the gate and run it until it is stopped; the exit code."""
    from scanner.daemon.assemble import build_daemon

    config, found = load_logging_config(config_path, level_given=level_given)
    log.info(
        "gate %s/%s, config %s", config.gate.site, config.gate.id, found or "built-in defaults"
    )
    return build_daemon(config).run()


def load_logging_config(
    config_path: Path | None, *, level_given: bool
) -> tuple[Config, Path | None]:
    """Load the config (ConfigError when it is bad) and apply its log level, unless a
    level was given on the command line; the config and the file it came from."""
    from scanner.config import load_config

    config, found = load_config(config_path)
    if not level_given:
        logging.getLogger().setLevel(config.log.level.upper())
    return config, found
