"""The verdict on a health certificate (EU DCC): authentic (`DccVerifier`), not revoked by
any of the EU revocation hashes nor by its subject, a certificate by the schema, and
meeting the health rules of `[dcc]`, in that order.

The verdict carries what an event may say of a certificate (its type and issuing
country, and as subject a keyed hash of its UVCI), and the holder's standardised names
and birth date in memory only (`named`, once the signature verified), for pairing with
an identity code; never a name, a vaccine, a test or the UVCI itself.
"""

from __future__ import annotations

from scanner.credentials.dcc.rules import HealthRules, health_reason
from scanner.credentials.dcc.subject import certificate_subject
from scanner.credentials.dcc.verifier import DccVerifier, Signed
from scanner.credentials.person import Named
from scanner.decision.verdict import Reason, Verdict
from scanner.state.store import Store

# Verifier reasons after which the certificate is still looked at (revocation first).
CHECKED_FURTHER = frozenset({"ok", "schema_invalid"})


class DccJudge:
    def __init__(
        self,
        verifier: DccVerifier,
        rules: HealthRules,
        store: Store,
        subject_key: bytes,
        *,
        stand_in: str | None = None,
    ) -> None:
        """`stand_in`: why `subject_key` is not the gate's, when it is not."""
        self.verifier = verifier
        self._rules = rules
        self._store = store
        self._subject_key = subject_key
        self.subject_stand_in = stand_in

    def judge(self, payload: bytes, now: float) -> Verdict:
        check = self.verifier.verify(payload, now)
        signed = check.signed
        if signed is None:
            return Verdict(check.reason, "dcc")
        subject = self._subject(signed)
        reason: Reason = check.reason
        if reason in CHECKED_FURTHER:
            reason = self._further(signed, subject, now) or reason
        holder = signed.certificate.holder if signed.certificate is not None else None
        return Verdict(
            reason,
            "dcc",
            subject,
            None,
            signed.cert_type,
            signed.country,
            named=Named.certified(holder.family, holder.given, holder.birth) if holder else None,
        )

    def _further(self, signed: Signed, subject: str | None, now: float) -> Reason | None:
        """Revocation, then (for a certificate the schema accepts) the health rules."""
        revocations = self._store.revocations
        if revocations.is_dcc_revoked(signed.revocation_hashes(), now) or (
            subject is not None and revocations.is_revoked(jti=None, subject=subject, now=now)
        ):
            return "revoked"
        if signed.certificate is None:
            return None
        return health_reason(signed.certificate, self._rules, now)

    def _subject(self, signed: Signed) -> str | None:
        uvci = signed.uvci
        return certificate_subject(self._subject_key, uvci) if uvci is not None else None
