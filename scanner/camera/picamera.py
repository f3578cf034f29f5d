"""The Raspberry Pi camera through picamera2: the Y plane of one YUV420 stream.

One stream, `main` in YUV420 at the configured size, and no raw stream: the ISP writes
one image per frame, and its first rows are the luma plane, so no colour conversion is
done. The rows may be longer than the image (the Pi 5 pads them to 128 bytes): frames
are sliced by the size libcamera configured, not the size asked for. picamera2 imports
libcamera at the top, which exists only on Raspberry Pi OS (apt `python3-picamera2`), so
it is imported here, when the source opens, and nowhere else.

picamera2 lists USB webcams too; they are not Pi cameras (one stream, no frame duration
control, no colour filter property) and are left to the V4L2 source. Every capture waits
at most `capture_timeout_s` (a loose ribbon cable otherwise blocks it forever); a timeout
cancels the pending capture job, and `restart()` closes and reopens the camera. Closing
can itself hang in the kernel: the systemd watchdog is the last resort there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import CancelledError
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from scanner.camera import CameraError, CameraTimeout, Frame

if TYPE_CHECKING:
    from scanner.config import CameraSection

log = logging.getLogger(__name__)

STREAM = "main"
FORMAT = "YUV420"
BUFFERS = 4  # enough to capture while one frame is decoded; picamera2's video default is 6
# Capture timeouts (capture_array(wait=seconds)) and cancel_all_and_flush() came in 0.3.20.
MIN_VERSION = "0.3.20"
# What picamera2 raises besides RuntimeError when the camera, its memory or its thread
# fails: OSError (ENOMEM on DMA buffers, PermissionError on /dev/dma_heap), ValueError and
# AttributeError (a configuration libcamera rejects), IndexError (no such camera), and
# CancelledError (a capture cancelled by another thread).
CAMERA_ERRORS = (RuntimeError, OSError, ValueError, AttributeError, IndexError, CancelledError)


class NoPiCameraError(CameraError):
    """picamera2 is not installed or does not load, or no Pi camera is connected."""


class PiCameraSource:
    name = "picamera2"

    def __init__(self, camera: CameraSection, clock: Callable[[], float] = time.monotonic) -> None:
        self._settings = camera
        self._clock = clock
        self._picamera2, self._controls = import_picamera2()
        self._camera: Any = None
        self._luma = (camera.width, camera.height)
        self._frames = 0
        self._open()

    def read(self) -> Frame:
        camera = self._camera
        if camera is None:
            raise CameraError("picamera2: the camera is closed")
        timeout = self._settings.capture_timeout_s
        try:
            array = camera.capture_array(STREAM, wait=timeout)
        except TimeoutError:
            # The timed-out job stays queued in picamera2 and would take the next frame.
            flush(camera)
            raise CameraTimeout(f"picamera2: no frame within {timeout:g} s") from None
        except CancelledError:
            raise CameraError(
                "picamera2: the capture was cancelled (the camera is closing)"
            ) from None
        except CAMERA_ERRORS as error:
            raise CameraError(f"picamera2: capture failed: {describe(error)}") from None
        self._frames += 1
        width, height = self._luma
        return Frame(array[:height, :width], self._clock(), self._frames)

    def restart(self) -> None:
        self.close()
        self._open()

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            close_camera(camera)

    def _open(self) -> None:
        picamera2 = self._picamera2.Picamera2
        require_timeouts(picamera2)
        camera = acquire(picamera2, pi_camera_number(picamera2))
        try:
            if "ColorFilterArrangement" not in camera.camera_properties:
                raise NoPiCameraError("picamera2: the camera is not a Pi camera (a USB webcam?)")
            camera.configure(self._configuration(camera))
            camera.start()
            width, height = camera.camera_config[STREAM]["size"]
            self._luma = (int(width), int(height))  # as libcamera configured it
        except NoPiCameraError:
            close_camera(camera)
            raise
        except CAMERA_ERRORS as error:
            close_camera(camera)
            raise CameraError(f"picamera2: cannot start the camera: {describe(error)}") from None
        self._camera = camera
        stride = camera.camera_config[STREAM].get("stride")
        log.info(
            "picamera2: %dx%d (rows of %s bytes) at %g fps", *self._luma, stride, self._settings.fps
        )

    def _configuration(self, camera: Any) -> Any:
        return camera.create_video_configuration(
            main={"size": (self._settings.width, self._settings.height), "format": FORMAT},
            lores=None,
            raw=None,
            buffer_count=BUFFERS,
            controls=gate_controls(self._settings, camera.camera_controls, self._controls),
            display=None,
            encode=None,
        )


def gate_controls(
    settings: CameraSection, available: Mapping[str, Any], libcamera_controls: Any
) -> dict[str, Any]:
    """Controls for a gate: frame rate, close-range autofocus, short exposure for screens.

    The frame rate is libcamera's own control, in microseconds per frame (picamera2's
    `FrameRate` shorthand is younger). Every control is set only where the camera
    advertises it: setting another raises RuntimeError.
    """
    frame_us = round(1_000_000 / settings.fps)
    wanted: dict[str, Any] = {"FrameDurationLimits": (frame_us, frame_us)}
    if settings.autofocus:
        wanted |= {
            "AfMode": libcamera_controls.AfModeEnum.Continuous,
            "AfRange": libcamera_controls.AfRangeEnum.Macro,
            "AfSpeed": libcamera_controls.AfSpeedEnum.Fast,
        }
    if settings.exposure == "short":
        wanted["AeExposureMode"] = libcamera_controls.AeExposureModeEnum.Short
    return {name: value for name, value in wanted.items() if name in available}


def import_picamera2() -> tuple[ModuleType, Any]:
    """picamera2 and libcamera's controls, or NoPiCameraError with the real cause.

    Importing can fail in more ways than ImportError: apt's picamera2 (with simplejpeg,
    built against numpy 1.x) raises ValueError under numpy 2, which a venv can bring in.
    """
    try:
        import picamera2
        from libcamera import controls
    except ImportError as error:
        raise NoPiCameraError(
            f"picamera2 is not installed ({error}; on Raspberry Pi OS: "
            "apt install python3-picamera2, and a venv with --system-site-packages)"
        ) from None
    except Exception as error:  # noqa: BLE001 - any failure on import means: no Pi camera here
        raise NoPiCameraError(
            f"picamera2 does not load: {describe(error)}{import_hint(error)}"
        ) from None
    return picamera2, controls


def import_hint(error: Exception) -> str:
    if "numpy.dtype size changed" in str(error):
        return (
            " (numpy 2 in the venv shadows Raspberry Pi OS's numpy 1.x, which picamera2 is "
            "built for: see docs/scanning.md, 'numpy and OpenCV on Raspberry Pi OS')"
        )
    return ""


def require_timeouts(picamera2: Any) -> None:
    """Refuse a picamera2 without capture timeouts: a loose cable would block for ever."""
    if hasattr(picamera2, "cancel_all_and_flush"):
        return
    from importlib import metadata

    try:
        version = metadata.version("picamera2")
    except metadata.PackageNotFoundError:
        version = "unknown"
    raise CameraError(
        f"picamera2 {version} is too old: qrgate needs {MIN_VERSION} or newer (capture "
        "timeouts); sudo apt update && sudo apt install python3-picamera2"
    )


def pi_camera_number(picamera2: Any) -> int:
    """The position of the first Pi camera in picamera2's camera list, the number to open
    it by. picamera2 lists USB webcams too (their id has "/usb"): they are not Pi cameras."""
    try:
        cameras = list(picamera2.global_camera_info())
    except CAMERA_ERRORS as error:
        raise CameraError(f"picamera2: cannot list the cameras: {describe(error)}") from None
    for number, info in enumerate(cameras):
        if "/usb" not in str(info.get("Id", "")):
            return number
    if cameras:
        models = ", ".join(str(info.get("Model", "?")) for info in cameras)
        raise NoPiCameraError(f"picamera2 finds only USB cameras ({models}), and no Pi camera")
    raise NoPiCameraError("picamera2 finds no camera connected")


def acquire(picamera2: Any, number: int) -> Any:
    """Picamera2(number), or CameraError; a camera acquired by a constructor that then
    failed (it opens the DMA heap after acquiring) is closed, or it stays held."""
    try:
        return picamera2(number)
    except CAMERA_ERRORS as error:
        half_built = constructed(error.__traceback__, picamera2)
        if half_built is not None:
            close_camera(half_built)
        raise CameraError(f"picamera2: cannot open the camera: {describe(error)}") from None


def constructed(traceback: TracebackType | None, cls: Any) -> Any:
    """The instance of `cls` whose __init__ raised, found in the exception's traceback."""
    while traceback is not None:
        frame = traceback.tb_frame
        candidate = frame.f_locals.get("self")
        if frame.f_code.co_name == "__init__" and isinstance(candidate, cls):
            return candidate
        traceback = traceback.tb_next
    return None


def flush(camera: Any) -> None:
    try:
        camera.cancel_all_and_flush()
    except CAMERA_ERRORS as error:
        log.warning("picamera2: cancel_all_and_flush failed: %s", describe(error))


def close_camera(camera: Any) -> None:
    for step in (camera.cancel_all_and_flush, camera.stop, camera.close):
        try:
            step()
        except Exception as error:  # noqa: BLE001 - closing goes on; nothing else to do
            log.warning("picamera2: %s failed while closing: %s", step.__name__, error)


def describe(error: BaseException) -> str:
    """An error for a message: RuntimeError's text as it is, others with their type."""
    if type(error) is RuntimeError:
        return str(error)
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
