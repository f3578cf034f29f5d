"""The PC-COVID / VNeID personal QR code: told apart from a chip ID card by its shape,
parsed strictly; and names in ICAO 9303 form, with birth dates that may be partial."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.credentials.kinds import classify
from scanner.credentials.person import Birth, Person, icao_name, name_words
from scanner.credentials.vnqr import parse_personal_qr

# The example of the technical guide, and the same as the apps show it by default.
GUIDE = (
    "001093029317|NGUYEN LE KHA HAN|1987-01-18|0|162979388586171100|<1<HS4010120878821<0944713700"
)
MASKED = (
    "******029317|NGUYEN LE KHA HAN|1987-**-**|0|162979388586171100|<1<HS40101208*****<09********"
)
CARD = "001099012345|123456789|Nguyễn Văn An|01011990|Nam|12 Lê Lợi, Hà Nội|15082021"


def fields(text: str, index: int, value: str) -> bytes:
    parts = text.split("|")
    parts[index] = value
    return "|".join(parts).encode()


def test_the_guides_example_parses() -> None:
    code = parse_personal_qr(GUIDE.encode())
    assert code is not None
    assert (code.document, code.name, code.qid) == (
        "001093029317",
        "NGUYEN LE KHA HAN",
        "162979388586171100",
    )
    assert code.birth == Birth(1987, 1, 18)
    assert not code.declared_by_other
    assert code.extras == ("", "1", "HS4010120878821", "0944713700")


def test_masked_document_and_birth_date_parse() -> None:
    code = parse_personal_qr(MASKED.encode())
    assert code is not None
    assert (code.document, code.birth) == ("******029317", Birth(1987))
    hidden = parse_personal_qr(fields(MASKED, 2, "****-**-**"))
    assert hidden is not None
    assert hidden.birth == Birth()
    for document in ("******509", "******1234567", "C1234567", "******67"):
        assert parse_personal_qr(fields(GUIDE, 0, document)) is not None, document


def test_declared_by_someone_else_names_the_declarer_first() -> None:
    code = parse_personal_qr(fields(fields(GUIDE, 3, "1").decode(), 5, "1629793885861<2<<09"))
    assert code is not None
    assert code.declared_by_other
    assert code.extras == ("1629793885861", "2", "", "09")
    assert parse_personal_qr(fields(GUIDE, 5, "")) is not None  # no extras at all


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        (GUIDE.encode(), "vnqr"),
        (MASKED.encode(), "vnqr"),
        (CARD.encode(), "cccd"),  # a chip ID card is still a card
        (CARD.replace("|123456789|", "||").encode(), "cccd"),
        (GUIDE.rsplit("|", 1)[0].encode(), "cccd"),  # five fields
        ((GUIDE + "|extra").encode(), "cccd"),  # seven fields
        (fields(GUIDE, 4, "16297938858617110A"), "cccd"),  # a QID that is not digits
        (fields(GUIDE, 4, ""), "cccd"),
        (fields(GUIDE, 3, "2"), "cccd"),
        (fields(GUIDE, 2, "18/01/1987"), "cccd"),
        (fields(GUIDE, 5, "1<HS40"), "vnqr"),  # a declarer's QID, then extras
        (fields(GUIDE, 5, "HS40<1"), "cccd"),
        (fields(GUIDE, 1, "NGUYEN\x00HAN"), "vnqr"),  # the shape; parsing refuses it
    ],
)
def test_shape_tells_a_personal_qr_from_a_card(payload: bytes, kind: str) -> None:
    assert classify(payload) == kind


@pytest.mark.parametrize(
    "payload",
    [
        GUIDE.rsplit("|", 1)[0].encode(),  # five fields
        (GUIDE + "|extra").encode(),  # seven fields
        fields(GUIDE, 4, "16297938858617110A"),  # non-digit QID
        fields(GUIDE, 4, "١٦٢٩٧٩٣٨٨٥٨٦"),  # digits to str.isdigit, not here
        fields(GUIDE, 4, "1" * 65),  # overlong QID
        fields(GUIDE, 1, "A" * 257),  # overlong name
        fields(GUIDE, 1, ""),
        fields(GUIDE, 5, "<" + "9" * 512),  # overlong EXT
        fields(GUIDE, 5, "9" * 65 + "<1"),  # overlong declarer's QID
        fields(GUIDE, 0, "0" * 21),  # overlong document number
        fields(GUIDE, 0, "00109"),  # too short
        fields(GUIDE, 0, "001**3029317"),  # masked, but not at the start
        fields(GUIDE, 0, "************"),  # nothing left to see
        fields(GUIDE, 0, "c1234567"),
        fields(GUIDE, 1, "NGUYEN\x00HAN"),  # control characters
        fields(GUIDE, 1, "NGUYEN\u0085HAN"),
        fields(GUIDE, 5, "<1<HS40\x1b[2J"),
        fields(GUIDE, 1, "NGUYEN\nHAN"),
        fields(GUIDE, 2, "1987-02-30"),  # impossible date
        fields(GUIDE, 2, "1899-12-31"),
        fields(GUIDE, 2, "1899-**-**"),
        fields(GUIDE, 2, "1987-01-**"),  # not one of the apps' masks
        fields(GUIDE, 2, "****-01-18"),
        fields(GUIDE, 3, "01"),
        GUIDE.encode().replace(b"HAN", b"H\xffN"),  # not UTF-8
    ],
)
def test_anything_else_is_not_a_personal_qr(payload: bytes) -> None:
    assert parse_personal_qr(payload) is None


@given(st.binary(max_size=300))
def test_any_bytes_parse_or_not_without_raising(payload: bytes) -> None:
    code = parse_personal_qr(payload)
    assert code is None or classify(payload) == "vnqr"


# -- names and birth dates ------------------------------------------------------------------

# Every Vietnamese vowel with every tone, both cases, and đ.
VOWELS = "aàáảãạăằắẳẵặâầấẩẫậeèéẻẽẹêềếểễệiìíỉĩịoòóỏõọôồốổỗộơờớởỡợuùúủũụưừứửữựyỳýỷỹỵ"


def test_every_vietnamese_diacritic_is_removed() -> None:
    assert icao_name(VOWELS) == "A" * 18 + "E" * 12 + "I" * 6 + "O" * 18 + "U" * 12 + "Y" * 6
    assert icao_name(VOWELS.upper()) == icao_name(VOWELS)
    assert icao_name("đĐ") == "DD"


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("Nguyễn Văn An", ("NGUYEN", "VAN", "AN")),
        ("Đặng Thị Ngọc Hân", ("DANG", "THI", "NGOC", "HAN")),
        ("Hồ Thị Ánh Tuyết", ("HO", "THI", "ANH", "TUYET")),
        ("Trương Mỹ Lợi", ("TRUONG", "MY", "LOI")),
        ("Lưu Quý Đức", ("LUU", "QUY", "DUC")),
        ("NGUYEN LE KHA HAN", ("NGUYEN", "LE", "KHA", "HAN")),
        ("  Phạm   Minh\tChâu ", ("PHAM", "MINH", "CHAU")),
        (unicodedata.normalize("NFD", "Nguyễn Văn An"), ("NGUYEN", "VAN", "AN")),
        ("Müller-Gößinger", ("MUELLER", "GOESSINGER")),  # ICAO spells these out
        ("Ørsted Æbelø", ("OERSTED", "AEBELOE")),
        ("", ()),
        (None, ()),
    ],
)
def test_names_in_icao_words(name: str | None, words: tuple[str, ...]) -> None:
    assert name_words(name) == words


def test_a_certificates_names_match_the_name_as_vietnamese_write_it() -> None:
    certificate = Person.certified("HO", "THI<ANH<TUYET", "1990-04-30")
    assert certificate is not None
    for written in ("Hồ Thị Ánh Tuyết", "HO THI ANH TUYET", "Thị Ánh Tuyết Hồ"):
        identity = Person.named(written, Birth(1990, 4, 30))
        assert identity is not None
        assert certificate.is_same(identity), written
    for other in ("Hồ Thị Ánh", "Hồ Ánh Thị Tuyết", "Hồ Thị Ánh Tuyết Mai", "Hà Thị Ánh Tuyết"):
        identity = Person.named(other, Birth(1990, 4, 30))
        assert identity is not None
        assert not certificate.is_same(identity), other


def test_family_or_given_names_alone() -> None:
    only_family = Person.certified("NGUYEN<VAN<AN", None, "1990")
    assert only_family is not None
    assert only_family.is_same(Person.named("Nguyễn Văn An") or only_family)
    assert Person.certified(None, None, "1990") is None
    assert Person.named("  ") is None


@pytest.mark.parametrize(
    ("certificate", "identity", "agree"),
    [
        ("1990-04-30", Birth(1990, 4, 30), True),
        ("1990-04", Birth(1990, 4, 30), True),
        ("1990", Birth(1990, 4, 30), True),
        ("", Birth(1990, 4, 30), True),  # a certificate without a birth date says nothing
        ("1990-04-30", Birth(1990), True),  # a personal QR's masked date
        ("1990-04-30", Birth(), True),  # a badge without one
        ("1990-04-29", Birth(1990, 4, 30), False),
        ("1990-05", Birth(1990, 4, 30), False),
        ("1991", Birth(1990, 4, 30), False),
        ("1991-04-30", Birth(1990), False),
    ],
)
def test_birth_dates_agree_on_what_both_give(
    certificate: str, identity: Birth, agree: bool
) -> None:
    assert Birth.parse(certificate).agrees(identity) is agree
    assert identity.agrees(Birth.parse(certificate)) is agree
