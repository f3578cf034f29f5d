"""The timers behind patterns and pulses: real threads and the hand-cranked clock."""

from __future__ import annotations

import threading
import time

import pytest

from firmware.scheduler import REAL_TIME, ManualScheduler, ThreadTimer


class Recorder:
    """A client that asks to run at a fixed list of moments (relative to its first run)."""

    def __init__(self, offsets: list[float], log: list[str] | None = None, name: str = "") -> None:
        self.offsets = list(offsets)
        self.runs: list[float] = []
        self.ran = threading.Event()
        self.log = log if log is not None else []
        self.name = name

    def refresh(self, now: float) -> float | None:
        if not self.runs:
            self.start = now
        self.runs.append(now)
        self.log.append(self.name)
        self.ran.set()
        return self.start + self.offsets.pop(0) if self.offsets else None


def test_manual_scheduler_runs_clients_at_their_exact_deadlines_in_order() -> None:
    scheduler = ManualScheduler(start=0.0)
    order: list[str] = []
    first, second = Recorder([0.5, 1.0], order, "first"), Recorder([0.7], order, "second")
    scheduler.start(first.refresh, "first")
    scheduler.start(second.refresh, "second")
    scheduler.advance(0.6)
    assert first.runs == [0.0, 0.5]
    assert scheduler.now() == 0.6
    scheduler.advance(10)
    assert first.runs == [0.0, 0.5, 1.0]
    assert second.runs == [0.0, 0.7]
    assert order == ["first", "second", "first", "second", "first"]
    assert scheduler.now() == 10.6


def test_manual_scheduler_refuses_a_deadline_that_is_not_ahead() -> None:
    scheduler = ManualScheduler(start=5.0)
    with pytest.raises(RuntimeError, match="does not lie after"):
        scheduler.start(lambda now: now, "stuck")


def test_manual_wake_runs_at_once_and_stop_forgets_the_client() -> None:
    scheduler = ManualScheduler(start=0.0)
    client = Recorder([1.0])
    timer = scheduler.start(client.refresh, "client")
    timer.wake()
    assert client.runs == [0.0, 0.0]
    timer.stop()
    scheduler.advance(5)
    assert client.runs == [0.0, 0.0]


def test_thread_timer_runs_at_the_deadline() -> None:
    client = Recorder([0.1])
    timer = REAL_TIME.start(client.refresh, "test-timer")
    try:
        deadline = time.monotonic() + 2
        while len(client.runs) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(client.runs) == 2
        assert 0.1 <= client.runs[1] - client.runs[0] < 0.2
    finally:
        timer.stop()


def test_thread_timer_wakes_on_demand() -> None:
    client = Recorder([])
    timer = REAL_TIME.start(client.refresh, "test-timer")
    try:
        assert client.ran.wait(2)
        client.ran.clear()
        timer.wake()
        assert client.ran.wait(2)
        assert len(client.runs) == 2
    finally:
        timer.stop()


def test_thread_timer_stops_even_from_its_own_thread() -> None:
    stopped = threading.Event()
    holder: list[ThreadTimer] = []

    def refresh(now: float) -> float | None:
        if holder:
            holder[0].stop()
            stopped.set()
        return now + 0.01

    timer = ThreadTimer(refresh, "self-stopping")
    holder.append(timer)
    assert stopped.wait(2)
    timer.stop()
    deadline = time.monotonic() + 2
    while timer.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not timer.alive
