"""The verdict on a badge or a chip ID card (CCCD): its subject must be on the allowlist
for that kind, within the entry's validity, and not revoked."""

from __future__ import annotations

from scanner.credentials.cccd import parse_cccd
from scanner.decision.verdict import Reason, Verdict
from scanner.state.store import AllowKind, Store


class BadgeJudge:
    def __init__(self, store: Store) -> None:
        self._store = store

    def judge(self, payload: bytes, now: float) -> Verdict:
        return listed_verdict(self._store, "badge", payload.decode("ascii"), None, now)


class CardJudge:
    def __init__(self, store: Store) -> None:
        self._store = store

    def judge(self, payload: bytes, now: float) -> Verdict:
        card = parse_cccd(payload)
        if card is None:
            return Verdict("unknown_format", "cccd")
        return listed_verdict(self._store, "cccd", card.number, card.name, now)


def listed_verdict(
    store: Store, kind: AllowKind, subject: str, name: str | None, now: float
) -> Verdict:
    """An identifier that proves nothing by itself: admitted when allowlisted for `kind`."""
    entry = store.allowlist.get(subject)
    if entry is None or kind not in entry.kinds:
        return Verdict("not_allowed", kind, subject, name)
    reason: Reason = entry.window_reason(now) or "ok"
    if reason == "ok" and store.revocations.is_revoked(jti=None, subject=subject, now=now):
        reason = "revoked"
    return Verdict(reason, kind, subject, entry.name or name)
