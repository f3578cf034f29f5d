"""Login rate limiting: after too many failed logins, a client address or an account name
is refused for a while, whatever password it offers (guessing must stay slow even
from many addresses, and one address must not lock out everyone)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    failures: int = 5  # allowed within the window
    window_s: float = 15 * 60.0


class LoginLimiter:
    """Failed logins per key ("ip:..." or "user:..."), in a sliding window; thread-safe."""

    def __init__(self, limits: Limits | None = None, clock: Callable[[], float] = time.monotonic):
        self.limits = limits or Limits()
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, keys: Iterable[str]) -> float | None:
        """Seconds until these keys may try again, or None when they may now."""
        now = self.clock()
        waits = []
        with self._lock:
            for key in keys:
                times = self._recent(key, now)
                if len(times) >= self.limits.failures:
                    waits.append(times[0] + self.limits.window_s - now)
        return max(waits) if waits else None

    def failed(self, keys: Iterable[str]) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key, deque())
        while times and times[0] <= now - self.limits.window_s:
            times.popleft()
        if not times:
            self._failures.pop(key, None)
        return times
