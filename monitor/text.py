"""Untrusted text made safe to store, to show in a terminal and to open in a spreadsheet.

Gates and whoever can publish on their topics choose this text: names read from ID
cards, health figures, reasons. JSON lets a string carry a lone surrogate (no UTF-8
encoder takes it), terminals obey escape sequences, and spreadsheets run a cell that
starts with `=`, `+`, `-` or `@` as a formula.
"""

from __future__ import annotations

import re

# C0 controls, DEL and C1 controls: ESC starts terminal sequences, BEL rings, CR rewrites.
CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
SURROGATES = re.compile(r"[\ud800-\udfff]")
# What a spreadsheet may read as a formula or a command at the start of a cell.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def encodable(text: str) -> str:
    """`text` with lone surrogates replaced by U+FFFD: always valid UTF-8 once encoded."""
    return SURROGATES.sub("\ufffd", text)


def printable(text: str, limit: int | None = None) -> str:
    """For a terminal or a log line: encodable, control characters removed, capped."""
    cleaned = CONTROLS.sub("", encodable(text))
    return cleaned if limit is None else cleaned[:limit]


def csv_cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: without control characters (a raw CR breaks
    the row, ESC reaches whoever `cat`s the file), and a leading formula character escaped
    with a quote (OWASP's advice), which the spreadsheet hides and a CSV reader keeps."""
    cleaned = printable(text)
    return "'" + cleaned if cleaned.startswith(FORMULA_START) else cleaned
