"""Classification of payloads and the strict parsing of chip ID card (CCCD) QR codes."""

from __future__ import annotations

from datetime import date

import pytest

from scanner.credentials.badge import is_badge_id
from scanner.credentials.cccd import parse_cccd
from scanner.credentials.kinds import classify

CARD = "001099012345|123456789|Nguyễn Văn An|01011990|Nam|12 Lê Lợi, Hà Nội|15082021"


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (b"eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln", "pass"),
        (b"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "pass"),  # alg none: judged, not skipped
        (b"W-1042", "badge"),
        (b"001099012345", "badge"),  # a bare number is a badge id; a card has pipes
        (b"x" * 64, "badge"),
        (CARD.encode(), "cccd"),
        (b"a|b", "cccd"),
        (b"", "unknown"),
        (b"x" * 65, "unknown"),
        (b"W 1042", "unknown"),
        (b"W-1042\n", "unknown"),
        (b"a.b", "unknown"),
        (b"a.b.c.d", "unknown"),
        (b"https://example.com/?a=b", "unknown"),
        (b"\xff\xfe", "unknown"),
        (b"W-1\x00", "unknown"),
    ],
)
def test_shapes_do_not_overlap(payload: bytes, kind: str) -> None:
    assert classify(payload) == kind


def test_badge_ids_are_ascii_only() -> None:
    assert is_badge_id("Badge_01-x")
    assert not is_badge_id("W-١٢")  # Arabic-Indic digits are digits to str.isdigit, not here
    assert not is_badge_id("")


def test_a_real_card_parses() -> None:
    card = parse_cccd(CARD.encode())
    assert card is not None
    assert card.number == "001099012345"
    assert card.old_number == "123456789"
    assert card.name == "Nguyễn Văn An"
    assert card.birth_date == date(1990, 1, 1)
    assert card.issue_date == date(2021, 8, 15)


def test_holders_without_an_old_card_have_an_empty_old_id() -> None:
    card = parse_cccd(CARD.replace("|123456789|", "||").encode())
    assert card is not None
    assert card.old_number is None


def fields(**changes: str) -> bytes:
    names = ("number", "old", "name", "born", "gender", "address", "issued")
    values = dict(zip(names, CARD.split("|"), strict=True))
    values.update(changes)
    return "|".join(values.values()).encode()


@pytest.mark.parametrize(
    "payload",
    [
        CARD.rsplit("|", 1)[0].encode(),  # six fields
        (CARD + "|extra").encode(),  # eight fields
        fields(number="00109901234"),  # eleven digits
        fields(number="00109901234X"),
        fields(number="٠٠١٠٩٩٠١٢٣٤٥"),  # Unicode digits are not digits here
        fields(old="12345678"),
        fields(old="12345678a"),
        fields(name=""),
        fields(name="A" * 257),
        fields(name="Nguyễn\x00Văn"),
        fields(gender=""),
        fields(born="31021990"),  # 31 February
        fields(born="29021991"),  # not a leap year
        fields(born="1011990"),
        fields(born="01131990"),
        fields(born="01011890"),
        fields(issued="01011980"),  # issued before birth
        fields(issued="2021-08-15"),
        CARD.encode("utf-16"),
        CARD.encode()[:-1] + b"\xff",
    ],
)
def test_anything_else_is_not_a_card(payload: bytes) -> None:
    assert parse_cccd(payload) is None


def test_leap_day_is_a_date() -> None:
    card = parse_cccd(fields(born="29022000"))
    assert card is not None
    assert card.birth_date == date(2000, 2, 29)
