"""Time, passed in: the wall clock for validity (exp, nbf, allowlist dates, timestamps)
and a monotonic clock for windows (repeat, passback), which a clock jump cannot stretch.

Everything that decides takes a `Clock`, so tests and the demo run on `ManualClock`.
"""

from __future__ import annotations

import time
from typing import Protocol

# 2026-01-01T00:00:00Z: a fixed, plausible start for manual clocks.
DEFAULT_EPOCH_S = 1_767_225_600.0


class Clock(Protocol):
    def now(self) -> float:
        """Wall clock, seconds since the epoch (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never goes back, immune to clock changes."""
        ...


class SystemClock:
    """The machine's clocks."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told: `advance` moves both clocks, `jump` only the wall."""

    def __init__(self, now: float = DEFAULT_EPOCH_S, monotonic: float = 1_000.0) -> None:
        self._now = now
        self._monotonic = monotonic

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Let time pass."""
        if seconds < 0:
            raise ValueError("time passes forwards; use jump() to set the wall clock back")
        self._now += seconds
        self._monotonic += seconds

    def jump(self, now: float) -> None:
        """Set the wall clock (an NTP step, a wrong RTC) without time passing."""
        self._now = now
