"""What a scanned payload is: a signed pass, a badge id, a chip ID card (CCCD), or unknown.

The three shapes cannot be confused, so classification needs no guessing:

- pass: a compact JWS, three base64url segments joined by two dots (the signature
  segment may be empty, so that an unsigned `alg: none` token is still judged as a pass
  and denied for its signature rather than slipping through as something else);
- badge: 1 to 64 of `A-Z a-z 0-9 _ -` (no dot, no pipe);
- cccd: contains `|` (the chip ID card's QR joins seven fields with it).

Classification looks only at the bytes; whether a pass verifies or a card parses is
decided afterwards, strictly. Only ASCII digits count as digits here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Literal

Credential = Literal["pass", "badge", "cccd", "unknown"]

BADGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BADGE_BYTES = re.compile(BADGE_ID.pattern.encode())
_COMPACT_JWS = re.compile(rb"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

CCCD_FIELDS = 7
_CCCD_NUMBER = re.compile(r"[0-9]{12}")
_OLD_ID_NUMBER = re.compile(r"[0-9]{9}")
_DDMMYYYY = re.compile(r"([0-9]{2})([0-9]{2})([0-9]{4})")
# C0 and C1 control characters and DEL: never part of a printed card.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_TEXT_CHARS = 256
EARLIEST_YEAR = 1900


def classify(payload: bytes) -> Credential:
    """The kind of credential a payload has the shape of."""
    if _COMPACT_JWS.fullmatch(payload):
        return "pass"
    if _BADGE_BYTES.fullmatch(payload):
        return "badge"
    if b"|" in payload:
        return "cccd"
    return "unknown"


def is_badge_id(text: str) -> bool:
    """True for a valid badge id, which is also the form of every allowlist subject."""
    return BADGE_ID.fullmatch(text) is not None


@dataclass(frozen=True, slots=True)
class IdCard:
    """The fields of a Vietnamese chip ID card's QR code.

    The card identifies its holder; it proves nothing, since anyone can print such a QR.
    """

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
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields = text.split("|")
    if len(fields) != CCCD_FIELDS or _CONTROL.search(text):
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
