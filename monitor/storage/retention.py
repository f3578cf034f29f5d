"""The store's upkeep, hourly: event retention (events older than so many days are
deleted and counted), PostgreSQL's monthly partitions made ahead, and fresh
query-planner statistics.

Personal data is kept no longer than it serves (contact tracing looks back days, not
years). On PostgreSQL a month whose every event is past the retention goes as a whole
(its partition dropped: monitor.storage.partitions); what is left (the part of a month that
is past, events of the default partition, SQLite) is deleted in batches of one short
transaction each, so the monitor's writer, which shares the database, waits at most one
batch for the write lock. Time is the event's own `ts`, through the time index. The
gaps report knows, per gate, the highest seq deleted, so deleted events are not
reported as missing.

SQLite plans its queries without statistics until something runs ANALYZE, and on
millions of events the reports and the dashboard's pages are several times slower
without them; a sampled ANALYZE each round keeps them current for a fraction of a
second. (PostgreSQL's autovacuum does this on its own.)
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.errors import StoreError
from monitor.storage.store import Store

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
BATCH = 10_000


@dataclass(frozen=True)
class UpkeepPolicy:
    retain_days: float | None = None  # None: keep every event
    every_s: float = 3600.0


def prune(store: Store, days: float, now_ms: int, batch: int = BATCH) -> int:
    """Delete every event older than `days` before `now_ms`; returns how many went."""
    cutoff_ms = now_ms - round(days * DAY_MS)
    deleted = store.drop_partitions_before(cutoff_ms)
    while True:
        count = store.delete_events_before(cutoff_ms, batch)
        deleted += count
        if count < batch:
            break
    store.forget_people_before(cutoff_ms)
    if deleted:
        since = datetime.fromtimestamp(cutoff_ms / 1000, tz=UTC).isoformat(timespec="seconds")
        log.info("retention: deleted %d events older than %s", deleted, since)
    else:
        log.debug("retention: no events older than %g days", days)
    return deleted


class Upkeep:
    """A thread that looks after the store at start and then every `policy.every_s`."""

    def __init__(
        self,
        url: str,
        policy: UpkeepPolicy,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.policy = policy
        self.clock = clock
        self.runs = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="monitor-upkeep", daemon=True)

    def start(self) -> Upkeep:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        store: Store | None = None
        try:
            while True:
                store = store or Store(self.url, create=False, clock=self.clock)
                self._run_once(store)
                if self._stopping.wait(self.policy.every_s):
                    return
        except StoreError as error:
            log.error("store upkeep stopped: %s", error)
        finally:
            if store is not None:
                store.close()

    def _run_once(self, store: Store) -> None:
        try:
            store.prepare_partitions()
            if self.policy.retain_days is not None:
                prune(store, self.policy.retain_days, round(self.clock() * 1000))
            store.refresh_statistics()
        except StoreError as error:  # unavailable for now: the next round tries again
            log.warning("store upkeep: %s; trying again in %g s", error, self.policy.every_s)
        self.runs += 1
