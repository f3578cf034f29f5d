"""The in-flight window over the outbox: which events go out next, and what the
broker's answers mean for them.

Events go out oldest first, at most `limit` unacknowledged at once. Accepted events leave
the outbox in batches. A refusal (PUBACK reason code >= 0x80) ends the *round*: nothing
new is sent until every answer is in; then each refusal is counted against its row, and
the next round starts again from the oldest row after a pause. A row refused while others
in its round were accepted is singled out, and is parked after enough refusals.

When accepted rows cannot be deleted (the disk is full, even after the outbox gave up
its reserve), the window is *blocked*: nothing new is sent, and the deletion is tried
again at every step of the publisher until it succeeds; the connection stays up.

Some refusals never arrive as one: mosquitto answers an oversized event with reason
0x95, which paho cannot decode, so the connection drops instead. After a connection is
lost with events in flight, the next connection *probes*: it sends the oldest event
alone. Accepted, the window opens again; lost again, that event is singled out.

Events the centre asked for again (`Outbox.request_resend`) go out through the same
window, after the waiting ones and in at most half of it, so that a resend never holds
new events back. They were accepted once already, so they are never counted, parked or
made to halt a round: one in flight when the connection is lost goes again on the next,
and one the broker now refuses is not tried again unless the centre asks again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from mqtt.errors import StoreError
from mqtt.outbox import Outbox, Pending

log = logging.getLogger(__name__)

LOST = "connection lost"  # how a row's last error starts when a lost connection parked it


@dataclass
class Round:
    """Answers since the window last started from the oldest row."""

    accepted: int = 0
    refused: dict[int, str] = field(default_factory=dict)  # entry -> reason


@dataclass
class InFlight:
    row: Pending
    sent_at: float
    again: bool = False  # sent again at the centre's request


class Window:
    """Bookkeeping for one publisher; the caller does the sending and the waiting."""

    def __init__(self, outbox: Outbox, size: int) -> None:
        self._outbox = outbox
        self._size = size
        self._limit = size
        self._inflight: dict[int, InFlight] = {}
        self._accepted: list[int] = []
        self._cursor = 0
        self._round = Round()
        self._halted = False
        self.probing = False
        self.blocked: str | None = None  # why accepted rows cannot leave the outbox
        self._asked: set[int] = set()  # entries of the last `due` sent at the centre's request

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @property
    def _resending(self) -> int:
        return sum(flight.again for flight in self._inflight.values())

    def restart(self, receive_maximum: int | None = None) -> None:
        """A new connection: nothing is in flight, send again from the oldest row."""
        self._inflight.clear()
        self._cursor = 0
        self._round = Round()
        self._halted = False
        self._limit = min(self._size, receive_maximum or self._size)

    def due(self) -> list[Pending]:
        """Rows to send now: as many as the window has room for, oldest first (see
        `again` for the ones sent at the centre's request)."""
        if self._halted or self.blocked is not None:
            return []
        if not self._inflight and not self._accepted:
            self._cursor = 0  # all answered: from the oldest again (rows released from parking)
        room = (1 if self.probing else self._limit) - len(self._inflight)
        rows = self._outbox.pending(after=self._cursor, limit=room) if room > 0 else []
        again = self._again(room - len(rows))
        self._asked = {row.entry for row in again}
        return rows + again

    def _again(self, room: int) -> list[Pending]:
        """Rows asked for again, in what the waiting ones leave of at most half the
        window, and never one already in flight."""
        room = min(room, max(self._limit // 2, 1) - self._resending)
        if room <= 0:
            return []
        flying = {flight.row.entry for flight in self._inflight.values()}
        asked = self._outbox.to_resend(room + len(flying))
        return [row for row in asked if row.entry not in flying][:room]

    def sent(self, mid: int, row: Pending, now: float) -> None:
        again = row.entry in self._asked
        self._inflight[mid] = InFlight(row, now, again)
        if not again:
            self._cursor = row.entry

    def answer(self, mid: int, accepted: bool, reason: str) -> Pending | None:
        """Record the broker's answer; None if `mid` was not an event of ours."""
        flight = self._inflight.pop(mid, None)
        if flight is None:
            return None
        if accepted:
            self._accepted.append(flight.row.entry)
            self._round.accepted += 1
            self.probing = False
        elif flight.again:  # refused now, after it was accepted once: the centre may ask again
            self._accepted.append(flight.row.entry)
        else:
            self._round.refused[flight.row.entry] = reason
            self._halted = True
        return flight.row

    def settle(self) -> Round | None:
        """Delete accepted rows; when a round with refusals is complete, count them and
        return it (the caller pauses before the next round), else None."""
        if not self._delete_accepted() or not self._halted or self._inflight:
            return None
        finished = self._round
        for entry, reason in finished.refused.items():
            self._refuse(entry, reason, singled_out=finished.accepted > 0)
        self.restart(self._limit)
        return finished

    def lost(self, reason: str) -> None:
        """The connection ended; what was in flight is sent again on the next one."""
        self._delete_accepted()
        first_time = [flight for flight in self._inflight.values() if not flight.again]
        if first_time:
            if self.probing:
                (flight,) = first_time
                cause = reason if reason.startswith(LOST) else f"{LOST} ({reason})"
                self._refuse(flight.row.entry, cause, singled_out=True)
            self.probing = True
        self._inflight.clear()

    def overdue(self, now: float, timeout: float) -> Pending | None:
        """The oldest event in flight for longer than `timeout`, if any."""
        oldest = min(self._inflight.values(), key=lambda flight: flight.sent_at, default=None)
        return oldest.row if oldest and now - oldest.sent_at > timeout else None

    def _delete_accepted(self) -> bool:
        """Let accepted rows leave the outbox; False (and `blocked` says why) when they
        cannot, and are kept for the next try."""
        try:
            self._outbox.ack(self._accepted)
        except StoreError as error:
            self.blocked = str(error)
            return False
        self._accepted.clear()
        self.blocked = None
        return True

    def _refuse(self, entry: int, reason: str, *, singled_out: bool) -> None:
        try:
            parked = self._outbox.refuse(entry, reason, singled_out=singled_out)
        except StoreError as error:  # the row stays, and is sent again: nothing is lost
            log.warning("cannot count a refusal of outbox entry %d: %s", entry, error)
            return
        if parked:
            again = (
                "sent again once the link has been stable for a while"
                if reason.startswith(LOST)
                else "released with `qrgate outbox retry`"
            )
            log.error(
                "event (outbox entry %d) parked after repeated refusals (%s): it stays in "
                "the outbox, visible in health, until %s",
                entry,
                reason,
                again,
            )
