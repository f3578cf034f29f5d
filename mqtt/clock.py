"""Whether the gate's wall clock deserves belief: events carry the answer as `ts_trusted`.

A Raspberry Pi has no battery clock: it boots with the time it last saved, and NTP steps
it later, if the network allows. Event order never depends on the clock (`seq` does
that); the flag tells consumers when `ts` may be wrong. The clock is not trusted when:

- it reads before `floor` (a date this software cannot predate, e.g. 1970 after a reset);
- it stepped by more than `max_step_s` against the monotonic clock since it was last
  known good (someone set it, or it jumped), until the kernel reports it synchronised;
- the kernel reports it unsynchronised (adjtimex says TIME_ERROR), where that is known.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

SANE_FLOOR = 1_767_225_600.0  # 2026-01-01T00:00:00Z, before this code was written
TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised
TIMEX_BUFFER = 512  # larger than struct timex on every Linux ABI (208 bytes on 64-bit)


def kernel_clock_synced() -> bool | None:
    """The kernel's view (adjtimex, read only): True synchronised, False not, None unknown."""
    adjtimex = _adjtimex()
    if adjtimex is None:
        return None
    state = adjtimex(ctypes.create_string_buffer(TIMEX_BUFFER))  # modes = 0: only read
    if state < 0:
        return None
    return bool(state != TIME_ERROR)


@functools.cache
def _adjtimex() -> Callable[[ctypes.Array[ctypes.c_char]], int] | None:
    name = ctypes.util.find_library("c")  # runs ldconfig: once per process
    try:
        return ctypes.CDLL(name, use_errno=True).adjtimex if name else None
    except (OSError, AttributeError):
        return None


class ClockTrust:
    """Reads the wall clock and says whether to trust it; call from one thread."""

    def __init__(
        self,
        *,
        floor: float = SANE_FLOOR,
        max_step_s: float = 2.0,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        synced: Callable[[], bool | None] = kernel_clock_synced,
    ) -> None:
        self._floor = floor
        self._max_step_s = max_step_s
        self._wall = wall
        self._monotonic = monotonic
        self._synced = synced
        self._offset = wall() - monotonic()
        self._trusted: bool | None = None

    def now(self) -> tuple[float, bool]:
        """The wall clock in epoch seconds, and whether it is trusted."""
        wall = self._wall()
        offset = wall - self._monotonic()
        synced = self._synced()
        if synced:
            self._offset = offset  # steps the kernel vouches for are corrections
        problem = self._problem(wall, offset, synced)
        self._note(problem)
        return wall, problem is None

    def _problem(self, wall: float, offset: float, synced: bool | None) -> str | None:
        if wall < self._floor:
            return f"the wall clock reads {time.strftime('%Y-%m-%d', time.gmtime(wall))}"
        step = offset - self._offset
        if abs(step) > self._max_step_s:
            return f"the wall clock stepped {step:+.1f} s and is not synchronised"
        if synced is False:
            return "the kernel reports the clock unsynchronised"
        return None

    def _note(self, problem: str | None) -> None:
        trusted = problem is None
        if trusted == self._trusted:
            return
        if problem:
            log.warning("event timestamps are flagged untrusted: %s", problem)
        elif self._trusted is not None:
            log.info("the wall clock is trusted again")
        self._trusted = trusted
