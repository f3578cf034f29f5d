"""The gate's decision: from a scanned payload to granted or denied, with the reason.

In order: the size cap (before anything looks inside), the credential's shape, whether
this gate accepts that kind, its own checks by the kind's judge (one module per kind:
`passes` for signature and times, `listed` for the allowlist entry of a badge, an ID
card or a personal QR, or their record-only admission, `dcc` for a health certificate's
authenticity and health rules; each ends with its revocations), anti-passback, the
pairing of a health certificate with an identity code (`pairing`, when `dcc.pair_with`
names kinds), then the gate mode:

- normal: granted exactly when every check passed (`ok`, or `recorded` for an identity
  code admitted without an allowlist);
- lockdown: nothing is granted; what would have been is denied as `lockdown`, the rest
  keeps its own reason (a forged pass stays `bad_signature` in the records);
- emergency: everything is granted (the gate is open anyway); what would have been denied
  is granted as `emergency`, so the records still tell valid from invalid.

`decide` is the gate's call: the same code seen again within `repeat_window_s` (held in
front of the camera) gives None, one decision and so one event; a granted passage is
remembered for anti-passback. On a gate that pairs, the first code of a pair gives
`Waiting` (no decision yet), the second the passage's decision, and a first code left
alone is denied by `expire_pairs` once its window ends. Pairing runs in normal mode
only: in lockdown a code alone is denied as usual, in emergency it is granted as
`emergency`. `evaluate` answers the same question without touching any of that state,
at any instant (`qrgate pass check [--at]`); for a code that pairs, it answers as for a
code shown alone: `pair_timeout` when it passed its own checks.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from firmware.patterns import Mode
from scanner.credentials.kinds import Credential, classify
from scanner.decision.listed import ListedJudge
from scanner.decision.pairing import Held, Pairing
from scanner.decision.verdict import (
    ADMITTED,
    DAEMON_REASONS,
    REASONS,
    Decision,
    Judge,
    Reason,
    Verdict,
    Waiting,
)
from scanner.errors import ConfigError
from scanner.state.store import ALLOW_KINDS, Store, StoreError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from scanner.clock import Clock
    from scanner.config import Config, PolicySection
    from scanner.credentials.dcc.trustlist import TrustList
    from scanner.credentials.passes import PassVerifier
    from scanner.decision.dcc import DccJudge

__all__ = [
    "DAEMON_REASONS",
    "REASONS",
    "Decision",
    "Policy",
    "Reason",
    "Reloaded",
    "Verdict",
    "Waiting",
]
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
        pairing: Pairing | None = None,
    ) -> None:
        if "pass" in rules.accept and passes is None:
            raise ValueError("a gate that accepts passes needs a PassVerifier")
        if ("dcc" in rules.accept or pairing is not None) and dcc is None:
            raise ValueError("a gate that accepts health certificates needs a DccJudge")
        self._rules = rules
        self._store = store
        self._clock = clock
        self._passes = None
        if passes is not None:
            from scanner.decision.passes import PassJudge

            self._passes = PassJudge(passes, store)
        self._dcc = dcc
        self._pairing = pairing
        recorded = set(rules.record_only)
        judges: dict[Credential, Judge | None] = {
            "pass": self._passes,
            **{
                kind: ListedJudge(store, kind, record_only=kind in recorded) for kind in ALLOW_KINDS
            },
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
        health-certificate subject key), for checks that change nothing.

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
        dcc = dcc_judge(config, store, readonly) if "dcc" in config.policy.accept else None
        pairing = None
        if config.dcc.pair_with:
            section = config.dcc
            pairing = Pairing(
                section.pair_with, section.pair_window_s, config.policy.repeat_window_s
            )
        return cls(config.policy, store, clock, passes, dcc=dcc, pairing=pairing)

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def pairs(self) -> bool:
        """Whether this gate pairs health certificates with identity codes."""
        return self._pairing is not None

    @property
    def subject_stand_in(self) -> str | None:
        """Why health certificates' subjects here are not the gate's (made with a key of
        this process only: a read-only check before the gate made its key); None when
        they are, or when health certificates are not accepted."""
        return self._dcc.subject_stand_in if self._dcc is not None else None

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

    def reload(self) -> Reloaded:
        """Re-read the persisted mode, the JWKS and the trust list (SIGHUP), and say what
        was read. A key set that cannot be read keeps what was in use, and the rest is
        reloaded all the same."""
        with self._lock:
            self._mode = self._store.get_mode()
            self._tidy_store()
        read = [f"accepting {', '.join(self._rules.accept)}", f"mode {self._mode}"]
        kept: list[str] = []
        for reload, describe in self._key_sets():
            try:
                reload()
            except ConfigError as error:
                kept.append(f"{describe()} kept: {'; '.join(map(str, error.problems))}")
            else:
                read.append(describe())
        return Reloaded(tuple(read), tuple(kept))

    def _key_sets(self) -> Iterator[tuple[Callable[[], None], Callable[[], str]]]:
        """Each key set the gate reloads, with a description of the one in use."""
        if self._passes is not None:
            passes = self._passes.verifier
            yield passes.reload, lambda: pass_keys_text(passes.kids, passes.source)
        if self._dcc is not None:
            dcc = self._dcc.verifier
            yield dcc.reload, lambda: trust_list_text(dcc.trust_list)

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

    def decide(self, payload: bytes) -> Decision | Waiting | None:
        """The gate's decision for a scanned code; None when it repeats a code (or a
        person) just seen; Waiting when it is the first code of a pair."""
        digest = hashlib.sha256(payload).hexdigest()
        with self._lock:
            now = self._clock.monotonic()
            repeated = self._repeats.recent(digest, now)
            self._repeats.mark(digest, now)
            if repeated:
                return None
            verdict = self._checked(payload, now, self._clock.now())
            if self._pairing is not None and self._pairing.pairs(verdict.credential):
                if self._mode == "normal":
                    paired = self._pair(self._pairing, verdict, digest, now)
                    if paired is None or isinstance(paired, Waiting):
                        return paired
                    verdict, digest = paired
                else:
                    verdict = self._alone(verdict)
            decision = self._decision(verdict, digest)
            if decision.granted and decision.subject and self._counts_passages():
                self._remember_passage(decision.subject, now)
            return decision

    def evaluate(self, payload: bytes, at: float | None = None) -> Decision:
        """The decision the gate would take now, or at wall-clock time `at` (epoch
        seconds), changing nothing (no repeat, no passage, no pair)."""
        digest = hashlib.sha256(payload).hexdigest()
        with self._lock:
            wall = self._clock.now() if at is None else at
            verdict = self._checked(payload, self._clock.monotonic(), wall)
            if self._pairing is not None and self._pairing.pairs(verdict.credential):
                verdict = self._alone(verdict)
            return self._decision(verdict, digest)

    def expire_pairs(self) -> list[Decision]:
        """The first codes whose partner did not come in time, each denied as
        `pair_timeout` (whatever the mode: nobody may be there any more)."""
        with self._lock:
            if self._pairing is None:
                return []
            return [timed_out(held) for held in self._pairing.expire(self._clock.monotonic())]

    def pairs_due_in(self) -> float | None:
        """Seconds until the next first code times out; None when none waits."""
        return self._seconds_until(Pairing.next_expiry)

    def awaiting_s(self) -> float | None:
        """Seconds the gate still waits for some second code; None when it waits for none."""
        return self._seconds_until(Pairing.awaiting_until)

    def _seconds_until(self, moment: Callable[[Pairing], float | None]) -> float | None:
        with self._lock:
            until = moment(self._pairing) if self._pairing is not None else None
            return None if until is None else max(until - self._clock.monotonic(), 0.0)

    def _pair(
        self, pairing: Pairing, verdict: Verdict, digest: str, now: float
    ) -> tuple[Verdict, str] | Waiting | None:
        """One code of a pair: the passage's verdict and code hash, or Waiting, or None
        for the person who just passed."""
        if not verdict.admitted:
            done = pairing.end_attempt(verdict, digest)
        else:
            step = pairing.offer(verdict, digest, now)
            if step is None:
                return None
            if isinstance(step, Held):
                return Waiting(verdict.credential, pairing.window_s)
            done = step
        return done.verdict, done.digest

    def _alone(self, verdict: Verdict) -> Verdict:
        """A code that pairs, decided on its own: admitted by its own checks, it still
        lacks its partner (in lockdown it is refused as everything is)."""
        if verdict.admitted and self._mode != "lockdown":
            return replace(verdict, reason="pair_timeout")
        return verdict

    def _checked(self, payload: bytes, now: float, wall: float) -> Verdict:
        """The credential's own checks, then anti-passback."""
        verdict = self._verdict(payload, wall)
        if (
            verdict.admitted
            and verdict.subject is not None
            and self._counts_passages()
            and self._passages.recent(verdict.subject, now)
        ):
            verdict = replace(verdict, reason="passback")
        return verdict

    def _decision(self, verdict: Verdict, digest: str) -> Decision:
        result, reason = self._apply_mode(verdict.reason)
        return Decision.of(verdict, result, reason, digest)

    def _apply_mode(self, reason: Reason) -> tuple[Literal["granted", "denied"], Reason]:
        admitted = reason in ADMITTED
        if self._mode == "emergency":
            return "granted", reason if admitted else "emergency"
        if not admitted:
            return "denied", reason
        return ("denied", "lockdown") if self._mode == "lockdown" else ("granted", reason)

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


@dataclass(frozen=True, slots=True)
class Reloaded:
    """What a reload read, for the log: the kinds accepted, the mode, each key set now in
    use (`read`), and each key set that could not be read, kept as it was, and why."""

    read: tuple[str, ...]
    kept: tuple[str, ...] = ()


SHOWN_KIDS = 8  # a key set's ids named in the log; a longer set is counted only


def pass_keys_text(kids: list[str], source: Path) -> str:
    shown = f" ({', '.join(kids)})" if len(kids) <= SHOWN_KIDS else ""
    return f"{len(kids)} pass key{'s' if len(kids) != 1 else ''}{shown} from {source}"


def trust_list_text(trust_list: TrustList) -> str:
    count, countries = len(trust_list), len(trust_list.countries)
    return (
        f"{count} health-certificate signer{'s' if count != 1 else ''}"
        f" ({countries} countr{'ies' if countries != 1 else 'y'}) from {trust_list.source}"
    )


def timed_out(held: Held) -> Decision:
    """A first code left alone: denied, the event saying what the code alone may say."""
    return Decision.of(held.verdict, "denied", "pair_timeout", held.digest)


def dcc_judge(config: Config, store: Store, readonly: bool) -> DccJudge:
    """The health-certificate judge of `config`: its trust list (pushed, else
    configured), health rules and subject key."""
    from scanner.credentials.dcc.rules import HealthRules
    from scanner.credentials.dcc.subject import default_key_path, load_subject_key
    from scanner.credentials.dcc.trustlist import trust_list_in_use
    from scanner.credentials.dcc.verifier import DccVerifier
    from scanner.decision.dcc import DccJudge

    section, skew = config.dcc, config.policy.clock_skew_s
    verifier = DccVerifier(trust_list_in_use(section.trust_list, config.store.path), skew)
    key_path = section.subject_key_file or default_key_path(config.store.path)
    create = section.subject_key_file is None and not readonly
    key = load_subject_key(key_path, create=create)
    rules = HealthRules.from_config(section, skew)
    return DccJudge(verifier, rules, store, key.secret, stand_in=key.stand_in)
