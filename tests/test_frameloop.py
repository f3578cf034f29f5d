"""The frame loop: newest frame only, callbacks off the slow path, stalls and restarts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from scanner.camera import CameraError, CameraTimeout, EndOfStream, Frame
from scanner.camera.replay import ReplaySource
from scanner.config import CameraSection
from scanner.vision import frameloop
from scanner.vision.decode import Code, make_decoder
from scanner.vision.frameloop import FrameLoop, LoopStats
from tests.support.frames import Look, empty_frame, render_qr, save_png

BLANK = np.zeros((4, 4), np.uint8)
CORNERS = ((0, 0), (1, 0), (1, 1), (0, 1))


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Poll until `condition` holds; fail after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.002)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class ScriptedSource:
    """Reads follow a script: "frame", "timeout" (one second passes), "error" or
    "crash"; then EndOfStream. Every read and restart is recorded with its time."""

    name = "scripted"

    def __init__(self, script: list[str], clock: FakeClock, frame_s: float = 0.1) -> None:
        self.script, self.clock, self.frame_s = list(script), clock, frame_s
        self.frames = 0
        self.reads: list[float] = []
        self.restarts: list[float] = []
        self.closed = False

    def read(self) -> Frame:
        self.reads.append(self.clock.now)
        if not self.script:
            raise EndOfStream("scripted: done")
        step = self.script.pop(0)
        if step == "timeout":
            self.clock.now += 1.0
            raise CameraTimeout("scripted: no frame within 1 s")
        if step == "error":
            raise CameraError("scripted: device gone")
        if step == "crash":
            raise ValueError("a bug in the source")
        self.clock.now += self.frame_s
        self.frames += 1
        return Frame(BLANK, self.clock.now, self.frames)

    def restart(self) -> None:
        self.restarts.append(self.clock.now)

    def close(self) -> None:
        self.closed = True


class GatedDecoder:
    """Records the frames it decodes; when `held`, holds on the first until `gate` is
    set; reads a code from every frame whose number is in `codes_on`."""

    name = "gated"

    def __init__(self, codes_on: set[int] | None = None, held: bool = False) -> None:
        self.gate = threading.Event()
        if not held:
            self.gate.set()
        self.codes_on = codes_on or set()
        self.decoded: list[int] = []
        self.frames = 0

    def decode(self, image: np.ndarray) -> list[Code]:  # type: ignore[type-arg]
        self.frames += 1
        if self.frames == 1:
            assert self.gate.wait(5)
        number = int(image[0, 0]) if image.size else 0
        self.decoded.append(number)
        return [Code.of(b"W-%d" % number, CORNERS, "gated")] if number in self.codes_on else []


class NumberedSource(ScriptedSource):
    """Frames whose first pixel carries their number, so the decoder can tell them apart."""

    def read(self) -> Frame:
        frame = super().read()
        image = np.full((4, 4), frame.number, np.uint8)
        return Frame(image, frame.captured, frame.number)


def run_to_end(loop: FrameLoop) -> LoopStats:
    loop.start()
    wait_for(lambda: loop.stats().ended and not loop.stats().decode_alive)
    loop.stop()
    return loop.stats()


def test_decoder_always_takes_the_newest_frame() -> None:
    decoder = GatedDecoder(codes_on={1, 10}, held=True)

    class AfterTheFirst(NumberedSource):
        def read(self) -> Frame:  # frames 2 to 10 come while frame 1 is being decoded
            if self.frames == 1:
                wait_for(lambda: decoder.frames == 1)
            return super().read()

    source = AfterTheFirst(["frame"] * 10, FakeClock())
    delivered: list[tuple[int, list[bytes]]] = []
    loop = FrameLoop(
        source, decoder, lambda f, c: delivered.append((f.number, [x.payload for x in c]))
    )
    loop.start()
    wait_for(lambda: loop.stats().frames_captured == 10)
    decoder.gate.set()
    wait_for(lambda: not loop.stats().decode_alive)
    loop.stop()
    stats = loop.stats()
    assert decoder.decoded == [1, 10]
    assert delivered == [(1, [b"W-1"]), (10, [b"W-10"])]
    assert (stats.frames_captured, stats.frames_decoded, stats.frames_dropped) == (10, 2, 8)
    assert source.closed


def test_figures_for_health_reports() -> None:
    clock = FakeClock()
    source = ScriptedSource(["frame"] * 20, clock, frame_s=0.04)
    loop = FrameLoop(source, GatedDecoder(), lambda f, c: None, clock=clock)
    stats = run_to_end(loop)
    assert stats.fps == pytest.approx(25.0)
    assert stats.decode_ms > 0
    assert stats.last_frame_at == pytest.approx(0.8)
    assert stats.healthy
    assert not stats.stalled


def test_failing_decoder_and_callback_do_not_stop_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Frame 1 breaks the decoder, frame 2 breaks the callback, frame 3 still arrives."""
    decoded: list[int] = []
    delivered: list[int] = []

    class Breaking:
        name = "breaking"

        def decode(self, image: np.ndarray) -> list[Code]:  # type: ignore[type-arg]
            decoded.append(int(image[0, 0]))
            if decoded[-1] == 1:
                raise RuntimeError("decoder bug")
            return [Code.of(b"W", CORNERS, "breaking")]

    class Stepping(NumberedSource):
        def read(self) -> Frame:  # the next frame only once the previous one is decoded
            wait_for(lambda: len(decoded) >= self.frames)
            return super().read()

    def on_codes(frame: Frame, codes: list[Code]) -> None:
        delivered.append(frame.number)
        if frame.number == 2:
            raise RuntimeError("callback bug")

    loop = FrameLoop(Stepping(["frame"] * 3, FakeClock()), Breaking(), on_codes)
    stats = run_to_end(loop)
    assert decoded == [1, 2, 3]
    assert delivered == [2, 3]
    assert stats.frames_decoded == 3
    assert "the decoder failed on frame 1" in caplog.text
    assert "on_codes failed for frame 2" in caplog.text


def test_stall_is_reported_once_and_the_camera_restarted_with_back_off() -> None:
    clock = FakeClock()
    source = ScriptedSource(["frame", *["timeout"] * 30, "frame"], clock, frame_s=0.5)
    faults: list[str] = []
    loop = FrameLoop(
        source, GatedDecoder(), lambda f, c: None, on_fault=faults.append, stall_s=3, clock=clock
    )
    stats = run_to_end(loop)
    assert len(faults) == 1
    assert "camera scripted: no frame for 3.0 s" in faults[0]
    assert "restarting it" in faults[0]
    # Stalled from 0.5 s: restarts after 3 s, then 3, 6, 12 s later.
    assert source.restarts == [3.5, 6.5, 12.5, 24.5]
    assert stats.restarts == 4
    assert stats.last_frame_at == pytest.approx(31.0)


def test_errors_that_return_at_once_are_not_spun_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frameloop, "RETRY_S", 0.05)
    clock = FakeClock()
    source = ScriptedSource(["error"] * 1000, clock)
    loop = FrameLoop(source, GatedDecoder(), lambda f, c: None, clock=clock)
    loop.start()
    time.sleep(0.3)
    loop.stop()
    assert 2 <= len(source.reads) <= 12  # a spinning loop would read thousands of times


def test_a_read_that_never_returns_shows_as_stalled() -> None:
    clock = FakeClock()
    release = threading.Event()

    class Hung(ScriptedSource):
        def read(self) -> Frame:
            if not release.is_set():
                self.reads.append(clock.now)
                release.wait(5)
            return super().read()

    source = Hung([], clock)
    loop = FrameLoop(source, GatedDecoder(), lambda f, c: None, stall_s=5, clock=clock)
    loop.start()
    wait_for(lambda: len(source.reads) == 1)
    assert loop.stats().healthy
    clock.now = 6.0
    stats = loop.stats()
    assert stats.stalled
    assert not stats.healthy
    assert stats.last_frame_at is None
    release.set()
    loop.stop()


def test_a_crashing_source_is_a_fault_and_the_camera_is_restarted() -> None:
    clock = FakeClock()
    faults: list[str] = []
    source = ScriptedSource(["frame", "crash", "crash", "frame", "frame"], clock)
    loop = FrameLoop(source, GatedDecoder(), lambda f, c: None, on_fault=faults.append, clock=clock)
    stats = run_to_end(loop)
    assert len(faults) == 2
    assert "the capture thread failed: ValueError('a bug in the source')" in faults[0]
    assert len(source.restarts) == 2
    assert (stats.frames_captured, stats.restarts) == (3, 2)  # capture went on after both


def test_replay_through_the_real_decoder(tmp_path: Path) -> None:
    frames = [
        empty_frame((320, 240), seed=1),
        render_qr(b"W-00001", (320, 240), Look(module_px=4), seed=1),
        empty_frame((320, 240), seed=2),
        render_qr(b"W-00002", (320, 240), Look(module_px=4, angle=30), seed=2),
    ]
    for number, image in enumerate(frames):
        save_png(image, str(tmp_path / f"{number}.png"))
    source = ReplaySource(tmp_path, CameraSection(source=f"replay:{tmp_path}", fps=20))
    read: list[bytes] = []
    loop = FrameLoop(
        source, make_decoder("auto", live_share=0.1), lambda f, c: read.extend(x.payload for x in c)
    )
    stats = run_to_end(loop)
    assert stats.frames_captured == 4
    assert stats.frames_decoded + stats.frames_dropped == 4
    # Frames may be dropped on a busy machine, but never the last, and never reordered.
    assert read[-1] == b"W-00002"
    assert read in ([b"W-00001", b"W-00002"], [b"W-00002"])
