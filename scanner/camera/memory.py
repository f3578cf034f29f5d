"""Frames already in memory: a replay that costs nothing per frame, as a Pi camera hands
its frames over, so that what the gate spends on them is the gate's own cost.

`replay:PATH.npy` names a stack of 8-bit grayscale frames saved with `numpy.save`, shape
(frames, height, width), played in order. `replay:PATH.npz` (`numpy.savez`) holds such a
stack as `frames` and, optionally, `order`: the indices of the frames in the order they
play, so that a long scene holds only its distinct frames. The file is read once, when
the source opens, and each frame is handed out as a view into the stack.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from scanner.camera import CameraError
from scanner.vision.images import Gray

STACK_SUFFIXES = frozenset({".npy", ".npz"})

Stack = NDArray[np.uint8]  # frames, height, width
Order = NDArray[np.intp]


class FrameStack:
    """The frames of a stack file in their order (a `Reel` of the replay source)."""

    def __init__(self, path: Path) -> None:
        self._frames, self._order = load_stack(path)
        self._index = 0

    def next(self) -> Gray | None:
        if self._index >= len(self._order):
            return None
        self._index += 1
        frame: Gray = self._frames[self._order[self._index - 1]]
        return frame

    def rewind(self) -> None:
        self._index = 0

    def close(self) -> None:
        self._frames, self._order = self._frames[:0], self._order[:0]


def read_stack(path: Path) -> tuple[Stack, Order | None]:
    stored = np.load(path, allow_pickle=False)
    if not isinstance(stored, np.lib.npyio.NpzFile):
        return stored, None
    with stored:
        return stored["frames"], stored["order"] if "order" in stored.files else None


def load_stack(path: Path) -> tuple[Stack, Order]:
    """The frames and their order; CameraError saying what is wrong with the file."""
    try:
        frames, order = read_stack(path)
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise CameraError(f"replay: {path}: {error}") from None
    if frames.ndim != 3 or frames.dtype != np.uint8 or not len(frames):
        raise CameraError(
            f"replay: {path} is not a stack of 8-bit grayscale frames (frames, height, width)"
        )
    if order is None:
        order = np.arange(len(frames))
    if order.ndim != 1 or order.dtype.kind not in "iu" or not len(order):
        raise CameraError(f"replay: {path}: `order` is not a list of frame indices")
    if order.min() < 0 or order.max() >= len(frames):
        raise CameraError(f"replay: {path}: `order` names frames beyond the {len(frames)} held")
    return frames, order.astype(np.intp)
