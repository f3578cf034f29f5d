"""Allowlist entries from a CSV file, as HR exports it: `subject, name, valid_until`.

- Encoding UTF-8, with or without the byte-order mark spreadsheets put first.
- Separator `,`, or `;` (what spreadsheets write where `,` is the decimal mark).
- Without a header row the columns are `subject, name, valid_until` (name and
  valid_until may be left out). With a header row (its first cell reads `subject`)
  columns are found by name, and three more may be given: `valid_from`, `kinds`
  (`badge`, `cccd`, `vnqr`, several separated by a space, `;` or `+`; empty: all) and
  `birth_date` (the holder's, to pair a badge with a health certificate).
- Dates: `YYYY-MM-DD` or `DD/MM/YYYY`, validity bounds in the gate's local time;
  `valid_until` is the last day of validity (inclusive), `valid_from` the first. A full
  ISO 8601 time (`2026-12-31T18:00:00+07:00`) is exact. Empty: no bound.

A file with any bad line changes nothing: every problem is reported, by line.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import cast

from scanner.state.store import ALLOW_KINDS, AllowEntry, AllowKind, StoreError

POSITIONAL = ("subject", "name", "valid_until")
COLUMNS = frozenset({*POSITIONAL, "valid_from", "kinds", "birth_date"})
_ISO_DAY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_VN_DAY = re.compile(r"([0-9]{1,2})/([0-9]{1,2})/([0-9]{4})")


def read_allowlist_csv(path: Path) -> list[AllowEntry]:
    """Every entry of the file, or StoreError listing every bad line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise StoreError(f"{path}: cannot read: {error}") from error
    try:
        entries, problems = collect_entries(text)
    except (csv.Error, StoreError) as error:
        raise StoreError(f"{path}: {error}, nothing imported") from error
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        raise StoreError("\n  ".join([f"{path}: {count}, nothing imported", *problems]))
    return entries


def collect_entries(text: str) -> tuple[list[AllowEntry], list[str]]:
    """The entries of the good lines, and what is wrong with the others."""
    entries: dict[str, AllowEntry] = {}
    problems: list[str] = []
    for line, fields in rows_of(text):
        entry = fields if isinstance(fields, StoreError) else entry_or_error(fields)
        if isinstance(entry, StoreError):
            problems.append(f"line {line}: {entry}")
        elif entry.subject in entries:
            problems.append(f"line {line}: {entry.subject} is listed twice")
        else:
            entries[entry.subject] = entry
    return list(entries.values()), problems


def rows_of(text: str) -> Iterator[tuple[int, dict[str, str] | StoreError]]:
    """(line number, fields by column name or what is wrong) for each non-empty data row."""
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if ";" in first_line and "," not in first_line else ","
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    columns: tuple[str, ...] = POSITIONAL
    for index, row in enumerate(reader):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if index == 0 and cells[0].lower() == "subject":
            columns = header_columns(cells)
            continue
        if len(cells) > len(columns):
            yield reader.line_num, StoreError(f"{len(cells)} columns, expected {columns}")
        else:
            yield reader.line_num, dict(zip(columns, cells, strict=False))


def header_columns(cells: list[str]) -> tuple[str, ...]:
    names = tuple(cell.lower() for cell in cells)
    unknown = [name for name in names if name not in COLUMNS]
    if unknown:
        raise StoreError(f"unknown columns {unknown}; known: {sorted(COLUMNS)}")
    return names


def entry_or_error(fields: dict[str, str]) -> AllowEntry | StoreError:
    try:
        return entry_from_fields(fields)
    except StoreError as error:
        return error


def entry_from_fields(fields: dict[str, str]) -> AllowEntry:
    kinds = fields.get("kinds", "")
    return AllowEntry(
        subject=fields.get("subject", ""),
        name=fields.get("name") or None,
        kinds=parse_kinds(kinds) if kinds else ALLOW_KINDS,
        valid_from=parse_when(fields.get("valid_from", ""), end_of_day=False),
        valid_until=parse_when(fields.get("valid_until", ""), end_of_day=True),
        birth_date=parse_birth_date(fields.get("birth_date", "")),
    )


def parse_kinds(text: str) -> frozenset[AllowKind]:
    kinds = frozenset(part for part in re.split(r"[\s;+,]+", text.lower()) if part)
    if not kinds <= ALLOW_KINDS:
        raise StoreError(f"kinds {text!r}: expected one or more of badge, cccd, vnqr")
    return cast(frozenset[AllowKind], kinds)


def parse_birth_date(text: str) -> date | None:
    """A birth date, `YYYY-MM-DD` or `DD/MM/YYYY`; None if empty."""
    text = text.strip()
    if not text:
        return None
    day = parse_day(text)
    if day is None:
        raise StoreError(f"birth date {text!r} is not a date (YYYY-MM-DD or DD/MM/YYYY)")
    return day


def parse_when(text: str, *, end_of_day: bool) -> float | None:
    """Epoch seconds of a date (start of it, or end of it) or of an ISO time; None if empty."""
    text = text.strip()
    if not text:
        return None
    day = parse_day(text)
    if day is not None:
        if end_of_day:
            day += timedelta(days=1)
        return datetime.combine(day, time()).timestamp()  # naive: the gate's local time
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise StoreError(
            f"{text!r} is not a date (YYYY-MM-DD or DD/MM/YYYY) nor an ISO 8601 time"
        ) from None


def parse_day(text: str) -> date | None:
    """A calendar day written YYYY-MM-DD or DD/MM/YYYY; None for other forms."""
    if match := _ISO_DAY.fullmatch(text):
        year, month, day = (int(part) for part in match.groups())
    elif match := _VN_DAY.fullmatch(text):
        day, month, year = (int(part) for part in match.groups())
    else:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        raise StoreError(f"{text!r} is not a calendar date") from None
