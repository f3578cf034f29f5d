"""The gate's decision: from a scanned payload to granted or denied, with the reason.

In order: the size cap (before anything looks inside), the credential's shape, whether
this gate accepts that kind, its own checks (signature and times for a pass; allowlist
and validity for a badge or an ID card), revocations, anti-passback, then the gate mode:

- normal: granted exactly when every check passed;
- lockdown: nothing is granted; what would have been is denied as `lockdown`, the rest
  keeps its own reason (a forged pass stays `bad_signature` in the records);
- emergency: everything is granted (the gate is open anyway); what would have been denied
  is granted as `emergency`, so the records still tell valid from invalid.

`decide` is the gate's call: the same code seen again within `repeat_window_s` (held in
front of the camera) gives None, one decision and so one event; a granted passage is
remembered for anti-passback. `evaluate` answers the same question without touching
any of that state (`qrgate pass check`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Final, Literal, get_args

from scanner.credentials.cccd import parse_cccd
from scanner.credentials.kinds import Credential, classify
from scanner.errors import ConfigError
from scanner.state.store import AllowKind, Mode, Store, StoreError

if TYPE_CHECKING:
    from pathlib import Path

    from scanner.clock import Clock
    from scanner.config import Config, PolicySection
    from scanner.credentials.passes import PassVerifier

Reason = Literal[
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
]
# Reasons only the daemon gives (Gate), never `Policy.evaluate`.
DAEMON_REASONS: Final = frozenset({"store_full", "store_error"})
REASONS: Final[tuple[Reason, ...]] = get_args(Reason)
log = logging.getLogger(__name__)
# Memory bounds: distinct codes within a repeat window, subjects within a passback window.
REPEAT_CAPACITY = 1_024
PASSBACK_CAPACITY = 50_000


@dataclass(frozen=True, slots=True)
class Decision:
    result: Literal["granted", "denied"]
    reason: Reason
    credential: Credential
    subject: str | None
    name: str | None
    code_sha256: str  # hex SHA-256 of the raw payload: the payload itself is never kept

    @property
    def granted(self) -> bool:
        return self.result == "granted"

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the credential's own checks concluded, before passback and the gate mode."""

    reason: Reason
    credential: Credential
    subject: str | None = None
    name: str | None = None


class RecentKeys:
    """When each key was last marked, on the monotonic clock; forgets after the window."""

    def __init__(self, window_s: float, capacity: int) -> None:
        self._window = window_s
        self._capacity = capacity
        self._marked: dict[str, float] = {}  # oldest mark first

    def recent(self, key: str, now: float) -> bool:
        self._forget_old(now)
        return key in self._marked

    def mark(self, key: str, now: float) -> None:
        self._marked.pop(key, None)
        self._marked[key] = now
        if len(self._marked) > self._capacity:
            del self._marked[next(iter(self._marked))]

    def clear(self) -> None:
        self._marked.clear()

    def _forget_old(self, now: float) -> None:
        while self._marked:
            key, at = next(iter(self._marked.items()))
            if now - at < self._window:
                return
            del self._marked[key]


class Policy:
    """Decides for one gate. Thread-safe: the command handler may change the mode anytime.

    `decide` and `evaluate` return a Decision for any payload at all; they raise only
    StoreError, when the local store itself cannot be read.
    """

    def __init__(
        self, rules: PolicySection, store: Store, clock: Clock, passes: PassVerifier | None
    ) -> None:
        if "pass" in rules.accept and passes is None:
            raise ValueError("a gate that accepts passes needs a PassVerifier")
        self._rules = rules
        self._store = store
        self._clock = clock
        self._passes = passes
        self._lock = threading.Lock()
        self._repeats = RecentKeys(rules.repeat_window_s, REPEAT_CAPACITY)
        self._passages = RecentKeys(rules.anti_passback_s, PASSBACK_CAPACITY)
        self._mode = store.get_mode()
        self._tidy_store()
        self._recall_passages()

    @classmethod
    def from_config(cls, config: Config, store: Store, clock: Clock) -> Policy:
        """The gate's policy; reads the JWKS when passes are accepted (ConfigError if bad).

        A kind's module, and the libraries it needs, is imported here and only when the
        kind is accepted: a gate carries no weight for kinds it turns away.
        """
        passes = None
        if "pass" in config.policy.accept:
            from scanner.credentials.passes import PassVerifier

            passes = PassVerifier(
                config.passes.jwks,
                config.passes.algorithms,
                config.gate.site,
                config.policy.clock_skew_s,
            )
        return cls(config.policy, store, clock, passes)

    @property
    def mode(self) -> Mode:
        return self._mode

    def set_mode(self, mode: Mode) -> None:
        """Change the gate mode, persisted first so that a reboot keeps it."""
        with self._lock:
            self._store.set_mode(mode)
            self._mode = mode
            # A code held up while the mode changes gets a fresh decision.
            self._repeats.clear()

    def reload(self) -> None:
        """Re-read the JWKS and the persisted mode (SIGHUP); a broken JWKS keeps the old keys."""
        with self._lock:
            self._mode = self._store.get_mode()
            self._tidy_store()
        if self._passes is not None:
            self._passes.reload()

    def use_keys(self, jwks: Path) -> None:
        """Trust the pass keys of `jwks` from now on (a `keys` command); ConfigError, with
        the keys in use unchanged, when the file is unusable or passes are not accepted."""
        if self._passes is None:
            raise ConfigError.single("policy.accept", "this gate does not accept passes")
        self._passes.reload(jwks)

    def decide(self, payload: bytes) -> Decision | None:
        """The gate's decision for a scanned code; None when it repeats a code just seen."""
        digest = hashlib.sha256(payload).hexdigest()
        with self._lock:
            now = self._clock.monotonic()
            repeated = self._repeats.recent(digest, now)
            self._repeats.mark(digest, now)
            if repeated:
                return None
            decision = self._evaluate(payload, digest, now)
            if decision.granted and decision.subject and self._counts_passages():
                self._remember_passage(decision.subject, now)
            return decision

    def evaluate(self, payload: bytes) -> Decision:
        """The decision the gate would take now, changing nothing (no repeat, no passage)."""
        digest = hashlib.sha256(payload).hexdigest()
        with self._lock:
            return self._evaluate(payload, digest, self._clock.monotonic())

    def _evaluate(self, payload: bytes, digest: str, now: float) -> Decision:
        verdict = self._verdict(payload)
        if (
            verdict.reason == "ok"
            and verdict.subject is not None
            and self._counts_passages()
            and self._passages.recent(verdict.subject, now)
        ):
            verdict = Verdict("passback", verdict.credential, verdict.subject, verdict.name)
        result, reason = self._apply_mode(verdict.reason)
        return Decision(result, reason, verdict.credential, verdict.subject, verdict.name, digest)

    def _apply_mode(self, reason: Reason) -> tuple[Literal["granted", "denied"], Reason]:
        if self._mode == "emergency":
            return "granted", reason if reason == "ok" else "emergency"
        if reason != "ok":
            return "denied", reason
        return ("denied", "lockdown") if self._mode == "lockdown" else ("granted", "ok")

    def _counts_passages(self) -> bool:
        return self._rules.anti_passback_s > 0 and self._mode == "normal"

    def _verdict(self, payload: bytes) -> Verdict:
        if len(payload) > self._rules.max_payload_bytes:
            return Verdict("too_large", "unknown")
        kind = classify(payload)
        if kind == "unknown":
            return Verdict("unknown_format", "unknown")
        if kind not in self._rules.accept:
            return Verdict("not_accepted", kind)
        if kind == "pass":
            return self._check_pass(payload)
        if kind == "badge":
            return self._check_listed("badge", payload.decode("ascii"), None)
        return self._check_card(payload)

    def _check_pass(self, payload: bytes) -> Verdict:
        assert self._passes is not None  # ensured by __init__ when passes are accepted
        now = self._clock.now()
        check = self._passes.verify(payload, now)
        claims = check.claims
        if claims is None:
            return Verdict(check.reason, "pass")
        reason: Reason = check.reason
        if reason == "ok" and self._store.revocations.is_revoked(
            jti=claims.jti, subject=claims.subject, now=now
        ):
            reason = "revoked"
        return Verdict(reason, "pass", claims.subject, claims.name)

    def _check_card(self, payload: bytes) -> Verdict:
        card = parse_cccd(payload)
        if card is None:
            return Verdict("unknown_format", "cccd")
        return self._check_listed("cccd", card.number, card.name)

    def _check_listed(self, kind: AllowKind, subject: str, name: str | None) -> Verdict:
        """A badge or an ID card: its subject must be allowlisted for that kind, now."""
        now = self._clock.now()
        entry = self._store.allowlist.get(subject)
        if entry is None or kind not in entry.kinds:
            return Verdict("not_allowed", kind, subject, name)
        reason: Reason = entry.window_reason(now) or "ok"
        if reason == "ok" and self._store.revocations.is_revoked(
            jti=None, subject=subject, now=now
        ):
            reason = "revoked"
        return Verdict(reason, kind, subject, name or entry.name)

    def _remember_passage(self, subject: str, now: float) -> None:
        self._passages.mark(subject, now)
        try:
            self._store.record_passage(subject, self._clock.now())
        except StoreError as error:
            # The decision stands and passback still holds until a restart: a full or
            # read-only disk must not turn away a valid worker.
            log.error("passage of %s not persisted: %s", subject, error)

    def _tidy_store(self) -> None:
        """Drop spent revocations and passages; a store that cannot be written still decides."""
        if self._store.readonly:
            return
        now = self._clock.now()
        try:
            self._store.prune(now, passages_before=now - self._rules.anti_passback_s)
        except StoreError as error:
            log.warning("store not tidied: %s", error)

    def _recall_passages(self) -> None:
        """Passages from before a restart still count; their age comes from the wall clock."""
        window = self._rules.anti_passback_s
        if window <= 0:
            return
        wall, now = self._clock.now(), self._clock.monotonic()
        passages = self._store.passages_since(wall - window)
        for subject, at in sorted(passages.items(), key=lambda item: item[1]):
            self._passages.mark(subject, now - min(max(wall - at, 0.0), window))
