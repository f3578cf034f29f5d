"""The systemd notify protocol (sd_notify(3)) in the few lines it takes.

`qrgate run` is a `Type=notify` service: it says READY=1 once the camera delivers frames,
keeps a one-line STATUS=, pings WATCHDOG=1 only while its loops are alive, and says
STOPPING=1 on its way out. Outside systemd (`$NOTIFY_SOCKET` unset) every call does
nothing. A failed send is logged, never raised: the gate keeps working when its
supervisor does not listen. (The PyPI `sdnotify` package swallows such errors silently.)
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

NOTIFY_SOCKET_ENV = "NOTIFY_SOCKET"
WATCHDOG_USEC_ENV = "WATCHDOG_USEC"
WATCHDOG_PID_ENV = "WATCHDOG_PID"

Check = Callable[[], bool]


def socket_address(value: str | None) -> str | None:
    """The AF_UNIX address named by $NOTIFY_SOCKET: a path, or `@name` (abstract socket)."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    log.warning("NOTIFY_SOCKET=%r is neither a path nor @name: systemd is not notified", value)
    return None


class Notifier:
    """Tells the service manager about our state; does nothing when not under systemd."""

    def __init__(self, address: str | None) -> None:
        self.address = socket_address(address)
        self._socket: socket.socket | None = None
        self._failing = False
        if self.address is not None:
            self._socket = open_socket()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Notifier:
        return cls(environ.get(NOTIFY_SOCKET_ENV))

    @property
    def enabled(self) -> bool:
        return self._socket is not None

    def notify(self, *assignments: str) -> bool:
        """Send `KEY=value` assignments as one datagram; True when it was sent."""
        sock, address = self._socket, self.address  # close() may run on another thread
        if sock is None or address is None:
            return False
        try:
            sock.sendto("\n".join(assignments).encode(), address)
        except OSError as error:
            self._report_failure(assignments, error)
            return False
        if self._failing:
            self._failing = False
            log.info("notifying systemd works again")
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *status_assignment(status))

    def status(self, text: str) -> bool:
        return self.notify(*status_assignment(text))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *status_assignment(status))

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

    def _report_failure(self, assignments: tuple[str, ...], error: OSError) -> None:
        # A supervisor that went away would otherwise log on every watchdog ping.
        level = logging.DEBUG if self._failing else logging.WARNING
        self._failing = True
        keys = " ".join(assignment.partition("=")[0] for assignment in assignments)
        log.log(level, "cannot notify systemd (%s): %s", keys, error)


def open_socket() -> socket.socket | None:
    """A non-blocking datagram socket: a stalled systemd must never stall the gate."""
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    except OSError as error:
        log.warning("cannot open a socket to notify systemd: %s", error)
        return None
    sock.setblocking(False)
    return sock


def status_assignment(text: str | None) -> list[str]:
    """`STATUS=text` as one line (a newline would start a new assignment), or nothing."""
    if text is None:
        return []
    return ["STATUS=" + " ".join(text.splitlines())]


def watchdog_interval(
    environ: Mapping[str, str] = os.environ, pid: int | None = None
) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of `WatchdogSec=`; None without a watchdog.

    `WATCHDOG_PID`, when set, names the process the watchdog is meant for: a child that
    inherited the environment does not ping on its parent's behalf.
    """
    usec, owner = environ.get(WATCHDOG_USEC_ENV), environ.get(WATCHDOG_PID_ENV)
    if not usec:
        return None
    try:
        period_us, owner_pid = int(usec), int(owner) if owner else None
    except ValueError:
        log.warning("ignoring a malformed watchdog: WATCHDOG_USEC=%r WATCHDOG_PID=%r", usec, owner)
        return None
    ours = os.getpid() if pid is None else pid
    if period_us <= 0 or owner_pid not in (None, ours):
        return None
    return period_us / 2_000_000


class Heartbeat:
    """When a loop last showed it is alive; `alive` is a check for the Watchdog."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s = max_age_s
        self._clock = clock
        self._last: float | None = None

    def beat(self) -> None:
        self._last = self._clock()

    def alive(self) -> bool:
        return self._last is not None and self._clock() - self._last <= self.max_age_s


class Watchdog:
    """Pings systemd's watchdog from its own thread, only while every liveness check passes.

    When the frame loop hangs or the publisher dies, the pings stop, systemd kills the
    service (SIGABRT) and `Restart=always` brings it back: the last resort behind the
    daemon's own recovery, for hangs no code of ours can break out of.
    """

    def __init__(
        self, notifier: Notifier, checks: Mapping[str, Check], interval_s: float | None
    ) -> None:
        self.notifier = notifier
        self.checks = dict(checks)
        self.interval_s = interval_s
        self._failing: list[str] = []
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_environment(cls, notifier: Notifier, checks: Mapping[str, Check]) -> Watchdog:
        return cls(notifier, checks, watchdog_interval())

    @property
    def enabled(self) -> bool:
        return self.interval_s is not None and self.notifier.enabled

    def tick(self) -> bool:
        """Ping if every check passes; True when a ping was sent."""
        failing = self.failing_checks()
        if failing != self._failing:
            self._log_change(failing)
            self._failing = failing
        return not failing and self.notifier.watchdog()

    def failing_checks(self) -> list[str]:
        return [name for name, check in self.checks.items() if not self._passes(name, check)]

    def start(self) -> None:
        """Ping every interval on a daemon thread; nothing to do without a watchdog."""
        if not self.enabled or self._thread is not None:
            return
        self._stopped.clear()
        self._thread = threading.Thread(target=self._run, name="watchdog", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        assert self.interval_s is not None
        while True:
            self.tick()
            if self._stopped.wait(self.interval_s):
                return

    def _passes(self, name: str, check: Check) -> bool:
        """Run one liveness check; one that raises has failed (its traceback logged once)."""
        try:
            return bool(check())
        except Exception:
            if name not in self._failing:
                log.exception("watchdog check %r raised", name)
            return False

    def _log_change(self, failing: list[str]) -> None:
        if failing:
            log.warning("not pinging the systemd watchdog: %s not alive", ", ".join(failing))
        else:
            log.info("pinging the systemd watchdog again: %s alive", ", ".join(self.checks))
