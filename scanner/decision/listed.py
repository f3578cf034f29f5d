"""The verdict on an identity code, which proves nothing by itself: a badge, a chip ID card
(CCCD) or a personal QR code (PC-COVID / VNeID). Its subject must be on the allowlist for
that kind, within the entry's validity, and not revoked; or, for a kind in
`policy.record_only`, any well-formed code not revoked is admitted and recorded."""

from __future__ import annotations

from scanner.credentials.cccd import parse_cccd
from scanner.credentials.person import Birth, Named
from scanner.credentials.vnqr import parse_personal_qr
from scanner.decision.verdict import Reason, Verdict
from scanner.state.store import AllowKind, Store


class BadgeJudge:
    def __init__(self, store: Store, *, record_only: bool = False) -> None:
        self._store = store
        self._record_only = record_only

    def judge(self, payload: bytes, now: float) -> Verdict:
        subject = payload.decode("ascii")
        return listed_verdict(
            self._store, "badge", subject, None, now, record_only=self._record_only
        )


class CardJudge:
    def __init__(self, store: Store, *, record_only: bool = False) -> None:
        self._store = store
        self._record_only = record_only

    def judge(self, payload: bytes, now: float) -> Verdict:
        card = parse_cccd(payload)
        if card is None:
            return Verdict("unknown_format", "cccd")
        return listed_verdict(
            self._store,
            "cccd",
            card.number,
            card.name,
            now,
            record_only=self._record_only,
            born=Birth.of(card.birth_date),
        )


class PersonalQrJudge:
    def __init__(self, store: Store, *, record_only: bool = False) -> None:
        self._store = store
        self._record_only = record_only

    def judge(self, payload: bytes, now: float) -> Verdict:
        code = parse_personal_qr(payload)
        if code is None:
            return Verdict("unknown_format", "vnqr")
        return listed_verdict(
            self._store,
            "vnqr",
            code.qid,
            code.name,
            now,
            record_only=self._record_only,
            born=code.birth,
        )


def listed_verdict(
    store: Store,
    kind: AllowKind,
    subject: str,
    name: str | None,
    now: float,
    *,
    record_only: bool = False,
    born: Birth | None = None,
) -> Verdict:
    """An identifier that proves nothing by itself: admitted when allowlisted for `kind`
    (`ok`), or when `record_only` (`recorded`). A listed entry's own validity holds in
    both cases; a revoked subject is denied in both. The person named is the code's, else
    the entry's (a badge names no one by itself)."""
    entry = store.allowlist.get(subject)
    if entry is None or kind not in entry.kinds:
        reason: Reason = "recorded" if record_only else "not_allowed"
        if record_only and store.revocations.is_revoked(jti=None, subject=subject, now=now):
            reason = "revoked"
        return Verdict(reason, kind, subject, name, named=Named.written(name, born))
    reason = entry.window_reason(now) or "ok"
    if reason == "ok" and store.revocations.is_revoked(jti=None, subject=subject, now=now):
        reason = "revoked"
    named = Named.written(name or entry.name, born or Birth.of(entry.birth_date))
    return Verdict(reason, kind, subject, name or entry.name, named=named)
