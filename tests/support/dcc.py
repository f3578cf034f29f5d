"""Health-certificate test data: the vendored EU test files (tests/data/dcc) and
certificates issued on the spot by throwaway signers."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner.credentials.dcc import issue
from scanner.credentials.health import CertType

DATA = Path(__file__).resolve().parents[1] / "data" / "dcc"
TESTDATA = DATA / "dgc-testdata"
VIETNAM_SAMPLE = DATA / "quality-assurance" / "VN" / "1.3.0" / "VAC_VN.png"
# The steps of the chain a file can expect to succeed or fail (its README).
CHAIN_FLAGS = ("UNPREFIX", "B45DECODE", "COMPRESSION", "VERIFY", "KEYUSAGE", "EXPIRATIONCHECK")
# known_issues.csv names upstream tests; these are the ones about the chain.
CHAIN_TESTS = frozenset(
    {"test_verification_check", "test_expiration_check", "test_expected_key_usage"}
)


@dataclass(frozen=True)
class TestFile:
    """One dgc-testdata file: `<CC>/2DCode/raw/<name>.json`."""

    __test__ = False  # not a pytest class

    path: Path
    data: dict[str, Any]

    @property
    def country(self) -> str:
        return self.path.parents[2].name

    @property
    def name(self) -> str:
        return f"{self.country}/{self.path.stem}"

    @property
    def prefix(self) -> str:
        return str(self.data["PREFIX"])

    @property
    def certificate(self) -> bytes:
        return base64.b64decode(self.data["TESTCTX"]["CERTIFICATE"])

    @property
    def clock(self) -> str:
        return str(self.data["TESTCTX"]["VALIDATIONCLOCK"])

    @property
    def expected(self) -> dict[str, bool]:
        results = self.data["EXPECTEDRESULTS"]
        return {key.removeprefix("EXPECTED"): bool(value) for key, value in results.items()}

    @property
    def chain_flags(self) -> dict[str, bool]:
        return {flag: value for flag, value in self.expected.items() if flag in CHAIN_FLAGS}

    @property
    def authentic(self) -> bool:
        """Authentic exactly when every chain flag the file sets is true."""
        return all(self.chain_flags.values())

    @property
    def picture(self) -> bytes | None:
        """The QR image, when the file expects it to be read (some claim one but lack it)."""
        image = self.data.get("2DCODE") or self.data.get("_2DCODE")
        if not image or not self.expected.get("PICTUREDECODE"):
            return None
        return base64.b64decode(image)


def corpus_files() -> list[TestFile]:
    """Every file with a PREFIX, a CERTIFICATE and a VALIDATIONCLOCK, by name."""
    found = []
    for path in sorted(TESTDATA.glob("*/2DCode/raw/*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        context = data.get("TESTCTX", {})
        if "PREFIX" in data and "CERTIFICATE" in context and "VALIDATIONCLOCK" in context:
            found.append(TestFile(path, data))
    return found


def known_issues() -> set[str]:
    """Files (`CC/name`, or `CC/*` for a whole country) that known_issues.csv says are
    wrong for a chain step."""
    with (TESTDATA / "known_issues.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {
        f"{row['country']}/{row['test_set'] or '*'}"
        for row in rows
        if row["test_name"] in CHAIN_TESTS
    }


# --- Certificates made here -------------------------------------------------------------

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z, ManualClock's default
DAY = 86_400.0


def day(days_from_now: float, now: float = NOW) -> dt.date:
    return dt.datetime.fromtimestamp(now + days_from_now * DAY, dt.UTC).date()


def signer(
    country: str = "VN",
    alg: issue.SignerAlg = "ES256",
    types: frozenset[CertType] | None = None,
) -> issue.ThrowawaySigner:
    return issue.new_signer(country, alg, now=NOW, types=types)


def write_trust_list(path: Path, *signers: issue.ThrowawaySigner) -> Path:
    entries = [one.trust_list_entry() for one in signers]
    path.write_text(json.dumps(entries), encoding="utf-8")
    return path


# Whom the certificates made here name, unless told otherwise: family, given, birth date.
HOLDER = ("Nguyễn", "Văn An", "1990-01-01")


def vaccination(
    by: issue.ThrowawaySigner,
    *,
    days_ago: float = 30,
    dose: int = 2,
    doses: int = 2,
    product: str = "EU/1/20/1528",
    valid_days: float = 365,
    now: float = NOW,
    holder: tuple[str, str, str] = HOLDER,
    kid: bytes | None = None,
) -> bytes:
    entry = issue.vaccination_entry(by.country, day(-days_ago, now), dose, doses, product)
    return certificate(by, "v", entry, valid_days=valid_days, now=now, holder=holder, kid=kid)


def forged(
    by: issue.ThrowawaySigner, claimed: issue.ThrowawaySigner, holder: tuple[str, str, str]
) -> bytes:
    """A vaccination signed by `by` under `claimed`'s kid."""
    return vaccination(by, valid_days=1, holder=holder, kid=claimed.kid)


def covid_test(
    by: issue.ThrowawaySigner,
    *,
    hours_ago: float = 2,
    kind: str = "rat",
    result: str = "negative",
    now: float = NOW,
    holder: tuple[str, str, str] = HOLDER,
) -> bytes:
    sampled = dt.datetime.fromtimestamp(now - hours_ago * 3600, dt.UTC)
    entry = issue.covid_test_entry(by.country, sampled, kind, result)
    return certificate(by, "t", entry, valid_days=3, now=now, holder=holder)


def recovery(by: issue.ThrowawaySigner, *, days_ago: float = 30, now: float = NOW) -> bytes:
    entry = issue.recovery_entry(by.country, day(-days_ago, now))
    return certificate(by, "r", entry, valid_days=180, now=now)


def certificate(
    by: issue.ThrowawaySigner,
    group: issue.TypeKey,
    entry: dict[str, Any],
    *,
    valid_days: float = 365,
    now: float = NOW,
    holder: tuple[str, str, str] = HOLDER,
    kid: bytes | None = None,
) -> bytes:
    """`kid`: the one the certificate names, when not its signer's."""
    content = issue.content(*holder, group, entry)
    text = issue.issue_certificate(
        by, content, issued_at=now - DAY, expires_at=now + valid_days * DAY, kid=kid
    )
    return text.encode()
