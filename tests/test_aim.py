"""`qrgate aim` on replayed frames with and without a code, its figures and advice, the
snapshot, and the loop on a scripted camera with a manual clock. The command's own runs
play their frames on a manual clock too: what they print does not depend on how fast a
busy machine decodes."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import scanner.camera
import scanner.vision.aim
from scanner.camera import CameraTimeout, EndOfStream, Frame, FrameSource
from scanner.camera.replay import ReplaySource
from scanner.cli import run
from scanner.clock import ManualClock
from scanner.config import CameraSection
from scanner.vision.aim import BLURRED, Aim, Figures, Summary, hints, measure, sharpness
from scanner.vision.decode import Decoder, make_decoder
from tests.support.frames import Gray, Look, empty_frame, render_qr, save_png

ROOT = Path(__file__).resolve().parent.parent
BADGE = "W-1042"
PASS_LIKE = "eyJhbGciOiJFZERTQSIsImtpZCI6InBhc3MtMSJ9." + "x" * 120 + ".c2lnbmF0dXJl"
FIGURES = re.compile(r"^\s*\d+\.\d fps \| brightness +\d+ \| sharpness +\d+ \| (.*)$")


def smudged(payload: str) -> Gray:
    """A code with a grey smudge over its middle: located, but not readable."""
    frame = render_qr(payload, look=Look(module_px=5))
    height, width = frame.shape
    frame[height // 2 - 40 : height // 2 + 40, width // 2 - 40 : width // 2 + 40] = 128
    return frame


def write_frames(folder: Path, frames: list[Gray]) -> Path:
    folder.mkdir()
    for number, frame in enumerate(frames):
        save_png(frame, str(folder / f"{number:03d}.png"))
    return folder


def write_config(folder: Path, source: Path, loop: bool = False) -> Path:
    config = folder / "config.toml"
    config.write_text(f'[camera]\nsource = "replay:{source}"\nreplay_loop = {str(loop).lower()}\n')
    return config


class FrameTime:
    """A replay whose frames come exactly 1/fps apart on a manual clock, the one `Aim`
    reads: a frame takes no time to look at, however loaded the machine is (a second look
    that loads pyzbar takes a tenth of a second on a busy one, and the stretch's frame
    rate would fall under half of camera.fps: "slow")."""

    def __init__(self, source: ReplaySource, clock: ManualClock, period: float) -> None:
        self.name = source.name
        self._source, self._clock, self._period = source, clock, period

    def read(self) -> Frame:
        frame = self._source.read()
        self._clock.advance(self._period)  # the next frame comes one period later
        return frame

    def restart(self) -> None:
        self._source.restart()

    def close(self) -> None:
        self._source.close()


@pytest.fixture(autouse=True)
def frame_time(monkeypatch: pytest.MonkeyPatch) -> ManualClock:
    """`qrgate aim` in this process plays its replay on a manual clock (see FrameTime)."""
    clock = ManualClock()

    def replay(camera: CameraSection) -> FrameSource:
        path = Path(camera.source.removeprefix("replay:"))
        source = ReplaySource(path, camera, clock=clock.monotonic, sleep=clock.advance)
        return FrameTime(source, clock, 1 / camera.fps)

    def session(source: FrameSource, decoder: Decoder, *, every_s: float) -> Aim:
        return Aim(source, decoder, every_s=every_s, clock=clock.monotonic)

    monkeypatch.setattr(scanner.camera, "open_source", replay)
    monkeypatch.setattr(scanner.vision.aim, "Aim", session)
    return clock


def aim(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = run(["aim", *args])
    return code, capsys.readouterr().out.splitlines()


def test_figures_codes_seen_and_read_and_a_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = [render_qr(BADGE), render_qr(BADGE, look=Look(angle=20)), render_qr(BADGE)]
    frames += [smudged("W-7" + "x" * 40), empty_frame(seed=1), empty_frame(seed=2)]
    config = write_config(tmp_path, write_frames(tmp_path / "frames", frames))
    snapshot = tmp_path / "snap.png"
    code, lines = aim(capsys, "-c", str(config), "--frames", "6", "--snapshot", str(snapshot))
    assert code == 0
    assert lines[0] == f"aim: replay:{tmp_path / 'frames'} at 30 fps; Ctrl-C stops"
    figures = [found[1] for line in lines if (found := FIGURES.match(line))]
    assert figures == [f'read 3/6: badge "{BADGE}" (6 bytes)']  # one stretch: 0.2 s of frames
    assert re.fullmatch(
        r"aim: 6 frames in \d+\.\d s \(\d+\.\d fps\); code read in 3 \(50%\), seen in 4 \(67%\); "
        r"mean brightness \d+, sharpness \d+",
        lines[-2],
    )
    assert lines[-1] == f"aim: snapshot saved to {snapshot} (640x480 PNG)"
    with Image.open(snapshot) as image:
        assert (image.format, image.size, image.mode) == ("PNG", (640, 480), "L")
        assert np.array_equal(np.asarray(image), frames[-1])


def test_a_payload_is_shown_by_its_kind_start_and_length_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, write_frames(tmp_path / "f", [render_qr(PASS_LIKE)]))
    code, lines = aim(capsys, "-c", str(config))
    output = "\n".join(lines)
    assert code == 0
    assert f'read 1/1: pass "eyJhbG..." ({len(PASS_LIKE)} bytes)' in output
    assert "eyJhbGc" not in output


def test_a_code_seen_but_not_read_and_advice_for_a_dark_frame(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dark = (render_qr(BADGE).astype(np.float64) * 0.3).astype(np.uint8)
    for name, frame, expected in [
        ("smudged", smudged(BADGE + "x" * 40), "seen 1/1, not read"),
        ("dark", dark, f'read 1/1: badge "{BADGE}" (6 bytes) | too dark: add light'),
        ("nothing", empty_frame(), "no code in view"),
    ]:
        config = write_config(tmp_path, write_frames(tmp_path / name, [frame]))
        code, lines = aim(capsys, "-c", str(config))
        assert code == 0
        assert [found[1] for line in lines if (found := FIGURES.match(line))] == [expected]


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, tmp_path)
    assert run(["aim", "-c", str(config), "--frames", "3", "--seconds", "1"]) == 2
    assert run(["aim", "-c", str(config), "--snapshot", str(tmp_path / "no" / "s.png")]) == 2
    assert "folder" in capsys.readouterr().err


def test_ctrl_c_stops_with_the_summary(tmp_path: Path) -> None:
    config = write_config(tmp_path, write_frames(tmp_path / "f", [render_qr(BADGE)]), loop=True)
    aiming = subprocess.Popen(
        [sys.executable, "-m", "scanner", "aim", "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert aiming.stdout is not None
    aiming.stdout.readline()  # the first line: frames are flowing
    first = aiming.stdout.readline()  # one second of figures
    aiming.send_signal(signal.SIGINT)
    rest, errors = aiming.communicate(timeout=20)
    assert aiming.returncode == 0, errors
    assert FIGURES.match(first)
    assert "code read in" in rest
    assert "Traceback" not in errors


# --- The loop and the figures -----------------------------------------------------------


class ScriptedCamera:
    """Frames at 8 fps by a manual clock (steps exact in binary); the reads after the frames
    numbered in `stall_at` time out once."""

    name = "scripted"

    def __init__(self, frames: list[Gray], clock: list[float], stall_at: set[int]) -> None:
        self._frames = frames
        self._clock = clock
        self._stall_at = stall_at
        self.number = 0
        self.restarts = 0

    def read(self) -> Frame:
        self._clock[0] += 0.125
        if self.number in self._stall_at:
            self._stall_at.discard(self.number)
            raise CameraTimeout("scripted: no frame within 2 s")
        if self.number >= len(self._frames):
            raise EndOfStream("scripted: done")
        self.number += 1
        return Frame(self._frames[self.number - 1], self._clock[0], self.number)

    def restart(self) -> None:
        self.restarts += 1

    def close(self) -> None:
        pass


def scripted_run(
    images: list[Gray], stall_at: set[int], **limits: float
) -> tuple[list[Summary], Aim, ScriptedCamera]:
    now = [0.0]
    camera = ScriptedCamera(images, now, stall_at)
    session = Aim(camera, make_decoder("auto", live_share=0.1), every_s=1.0, clock=lambda: now[0])
    reports: list[Summary] = []
    session.run(reports.append, **limits)
    return reports, session, camera


def test_one_summary_per_second_of_frames_and_a_stall_in_words() -> None:
    images = [empty_frame(seed=n % 3) for n in range(20)]
    reports, session, camera = scripted_run(images, stall_at={10})
    assert [report.frames for report in reports] == [8, 7, 5]
    assert [round(report.fps, 3) for report in reports] == [8.0, 6.857, 8.0]  # the stall shows
    assert [report.trouble for report in reports] == [None, "scripted: no frame within 2 s", None]
    assert camera.restarts == 1
    assert session.overall().frames == 20
    assert session.latest is not None
    assert session.latest.number == 20


def test_limits_by_frames_and_by_seconds() -> None:
    images = [empty_frame()] * 50
    assert scripted_run(images, set(), frames=7)[1].overall().frames == 7
    assert scripted_run(images, set(), seconds=2.0)[1].overall().frames == 16


def test_sharpness_falls_with_blur_and_ignores_sensor_noise() -> None:
    sharp = sharpness(render_qr(BADGE, look=Look(noise=3)))
    blurred = sharpness(render_qr(BADGE, look=Look(blur=4, noise=3)))
    assert blurred < BLURRED < sharp
    assert sharpness(np.zeros((4, 4), dtype=np.uint8)) == 0.0


@pytest.mark.parametrize(
    ("figures", "exposure", "expected"),
    [
        (Figures(130, 0.0, 900), "normal", []),
        (Figures(8, 0.0, 900), "normal", [(True, "black")]),
        (Figures(35, 0.0, 900), "short", [(False, "too dark")]),
        (Figures(200, 0.5, 900), "normal", [(False, "over-exposed (50% white)")]),
        (Figures(250, 0.9, 900), "short", [(True, "washed out (90% white)")]),
        (Figures(130, 0.0, 20), "normal", [(False, "blurred")]),
        (Figures(35, 0.0, 20), "normal", [(False, "too dark")]),  # too dark to judge focus
    ],
)
def test_hints(figures: Figures, exposure: str, expected: list[tuple[bool, str]]) -> None:
    camera = CameraSection(exposure=exposure)
    assert [(hint.severe, hint.problem) for hint in hints(figures, camera)] == expected


def test_hints_name_the_setting_that_helps() -> None:
    dim = hints(Figures(35, 0.0, 900), CameraSection(exposure="short"))[0]
    assert str(dim) == 'too dark: add light, or set camera.exposure = "normal"'
    glare = hints(Figures(200, 0.5, 900), CameraSection())[0]
    assert glare.fix.endswith('or set camera.exposure = "short"')
    slow = hints(Figures(130, 0.0, 900), CameraSection(fps=30), fps=9.5)
    assert [hint.problem for hint in slow] == ["slow (9.5 of 30 fps)"]


def test_measure(qr_frame: Callable[..., Gray]) -> None:
    white = np.full((480, 640), 255, dtype=np.uint8)
    assert measure(white) == Figures(255.0, 1.0, 0.0)
    figures = measure(qr_frame(BADGE))
    assert 100 < figures.brightness < 160
    assert figures.clipped == 0.0
