"""What a decision says: its reasons, the verdict of a credential's own checks, and the
decision the gate takes from it (what goes into the scan's event)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal, Protocol, get_args

from scanner.credentials.health import CertType, HealthReason
from scanner.credentials.kinds import Credential

if TYPE_CHECKING:
    from scanner.credentials.person import Named

CommonReason = Literal[
    "ok",
    "expired",
    "not_yet_valid",
    "bad_signature",
    "unknown_key",
    "revoked",
    "not_allowed",
    "wrong_site",
    "unknown_format",
    "too_large",
    "passback",
    "lockdown",
    "not_accepted",  # a kind of credential this gate does not accept (policy.accept)
    "emergency",  # granted only because the gate is in emergency mode
    "store_full",  # denied by the daemon: the event could not be recorded (outbox full)
    "store_error",  # denied by the daemon: the local store could not be read
    "recorded",  # an identity code admitted without an allowlist (policy.record_only)
    "pair_mismatch",  # a health certificate and an identity code that name two people
    "pair_timeout",  # one code of a pair, and no second within dcc.pair_window_s
    # Health certificates (dcc) only: not authentic for its signer's key usage, or
    # authentic but not a certificate the rules can judge; then the health rules' own.
    "wrong_key_usage",
    "schema_invalid",
]
Reason = CommonReason | HealthReason
REASONS: Final[tuple[Reason, ...]] = (*get_args(CommonReason), *get_args(HealthReason))
# Reasons only the daemon gives (Gate), never `Policy.evaluate`.
DAEMON_REASONS: Final = frozenset({"store_full", "store_error"})
# Reasons only a health certificate gets: its key usage, its schema, its health rules.
DCC_ONLY_REASONS: Final = frozenset(REASONS[REASONS.index("wrong_key_usage") :])
# Reasons only a pair of codes gets (scanner.decision.pairing).
PAIR_REASONS: Final = frozenset({"pair_mismatch", "pair_timeout"})
# A credential whose own checks end with one of these is admitted (allowlisted, or recorded).
ADMITTED: Final = frozenset({"ok", "recorded"})
# A health certificate denied for one of these is not authentic (DESIGN, round 2).
NOT_AUTHENTIC: Final = frozenset(
    {
        "unknown_format",
        "bad_signature",
        "unknown_key",
        "expired",
        "not_yet_valid",
        "wrong_key_usage",
        "revoked",
        "too_large",
    }
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the credential's own checks concluded, before passback and the gate mode.

    `named` is whom the credential names (for pairing a health certificate with an
    identity code); it stays in memory and never reaches a Decision or an event.
    """

    reason: Reason
    credential: Credential
    subject: str | None = None
    name: str | None = None
    cert_type: CertType | None = None
    cert_country: str | None = None
    named: Named | None = field(default=None, repr=False, compare=False)

    @property
    def admitted(self) -> bool:
        return self.reason in ADMITTED


@dataclass(frozen=True, slots=True)
class Waiting:
    """The first code of a pair was taken: the gate asks for the second for `window_s`.

    No event yet: the passage gets one when the pair is complete, or ends as denied."""

    credential: Credential
    window_s: float


@dataclass(frozen=True, slots=True)
class Decision:
    result: Literal["granted", "denied"]
    reason: Reason
    credential: Credential
    subject: str | None
    name: str | None
    code_sha256: str  # hex SHA-256 of the raw payload: the payload itself is never kept
    cert_type: CertType | None = None  # health certificates: their type and issuing
    cert_country: str | None = None  # country, and nothing else of them

    @classmethod
    def of(
        cls, verdict: Verdict, result: Literal["granted", "denied"], reason: Reason, digest: str
    ) -> Decision:
        """The decision taken on `verdict`: what of it an event may carry."""
        return cls(
            result,
            reason,
            verdict.credential,
            verdict.subject,
            verdict.name,
            digest,
            verdict.cert_type,
            verdict.cert_country,
        )

    @property
    def granted(self) -> bool:
        return self.result == "granted"

    def as_dict(self) -> dict[str, str | None]:
        """The decision as `qrgate pass check` prints it; a health certificate's (or a
        passage paired with one) adds its type and country."""
        shown: dict[str, str | None] = {
            "result": self.result,
            "reason": self.reason,
            "credential": self.credential,
            "subject": self.subject,
            "name": self.name,
            "code_sha256": self.code_sha256,
        }
        if self.credential == "dcc" or self.cert_type is not None:
            shown |= {"cert_type": self.cert_type, "cert_country": self.cert_country}
        return shown


class Judge(Protocol):
    """One kind's checks: the verdict on a payload of that kind at wall-clock `now`.

    A judge never raises for any payload; only StoreError, when the store cannot be read.
    """

    def judge(self, payload: bytes, now: float) -> Verdict: ...
