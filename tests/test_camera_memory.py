"""Frames in memory: a replay of a .npy or .npz stack, in its order, paced like a camera."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from scanner.camera import CameraError, EndOfStream, open_source
from scanner.camera.replay import ReplaySource
from scanner.config import CameraSection


def stack(*levels: int) -> np.ndarray:  # type: ignore[type-arg]
    return np.stack([np.full((6, 8), level, np.uint8) for level in levels])


def source(path: Path, loop: bool = False) -> ReplaySource:
    opened = open_source(CameraSection(source=f"replay:{path}", fps=120, replay_loop=loop))
    assert isinstance(opened, ReplaySource)
    return opened


def levels(opened: ReplaySource, count: int) -> list[int]:
    return [int(opened.read().image[0, 0]) for _ in range(count)]


def test_npy_stack_plays_its_frames_in_order_as_views(tmp_path: Path) -> None:
    np.save(tmp_path / "frames.npy", stack(10, 20, 30))
    opened = source(tmp_path / "frames.npy")
    first = opened.read()
    assert first.image.base is not None  # a view into the stack: nothing copied per frame
    assert [int(first.image[0, 0]), *levels(opened, 2)] == [10, 20, 30]
    with pytest.raises(EndOfStream, match="all 3 frames"):
        opened.read()


def test_npz_stack_plays_its_distinct_frames_in_the_order_given(tmp_path: Path) -> None:
    np.savez(tmp_path / "scene.npz", frames=stack(10, 20), order=np.array([0, 0, 1, 0]))
    opened = source(tmp_path / "scene.npz", loop=True)
    assert levels(opened, 6) == [10, 10, 20, 10, 10, 10]
    np.savez(tmp_path / "plain.npz", frames=stack(5, 6))
    assert levels(source(tmp_path / "plain.npz"), 2) == [5, 6]


def test_restart_reads_the_stack_again_from_its_first_frame(tmp_path: Path) -> None:
    np.save(tmp_path / "frames.npy", stack(1, 2, 3))
    opened = source(tmp_path / "frames.npy")
    assert levels(opened, 2) == [1, 2]
    opened.restart()
    assert levels(opened, 3) == [1, 2, 3]
    opened.close()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("colour.npy", np.zeros((2, 6, 8, 3), np.uint8), "not a stack of 8-bit grayscale"),
        ("wide.npy", np.zeros((2, 6, 8), np.uint16), "not a stack of 8-bit grayscale"),
        ("empty.npy", np.zeros((0, 6, 8), np.uint8), "not a stack of 8-bit grayscale"),
        ("objects.npy", np.array([None, 1], dtype=object), "pickle"),
        ("beyond.npz", {"frames": stack(1, 2), "order": np.array([0, 2])}, "beyond the 2"),
        ("order.npz", {"frames": stack(1), "order": np.array([[0]])}, "not a list of frame"),
        ("noframes.npz", {"order": np.array([0])}, "frames"),
    ],
)
def test_a_bad_stack_is_a_camera_error_naming_the_file(
    tmp_path: Path, name: str, content: object, message: str
) -> None:
    path = tmp_path / name
    if isinstance(content, dict):
        np.savez(path, **content)
    else:
        np.save(path, content, allow_pickle=True)
    with pytest.raises(CameraError, match=message) as raised:
        source(path)
    assert str(path) in str(raised.value)


def test_a_file_that_is_no_stack_is_a_camera_error(tmp_path: Path) -> None:
    (tmp_path / "notes.npz").write_text("not a zip file")
    with pytest.raises(CameraError, match=r"notes\.npz"):
        source(tmp_path / "notes.npz")
