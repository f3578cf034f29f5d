"""The gate's decision: from a scanned payload to granted or denied, with the reason.

In order: the size cap (before anything looks inside), the credential's shape, whether
this gate accepts that kind, its own checks by the kind's judge (one module per kind:
`passes` for signature and times, `listed` for a badge's or an ID card's allowlist entry,
`dcc` for a health certificate's authenticity and health rules; each ends with its
revocations), anti-passback, then the gate mode:

- normal: granted exactly when every check passed;
- lockdown: nothing is granted; what would have been is denied as `lockdown`, the rest
  keeps its own reason (a forged pass stays `bad_signature` in the records);
- emergency: everything is granted (the gate is open anyway); what would have been denied
  is granted as `emergency`, so the records still tell valid from invalid.

`decide` is the gate's call: the same code seen again within `repeat_window_s` (held in
front of the camera) gives None, one decision and so one event; a granted passage is
remembered for anti-passback. `evaluate` answers the same question without touching
any of that state, at any instant (`qrgate pass check [--at]`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from scanner.credentials.kinds import Credential, classify
from scanner.credentials.passes import PassVerifier
from scanner.decision.dcc import DccJudge
from scanner.decision.listed import BadgeJudge, CardJudge
from scanner.decision.passes import PassJudge
from scanner.decision.verdict import (
    DAEMON_REASONS,
    REASONS,
    Decision,
    Judge,
    Reason,
    Verdict,
)
from scanner.errors import ConfigError
from scanner.state.store import Mode, Store, StoreError

if TYPE_CHECKING:
    from pathlib import Path

    from scanner.clock import Clock
    from scanner.config import Config, PolicySection
    from scanner.credentials.dcc.trustlist import TrustList

__all__ = ["DAEMON_REASONS", "REASONS", "Decision", "Policy", "Reason", "Verdict"]
log = logging.getLogger(__name__)
# Memory bounds: distinct codes within a repeat window, subjects within a passback window.
REPEAT_CAPACITY = 1_024
PASSBACK_CAPACITY = 50_000


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
        self,
        rules: PolicySection,
        store: Store,
        clock: Clock,
        passes: PassVerifier | None,
        *,
        dcc: DccJudge | None = None,
    ) -> None:
        if "pass" in rules.accept and passes is None:
            raise ValueError("a gate that accepts passes needs a PassVerifier")
        if "dcc" in rules.accept and dcc is None:
            raise ValueError("a gate that accepts health certificates needs a DccJudge")
        self._rules = rules
        self._store = store
        self._clock = clock
        self._passes = PassJudge(passes, store) if passes is not None else None
        self._dcc = dcc
        judges: dict[Credential, Judge | None] = {
            "pass": self._passes,
            "badge": BadgeJudge(store),
            "cccd": CardJudge(store),
            "dcc": dcc,
        }
        self._judges = {kind: judge for kind, judge in judges.items() if judge is not None}
        self._lock = threading.Lock()
        self._repeats = RecentKeys(rules.repeat_window_s, REPEAT_CAPACITY)
        self._passages = RecentKeys(rules.anti_passback_s, PASSBACK_CAPACITY)
        self._mode = store.get_mode()
        self._tidy_store()
        self._recall_passages()

    @classmethod
    def from_config(
        cls, config: Config, store: Store, clock: Clock, *, readonly: bool = False
    ) -> Policy:
        """The gate's policy; reads the JWKS when passes are accepted and the trust list
        when health certificates are (ConfigError if bad). `readonly`: make no file (the
        health-certificate subject key), for checks that change nothing."""
        passes = None
        if "pass" in config.policy.accept:
            passes = PassVerifier(
                config.passes.jwks,
                config.passes.algorithms,
                config.gate.site,
                config.policy.clock_skew_s,
            )
        dcc = dcc_judge(config, store, readonly) if "dcc" in config.policy.accept else None
        return cls(config.policy, store, clock, passes, dcc=dcc)

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def trust_list(self) -> TrustList | None:
        """The health-certificate trust list in use; None when dcc is not accepted."""
        return self._dcc.verifier.trust_list if self._dcc is not None else None

    def set_mode(self, mode: Mode) -> None:
        """Change the gate mode, persisted first so that a reboot keeps it."""
        with self._lock:
            self._store.set_mode(mode)
            self._mode = mode
            # A code held up while the mode changes gets a fresh decision.
            self._repeats.clear()

    def reload(self) -> None:
        """Re-read the JWKS, the trust list and the persisted mode (SIGHUP). Whatever
        cannot be read keeps what was in use, and the first such error is raised after
        the rest was reloaded."""
        with self._lock:
            self._mode = self._store.get_mode()
            self._tidy_store()
        errors: list[ConfigError] = []
        reloads = [judge.verifier.reload for judge in (self._passes, self._dcc) if judge]
        for reload in reloads:
            try:
                reload()
            except ConfigError as error:
                errors.append(error)
        if errors:
            raise errors[0]

    def use_keys(self, jwks: Path) -> None:
        """Trust the pass keys of `jwks` from now on (a `keys` command); ConfigError, with
        the keys in use unchanged, when the file is unusable or passes are not accepted."""
        if self._passes is None:
            raise ConfigError.single("policy.accept", "this gate does not accept passes")
        self._passes.verifier.reload(jwks)

    def use_trust_list(self, path: Path) -> None:
        """Trust the signers of the trust list at `path` from now on (a `trustlist`
        command); ConfigError, with the list in use unchanged, when it is unusable or
        health certificates are not accepted."""
        if self._dcc is None:
            raise ConfigError.single("policy.accept", "this gate does not accept dcc")
        self._dcc.verifier.reload(path)

    def decide(self, payload: bytes) -> Decision | None:
        """The gate's decision for a scanned code; None when it repeats a code just seen."""
        digest = hashlib.sha256(payload).hexdigest()
        with self._lock:
            now = self._clock.monotonic()
            repeated = self._repeats.recent(digest, now)
            self._repeats.mark(digest, now)
            if repeated:
                return None
            decision = self._evaluate(payload, digest, now, self._clock.now())
            if decision.granted and decision.subject and self._counts_passages():
                self._remember_passage(decision.subject, now)
            return decision

    def evaluate(self, payload: bytes, at: float | None = None) -> Decision:
        """The decision the gate would take now, or at wall-clock time `at` (epoch
        seconds), changing nothing (no repeat, no passage)."""
        digest = hashlib.sha256(payload).hexdigest()
        with self._lock:
            wall = self._clock.now() if at is None else at
            return self._evaluate(payload, digest, self._clock.monotonic(), wall)

    def _evaluate(self, payload: bytes, digest: str, now: float, wall: float) -> Decision:
        verdict = self._verdict(payload, wall)
        if (
            verdict.reason == "ok"
            and verdict.subject is not None
            and self._counts_passages()
            and self._passages.recent(verdict.subject, now)
        ):
            verdict = replace(verdict, reason="passback")
        result, reason = self._apply_mode(verdict.reason)
        return Decision(
            result,
            reason,
            verdict.credential,
            verdict.subject,
            verdict.name,
            digest,
            verdict.cert_type,
            verdict.cert_country,
        )

    def _apply_mode(self, reason: Reason) -> tuple[Literal["granted", "denied"], Reason]:
        if self._mode == "emergency":
            return "granted", reason if reason == "ok" else "emergency"
        if reason != "ok":
            return "denied", reason
        return ("denied", "lockdown") if self._mode == "lockdown" else ("granted", "ok")

    def _counts_passages(self) -> bool:
        return self._rules.anti_passback_s > 0 and self._mode == "normal"

    def _verdict(self, payload: bytes, now: float) -> Verdict:
        if len(payload) > self._rules.max_payload_bytes:
            return Verdict("too_large", "unknown")
        kind = classify(payload)
        if kind == "unknown":
            return Verdict("unknown_format", "unknown")
        judge = self._judges.get(kind)
        if kind not in self._rules.accept or judge is None:
            return Verdict("not_accepted", kind)
        return judge.judge(payload, now)

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


def dcc_judge(config: Config, store: Store, readonly: bool) -> DccJudge:
    """The health-certificate judge of `config`: its trust list (pushed, else
    configured), health rules and subject key."""
    from scanner.credentials.dcc.rules import HealthRules
    from scanner.credentials.dcc.subject import default_key_path, load_subject_key
    from scanner.credentials.dcc.trustlist import trust_list_in_use
    from scanner.credentials.dcc.verifier import DccVerifier

    section, skew = config.dcc, config.policy.clock_skew_s
    verifier = DccVerifier(trust_list_in_use(section.trust_list, config.store.path), skew)
    key_path = section.subject_key_file or default_key_path(config.store.path)
    create = section.subject_key_file is None and not readonly
    key = load_subject_key(key_path, create=create)
    return DccJudge(verifier, HealthRules.from_config(section, skew), store, key)
