"""Log a failure that repeats once, then now and then, never once per retry.

A gate retrying against a full disk or a damaged store would otherwise write a line per
attempt, onto the very disk that is full.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

REPEAT_EVERY_S = 60.0


class Throttle:
    """Says which occurrences of a repeating message are worth a log line: the first of
    each kind, then at most one every `interval_s`, telling how many were held back."""

    def __init__(
        self, interval_s: float = REPEAT_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def due(self, kind: str) -> int | None:
        """None: hold this one back; else how many of `kind` were held back before it."""
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self._interval_s:
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._held.pop(kind, 0)

    def error(
        self,
        logger: logging.Logger,
        kind: str,
        message: str,
        *args: object,
        exc_info: BaseException | None = None,
    ) -> None:
        """`logger.error(message, *args)` when this `kind` is due, saying how many like it
        were held back since the last line."""
        held = self.due(kind)
        if held is not None:
            suffix = f" ({held} more like it not logged)" if held else ""
            logger.error(message + suffix, *args, exc_info=exc_info)
