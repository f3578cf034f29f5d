"""What a health certificate says: its holder and its one entry (a vaccination, a test or
a recovery), parsed strictly by the DCC schema (1.3) from the CWT's `-260`/`1` map.

Parsing is the schema step of the pipeline: it runs once the signature is known to be
good, so a signed certificate whose content breaks the schema is told apart from a
forgery (`schema_invalid` rather than an authenticity reason). Values that the health
rules judge (disease, product, test type and result) are kept as given; the rules decide.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import ClassVar, Final

from scanner.credentials.health import CertType

# The certificate's groups by key; the schema allows exactly one, holding one entry.
GROUPS: Final[dict[str, CertType]] = {"v": "vaccination", "t": "test", "r": "recovery"}
MAX_TEXT = 80  # the schema's maxLength for names, ids, issuers
MAX_DOSES = 1_000  # the schema says only >= 1; anything near this is no real series
_STANDARD_NAME = re.compile(r"[A-Z<]{0,80}")
_BIRTH = re.compile(r"((19|20)\d\d(-\d\d){0,2})?")
_DATE = re.compile(r"(\d{4}-\d\d-\d\d)(T.*)?")


class SchemaError(ValueError):
    """The content breaks the schema (internal to parsing: callers get None)."""


@dataclass(frozen=True, slots=True)
class Holder:
    """Who a certificate names. Kept in memory to pair a certificate with an identity
    code; never put into an event."""

    family: str | None  # nam.fnt: ICAO 9303 transliteration, A-Z and <
    given: str | None  # nam.gnt
    birth: str  # dob: YYYY-MM-DD, YYYY-MM, YYYY, or empty


@dataclass(frozen=True, slots=True)
class Vaccination:
    disease: str  # tg
    product: str  # mp
    dose: int  # dn
    doses: int  # sd
    on: date  # dt
    country: str  # co
    uvci: str  # ci

    @property
    def type(self) -> CertType:
        return "vaccination"


@dataclass(frozen=True, slots=True)
class Test:
    __test__: ClassVar[bool] = False  # a test certificate's entry, not a pytest class

    disease: str  # tg
    test_type: str  # tt
    sampled: datetime  # sc, aware
    result: str  # tr
    country: str  # co
    uvci: str  # ci

    @property
    def type(self) -> CertType:
        return "test"


@dataclass(frozen=True, slots=True)
class Recovery:
    disease: str  # tg
    first_positive: date  # fr
    valid_from: date  # df
    valid_until: date  # du, inclusive
    country: str  # co
    uvci: str  # ci

    @property
    def type(self) -> CertType:
        return "recovery"


Entry = Vaccination | Test | Recovery


@dataclass(frozen=True, slots=True)
class HealthCertificate:
    holder: Holder
    entry: Entry

    @property
    def type(self) -> CertType:
        return self.entry.type


def groups_present(content: object) -> frozenset[CertType]:
    """The certificate types a content names, schema or not (for the key-usage step)."""
    if not isinstance(content, Mapping):
        return frozenset()
    return frozenset(kind for key, kind in GROUPS.items() if key in content)


def find_uvci(content: object) -> str | None:
    """The UVCI of a content with exactly one group of one entry, else None."""
    try:
        _, entry = single_entry(content)
        return text(entry, "ci")
    except SchemaError:
        return None


def parse_certificate(content: object) -> HealthCertificate | None:
    """The certificate in `content` (the CWT's -260/1 value), or None when it breaks
    the schema: no or several groups, a group of other than one entry, a required field
    missing or of the wrong type, an impossible date."""
    try:
        holder = parse_holder(content)
        key, fields = single_entry(content)
        return HealthCertificate(holder, ENTRY_PARSERS[key](fields))
    except SchemaError:
        return None


def single_entry(content: object) -> tuple[str, Mapping[object, object]]:
    groups = [key for key in GROUPS if isinstance(content, Mapping) and key in content]
    if len(groups) != 1:
        raise SchemaError("exactly one of v, t, r")
    assert isinstance(content, Mapping)
    entries = content[groups[0]]
    if not isinstance(entries, list | tuple) or len(entries) != 1:
        raise SchemaError(f"{groups[0]} must hold one entry")
    return groups[0], mapping(entries[0])


def parse_holder(content: object) -> Holder:
    fields = mapping(content)
    name = mapping(fields.get("nam"))
    family = optional_text(name, "fnt", _STANDARD_NAME)
    given = optional_text(name, "gnt", _STANDARD_NAME)
    if family is None and given is None:
        raise SchemaError("nam needs fnt or gnt")
    born = text(fields, "dob", allow_empty=True).partition("T")[0]
    if not _BIRTH.fullmatch(born):
        raise SchemaError("dob")
    return Holder(family, given, born)


def parse_vaccination(fields: Mapping[object, object]) -> Vaccination:
    return Vaccination(
        disease=text(fields, "tg"),
        product=text(fields, "mp"),
        dose=count(fields, "dn"),
        doses=count(fields, "sd"),
        on=day(fields, "dt"),
        country=text(fields, "co"),
        uvci=text(fields, "ci"),
    )


def parse_test(fields: Mapping[object, object]) -> Test:
    return Test(
        disease=text(fields, "tg"),
        test_type=text(fields, "tt"),
        sampled=moment(fields, "sc"),
        result=text(fields, "tr"),
        country=text(fields, "co"),
        uvci=text(fields, "ci"),
    )


def parse_recovery(fields: Mapping[object, object]) -> Recovery:
    return Recovery(
        disease=text(fields, "tg"),
        first_positive=day(fields, "fr"),
        valid_from=day(fields, "df"),
        valid_until=day(fields, "du"),
        country=text(fields, "co"),
        uvci=text(fields, "ci"),
    )


ENTRY_PARSERS: Final[dict[str, Callable[[Mapping[object, object]], Entry]]] = {
    "v": parse_vaccination,
    "t": parse_test,
    "r": parse_recovery,
}


def mapping(value: object) -> Mapping[object, object]:
    if not isinstance(value, Mapping):
        raise SchemaError("expected a map")
    return value


def text(fields: Mapping[object, object], key: str, *, allow_empty: bool = False) -> str:
    value = fields.get(key)
    if not isinstance(value, str) or len(value) > MAX_TEXT or not (value or allow_empty):
        raise SchemaError(key)
    return value


def optional_text(
    fields: Mapping[object, object], key: str, pattern: re.Pattern[str]
) -> str | None:
    if key not in fields:
        return None
    value = text(fields, key, allow_empty=True)
    if not pattern.fullmatch(value):
        raise SchemaError(key)
    return value or None


def count(fields: Mapping[object, object], key: str) -> int:
    value = fields.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_DOSES:
        raise SchemaError(key)
    return value


def day(fields: Mapping[object, object], key: str) -> date:
    """A complete date; a date-time (written by older issuers) counts by its date."""
    match = _DATE.fullmatch(text(fields, key))
    if match is None:
        raise SchemaError(key)
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        raise SchemaError(key) from None


def moment(fields: Mapping[object, object], key: str) -> datetime:
    """An RFC 3339 date-time, in UTC; one without an offset is taken as UTC."""
    try:
        value = datetime.fromisoformat(text(fields, key))
        return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise SchemaError(key) from None
