"""Asking the gates for what the store is missing (`qrgate report gaps --resend`, and the
dashboard's Gaps page): a signed `resend` command per gate, as `qrgate cmd` signs it.

Each gate with gaps is asked for them (at most the command's bound of seqs at once:
what is left is asked for the next time), and each gate online is also asked for every
kept event after the last one the store holds, since events missing at the end cannot
show as gaps until a later one arrives. The gate sends those events again unchanged
(the same id, seq, ts and signature) from what it keeps after the broker acknowledged
them (`mqtt.keep_acked_days`); the monitors store them once, as any event.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitor.storage.records import Gap, GateRow
from mqtt.outbox import MAX_RESEND
from mqtt.remote import SignedCommand, SigningKey, send_commands, sign_command
from mqtt.settings import BrokerSettings

if TYPE_CHECKING:
    from monitor.storage.store import Store

SETTLED_S = 2.0  # the store's count unchanged this long, the gaps asked for closed: done
POLL_S = 0.5


@dataclass(frozen=True)
class Ask:
    """What one gate is asked to send again: seq ranges (inclusive), and/or everything
    after `after`."""

    site: str
    gate: str
    ranges: tuple[tuple[int, int], ...]
    after: int | None

    @property
    def args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"ranges": [list(pair) for pair in self.ranges]}
        if self.after is not None:
            args["after"] = self.after
        return args

    @property
    def asked(self) -> int:
        return sum(last - first + 1 for first, last in self.ranges)


@dataclass(frozen=True)
class Answer:
    """A gate's reply to its `resend` (outcome `no reply` when none came in time)."""

    site: str
    gate: str
    asked: int
    outcome: str
    detail: str | None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def plan(gaps: Iterable[Gap], gates: Sequence[GateRow]) -> list[Ask]:
    """One ask per gate that has gaps or is online, in (site, gate) order; none to a
    retired gate, which is no longer there to answer."""
    retired = {(g.site, g.gate) for g in gates if g.retired}
    ranges: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for gap in gaps:
        if (gap.site, gap.gate) not in retired:
            ranges.setdefault((gap.site, gap.gate), []).append((gap.first, gap.last))
    tails = {(g.site, g.gate): g.last_seq for g in gates if g.state == "online"}
    return [
        Ask(site, gate, bounded(ranges.get((site, gate), [])), tails.get((site, gate)))
        for site, gate in sorted({*ranges, *tails})
    ]


def plan_for(store: Store, site: str | None) -> list[Ask]:
    """The asks for the gates of `site` (None: every site), from what the store holds."""
    gates = [row for row in store.gates() if site in (None, row.site)]
    return plan(store.gaps(site), gates)


def bounded(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """The first MAX_RESEND seqs of `ranges` (a range cut where the bound falls)."""
    kept: list[tuple[int, int]] = []
    room = MAX_RESEND
    for first, last in ranges:
        if room <= 0:
            break
        end = min(last, first + room - 1)
        kept.append((first, end))
        room -= end - first + 1
    return tuple(kept)


@dataclass
class Sender:
    """The centre's command key and a broker to reach the gates through."""

    broker: BrokerSettings
    prefix: str
    key: SigningKey
    kid: str
    timeout_s: float = 10.0
    lifetime_s: float = 60.0

    def sign(self, name: str, site: str, gate: str | None, args: dict[str, Any]) -> SignedCommand:
        """A command signed with the centre's key, as `qrgate cmd` signs it."""
        return sign_command(
            name,
            key=self.key,
            kid=self.kid,
            site=site,
            gate=gate,
            args=args,
            lifetime_s=self.lifetime_s,
        )

    def link(self) -> BrokerSettings:
        """The broker settings one exchange of commands connects with."""
        return self.broker

    def resend(self, asks: Sequence[Ask]) -> list[Answer]:
        """Send every ask over one connection; each gate's answer (or `no reply`)."""
        commands = [self.sign("resend", ask.site, ask.gate, ask.args) for ask in asks]
        sent = send_commands(self.link(), self.prefix, commands, timeout_s=self.timeout_s)
        replies = {(reply.site, reply.gate): reply.reply for reply in sent}
        answers = []
        for ask in asks:
            reply = replies.get((ask.site, ask.gate))
            outcome = str(reply.get("outcome")) if reply else "no reply"
            detail = reply.get("detail") if reply else None
            answers.append(Answer(ask.site, ask.gate, ask.asked, outcome, detail))
        return answers


def wait_until_filled(
    count: Callable[[], int],
    gaps: Callable[[], list[Gap]],
    asks: Sequence[Ask],
    timeout_s: float,
) -> list[Gap]:
    """Wait (at most `timeout_s`) until none of the gaps asked for is left and the store
    has stopped growing; the gaps left of those asked for."""
    asked = {(ask.site, ask.gate) for ask in asks if ask.ranges}
    deadline = time.monotonic() + timeout_s
    last, steady_since = count(), time.monotonic()
    while True:
        left = [gap for gap in gaps() if (gap.site, gap.gate) in asked]
        now = time.monotonic()
        if now >= deadline or (not left and now - steady_since >= SETTLED_S):
            return left
        time.sleep(POLL_S)
        current = count()
        if current != last:
            last, steady_since = current, time.monotonic()
