"""`qrgate check-config`: validate and print the effective configuration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import msgspec

from scanner.cli.common import config_option, load
from scanner.config import NOT_FOUND, SECRET_KEYS, Config, file_problem, referenced_files
from scanner.errors import ConfigError


@click.command("check-config")
@config_option
@click.option(
    "--syntax-only",
    is_flag=True,
    help="Only validate the file; do not check the key sets and files qrgate run needs "
    "(for a config written before they are installed).",
)
@click.pass_context
def check_config(ctx: click.Context, config_path: Path | None, syntax_only: bool) -> None:
    """Validate the config and print it as the gate will use it (secrets redacted).

    Runs the checks `qrgate run` runs before it starts (key sets, secret and TLS files)
    and exits 78 naming every problem, as `run` would; a file the gate does not need
    with this config is only warned about (with --syntax-only, every file is).
    """
    from scanner.daemon.preflight import check_runnable

    config, found = load(ctx, config_path)
    origin = str(found) if found else "built-in defaults (no config file found)"
    click.echo(f"# effective configuration from {origin}")
    click.echo(render_toml(config))
    try:
        if not syntax_only:
            check_runnable(config)
    except ConfigError as error:
        raise ConfigError(error.problems, str(found or "config")) from None
    unchecked = "not checked" if syntax_only else "not needed to run"
    for key, path in referenced_files(config).items():
        problem = file_problem(path)
        if problem is not None:
            said = "does not exist" if problem == NOT_FOUND else problem
            click.echo(f"warning: {key}: {path} {said} ({unchecked})", err=True)


def render_toml(config: Config) -> str:
    """The config as TOML, every key shown; secret files shown by path only."""
    blocks = []
    for section, table in msgspec.structs.asdict(config).items():
        lines = [f"[{section}]"]
        for key, value in msgspec.structs.asdict(table).items():
            if value is None:
                lines.append(f"# {key} is not set")
                continue
            note = "  # secret: file path only" if f"{section}.{key}" in SECRET_KEYS else ""
            lines.append(f"{key} = {toml_value(value)}{note}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(str(value), ensure_ascii=False)
