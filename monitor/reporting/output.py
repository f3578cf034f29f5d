"""Reports as a terminal table, CSV or JSON.

Times are ISO 8601 with milliseconds: UTC (`...Z`) unless a time zone is asked for,
then with that zone's offset (`...+07:00`). Durations are seconds in CSV and JSON,
H:MM:SS in the table. Intervals are ISO 8601 `start/end` pairs.

Names and subjects come from scanned cards: a CSV cell that a spreadsheet would run as a
formula is escaped, and the table shows no control characters (see monitor.text).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from monitor.reporting.reports import Column, Interval, Report, format_hms
from monitor.text import csv_cell, printable

FORMATS = ("table", "csv", "json")


def iso(ms: int, zone: tzinfo = UTC, timespec: str = "milliseconds") -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=zone)
    text = moment.isoformat(timespec=timespec)
    return text.replace("+00:00", "Z") if zone is UTC else text


def interval_text(interval: Interval, zone: tzinfo) -> str:
    return f"{iso(interval.start_ms, zone)}/{iso(interval.end_ms, zone)}"


def plain(value: Any, column: Column, zone: tzinfo) -> Any:
    """A value for JSON (CSV writes the same, flattened)."""
    if value is None:
        return None
    match column.kind:
        case "time":
            return iso(value, zone)
        case "duration":
            return round(value, 3)
        case "intervals":
            return [
                {"from": iso(i.start_ms, zone), "to": iso(i.end_ms, zone), "s": i.seconds}
                for i in value
            ]
        case _:
            return value


def shown(value: Any, column: Column, zone: tzinfo) -> str:
    """A value for the terminal table: times to the second, to keep columns narrow."""
    if value is None:
        return ""
    match column.kind:
        case "time":
            return iso(value, zone, "seconds")
        case "duration":
            return format_hms(value)
        case "flag":
            return "yes" if value else ""
        case "intervals":
            return "\n".join(interval_text(interval, zone) for interval in value)
        case _:
            return printable(str(value))


def as_json(report: Report, zone: tzinfo = UTC) -> str:
    rows = [
        {column.key: plain(getattr(row, column.key), column, zone) for column in report.columns}
        for row in report.rows
    ]
    return json.dumps(rows, ensure_ascii=False, indent=2)


def as_csv(report: Report, zone: tzinfo = UTC, line_end: str = "\n") -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=line_end)
    writer.writerow(column.key for column in report.columns)
    for row in report.rows:
        writer.writerow(
            csv_value(getattr(row, column.key), column, zone) for column in report.columns
        )
    return buffer.getvalue()


def csv_value(value: Any, column: Column, zone: tzinfo) -> Any:
    if value is None:
        return ""
    if column.kind == "intervals":
        return " ".join(interval_text(interval, zone) for interval in value)
    if column.kind == "flag":
        return "true" if value else "false"
    flat = plain(value, column, zone)
    return csv_cell(flat) if isinstance(flat, str) else flat


def as_table(report: Report, zone: tzinfo = UTC) -> Table:
    # Cells are Text, never markup: a name like "[link=...]" is shown as written.
    table = Table(title=Text(printable(report.title)), title_justify="left")
    columns = shown_columns(report)
    for column in columns:
        numeric = column.kind in ("duration", "count")
        table.add_column(column.header, justify="right" if numeric else "left", overflow="fold")
    for row in report.rows:
        table.add_row(*(Text(shown(getattr(row, column.key), column, zone)) for column in columns))
    return table


def shown_columns(report: Report) -> list[Column]:
    """The columns a terminal table shows: an optional one only where a row has a value
    (a terminal is narrow; a site without health certificates needs no column of them)."""
    return [
        column
        for column in report.columns
        if not column.optional or any(getattr(row, column.key) is not None for row in report.rows)
    ]


def render(report: Report, form: str, zone: tzinfo, console: Console) -> None:
    """Print a report in one of FORMATS."""
    writers: dict[str, Callable[[Report, tzinfo], str]] = {"json": as_json, "csv": as_csv}
    if form == "table":
        console.print(as_table(report, zone))
    else:
        text = writers[form](report, zone)
        console.file.write(text if text.endswith("\n") else text + "\n")


def trust_notes(rows: list[tuple[str, str, int, int, bool]], out: TextIO) -> None:
    """What a report cannot vouch for: (site, gate, unauthenticated, seq jumps, enrolled)."""
    for site, gate, unauthenticated, jumps, enrolled in rows:
        if unauthenticated:
            why = "stored before its key was enrolled" if enrolled else "its key is not enrolled"
            out.write(
                f"note: {unauthenticated} event(s) of {site}/{gate} are not authenticated"
                f" ({why}; see `qrgate gates list`)\n"
            )
        if jumps:
            out.write(
                f"note: {jumps} event(s) of {site}/{gate} had a seq beyond belief: left out"
                " of the gaps\n"
            )
