"""`qrgate run`: the gate daemon's life, from start to a stop with the relay off.

Threads: the frame loop (capture + decode, calling `Gate.on_codes`), the publisher (the
one owner of the MQTT connection, which also runs command handlers), the firmware's timer
and input callbacks, and the systemd watchdog. The main thread only supervises: it says
READY=1 once the camera delivers frames, keeps STATUS= current, clears the camera fault
when frames come back, reloads the mode and the key sets on SIGHUP (logging what it
read), and on SIGTERM/SIGINT stops everything — the relay first.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from scanner.errors import QrgateError
from scanner.vision.frameloop import LoopStats

if TYPE_CHECKING:
    from firmware.inputs import Inputs
    from mqtt.outbox import Outbox
    from mqtt.publisher import Publisher
    from scanner.daemon.gate import Gate
    from scanner.daemon.sdnotify import Notifier, Watchdog
    from scanner.vision.frameloop import FrameLoop

log = logging.getLogger(__name__)

SUPERVISE_EVERY_S = 0.2
STATUS_EVERY_S = 5.0
STOP_PUBLISHER_S = 1.0  # of the 2 s a stop may take, what the `stopped` status may have


@dataclass
class Parts:
    """Everything the daemon runs, built by `scanner.daemon.assemble` (or a test)."""

    gate: Gate
    loop: FrameLoop
    publisher: Publisher
    outbox: Outbox
    inputs: Inputs | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)  # store, outbox...


class Daemon:
    """Runs the parts until stopped; `run()` belongs on the main thread (signals)."""

    def __init__(self, parts: Parts, notifier: Notifier, watchdog: Watchdog | None = None):
        self.parts = parts
        self._notifier = notifier
        self._watchdog = watchdog
        self._stopping = threading.Event()
        self._reload = threading.Event()
        self._ready = False
        self._stopped = False

    def run(self) -> int:
        """Start, supervise until SIGTERM/SIGINT or `stop()`, then stop cleanly."""
        with self._signals():
            try:
                self._start()
                self._supervise()
            finally:
                self.shutdown()
        return 0

    def stop(self) -> None:
        """Ask `run()` to return (from any thread)."""
        self._stopping.set()

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def _start(self) -> None:
        self.parts.publisher.start()
        self.parts.loop.start()
        log.info("gate started; waiting for the camera's first frame")

    def _supervise(self) -> None:
        next_status = 0.0
        while not self._stopping.wait(SUPERVISE_EVERY_S):
            stats = self.parts.loop.stats()
            # Ready once frames come, or once the camera source has ended: a replay
            # played out, or a camera missing since the start given up (its fault stays).
            if not self._ready and (stats.frames_captured or stats.ended):
                self._announce_ready()
            if camera_recovered(self.parts.gate, stats):
                self.parts.gate.clear_fault("camera")
            self.parts.gate.check_clock()
            if self._reload.is_set():
                self._reload_keys()
            if time.monotonic() >= next_status:
                self._notifier.status(self.summary(stats))
                next_status = time.monotonic() + STATUS_EVERY_S

    def _announce_ready(self) -> None:
        self._ready = True
        self._notifier.ready(self.summary(self.parts.loop.stats()))
        if self._watchdog is not None and self._watchdog.enabled:
            self._watchdog.start()
        frames = self.parts.loop.stats().frames_captured
        log.info(
            "ready: %s", "the camera delivers frames" if frames else "no camera, see its fault"
        )

    def _reload_keys(self) -> None:
        self._reload.clear()
        try:
            reloaded = self.parts.gate.policy.reload()
        except QrgateError as error:  # the store: nothing was reloaded
            log.error("reload failed, keeping the mode and keys in use: %s", error)
            return
        log.info("reloaded: %s", "; ".join(reloaded.read))
        for kept in reloaded.kept:
            log.error("reload: %s", kept)

    def shutdown(self) -> None:
        """Relay off first, then every thread; idempotent, bounded to about 2 s."""
        if self._stopped:
            return
        self._stopped = True
        self.parts.gate.outputs.safe_state()
        self._notifier.stopping("stopping")
        if self._watchdog is not None:
            self._watchdog.stop()
        for step in self._shutdown_steps():
            try:
                step()
            except Exception:  # every step must run; the relay is off already
                log.exception("while stopping")
        log.info("stopped; relay %s", "ON" if self.parts.gate.outputs.snapshot().relay else "off")

    def _shutdown_steps(self) -> Iterator[Callable[[], None]]:
        parts = self.parts
        if parts.inputs is not None:
            yield parts.inputs.close
        yield parts.loop.stop
        yield lambda: parts.publisher.stop("stopped", timeout_s=STOP_PUBLISHER_S)
        yield parts.gate.outputs.close
        yield from reversed(parts.closers)

    def summary(self, stats: LoopStats) -> str:
        """The one-line STATUS= for `systemctl status`."""
        figures = self.parts.gate.figures()
        link = "broker connected" if self.parts.publisher.connected else "broker unreachable"
        faults = figures["faults"]
        parts = [
            f"mode {figures['mode']}",
            f"{stats.fps:.0f} fps",
            f"decode {stats.decode_ms:.1f} ms",
            link,
            f"scans {figures['scans']['granted']} granted {figures['scans']['denied']} denied",
        ]
        if faults:
            parts.append("FAULT " + "; ".join(f"{area}: {text}" for area, text in faults.items()))
        return " | ".join(parts)

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM and SIGINT stop, SIGHUP reloads; the old handlers come back after."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        wanted = {
            signal.SIGTERM: self._on_stop,
            signal.SIGINT: self._on_stop,
            signal.SIGHUP: self._on_reload,
        }
        previous = {number: signal.signal(number, handler) for number, handler in wanted.items()}
        try:
            yield
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _on_stop(self, number: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping", signal.Signals(number).name)
        self._stopping.set()

    def _on_reload(self, _number: int, _frame: FrameType | None) -> None:
        self._reload.set()


def camera_recovered(gate: Gate, stats: LoopStats) -> bool:
    """A camera fault ends when a frame has come since it was raised, from a capture
    thread that is alive (a thread that died is no recovery, however recent its last
    frame)."""
    fault = gate.faults.get("camera")
    return (
        fault is not None
        and stats.capture_alive
        and not stats.stalled
        and stats.last_frame_at is not None
        and stats.last_frame_at > fault.at
    )


def health_figures(gate: Gate, loop: FrameLoop) -> dict[str, Any]:
    """The gate's figures for the publisher's periodic health report."""
    stats = loop.stats()
    return {
        **gate.figures(),
        "camera_fps": round(stats.fps, 1),
        "decode_ms": round(stats.decode_ms, 2),
        "camera": {
            "frames": stats.frames_captured,
            "dropped": stats.frames_dropped,
            "restarts": stats.restarts,
            "stalled": stats.stalled,
        },
    }
