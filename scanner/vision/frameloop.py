"""The frame loop: capture on one thread, decode the newest frame on another.

The capture thread reads the source as fast as it delivers and keeps one frame: a newer
frame replaces one not decoded yet (counted as dropped), so the decoder always works on
what the camera sees now and a slow frame never builds a queue. The decode thread takes
the newest frame, decodes it and, when codes were read, calls `on_codes(frame, codes)`
on its own thread: the callee must hand the work on and return (outputs, storage and
network stay off this path).

Stalls are handled here, and crashes: a read that raises anything unexpected is a
camera fault too; the camera is restarted and capture goes on. When reads fail
(timeouts, a camera gone) and no frame has come for `stall_s`, the loop calls
`on_fault(message)` once for that stall and restarts the source, again after `stall_s`,
then twice as long each time up to a minute, until frames come back (logged). A read
that never returns at all (a kernel hang) cannot be restarted from here:
`stats().stalled` turns true, and the daemon should stop pinging the systemd watchdog
while it is (`stats().healthy`).
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from scanner.camera import CameraError, CameraTimeout, EndOfStream, Frame, FrameSource
from scanner.vision.decode import Code, Decoder

log = logging.getLogger(__name__)

OnCodes = Callable[[Frame, list[Code]], None]
OnFault = Callable[[str], None]

FPS_WINDOW_S = 2.0  # fps is measured over the frames of the last two seconds
DECODE_SAMPLES = 64  # decode_ms is the median of this many recent decodes
RETRY_S = 0.1  # pause after a read that failed at once, so a dead camera is not spun on
MAX_RESTART_INTERVAL_S = 60.0


@dataclass(frozen=True, slots=True)
class LoopStats:
    fps: float  # frames captured per second, recently
    decode_ms: float  # median decode time of recent frames
    frames_captured: int
    frames_decoded: int
    frames_dropped: int  # captured, then replaced by a newer frame before decoding
    last_frame_at: float | None  # monotonic time of the last frame, None before the first
    capture_alive: bool
    decode_alive: bool
    stalled: bool  # no frame for stall_s
    restarts: int  # camera restarts after stalls
    ended: bool  # a non-looping replay delivered its last frame

    @property
    def healthy(self) -> bool:
        """Both threads working and frames coming (or a replay played to its end): what a
        watchdog ping should vouch for."""
        return self.ended or (self.capture_alive and self.decode_alive and not self.stalled)


class FrameLoop:
    def __init__(
        self,
        source: FrameSource,
        decoder: Decoder,
        on_codes: OnCodes,
        *,
        on_fault: OnFault | None = None,
        stall_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._decoder = decoder
        self._on_codes = on_codes
        self._on_fault = on_fault
        self._stall_s = stall_s
        self._clock = clock
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._capture_loop, name="camera", daemon=True),
            threading.Thread(target=self._decode_loop, name="decode", daemon=True),
        ]
        self._latest: Frame | None = None
        self._captured = self._decoded = self._dropped = self._restarts = 0
        self._capture_times: deque[float] = deque()
        self._decode_times: deque[float] = deque(maxlen=DECODE_SAMPLES)
        self._seen_frame = False
        self._last_frame_at = clock()
        self._stall = Stall()
        self._ended = False

    def start(self) -> None:
        """Start both threads; the loop owns the source from now on."""
        self._last_frame_at = self._clock()
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop both threads and close the source."""
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(timeout=self._stall_s)
        if self._threads[0].is_alive():
            log.warning("camera %s is stuck in a read; closing it anyway", self._source.name)
        self._source.close()

    def stats(self) -> LoopStats:
        with self._changed:
            now = self._clock()
            return LoopStats(
                fps=self._fps(now),
                decode_ms=statistics.median(self._decode_times) * 1000
                if self._decode_times
                else 0.0,
                frames_captured=self._captured,
                frames_decoded=self._decoded,
                frames_dropped=self._dropped,
                last_frame_at=self._last_frame_at if self._seen_frame else None,
                capture_alive=self._threads[0].is_alive(),
                decode_alive=self._threads[1].is_alive(),
                stalled=not self._ended and now - self._last_frame_at >= self._stall_s,
                restarts=self._restarts,
                ended=self._ended,
            )

    def _fps(self, now: float) -> float:
        while self._capture_times and now - self._capture_times[0] > FPS_WINDOW_S:
            self._capture_times.popleft()
        times = self._capture_times
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    # The capture thread

    def _capture_loop(self) -> None:
        crashes = 0
        while not self._stopping.is_set():
            captured = self._captured
            try:
                self._capture_until_stopped()
                return
            except Exception as error:
                log.exception("the camera thread failed")
                crashes = 1 if self._captured > captured else crashes + 1
                self._recover_from_crash(error, crashes)

    def _recover_from_crash(self, error: Exception, crashes: int) -> None:
        """An unexpected error in a read is a camera fault, not the end of capture:
        report it, restart the camera, and read again (backing off while it repeats)."""
        self._fault(
            f"camera {self._source.name}: the capture thread failed: {error!r}; restarting it"
        )
        with self._changed:
            self._restarts += 1
        try:
            self._source.restart()
        except Exception:  # the next read tells whether the camera is back
            log.exception("camera %s: restart failed", self._source.name)
        self._stopping.wait(min(RETRY_S * 2 ** (crashes - 1), MAX_RESTART_INTERVAL_S))

    def _capture_until_stopped(self) -> None:
        while not self._stopping.is_set():
            try:
                frame = self._source.read()
            except EndOfStream as end:
                log.info("%s", end)
                self._finish()
                return
            except CameraError as error:
                self._read_failed(error)
                continue
            self._offer(frame)

    def _offer(self, frame: Frame) -> None:
        with self._changed:
            if self._latest is not None:
                self._dropped += 1
            self._latest = frame
            self._captured += 1
            self._last_frame_at = self._clock()
            self._capture_times.append(self._last_frame_at)
            self._seen_frame = True
            stalled_for = self._stall.end(self._last_frame_at)
            self._changed.notify()
        if stalled_for is not None:
            log.info("camera %s delivers frames again after %.1f s", self._source.name, stalled_for)

    def _finish(self) -> None:
        with self._changed:
            self._ended = True
            self._changed.notify()

    def _read_failed(self, error: CameraError) -> None:
        now = self._clock()
        with self._changed:
            silent = now - self._last_frame_at
        if silent < self._stall_s or not self._stall.restart_due(now):
            if not isinstance(error, CameraTimeout):
                self._stopping.wait(RETRY_S)
            return
        if self._stall.begin(self._last_frame_at):
            self._fault(
                f"camera {self._source.name}: no frame for {silent:.1f} s ({error}); restarting it"
            )
        self._restart(now)

    def _restart(self, now: float) -> None:
        with self._changed:
            self._restarts += 1
        self._stall.restarted(now, self._stall_s)
        try:
            self._source.restart()
        except CameraError as error:
            log.warning("camera %s: restart failed: %s", self._source.name, error)
        else:
            log.warning("camera %s restarted", self._source.name)

    def _fault(self, message: str) -> None:
        log.error("%s", message)
        if self._on_fault is None:
            return
        try:
            self._on_fault(message)
        except Exception:
            log.exception("on_fault failed")

    # The decode thread

    def _decode_loop(self) -> None:
        while (frame := self._newest()) is not None:
            start = time.perf_counter()
            try:
                codes = self._decoder.decode(frame.image)
            except Exception:
                log.exception("the decoder failed on frame %d", frame.number)
                codes = []
            took = time.perf_counter() - start
            with self._changed:
                self._decoded += 1
                self._decode_times.append(took)
            if codes:
                self._deliver(frame, codes)

    def _newest(self) -> Frame | None:
        """Wait for a frame not decoded yet; None once stopping, or at the end of a replay."""
        with self._changed:
            while self._latest is None and not self._ended and not self._stopping.is_set():
                self._changed.wait()
            if self._stopping.is_set():
                return None
            frame, self._latest = self._latest, None
            return frame

    def _deliver(self, frame: Frame, codes: list[Code]) -> None:
        try:
            self._on_codes(frame, codes)
        except Exception:
            log.exception("on_codes failed for frame %d", frame.number)


class Stall:
    """One stall episode: when it began, and when the next restart is due (backing off).

    Used by the capture thread only.
    """

    def __init__(self) -> None:
        self._since: float | None = None
        self._next_restart = 0.0
        self._interval = 0.0

    def restart_due(self, now: float) -> bool:
        return now >= self._next_restart

    def begin(self, last_frame_at: float) -> bool:
        """Mark the stall begun; True the first time, when it is to be reported."""
        first = self._since is None
        if first:
            self._since = last_frame_at
        return first

    def restarted(self, now: float, stall_s: float) -> None:
        self._interval = min(max(stall_s, 2 * self._interval), MAX_RESTART_INTERVAL_S)
        self._next_restart = now + self._interval

    def end(self, now: float) -> float | None:
        """Frames are back: how long the stall lasted, or None if there was none."""
        since, self._since = self._since, None
        self._next_restart, self._interval = 0.0, 0.0
        return None if since is None else now - since
