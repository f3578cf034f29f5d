"""USB webcams through OpenCV's V4L2 backend (the `webcam` extra: opencv-python-headless).

Also the device search of `auto`: a Raspberry Pi has many /dev/video* nodes that are not
webcams. The codecs are memory-to-memory devices, but the ISP's output nodes (bcm2835-isp
on a Pi 4, /dev/video14 and up; pispbe on a Pi 5) and the CSI receiver's raw node
(unicam, rp1-cfe) do report video capture, and a UVC webcam adds a metadata node next to
its capture node. So a node counts only when the kernel (VIDIOC_QUERYCAP, asked with an
ioctl, no OpenCV needed) says it captures video and sits on a USB bus (`bus_info`
"usb-..."): a Pi camera is opened through picamera2, never through its raw node.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.camera import CameraError, CameraTimeout, Frame
from scanner.vision.images import Gray

if TYPE_CHECKING:
    from scanner.config import CameraSection

log = logging.getLogger(__name__)

# struct v4l2_capability: driver[16], card[32], bus_info[32], then u32 version,
# capabilities, device_caps and reserved[3]: 104 bytes. _IOR('V', 0, that struct):
VIDIOC_QUERYCAP = 0x80685600
CAPABILITY_SIZE = 104
CAPS_OFFSET = 84
CAP_VIDEO_CAPTURE = 0x00000001
CAP_DEVICE_CAPS = 0x80000000  # device_caps describes this node (capabilities: the device)


class V4l2Source:
    def __init__(
        self, device: str, camera: CameraSection, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = f"v4l2:{device}"
        self._device = device
        self._settings = camera
        self._clock = clock
        self._cv2 = import_cv2()
        self._capture: Any = None
        self._frames = 0
        self._open()

    def read(self) -> Frame:
        if self._capture is None:
            raise CameraError(f"{self.name}: the camera is closed")
        ok, image = self._capture.read()
        if not ok:
            timeout = self._settings.capture_timeout_s
            raise CameraTimeout(f"{self.name}: no frame within {timeout:g} s")
        self._frames += 1
        return Frame(opencv_gray(self._cv2, image), self._clock(), self._frames)

    def restart(self) -> None:
        self.close()
        self._open()

    def close(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def _open(self) -> None:
        cv2, settings = self._cv2, self._settings
        capture = cv2.VideoCapture(self._device, cv2.CAP_V4L2)
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"{self.name}: cannot open the device (missing, busy, or no access)")
        timeout_ms = settings.capture_timeout_s * 1000
        for prop, value in (
            (cv2.CAP_PROP_FRAME_WIDTH, settings.width),
            (cv2.CAP_PROP_FRAME_HEIGHT, settings.height),
            (cv2.CAP_PROP_FPS, settings.fps),
            (cv2.CAP_PROP_BUFFERSIZE, 1),  # the newest frame, not a queue of old ones
            (cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms),
        ):
            capture.set(prop, value)
        self._capture = capture
        size = (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        log.info("%s: %gx%g at %g fps", self.name, *size, capture.get(cv2.CAP_PROP_FPS))


def import_cv2() -> Any:
    try:
        import cv2
    except ImportError as error:
        raise CameraError(
            f"webcams and video replay need OpenCV ({error}): pip install 'qrgate[webcam]'"
        ) from None
    return cv2


def opencv_gray(cv2: Any, image: Any) -> Gray:
    """OpenCV delivers BGR; some devices and files deliver grayscale already."""
    gray: Gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
    return gray


@dataclass(frozen=True)
class Capability:
    """What VIDIOC_QUERYCAP says about a node (struct v4l2_capability)."""

    driver: str  # "uvcvideo", "unicam", "bcm2835-isp", "rp1-cfe", ...
    card: str
    bus_info: str  # "usb-0000:01:00.0-1.3", "platform:bcm2835-isp", ...
    capabilities: int
    device_caps: int

    @classmethod
    def parse(cls, raw: bytes) -> Capability:
        driver, card, bus_info = (
            field.split(b"\0", 1)[0].decode("utf-8", "replace")
            for field in struct.unpack_from("=16s32s32s", raw)
        )
        capabilities, device_caps = struct.unpack_from("=II", raw, CAPS_OFFSET)
        return cls(driver, card, bus_info, capabilities, device_caps)

    @property
    def captures_video(self) -> bool:
        caps = self.device_caps if self.capabilities & CAP_DEVICE_CAPS else self.capabilities
        return bool(caps & CAP_VIDEO_CAPTURE)

    @property
    def is_webcam(self) -> bool:
        """A camera of its own on a USB bus; not an ISP, codec or CSI receiver node."""
        return self.captures_video and self.bus_info.startswith("usb-")


def capture_devices(
    root: Path = Path("/dev"), query: Callable[[Path], bytes | None] | None = None
) -> list[str]:
    """The /dev/video* nodes of USB webcams that capture video, lowest number first."""
    ask = query or query_capabilities
    nodes = [path for path in root.glob("video*") if re.fullmatch(r"video\d+", path.name)]
    nodes.sort(key=lambda path: int(path.name.removeprefix("video")))
    found = []
    for path in nodes:
        raw = ask(path)
        if raw is None:
            continue
        capability = Capability.parse(raw)
        if capability.is_webcam:
            found.append(str(path))
        else:
            log.debug("%s (%s, %s) is not a webcam", path, capability.driver, capability.bus_info)
    return found


def query_capabilities(path: Path) -> bytes | None:
    """The node's struct v4l2_capability, or None when it cannot be asked."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        buffer = bytearray(CAPABILITY_SIZE)
        fcntl.ioctl(fd, VIDIOC_QUERYCAP, buffer)
        return bytes(buffer)
    except OSError:
        return None
    finally:
        os.close(fd)
