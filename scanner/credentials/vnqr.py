"""The personal QR code of PC-COVID and VNeID: six fields joined by `|`.

From late 2021 every anti-COVID app in Vietnam showed the same personal code (Decision
1405/QĐ-BTTTT, technical guide v1.1), one per person:

    SoGiayTo|HoTen|NgaySinh|LoaiDinhDanh|QID|EXT
    ******029317|NGUYEN LE KHA HAN|1987-**-**|0|162979388586171100|<1<HS4010120878821<09********

the ID document number (CMND, CCCD or passport; apps mask its first characters with `*`
by default), the name in capitals without diacritics, the birth date `YYYY-MM-DD` (day
and month masked by default), `0` declared by the holder or `1` by someone else for
them, the QID (the national QR platform's id of the person: the subject), and EXT,
extras separated by `<`: the declarer's QID (empty when self-declared, so EXT then
starts with `<`), gender, health-insurance number, phone.

Like the chip ID card's, this code is not signed: it identifies, it proves nothing.
Only ASCII digits count as digits here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from scanner.credentials.cccd import EARLIEST_YEAR, MAX_TEXT_CHARS, pipe_fields
from scanner.credentials.person import Birth

VNQR_FIELDS = 6
MAX_QID_DIGITS = 64  # the longest allowlist subject
MAX_EXT_CHARS = 512
# The shape that tells it from a chip ID card (seven fields) before it is parsed: six
# fields, an ISO date or its mask, 0 or 1, a QID of digits, an EXT that is empty or
# starts with the declarer's QID (digits, or nothing) and `<`.
_SHAPE = re.compile(
    rb"[^|]*\|[^|]*\|[0-9*]{4}-[0-9*]{2}-[0-9*]{2}\|[01]\|[0-9]+\|(?:[0-9]*<[^|]*)?", re.DOTALL
)
# A CMND (9 digits), CCCD (12) or passport number, its first characters maybe masked.
_DOCUMENT = re.compile(r"(?=.{6,20}\Z)\**[0-9A-Z]+")
_QID = re.compile(rf"[0-9]{{1,{MAX_QID_DIGITS}}}")
_DECLARER = re.compile(rf"[0-9]{{0,{MAX_QID_DIGITS}}}")
# A full date, the year with day and month masked (the apps' default), or all masked.
_BIRTH = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})|([0-9]{4})-\*\*-\*\*|\*{4}-\*\*-\*\*")


@dataclass(frozen=True, slots=True)
class PersonalQr:
    """The fields of a PC-COVID / VNeID personal QR code."""

    document: str  # as shown: a CMND, CCCD or passport number, maybe masked with `*`
    name: str
    birth: Birth  # parts masked in the code are unknown
    declared_by_other: bool
    qid: str  # the national QR platform's id of the person: the subject
    extras: tuple[str, ...]  # EXT split at `<`: declarer's QID, gender, insurance, phone...


def looks_like_personal_qr(payload: bytes) -> bool:
    """The shape of a personal QR code, whatever its fields hold."""
    return _SHAPE.fullmatch(payload) is not None


def parse_personal_qr(payload: bytes) -> PersonalQr | None:
    """`SoGiayTo|HoTen|NgaySinh|LoaiDinhDanh|QID|EXT`, strictly; None if it is not.

    Rejected: a field count other than six, a document number that is not 6 to 20 of
    A-Z 0-9 behind its leading `*`s, a masked or impossible birth date other than the
    apps' masks (day and month, or all), a declaration type other than 0 or 1, a QID
    that is not 1 to 64 digits, an EXT that does not start with the declarer's QID and
    `<`, control characters, an empty or overlong name or EXT, bytes that are not UTF-8.
    """
    fields = pipe_fields(payload, VNQR_FIELDS)
    if fields is None:
        return None
    document, name, born, declared, qid, ext = fields
    birth = parse_birth(born)
    fields_valid = (
        _DOCUMENT.fullmatch(document)
        and 0 < len(name) <= MAX_TEXT_CHARS
        and declared in ("0", "1")
        and _QID.fullmatch(qid)
        and valid_ext(ext)
    )
    if birth is None or not fields_valid:
        return None
    extras = tuple(ext.split("<")) if ext else ()
    return PersonalQr(document, name, birth, declared == "1", qid, extras)


def parse_birth(text: str) -> Birth | None:
    """A real date from 1900 on, the year alone (day and month masked), or nothing (all
    masked); None for anything else."""
    match = _BIRTH.fullmatch(text)
    if match is None:
        return None
    year, month, day, shown_year = match.groups()
    if year is not None:
        try:
            born = date(int(year), int(month), int(day))
        except ValueError:
            return None
        return Birth.of(born) if born.year >= EARLIEST_YEAR else None
    if shown_year is not None:
        return Birth(int(shown_year)) if int(shown_year) >= EARLIEST_YEAR else None
    return Birth()


def valid_ext(ext: str) -> bool:
    """Empty, or the declarer's QID (empty when self-declared) and `<` extras."""
    if not ext:
        return True
    declarer, separator, _ = ext.partition("<")
    if not separator or len(ext) > MAX_EXT_CHARS:
        return False
    return _DECLARER.fullmatch(declarer) is not None
