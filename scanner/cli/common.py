"""Options and helpers shared by the sub-commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from scanner.cli.daemon import load_logging_config
from scanner.config import Config

F = TypeVar("F", bound=Callable[..., Any])

# A file argument or option: a path, not a folder (whether it must exist is the command's
# to say, with the key or option it belongs to).
FILE = click.Path(dir_okay=False, path_type=Path)


def config_option(func: F) -> F:
    """The `-c/--config` option every command that reads the config takes."""
    return click.option(
        "-c",
        "--config",
        "config_path",
        type=FILE,
        default=None,
        help="Config file (default: $QRGATE_CONFIG, /etc/qrgate/config.toml, ./config.toml).",
    )(func)


def load(ctx: click.Context, config_path: Path | None) -> tuple[Config, Path | None]:
    """Load the config and apply its log level unless --log-level was given."""
    return load_logging_config(config_path, level_given=level_given(ctx))


def level_given(ctx: click.Context) -> bool:
    """Whether --log-level was given to the group."""
    return bool((ctx.find_root().obj or {}).get("log_level"))
