"""Camera sources: grayscale frames with their capture time.

One small interface, `FrameSource`, with one module per kind of source: the Raspberry Pi
camera (`picamera2`), USB webcams (`v4l2`, through OpenCV) and files (`replay`). Their
libraries load only when such a source is opened, so this package imports nothing heavy.
`open_source` turns the configured `camera.source` into an open source.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from scanner.errors import QrgateError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from scanner.config import CameraSection


class CameraError(QrgateError):
    """The camera cannot be opened or read."""


class CameraTimeout(CameraError):  # noqa: N818 - the name the daemon is built against
    """No frame arrived within `camera.capture_timeout_s`."""


class EndOfStream(QrgateError):  # noqa: N818 - an end, not an error
    """A replay that does not loop has delivered its last frame."""


@dataclass(frozen=True, slots=True)
class Frame:
    image: NDArray[np.uint8]  # 2-D grayscale, may be a view
    captured: float  # time.monotonic() at capture
    number: int  # counts frames delivered by this source


class FrameSource(Protocol):
    name: str  # e.g. "picamera2", "replay:/path"

    def read(self) -> Frame:
        """Block for the next frame: CameraTimeout after capture_timeout_s, EndOfStream
        when a non-looping replay is done, CameraError when the camera fails."""

    def restart(self) -> None:
        """Recover after a timeout: close the camera and open it again."""

    def close(self) -> None: ...


def open_source(camera: CameraSection) -> FrameSource:
    """Open the source `camera.source` names; `auto` picks the camera that is there."""
    kind, _, target = camera.source.partition(":")
    if kind == "auto":
        return open_auto(camera)
    if kind == "picamera2":
        from scanner.camera.picamera import PiCameraSource

        return PiCameraSource(camera)
    if kind == "v4l2":
        from scanner.camera.v4l2 import V4l2Source

        return V4l2Source(target, camera)
    from scanner.camera.replay import ReplaySource

    return ReplaySource(Path(target), camera)


def open_auto(camera: CameraSection) -> FrameSource:
    """The Pi camera when picamera2 loads and finds one, else the first USB webcam, else a
    CameraError naming what was tried."""
    from scanner.camera.picamera import NoPiCameraError, PiCameraSource
    from scanner.camera.v4l2 import V4l2Source, capture_devices

    try:
        return PiCameraSource(camera)
    except NoPiCameraError as why_not:
        devices = capture_devices()
        if devices:
            return V4l2Source(devices[0], camera)
        raise CameraError(
            f"no camera found: {why_not}; and no USB webcam among /dev/video*"
        ) from None
