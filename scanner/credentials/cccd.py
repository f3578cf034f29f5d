"""The QR code of a Vietnamese chip ID card (CCCD): seven fields joined by `|`.

The card identifies its holder; it proves nothing, since anyone can print such a QR.
Only ASCII digits count as digits here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

CCCD_FIELDS = 7
_CCCD_NUMBER = re.compile(r"[0-9]{12}")
_OLD_ID_NUMBER = re.compile(r"[0-9]{9}")
_DDMMYYYY = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{4})")
# C0 and C1 control characters and DEL: never part of a printed card.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_TEXT_CHARS = 256
EARLIEST_YEAR = 1900


@dataclass(frozen=True, slots=True)
class IdCard:
    """The fields of a Vietnamese chip ID card's QR code."""

    number: str  # the 12-digit personal identification number: the subject
    old_number: str | None  # the 9-digit ID of the older card, when the holder had one
    name: str
    birth_date: date
    gender: str
    address: str
    issue_date: date


def parse_cccd(payload: bytes) -> IdCard | None:
    """`ID12|oldID9|NAME|DDMMYYYY|gender|address|DDMMYYYY`, strictly; None if it is not.

    The old ID may be empty (holders who never had the older card). Rejected: a field
    count other than seven, non-digits in numbers, impossible dates, an issue date before
    the birth date, control characters, empty name or gender.
    """
    fields = pipe_fields(payload, CCCD_FIELDS)
    if fields is None:
        return None
    number, old_number, name, born, gender, address, issued = fields
    birth_date, issue_date = parse_ddmmyyyy(born), parse_ddmmyyyy(issued)
    if birth_date is None or issue_date is None or issue_date < birth_date:
        return None
    numbers_valid = _CCCD_NUMBER.fullmatch(number) and (
        old_number == "" or _OLD_ID_NUMBER.fullmatch(old_number)
    )
    texts_valid = all(0 < len(field) <= MAX_TEXT_CHARS for field in (name, gender)) and (
        len(address) <= MAX_TEXT_CHARS
    )
    if not (numbers_valid and texts_valid):
        return None
    return IdCard(number, old_number or None, name, birth_date, gender, address, issue_date)


def pipe_fields(payload: bytes, count: int) -> list[str] | None:
    """The `count` fields of a `|`-joined UTF-8 code without control characters; None
    for anything else (the ID codes of Vietnam share this form)."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields = text.split("|")
    if len(fields) != count or CONTROL.search(text):
        return None
    return fields


def parse_ddmmyyyy(text: str) -> date | None:
    """A real calendar date written DDMMYYYY, from 1900 on; None otherwise."""
    match = _DDMMYYYY.fullmatch(text)
    if match is None:
        return None
    day, month, year = (int(part) for part in match.groups())
    if year < EARLIEST_YEAR:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None
