"""The Raspberry Pi camera through picamera2: the Y plane of the low-resolution stream.

The lores stream in YUV420 is the cheapest grayscale the ISP gives: its first `height`
rows are the luma plane, so no colour conversion is done. picamera2 imports libcamera at
the top, which exists only on Raspberry Pi OS (apt `python3-picamera2`), so it is
imported here, when the source opens, and nowhere else.

Every capture waits at most `capture_timeout_s` (a loose ribbon cable otherwise blocks
it forever); a timeout cancels the pending capture job, and `restart()` closes and
reopens the camera. Closing can itself hang in the kernel: the systemd watchdog is the
last resort there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from scanner.camera import CameraError, CameraTimeout, Frame

if TYPE_CHECKING:
    from scanner.config import CameraSection

log = logging.getLogger(__name__)

STREAM = "lores"
FORMAT = "YUV420"


class NoPiCameraError(CameraError):
    """picamera2 is not installed, or no camera is connected."""


class PiCameraSource:
    name = "picamera2"

    def __init__(self, camera: CameraSection, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = camera
        self._clock = clock
        self._picamera2, self._controls = import_picamera2()
        self._camera: Any = None
        self._frames = 0
        self._open()

    def read(self) -> Frame:
        if self._camera is None:
            raise CameraError("picamera2: the camera is closed")
        timeout = self._settings.capture_timeout_s
        try:
            array = self._camera.capture_array(STREAM, wait=timeout)
        except TimeoutError:
            # The timed-out job stays queued in picamera2 and would take the next frame.
            self._camera.cancel_all_and_flush()
            raise CameraTimeout(f"picamera2: no frame within {timeout:g} s") from None
        except RuntimeError as error:
            raise CameraError(f"picamera2: capture failed: {error}") from None
        self._frames += 1
        luma = array[: self._settings.height, : self._settings.width]
        return Frame(luma, self._clock(), self._frames)

    def restart(self) -> None:
        self.close()
        self._open()

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is None:
            return
        for step in (camera.cancel_all_and_flush, camera.stop, camera.close):
            try:
                step()
            except Exception as error:  # noqa: BLE001 - closing goes on; nothing else to do
                log.warning("picamera2: %s failed while closing: %s", step.__name__, error)

    def _open(self) -> None:
        picamera2 = self._picamera2.Picamera2
        if not picamera2.global_camera_info():
            raise NoPiCameraError("picamera2 finds no camera connected")
        try:
            camera = picamera2()
        except (RuntimeError, IndexError) as error:
            raise CameraError(f"picamera2: cannot open the camera: {error}") from None
        try:
            camera.configure(self._configuration(camera))
            camera.start()
        except RuntimeError as error:
            camera.close()
            raise CameraError(f"picamera2: cannot start the camera: {error}") from None
        self._camera = camera
        log.info("picamera2: %s at %g fps", self._size, self._settings.fps)

    @property
    def _size(self) -> tuple[int, int]:
        return self._settings.width, self._settings.height

    def _configuration(self, camera: Any) -> Any:
        # The main stream is unused, but lores may not be larger: keep both small.
        stream = {"size": self._size, "format": FORMAT}
        controls = gate_controls(self._settings, camera.camera_controls, self._controls)
        return camera.create_video_configuration(
            main=dict(stream), lores=dict(stream), controls=controls
        )


def gate_controls(
    settings: CameraSection, available: Mapping[str, Any], libcamera_controls: Any
) -> dict[str, Any]:
    """Controls for a gate: frame rate, close-range autofocus, short exposure for screens.

    The frame rate is libcamera's own control, in microseconds per frame (picamera2's
    `FrameRate` shorthand is younger). Other controls are set only where the camera
    advertises them: setting another raises RuntimeError.
    """
    frame_us = round(1_000_000 / settings.fps)
    controls: dict[str, Any] = {"FrameDurationLimits": (frame_us, frame_us)}
    wanted: dict[str, Any] = {}
    if settings.autofocus:
        wanted |= {
            "AfMode": libcamera_controls.AfModeEnum.Continuous,
            "AfRange": libcamera_controls.AfRangeEnum.Macro,
            "AfSpeed": libcamera_controls.AfSpeedEnum.Fast,
        }
    if settings.exposure == "short":
        wanted["AeExposureMode"] = libcamera_controls.AeExposureModeEnum.Short
    controls |= {name: value for name, value in wanted.items() if name in available}
    return controls


def import_picamera2() -> tuple[ModuleType, Any]:
    """picamera2 and libcamera's controls, or NoPiCameraError saying how to install them."""
    try:
        import picamera2
        from libcamera import controls
    except ImportError as error:
        raise NoPiCameraError(
            f"picamera2 is not installed ({error}; on Raspberry Pi OS: "
            "apt install python3-picamera2, and a venv with --system-site-packages)"
        ) from None
    return picamera2, controls
