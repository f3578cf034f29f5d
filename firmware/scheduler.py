"""Time for the outputs and inputs: a timer thread in real life, a hand-cranked clock in tests.

A client hands the scheduler a `refresh(now) -> deadline` function: it brings its
pins up to date for `now` and says when it next needs to run (None: not until woken).
`ThreadScheduler` runs each client on a small daemon thread of its own, so nothing a
pattern does ever waits in the caller. `ManualScheduler` runs them only when the test
advances its clock, at the exact deadlines they asked for, so pin transitions can be
asserted one by one without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

Refresh = Callable[[float], float | None]


class Timer(Protocol):
    def wake(self) -> None:
        """Run the client's refresh soon: its state changed, so may its deadline."""

    def stop(self) -> None:
        """Run it no more; idempotent, callable from any thread, even the timer's own."""


class Scheduler(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic clock."""

    def start(self, refresh: Refresh, name: str) -> Timer:
        """Run `refresh` now and then whenever its last deadline comes or it is woken."""


class ThreadScheduler:
    """Real time: one daemon thread per client, waiting on a condition until its deadline."""

    def now(self) -> float:
        return time.monotonic()

    def start(self, refresh: Refresh, name: str) -> Timer:
        return ThreadTimer(refresh, name)


class ThreadTimer:
    # A daemon thread, so a forgotten close() cannot hang interpreter exit; the owners
    # close themselves from atexit, which runs while daemon threads still live.
    JOIN_TIMEOUT_S = 2.0

    def __init__(self, refresh: Refresh, name: str) -> None:
        self._refresh = refresh
        self._condition = threading.Condition()
        self._woken = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def wake(self) -> None:
        with self._condition:
            self._woken = True
            self._condition.notify()

    def stop(self) -> None:
        with self._condition:
            self._stopping = True
            self._condition.notify()
        if self._thread is not threading.current_thread():
            self._thread.join(self.JOIN_TIMEOUT_S)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        deadline = self._refresh(time.monotonic())
        while self._sleep_until(deadline):
            deadline = self._refresh(time.monotonic())

    def _sleep_until(self, deadline: float | None) -> bool:
        """Wait for the deadline or a wake-up; False once stopping."""
        with self._condition:
            while not (self._stopping or self._woken):
                timeout = None if deadline is None else deadline - time.monotonic()
                if timeout is not None and timeout <= 0:
                    break
                self._condition.wait(timeout)
            self._woken = False
            return not self._stopping


class ManualScheduler:
    """Time that moves only in `advance`; clients run synchronously, at their deadlines.

    For tests and simulations. `wake` runs the client at once in the caller's thread.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._timers: list[ManualTimer] = []

    def now(self) -> float:
        return self._now

    def start(self, refresh: Refresh, name: str) -> Timer:
        timer = ManualTimer(self, refresh, name)
        self._timers.append(timer)
        timer.wake()
        return timer

    def advance(self, seconds: float) -> None:
        """Move the clock on, running every client at each deadline passed on the way."""
        target = self._now + seconds
        while (timer := self._next_due(target)) is not None:
            assert timer.deadline is not None
            self._now = max(self._now, timer.deadline)
            timer.wake()
        self._now = target

    def _next_due(self, target: float) -> ManualTimer | None:
        due = [t for t in self._timers if t.deadline is not None and t.deadline <= target]
        return min(due, key=lambda t: t.deadline or 0.0, default=None)

    def forget(self, timer: ManualTimer) -> None:
        if timer in self._timers:
            self._timers.remove(timer)


class ManualTimer:
    def __init__(self, scheduler: ManualScheduler, refresh: Refresh, name: str) -> None:
        self._scheduler = scheduler
        self._refresh = refresh
        self.name = name
        self.deadline: float | None = None

    def wake(self) -> None:
        now = self._scheduler.now()
        deadline = self._refresh(now)
        if deadline is not None and deadline <= now:
            raise RuntimeError(f"{self.name}: deadline {deadline} does not lie after {now}")
        self.deadline = deadline

    def stop(self) -> None:
        self.deadline = None
        self._scheduler.forget(self)


REAL_TIME = ThreadScheduler()
