"""Frames from files, paced like a camera: the demo and the tests feed the gate with it.

`replay:PATH` is one image (shown again and again only with `replay_loop`), a folder of
images in name order (other files are skipped), a video file (through OpenCV, the
`webcam` extra), or a stack of frames held in memory (`.npy`, `.npz`: see
`scanner.camera.memory`). Frames come at `camera.fps`: a late reader gets the next frame
at once, never a burst to catch up, as with a real camera. Images keep their own size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from scanner.camera import CameraError, EndOfStream, Frame
from scanner.camera.memory import STACK_SUFFIXES, FrameStack
from scanner.camera.v4l2 import import_cv2, opencv_gray
from scanner.vision.images import IMAGE_SUFFIXES, Gray, ImageError, image_files, load_gray

if TYPE_CHECKING:
    from scanner.config import CameraSection

# Decoded images are kept for the next loop up to this size (a few 640x480 frames: a
# single picture replayed costs nothing); beyond it they are read again, which costs
# about 1.5 ms a frame but keeps the daemon's memory what it is with a real camera.
CACHE_BYTES = 2 * 1024 * 1024


class Reel(Protocol):
    def next(self) -> Gray | None:
        """The next image, or None after the last."""

    def rewind(self) -> None: ...

    def close(self) -> None: ...


class ReplaySource:
    def __init__(
        self,
        path: Path,
        camera: CameraSection,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = f"replay:{path}"
        self._path = path
        self._period = 1 / camera.fps
        self._loop = camera.replay_loop
        self._clock = clock
        self._sleep = sleep
        self._reel = open_reel(path)
        self._due: float | None = None
        self._frames = 0

    def read(self) -> Frame:
        image = self._reel.next()
        if image is None and self._loop:
            self._reel.rewind()
            image = self._reel.next()
        if image is None:
            raise EndOfStream(f"{self.name}: all {self._frames} frames delivered")
        self._frames += 1
        return Frame(image, self._paced(), self._frames)

    def restart(self) -> None:
        """Start again from the first frame."""
        self._reel.close()
        self._reel = open_reel(self._path)
        self._due = None

    def close(self) -> None:
        self._reel.close()

    def _paced(self) -> float:
        """Wait until the frame is due; return its capture time."""
        now = self._clock()
        if self._due is not None and now < self._due:
            self._sleep(self._due - now)
            now = self._clock()
        self._due = max(self._due or now, now) + self._period
        return now


def open_reel(path: Path) -> Reel:
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise CameraError(f"replay: no image files in {path}")
        return ImageReel(files)
    if not path.is_file():
        raise CameraError(f"replay: {path} does not exist")
    if path.suffix.lower() in STACK_SUFFIXES:
        return FrameStack(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageReel([path])
    return VideoReel(path)


class ImageReel:
    """Image files in order; decoded images are cached while they fit in CACHE_BYTES."""

    def __init__(self, files: list[Path]) -> None:
        self._files = files
        self._index = 0
        self._cache: dict[int, Gray] = {}
        self._cached_bytes = 0

    def next(self) -> Gray | None:
        if self._index >= len(self._files):
            return None
        index, self._index = self._index, self._index + 1
        return self._cache.get(index) if index in self._cache else self._load(index)

    def rewind(self) -> None:
        self._index = 0

    def close(self) -> None:
        self._cache.clear()

    def _load(self, index: int) -> Gray:
        try:
            image = load_gray(self._files[index])
        except ImageError as error:
            raise CameraError(f"replay: {error}") from None
        if self._cached_bytes + image.nbytes <= CACHE_BYTES:
            self._cache[index] = image
            self._cached_bytes += image.nbytes
        return image


class VideoReel:
    """A video file decoded by OpenCV, as grayscale."""

    def __init__(self, path: Path) -> None:
        self._cv2 = import_cv2()
        self._path = path
        self._capture: Any = self._open()

    def next(self) -> Gray | None:
        ok, image = self._capture.read()
        return opencv_gray(self._cv2, image) if ok else None

    def rewind(self) -> None:
        # Seeking back is unreliable for some codecs; opening again is not.
        self._capture.release()
        self._capture = self._open()

    def close(self) -> None:
        self._capture.release()

    def _open(self) -> Any:
        capture = self._cv2.VideoCapture(str(self._path))
        if not capture.isOpened():
            capture.release()
            raise CameraError(
                f"replay: {self._path} is neither an image nor a video OpenCV can read"
            )
        return capture
