"""The replay source: images, folders and videos, in order, paced like a camera."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from scanner.camera import CameraError, EndOfStream, open_source
from scanner.camera.replay import ReplaySource
from scanner.config import CameraSection
from scanner.vision.decode import make_decoder
from scanner.vision.images import ImageError, load_gray
from tests.support.frames import Look, render_qr


class FakeTime:
    """A clock that only moves when the source sleeps or the test says so."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 9))
        self.now += seconds


def settings(path: Path, **values: Any) -> CameraSection:
    return CameraSection(source=f"replay:{path}", **values)


def save(path: Path, level: int, size: tuple[int, int] = (8, 6)) -> Path:
    Image.new("L", size, level).save(path)
    return path


def levels(source: ReplaySource, count: int) -> list[int]:
    return [int(source.read().image[0, 0]) for _ in range(count)]


def test_folder_plays_images_in_name_order_and_skips_other_files(tmp_path: Path) -> None:
    for name, level in (("b.png", 20), ("a.jpg", 10), ("10.png", 5), ("c.bmp", 30)):
        save(tmp_path / name, level)
    (tmp_path / "a.txt").write_text("the expected payload, not an image")
    (tmp_path / "sub.png").mkdir()
    source = open_source(settings(tmp_path))
    assert source.name == f"replay:{tmp_path}"
    assert isinstance(source, ReplaySource)
    assert levels(source, 4) == [5, 10, 20, 30]
    with pytest.raises(EndOfStream, match="all 4 frames"):
        source.read()


def test_loop_starts_again_at_the_first_image(tmp_path: Path) -> None:
    save(tmp_path / "1.png", 1)
    save(tmp_path / "2.png", 2)
    source = ReplaySource(tmp_path, settings(tmp_path, replay_loop=True))
    assert levels(source, 5) == [1, 2, 1, 2, 1]
    assert source.read().number == 6


def test_single_image_once_or_forever(tmp_path: Path) -> None:
    image = save(tmp_path / "code.png", 77)
    once = ReplaySource(image, settings(image))
    assert levels(once, 1) == [77]
    with pytest.raises(EndOfStream):
        once.read()
    forever = ReplaySource(image, settings(image, replay_loop=True))
    assert levels(forever, 3) == [77, 77, 77]


def test_frames_come_at_the_configured_rate(tmp_path: Path) -> None:
    image = save(tmp_path / "code.png", 1)
    time = FakeTime()
    source = ReplaySource(image, settings(image, fps=10, replay_loop=True), time.clock, time.sleep)
    captured = [source.read().captured for _ in range(4)]
    assert captured == pytest.approx([100.0, 100.1, 100.2, 100.3])
    assert time.sleeps == pytest.approx([0.1, 0.1, 0.1])


def test_a_late_reader_gets_the_next_frame_at_once_without_a_burst(tmp_path: Path) -> None:
    image = save(tmp_path / "code.png", 1)
    time = FakeTime()
    source = ReplaySource(image, settings(image, fps=10, replay_loop=True), time.clock, time.sleep)
    source.read()
    time.now += 0.35  # the reader was busy for three and a half frame periods
    late = source.read()
    following = source.read()
    assert late.captured == pytest.approx(100.35)
    assert following.captured == pytest.approx(100.45)
    assert time.sleeps == pytest.approx([0.1])


def test_restart_plays_from_the_start(tmp_path: Path) -> None:
    for level in (1, 2, 3):
        save(tmp_path / f"{level}.png", level)
    source = ReplaySource(tmp_path, settings(tmp_path))
    assert levels(source, 2) == [1, 2]
    source.restart()
    assert levels(source, 3) == [1, 2, 3]


def test_video_frames_in_order_then_again_when_looping(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    payloads = [b"W-00001", b"W-00002", b"W-00003"]
    path = tmp_path / "gate.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for payload in payloads:
        writer.write(
            cv2.cvtColor(render_qr(payload, (320, 240), Look(module_px=5)), cv2.COLOR_GRAY2BGR)
        )
    writer.release()
    decoder = make_decoder("zxing")
    source = ReplaySource(path, settings(path, replay_loop=True))
    read = []
    for _ in range(4):
        frame = source.read()
        assert frame.image.shape == (240, 320)
        read += [code.payload for code in decoder.decode(frame.image)]
    assert read == [*payloads, payloads[0]]
    once = ReplaySource(path, settings(path))
    for _ in payloads:
        once.read()
    with pytest.raises(EndOfStream):
        once.read()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing.png", "does not exist"),
        (lambda tmp: tmp, "no image files"),
        (lambda tmp: (tmp / "notes.txt", (tmp / "notes.txt").write_text("x"))[0], "neither"),
    ],
    ids=["missing", "empty folder", "not media"],
)
def test_unusable_paths_are_camera_errors(tmp_path: Path, make: Any, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(CameraError, match=message):
        ReplaySource(path, settings(path))


def test_a_broken_image_fails_its_frame_only(tmp_path: Path) -> None:
    save(tmp_path / "1.png", 1)
    (tmp_path / "2.png").write_bytes(b"\x89PNG truncated")
    save(tmp_path / "3.png", 3)
    source = ReplaySource(tmp_path, settings(tmp_path))
    assert levels(source, 1) == [1]
    with pytest.raises(CameraError, match=r"2\.png"):
        source.read()
    assert levels(source, 1) == [3]


def test_images_become_grayscale_as_printed(tmp_path: Path) -> None:
    transparent = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    transparent.putpixel((1, 1), (0, 0, 0, 255))
    transparent.save(tmp_path / "web.png")
    gray = load_gray(tmp_path / "web.png")
    assert (gray[0, 0], gray[1, 1]) == (255, 0)
    deep = Image.fromarray(np.full((3, 3), 0x8040, np.uint16))
    deep.save(tmp_path / "deep.png")
    assert load_gray(tmp_path / "deep.png")[0, 0] == 0x80
    rgb = Image.new("RGB", (2, 2), (255, 0, 0))
    rgb.save(tmp_path / "red.png")
    assert load_gray(tmp_path / "red.png")[0, 0] == 76


def test_unreadable_image_says_why(tmp_path: Path) -> None:
    (tmp_path / "bad.png").write_text("not a picture")
    with pytest.raises(ImageError, match="cannot identify image file"):
        load_gray(tmp_path / "bad.png")
    with pytest.raises(ImageError, match="No such file"):
        load_gray(tmp_path / "none.png")
