"""Two codes, one person: a health certificate and an identity code shown one after the
other, in either order, within `dcc.pair_window_s`, make one passage.

A certificate proves a health status, not who holds it; an identity code (`dcc.pair_with`:
badge, CCCD, personal QR) names the person and proves no health status. `Pairing` is the
small state machine that joins them. Each code has been judged on its own already:

- one that passed its own checks is held, waiting for its partner, until the window
  ends; held codes are looked up by the person they name, so two people interleaving
  their codes at one gate never complete each other's pair;
- a code that names the same person as a held code of the other role completes the pair
  (the oldest such code): one verdict for the passage, the identity's subject and name
  with the certificate's type and country, and nothing more of the certificate;
- a code that names no one held while codes of the other role are held is a mismatch
  (`pair_mismatch`): it is denied, and the held codes keep waiting, since their owners
  may still show theirs;
- a code that failed its own checks is denied for its own reason; a held code of the
  other role naming the same person ends with it (one event for that attempt);
- a held code whose window ends is denied as `pair_timeout` (`expire`).

After a passage the same person's codes are not decided again within the repeat window:
repeats act on the person, not on each code. Codes are held in memory only, so a
restart forgets them: at worst a worker shows both codes again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from scanner.decision.verdict import Reason, Verdict

if TYPE_CHECKING:
    from collections.abc import Collection

    from scanner.credentials.kinds import Credential
    from scanner.credentials.person import Person

# Codes held at once: a queue at one gate is a handful of people; beyond this the oldest
# ends at once as timed out.
PAIR_CAPACITY = 32
PASSED_CAPACITY = 1_024  # people remembered for the repeat window
Role = Literal["certificate", "identity"]


def role_of(verdict: Verdict) -> Role:
    return "certificate" if verdict.credential == "dcc" else "identity"


def person_of(verdict: Verdict) -> Person | None:
    return verdict.named.person() if verdict.named is not None else None


@dataclass(frozen=True, slots=True)
class Held:
    """A code waiting for its partner until `until` (monotonic seconds)."""

    verdict: Verdict
    digest: str
    until: float
    person: Person

    @property
    def role(self) -> Role:
        return role_of(self.verdict)

    def names(self, person: Person) -> bool:
        return self.person.is_same(person)


@dataclass(frozen=True, slots=True)
class Completed:
    """The end of an attempt: the verdict for the passage, and the hash of the code the
    event carries (the identity's, when there is one)."""

    verdict: Verdict
    digest: str


class Pairing:
    """Holds first codes and joins second ones. Not thread-safe: the policy's lock guards it."""

    def __init__(
        self,
        identity_kinds: Collection[Credential],
        window_s: float,
        repeat_s: float,
        capacity: int = PAIR_CAPACITY,
    ) -> None:
        self.window_s = window_s
        self._kinds = frozenset(identity_kinds)
        self._repeat_s = repeat_s
        self._capacity = capacity
        self._held: list[Held] = []  # oldest first
        self._passed: list[tuple[Person, float]] = []  # who passed, when (monotonic)

    def pairs(self, kind: Credential) -> bool:
        """Whether a code of this kind is decided only as one of a pair."""
        return kind == "dcc" or kind in self._kinds

    def offer(self, verdict: Verdict, digest: str, now: float) -> Completed | Held | None:
        """A code that passed its own checks: the passage's verdict when it completes a
        pair (or cannot), the hold when it waits, None when its person just passed."""
        person = person_of(verdict)
        if person is None:  # names no one (a badge without a name): it can pair with no one
            return Completed(replace(verdict, reason="pair_mismatch"), digest)
        if self._just_passed(person, now):
            return None
        others = [held for held in self._held if held.role != role_of(verdict)]
        partner = next((held for held in others if held.names(person)), None)
        if partner is not None:
            return self._complete(verdict, digest, person, partner, now)
        if others:
            return Completed(replace(verdict, reason="pair_mismatch"), digest)
        return self._hold(verdict, digest, person, now)

    def end_attempt(self, verdict: Verdict, digest: str) -> Completed:
        """A code that failed its own checks: denied for its reason, together with a held
        code of the other role that names the same person."""
        person = person_of(verdict)
        partner = None
        if person is not None:
            role = role_of(verdict)
            partner = next((h for h in self._held if h.role != role and h.names(person)), None)
        if partner is None:
            return Completed(verdict, digest)
        self._held.remove(partner)
        return joined(verdict, digest, partner, verdict.reason)

    def expire(self, now: float) -> list[Held]:
        """The held codes whose window has ended, oldest first; forgotten from now on."""
        due = [held for held in self._held if held.until <= now]
        self._held = [held for held in self._held if held.until > now]
        return sorted(due, key=lambda held: held.until)

    def next_expiry(self) -> float | None:
        """When the first held code times out (monotonic), or None when none is held."""
        return min((held.until for held in self._held), default=None)

    def awaiting_until(self) -> float | None:
        """Until when some code waits for its partner (monotonic), or None."""
        return max((held.until for held in self._held), default=None)

    def _hold(self, verdict: Verdict, digest: str, person: Person, now: float) -> Held:
        """Hold a first code; shown again, its window starts again."""
        self._held = [held for held in self._held if held.digest != digest]
        held = Held(verdict, digest, now + self.window_s, person)
        self._held.append(held)
        if len(self._held) > self._capacity:
            self._held[0] = replace(self._held[0], until=now)  # times out at the next look
        return held

    def _complete(
        self, verdict: Verdict, digest: str, person: Person, partner: Held, now: float
    ) -> Completed:
        done = joined(verdict, digest, partner, identity_of(verdict, partner).reason)
        people = (person, partner.person)
        # The same person's other held codes (a second certificate, another ID) were part
        # of this passage too.
        self._held = [
            held
            for held in self._held
            if held is not partner and not all(held.names(who) for who in people)
        ]
        self._passed = [*self._passed, *((who, now) for who in people)][-PASSED_CAPACITY:]
        return done

    def _just_passed(self, person: Person, now: float) -> bool:
        self._passed = [(who, at) for who, at in self._passed if now - at < self._repeat_s]
        return any(who.is_same(person) for who, _ in self._passed)


def identity_of(verdict: Verdict, partner: Held) -> Verdict:
    return verdict if role_of(verdict) == "identity" else partner.verdict


def joined(verdict: Verdict, digest: str, partner: Held, reason: Reason) -> Completed:
    """One verdict for a pair: the identity's subject, name and code hash, the
    certificate's type and country, and `reason`."""
    if role_of(verdict) == "identity":
        identity, certificate, shown = verdict, partner.verdict, digest
    else:
        identity, certificate, shown = partner.verdict, verdict, partner.digest
    passage = Verdict(
        reason,
        identity.credential,
        identity.subject,
        identity.name,
        certificate.cert_type,
        certificate.cert_country,
        named=identity.named,
    )
    return Completed(passage, shown)
