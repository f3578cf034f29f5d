"""`qrgate doctor`: the gate's self-test, one line per check."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from scanner.cli import EXIT_FAILURE
from scanner.cli.common import config_option, load
from scanner.errors import ConfigError

if TYPE_CHECKING:
    from scanner.doctor.finding import Result

COLOURS = {"PASS": "green", "WARN": "yellow", "FAIL": "red"}
NAME_WIDTH = len("command keys")


@click.command("doctor")
@config_option
@click.option("--json", "as_json", is_flag=True, help="One JSON document for machines.")
@click.pass_context
def doctor(ctx: click.Context, config_path: Path | None, as_json: bool) -> int:
    """Check that this gate is ready: config, keys, camera, decoder, pins, broker, clock,
    disk, store and outbox.

    Prints PASS, WARN (not wrong, but worth knowing) or FAIL per check, with what it
    found and, for a problem, the fix. Changes nothing: safe next to a running gate,
    but stop the gate first (sudo systemctl stop qrgate) for the camera check, since the
    camera serves one program at a time. Exits 1 if a check fails, 78 if the config is bad.
    """
    from scanner.doctor.checks import bad_config_finding, config_finding, run_checks
    from scanner.doctor.finding import Result

    show = JsonReport() if as_json else TextReport()
    try:
        config, found = load(ctx, config_path)
    except ConfigError as error:
        show.config = error.source
        show.add(Result("config", bad_config_finding(error)))
        show.close()
        return error.exit_code
    show.config = str(found) if found else None
    show.add(Result("config", config_finding(found)))
    for result in run_checks(config):
        show.add(result)
    show.close()
    return EXIT_FAILURE if show.failed else 0


class TextReport:
    """One line per check as it completes (a fix on the same line), then a count."""

    def __init__(self) -> None:
        self.results: list[Result] = []
        self.config: str | None = None  # the config file, once known

    @property
    def failed(self) -> bool:
        return any(result.finding.status == "FAIL" for result in self.results)

    def add(self, result: Result) -> None:
        self.results.append(result)
        click.echo(text_line(result))

    def close(self) -> None:
        counts = dict.fromkeys(COLOURS, 0)
        for result in self.results:
            counts[result.finding.status] += 1
        click.echo(
            f"doctor: {counts['PASS']} passed, {counts['WARN']} warned, {counts['FAIL']} failed"
        )


def text_line(result: Result) -> str:
    """`FAIL broker       finding -> fix`; continuation lines line up under the finding.

    Colour only reaches a terminal: click.echo strips it from pipes and files.
    """
    finding = result.finding
    status = click.style(finding.status, fg=COLOURS[finding.status], bold=True)
    lines = finding.text.splitlines()
    if finding.fix and finding.status != "PASS":
        if len(lines) == 1:
            lines[0] += f" -> {finding.fix}"
        else:
            lines.append(f"-> {finding.fix}")
    indent = " " * (len("PASS ") + NAME_WIDTH + 1)
    rest = [indent + line.strip() for line in lines[1:]]
    return "\n".join([f"{status} {result.check:<{NAME_WIDTH}} {lines[0]}", *rest])


class JsonReport(TextReport):
    """The whole report as one JSON document, printed at the end."""

    def add(self, result: Result) -> None:
        self.results.append(result)

    def close(self) -> None:
        click.echo(json.dumps(json_report(self.config, self.results), ensure_ascii=False))


def json_report(config: str | None, results: Iterable[Result]) -> dict[str, object]:
    checks = [
        {
            "check": result.check,
            "status": result.finding.status,
            "finding": result.finding.text,
            "fix": result.finding.fix,
        }
        for result in results
    ]
    return {
        "config": config,
        "ok": all(check["status"] != "FAIL" for check in checks),
        "checks": checks,
    }
