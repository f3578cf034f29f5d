"""Health rules as data: the limits of `[dcc]` (`HealthRules`) and, per certificate type,
a table of rules checked in order, each a reason and the condition that must hold. The
first rule that does not hold is the reason for denial; a certificate that passes every
rule of its type is healthy enough for this gate.

Calendar days are counted in UTC. The defaults and their sources are in config.toml.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, Final

from scanner.credentials.dcc.certificate import (
    Entry,
    HealthCertificate,
    Recovery,
    Test,
    Vaccination,
)
from scanner.credentials.health import CertType, HealthReason

if TYPE_CHECKING:
    from scanner.config import DccSection

COVID_19: Final = "840539006"  # SNOMED CT, value set disease-agent-targeted
NAAT: Final = "LP6464-4"  # LOINC: nucleic acid amplification (PCR)
RAPID_ANTIGEN: Final = "LP217198-3"  # LOINC: rapid immunoassay
NOT_DETECTED: Final = "260415000"  # SNOMED CT, value set test-result
HOUR_S = 3_600.0


@dataclass(frozen=True, slots=True)
class HealthRules:
    """The limits a certificate is held to (`[dcc]`)."""

    accept_types: frozenset[CertType]
    vaccines: frozenset[str]  # accepted `mp` codes
    vaccination_min_days: int  # after the dose that completes the series
    booster_min_days: int  # after a dose beyond the series
    vaccination_max_days: int  # 0: no maximum
    test_max_hours: Mapping[str, float]  # by test type (tt); a type not here is refused
    clock_skew_s: float

    @classmethod
    def from_config(cls, section: DccSection, clock_skew_s: float) -> HealthRules:
        hours = {NAAT: section.test_naat_max_h, RAPID_ANTIGEN: section.test_rat_max_h}
        return cls(
            accept_types=frozenset(section.accept_types),
            vaccines=frozenset(section.vaccines),
            vaccination_min_days=section.vaccination_min_days,
            booster_min_days=section.booster_min_days,
            vaccination_max_days=section.vaccination_max_days,
            test_max_hours={kind: limit for kind, limit in hours.items() if limit > 0},
            clock_skew_s=clock_skew_s,
        )


# A rule holds for (entry, limits, now); the entry's type is fixed by the table it is in.
Condition = Callable[[Any, HealthRules, datetime], bool]
Rule = tuple[HealthReason, Condition]


def days_since(day: date, now: datetime) -> int:
    return (now.date() - day).days


def vaccination_wait_over(entry: Vaccination, rules: HealthRules, now: datetime) -> bool:
    booster = entry.dose > entry.doses
    wait = rules.booster_min_days if booster else rules.vaccination_min_days
    return days_since(entry.on, now) >= wait


def vaccination_young_enough(entry: Vaccination, rules: HealthRules, now: datetime) -> bool:
    limit = rules.vaccination_max_days
    return limit == 0 or days_since(entry.on, now) <= limit


def sampled_before_now(entry: Test, rules: HealthRules, now: datetime) -> bool:
    return (entry.sampled - now).total_seconds() <= rules.clock_skew_s


def test_recent_enough(entry: Test, rules: HealthRules, now: datetime) -> bool:
    age_s = (now - entry.sampled).total_seconds()
    return age_s <= rules.test_max_hours[entry.test_type] * HOUR_S


def recovery_in_window(entry: Recovery, rules: HealthRules, now: datetime) -> bool:
    return entry.valid_from <= now.date() <= entry.valid_until


def for_covid(entry: Entry, rules: HealthRules, now: datetime) -> bool:
    return entry.disease == COVID_19


VACCINATION_RULES: Final[tuple[Rule, ...]] = (
    ("disease_not_accepted", for_covid),
    ("vaccine_not_accepted", lambda entry, rules, now: entry.product in rules.vaccines),
    ("vaccination_incomplete", lambda entry, rules, now: entry.dose >= entry.doses),
    ("vaccination_too_recent", vaccination_wait_over),
    ("vaccination_too_old", vaccination_young_enough),
)
TEST_RULES: Final[tuple[Rule, ...]] = (
    ("disease_not_accepted", for_covid),
    ("test_type_not_accepted", lambda entry, rules, now: entry.test_type in rules.test_max_hours),
    ("test_positive", lambda entry, rules, now: entry.result == NOT_DETECTED),
    ("test_in_future", sampled_before_now),
    ("test_too_old", test_recent_enough),
)
RECOVERY_RULES: Final[tuple[Rule, ...]] = (
    ("disease_not_accepted", for_covid),
    ("recovery_not_valid", recovery_in_window),
)
RULES: Final[dict[CertType, tuple[Rule, ...]]] = {
    "vaccination": VACCINATION_RULES,
    "test": TEST_RULES,
    "recovery": RECOVERY_RULES,
}


def health_reason(
    certificate: HealthCertificate, rules: HealthRules, now: float
) -> HealthReason | None:
    """Why the certificate does not meet the rules at `now` (epoch seconds), or None."""
    if certificate.type not in rules.accept_types:
        return "type_not_accepted"
    moment = datetime.fromtimestamp(now, tz=UTC)
    for reason, holds in RULES[certificate.type]:
        if not holds(certificate.entry, rules, moment):
            return reason
    return None
