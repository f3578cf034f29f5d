"""The verdict on a signed pass: signature and times (`PassVerifier`), then revocation of
its `jti` or its subject."""

from __future__ import annotations

from scanner.credentials.passes import PassVerifier
from scanner.decision.verdict import Reason, Verdict
from scanner.state.store import Store


class PassJudge:
    def __init__(self, verifier: PassVerifier, store: Store) -> None:
        self.verifier = verifier
        self._store = store

    def judge(self, payload: bytes, now: float) -> Verdict:
        check = self.verifier.verify(payload, now)
        claims = check.claims
        if claims is None:
            return Verdict(check.reason, "pass")
        reason: Reason = check.reason
        if reason == "ok" and self._store.revocations.is_revoked(
            jti=claims.jti, subject=claims.subject, now=now
        ):
            reason = "revoked"
        return Verdict(reason, "pass", claims.subject, claims.name)
