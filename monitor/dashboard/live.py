"""The live feed: what changed, numbered, for the browsers' server-sent event streams.

The monitor's threads publish updates (a new event, a gate that changed); each gets the
next id. The last `capacity` updates are kept, so a browser that reconnects with
`Last-Event-ID: N` gets every update after N; one that was away longer is told to
reload. Streams run on the web server's event loop and wait there without a thread
each: publishing wakes them through `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from monitor.storage.records import EventRow

Kind = Literal["event", "gates"]
CAPACITY = 2000


@dataclass(frozen=True)
class Update:
    id: int
    kind: Kind
    event: EventRow | None = None
    at: float = 0.0  # time.time() when published: bench.dashboard measures from it
    # Rendered HTML per (role, language): fifty browsers share one rendering.
    rendered: dict[tuple[str, ...], str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Since:
    """What a stream gets on (re)connecting: the updates after its last id, or, when some
    of them are no longer kept, `missed` (the browser reloads the page)."""

    updates: list[Update]
    missed: bool
    last_id: int


class Hub:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._updates: deque[Update] = deque(maxlen=capacity)
        self._last_id = 0
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self.closed = False

    @property
    def last_id(self) -> int:
        with self._lock:
            return self._last_id

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wake streams on this event loop (the web server's) from now on."""
        self._loop = loop
        self._changed = asyncio.Event()

    def publish(self, kind: Kind, event: EventRow | None = None, at: float = 0.0) -> Update:
        """From any thread: record an update and wake every stream."""
        with self._lock:
            self._last_id += 1
            update = Update(self._last_id, kind, event, at)
            self._updates.append(update)
        self._wake()
        return update

    def close(self) -> None:
        """Streams end (the server is stopping)."""
        self.closed = True
        self._wake()

    def since(self, last_id: int) -> Since:
        with self._lock:
            current = self._last_id
            if last_id > current:  # an id from before a restart: start from now
                return Since([], True, current)
            oldest = self._updates[0].id if self._updates else current + 1
            missed = last_id + 1 < oldest and last_id < current
            updates = [update for update in self._updates if update.id > last_id]
            return Since(updates, missed, current)

    async def wait(self, last_id: int, timeout_s: float) -> None:
        """Until there is an update after `last_id`, the hub closes, or the timeout."""
        changed = self._changed
        if changed is None or self.closed or self.last_id > last_id:
            return
        changed.clear()
        if self.last_id > last_id:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout_s)

    def _wake(self) -> None:
        loop, changed = self._loop, self._changed
        if loop is not None and changed is not None and not loop.is_closed():
            # RuntimeError: the loop closed meanwhile, and nobody waits any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(changed.set)
