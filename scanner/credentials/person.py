"""Whether two credentials name the same person: names in ICAO 9303 form and birth dates
that may be partial.

A health certificate names its holder twice: as written (`nam.fn`, `nam.gn`) and in the
ICAO 9303 machine-readable form (`nam.fnt`, `nam.gnt`: A-Z, words joined by `<`). An
identity code (a chip ID card, a personal QR, an allowlisted badge) gives one name as
people write it, which for Vietnamese is "FAMILY MIDDLE GIVEN" (Nguyễn Văn An). Both are
brought to the same form, a sequence of A-Z words, by the ICAO transliteration: the
letters it spells out (Ä as AE, ß as SS, Đ as D, ...), then every diacritic removed, upper
case, anything else a separator. So `Hồ Thị Ánh Tuyết` is HO THI ANH TUYET, and so is
a certificate's `fnt` HO with `gnt` THI<ANH<TUYET.

A certificate's words read family then given (as Vietnamese names are written), or given
then family (as a Western name is written in a Vietnamese app); either matches. Birth
dates agree when every part both give is equal: a certificate may give only the year, or
the year and month, a personal QR may mask the day and month, a badge may have none.

What is kept here stays in memory for a decision; it never reaches an event or a log.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

ICAO_MAX = 80  # the DCC schema's maxLength for fnt and gnt
# ICAO Doc 9303 part 3, transliteration of Latin letters spelt out in more than their base
# letter, or with no decomposition to one; every other diacritic is simply removed.
ICAO_LETTERS = {
    "Ä": "AE",
    "Å": "AA",
    "Æ": "AE",
    "Ĳ": "IJ",
    "Ö": "OE",
    "Ø": "OE",
    "Œ": "OE",
    "Ü": "UE",
    "Þ": "TH",
    "ẞ": "SS",
    "Đ": "D",
    "Ð": "D",
    "Ħ": "H",
    "Ł": "L",
    "Ŀ": "L",
    "Ŋ": "N",
    "Ŧ": "T",
}
_BIRTH = re.compile(r"([0-9*]{4})(?:-([0-9*]{2}))?(?:-([0-9*]{2}))?")


def icao_letters(name: str) -> str:
    """A name in ICAO 9303 form, any length: A-Z, everything else `<`."""
    upper = unicodedata.normalize("NFC", name).upper()  # ß becomes SS here
    spelt = "".join(ICAO_LETTERS.get(ch, ch) for ch in upper)
    plain = "".join(
        ch for ch in unicodedata.normalize("NFKD", spelt) if not unicodedata.combining(ch)
    )
    return "".join(ch if "A" <= ch <= "Z" else "<" for ch in plain)


def icao_name(name: str) -> str:
    """A name as a certificate's `fnt`/`gnt` carries it (Nguyễn Văn An → NGUYEN<VAN<AN)."""
    return icao_letters(name)[:ICAO_MAX]


def name_words(name: str | None) -> tuple[str, ...]:
    """The A-Z words of a name, in order; none for no name."""
    if not name:
        return ()
    return tuple(word for word in icao_letters(name).split("<") if word)


@dataclass(frozen=True, slots=True)
class Birth:
    """A birth date of which any part may be unknown (None)."""

    year: int | None = None
    month: int | None = None
    day: int | None = None

    @classmethod
    def of(cls, day: date | None) -> Birth:
        return cls() if day is None else cls(day.year, day.month, day.day)

    @classmethod
    def parse(cls, text: str) -> Birth:
        """`YYYY`, `YYYY-MM` or `YYYY-MM-DD`, where a part of `*` is masked; anything
        else is unknown (an empty `dob` says nothing)."""
        match = _BIRTH.fullmatch(text)
        if match is None:
            return cls()
        parts = (int(part) if part and part.isdigit() else None for part in match.groups())
        return cls(*parts)

    def agrees(self, other: Birth) -> bool:
        """No part that both give differs."""
        mine = (self.year, self.month, self.day)
        theirs = (other.year, other.month, other.day)
        return all(a is None or b is None or a == b for a, b in zip(mine, theirs, strict=True))


@dataclass(frozen=True, slots=True)
class Person:
    """Who a credential names, in the form pairing compares: the word orders its name
    may be read in, and the birth date."""

    spellings: frozenset[tuple[str, ...]]
    birth: Birth

    @classmethod
    def named(cls, name: str | None, birth: Birth | None = None) -> Person | None:
        """An identity code's holder, named as written; None without a name."""
        words = name_words(name)
        return cls(frozenset({words}), birth or Birth()) if words else None

    @classmethod
    def certified(cls, family: str | None, given: str | None, birth: str) -> Person | None:
        """A health certificate's holder, from its standardised names and `dob`."""
        family_words, given_words = name_words(family), name_words(given)
        orders = {family_words + given_words, given_words + family_words}
        spellings = frozenset(order for order in orders if order)
        return cls(spellings, Birth.parse(birth)) if spellings else None

    def is_same(self, other: Person) -> bool:
        """The same name in an order either may be read in, and birth dates that agree."""
        return not self.spellings.isdisjoint(other.spellings) and self.birth.agrees(other.birth)


@dataclass(frozen=True, slots=True)
class Named:
    """Whom a credential names, as it says it, kept as given: cheap to carry with every
    decision, turned into a `Person` only where pairing compares it."""

    name: str | None = None  # as written, for an identity code
    birth: Birth | None = None
    family: str | None = None  # a certificate's nam.fnt and nam.gnt, and its dob
    given: str | None = None
    dob: str | None = None

    @classmethod
    def written(cls, name: str | None, birth: Birth | None = None) -> Named:
        return cls(name=name, birth=birth)

    @classmethod
    def certified(cls, family: str | None, given: str | None, dob: str) -> Named:
        return cls(family=family, given=given, dob=dob)

    def person(self) -> Person | None:
        if self.dob is not None:
            return Person.certified(self.family, self.given, self.dob)
        return Person.named(self.name, self.birth)
