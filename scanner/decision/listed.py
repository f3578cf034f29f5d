"""The verdict on an identity code, which proves nothing by itself: a badge, a chip ID card
(CCCD) or a personal QR code (PC-COVID / VNeID). Its subject must be on the allowlist for
that kind, within the entry's validity, and not revoked; or, for a kind in
`policy.record_only`, any well-formed code not revoked is admitted and recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from scanner.credentials.cccd import parse_cccd
from scanner.credentials.person import Birth, Named
from scanner.credentials.vnqr import parse_personal_qr
from scanner.decision.verdict import ADMITTED, Reason, Verdict
from scanner.state.store import AllowKind, Store


class Shown(NamedTuple):
    """What an identity code says: whom it stands for, and what it says of them."""

    subject: str
    name: str | None = None
    birth: Birth | None = None


def read_badge(payload: bytes) -> Shown:
    return Shown(payload.decode("ascii"))  # its shape is ASCII (scanner.credentials.kinds)


def read_card(payload: bytes) -> Shown | None:
    card = parse_cccd(payload)
    return None if card is None else Shown(card.number, card.name, Birth.of(card.birth_date))


def read_personal_qr(payload: bytes) -> Shown | None:
    code = parse_personal_qr(payload)
    return None if code is None else Shown(code.qid, code.name, code.birth)


READERS: dict[AllowKind, Callable[[bytes], Shown | None]] = {
    "badge": read_badge,
    "cccd": read_card,
    "vnqr": read_personal_qr,
}


class ListedJudge:
    """One identity kind: read strictly, then its allowlist entry or record-only."""

    def __init__(self, store: Store, kind: AllowKind, *, record_only: bool = False) -> None:
        self._store = store
        self._kind = kind
        self._read = READERS[kind]
        self._record_only = record_only

    def judge(self, payload: bytes, now: float) -> Verdict:
        shown = self._read(payload)
        if shown is None:
            return Verdict("unknown_format", self._kind)
        return listed_verdict(self._store, self._kind, shown, now, record_only=self._record_only)


def listed_verdict(
    store: Store, kind: AllowKind, shown: Shown, now: float, *, record_only: bool = False
) -> Verdict:
    """An identifier that proves nothing by itself: admitted when allowlisted for `kind`
    (`ok`), or when `record_only` (`recorded`). A listed entry's own validity holds in
    both cases; a revoked subject is denied in both. A listed person's name and birth
    date are the entry's where it has them (a badge names no one by itself, and an
    unsigned code may claim anything), else the code's."""
    subject, name, born = shown
    entry = store.allowlist.get(subject)
    reason: Reason
    if entry is None or kind not in entry.kinds:
        reason = "recorded" if record_only else "not_allowed"
    else:
        reason = entry.window_reason(now) or "ok"
        # What the list says of a listed person outweighs what an unsigned code claims.
        name = entry.name or name
        born = Birth.of(entry.birth_date) if entry.birth_date is not None else born
    if reason in ADMITTED and store.revocations.is_revoked(jti=None, subject=subject, now=now):
        reason = "revoked"
    return Verdict(reason, kind, subject, name, named=Named.written(name, born))
