"""What feeds the live hub: the monitor's own threads (`qrgate monitor --http`), or a
poller reading the store (`qrgate dashboard`, perhaps on another machine)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from monitor.dashboard.live import Hub
from monitor.dashboard.people import PeopleIndex
from monitor.errors import StoreError
from monitor.intake.ingest import EventRecord, Record
from monitor.intake.state import LiveState
from monitor.storage.records import EventRow, GateRow
from monitor.storage.store import Store

log = logging.getLogger(__name__)

POLL_S = 0.5


class Feed:
    """Hands new events and gate changes to the hub and the people index."""

    def __init__(self, hub: Hub, people: PeopleIndex, clock: Callable[[], float] = time.time):
        self.hub = hub
        self.people = people
        self.clock = clock

    def events(self, rows: list[EventRow]) -> None:
        if not rows:
            return
        self.people.note(rows)
        now = self.clock()
        for row in sorted(rows, key=lambda row: (row.ts_ms, row.id)):
            self.hub.publish("event", row, now)

    def gates_changed(self) -> None:
        self.hub.publish("gates", at=self.clock())


class PublishingState(LiveState):
    """The monitor's live state that also tells the feed, right after each commit (and
    so after the broker's acknowledgement was sent) what arrived."""

    def __init__(self, feed: Feed) -> None:
        super().__init__()
        self.feed = feed

    def stored(self, records: list[Record], new: list[EventRecord]) -> None:
        super().stored(records, new)
        self.feed.events([EventRow.from_record(record) for record in new])
        if any(not isinstance(record, EventRecord) for record in records) or new:
            self.feed.gates_changed()

    def set_connected(self, connected: bool) -> None:
        super().set_connected(connected)
        self.feed.gates_changed()


class StorePoller:
    """Reads the gates table every `interval_s`; for each gate whose counters moved, its
    events above the last seq seen. Events that fill an old gap reach the store (and
    the pages) but not the live stream."""

    def __init__(self, url: str, feed: Feed, interval_s: float = POLL_S) -> None:
        self.url = url
        self.feed = feed
        self.interval_s = interval_s
        self._known: dict[tuple[str, str], GateRow] = {}
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="dashboard-poller", daemon=True)

    def start(self) -> StorePoller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _loop(self) -> None:
        store: Store | None = None
        try:
            store = Store(self.url, create=False)
            self._known = {(g.site, g.gate): g for g in store.gates()}
            while not self._stopping.wait(self.interval_s):
                self._poll(store)
        except StoreError as error:
            log.error("live updates stopped: %s", error)
        finally:
            if store is not None:
                store.close()

    def _poll(self, store: Store) -> None:
        try:
            gates = {(g.site, g.gate): g for g in store.gates()}
            rows: list[EventRow] = []
            for key, gate in gates.items():
                known = self._known.get(key)
                if known is None or known.events != gate.events:
                    rows += store.events_after(*key, known.last_seq if known else 0)
        except StoreError as error:
            log.warning("live updates: %s", error)
            return
        changed = gates != self._known
        self._known = gates
        self.feed.events(rows)
        if changed:
            self.feed.gates_changed()
