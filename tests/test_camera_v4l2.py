"""Webcams: the V4L2 source against a stand-in for OpenCV, the device search, a real device."""

from __future__ import annotations

import struct
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from scanner.camera import CameraError, CameraTimeout, open_source
from scanner.camera import v4l2 as v4l2_module
from scanner.camera.v4l2 import Capability, V4l2Source, capture_devices
from scanner.config import CameraSection


class FakeCapture:
    """cv2.VideoCapture as the source uses it; `frames` BGR frames, then failed reads."""

    def __init__(self, device: str, api: int, frames: int | None, opens: bool = True) -> None:
        self.device, self.api, self.frames = device, api, frames
        self.opened, self.released = opens, False
        self.props: dict[int, float] = {}
        self.reads = 0

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def get(self, prop: int) -> float:
        return self.props.get(prop, 0.0)

    def read(self) -> tuple[bool, Any]:
        if self.frames is not None and self.reads >= self.frames:
            return False, None
        self.reads += 1
        bgr = np.zeros((4, 6, 3), np.uint8)
        bgr[..., 2] = 10 * self.reads  # red channel only
        return True, bgr

    def release(self) -> None:
        self.released = True


@pytest.fixture
def fake_cv2(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """A cv2 module whose VideoCapture follows `plan`: frames per capture opened."""
    captures: list[FakeCapture] = []
    fake = types.SimpleNamespace(
        CAP_V4L2=200,
        CAP_PROP_FRAME_WIDTH=3,
        CAP_PROP_FRAME_HEIGHT=4,
        CAP_PROP_FPS=5,
        CAP_PROP_BUFFERSIZE=38,
        CAP_PROP_READ_TIMEOUT_MSEC=54,
        COLOR_BGR2GRAY=6,
        plan=[],
        opens=True,
        captures=captures,
    )

    def video_capture(device: str, api: int) -> FakeCapture:
        frames = fake.plan[len(captures)] if len(fake.plan) > len(captures) else None
        captures.append(FakeCapture(device, api, frames, fake.opens))
        return captures[-1]

    def cvt_color(image: Any, code: int) -> Any:
        assert code == fake.COLOR_BGR2GRAY
        weights = np.array([0.114, 0.587, 0.299])  # B, G, R
        return np.rint(image @ weights).astype(np.uint8)

    fake.VideoCapture, fake.cvtColor = video_capture, cvt_color
    monkeypatch.setitem(sys.modules, "cv2", fake)
    return fake


def settings(**values: Any) -> CameraSection:
    return CameraSection(**{"source": "v4l2:/dev/video3", "width": 320, "height": 240, **values})


def test_opens_the_device_with_size_rate_and_timeout(fake_cv2: types.SimpleNamespace) -> None:
    source = open_source(settings(fps=15, capture_timeout_s=1.5))
    assert source.name == "v4l2:/dev/video3"
    [capture] = fake_cv2.captures
    assert (capture.device, capture.api) == ("/dev/video3", fake_cv2.CAP_V4L2)
    assert capture.props == {3: 320, 4: 240, 5: 15, 38: 1, 54: 1500}


def test_frames_are_grayscale_and_numbered(fake_cv2: types.SimpleNamespace) -> None:
    source = V4l2Source("/dev/video3", settings(), clock=iter([5.0, 6.0]).__next__)
    first, second = source.read(), source.read()
    assert first.image.shape == (4, 6)
    assert first.image[0, 0] == round(0.299 * 10)
    assert (first.number, second.number) == (1, 2)
    assert (first.captured, second.captured) == (5.0, 6.0)


def test_failed_read_is_a_timeout_and_restart_reopens(fake_cv2: types.SimpleNamespace) -> None:
    fake_cv2.plan = [1, None]
    source = V4l2Source("/dev/video3", settings(capture_timeout_s=2))
    source.read()
    with pytest.raises(CameraTimeout, match="no frame within 2 s"):
        source.read()
    source.restart()
    assert fake_cv2.captures[0].released
    assert source.read().number == 2


def test_device_that_does_not_open(fake_cv2: types.SimpleNamespace) -> None:
    fake_cv2.opens = False
    with pytest.raises(CameraError, match="cannot open the device"):
        V4l2Source("/dev/video3", settings())
    assert fake_cv2.captures[0].released


def test_without_opencv_says_which_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cv2", None)
    with pytest.raises(CameraError, match=r"qrgate\[webcam\]"):
        V4l2Source("/dev/video0", settings())


def capability(
    capabilities: int, device_caps: int, driver: str = "uvcvideo", bus_info: str = "usb-1"
) -> bytes:
    """A struct v4l2_capability as the kernel fills it in."""
    text = (
        driver.encode().ljust(16, b"\0")
        + b"HD Webcam".ljust(32, b"\0")
        + bus_info.encode().ljust(32, b"\0")
    )
    return text + struct.pack("=IIII", 0x60100, capabilities, device_caps, 0) + bytes(8)


# Nodes of a Raspberry Pi 4 with a Camera Module and a USB webcam, as VIDIOC_QUERYCAP
# reports them: (driver, bus_info, capabilities, device_caps).
PI_NODES = {
    "video0": ("unicam", "platform:fe801000.csi", 0xA5A00001, 0x25200001),  # CSI raw
    "video10": ("bcm2835-codec", "platform:bcm2835-codec", 0x84204000, 0x04204000),
    "video14": ("bcm2835-isp", "platform:bcm2835-isp", 0x84A00001, 0x04200001),  # ISP out
    "video15": ("bcm2835-isp", "platform:bcm2835-isp", 0x84A00001, 0x04200001),
    "video19": ("uvcvideo", "usb-0000:01:00.0-1.3", 0x84A00001, 0x04200001),  # webcam
    "video20": ("uvcvideo", "usb-0000:01:00.0-1.3", 0x84A00001, 0x04A00000),  # its metadata
}


def pi_query(path: Path) -> bytes | None:
    driver, bus, capabilities, device_caps = PI_NODES[path.name]
    return capability(capabilities, device_caps, driver, bus)


@pytest.mark.parametrize(
    ("capabilities", "device_caps", "captures"),
    [
        (0x84A00001, 0x04200001, True),  # a UVC webcam's capture node
        (0x84A00001, 0x04A00000, False),  # the same webcam's metadata node
        (0x84204000, 0x04204000, False),  # a Pi codec (memory to memory)
        (0x05000001, 0, True),  # an old driver without per-node capabilities
    ],
)
def test_only_video_capture_nodes_count(
    capabilities: int, device_caps: int, captures: bool
) -> None:
    assert Capability.parse(capability(capabilities, device_caps)).captures_video is captures


def test_only_usb_webcams_count_not_the_isp_or_the_csi_receiver(tmp_path: Path) -> None:
    for name in PI_NODES:
        (tmp_path / name).touch()
    assert capture_devices(tmp_path, pi_query) == [str(tmp_path / "video19")]


def test_a_pi_without_a_webcam_has_no_capture_device(tmp_path: Path) -> None:
    for name in ("video0", "video10", "video14", "video15"):
        (tmp_path / name).touch()
    assert capture_devices(tmp_path, pi_query) == []


def test_devices_are_searched_in_number_order(tmp_path: Path) -> None:
    for name in ("video10", "video2", "video1", "videodev", "media0"):
        (tmp_path / name).touch()
    capture_nodes = {"video10", "video2"}
    assert capture_devices(
        tmp_path,
        lambda path: capability(
            0x84A00001, 0x04200001 if path.name in capture_nodes else 0x04A00000
        ),
    ) == [str(tmp_path / "video2"), str(tmp_path / "video10")]


def test_capabilities_are_asked_with_vidioc_querycap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = tmp_path / "video0"
    node.touch()
    asked: list[int] = []

    def kernel(fd: int, request: int, buffer: bytearray) -> int:
        asked.append(request)
        buffer[:] = capability(0x84A00001, 0x04200001, "uvcvideo", "usb-xhci-hcd.0-1")
        return 0

    monkeypatch.setattr(v4l2_module.fcntl, "ioctl", kernel)
    assert capture_devices(tmp_path) == [str(node)]
    assert asked == [0x80685600]
    parsed = Capability.parse(v4l2_module.query_capabilities(node) or b"")
    assert (parsed.driver, parsed.card, parsed.bus_info) == (
        "uvcvideo",
        "HD Webcam",
        "usb-xhci-hcd.0-1",
    )


def test_nodes_that_cannot_be_asked_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "video0").touch()  # a plain file: the ioctl fails
    assert capture_devices(tmp_path) == []


def test_auto_falls_back_to_the_first_webcam(
    fake_cv2: types.SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    monkeypatch.setattr(v4l2_module, "capture_devices", lambda: ["/dev/video2"])
    assert open_source(settings(source="auto")).name == "v4l2:/dev/video2"


def test_auto_with_no_camera_names_what_it_tried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    monkeypatch.setattr(v4l2_module, "capture_devices", list)
    with pytest.raises(CameraError, match="picamera2 is not installed") as raised:
        open_source(settings(source="auto"))
    assert "no USB webcam among /dev/video*" in str(raised.value)


@pytest.mark.skipif(not capture_devices(), reason="no video capture device on this machine")
def test_a_real_webcam_delivers_grayscale_frames() -> None:
    source = V4l2Source(capture_devices()[0], settings())
    try:
        frame = source.read()
    finally:
        source.close()
    assert frame.image.ndim == 2
    assert frame.image.dtype == np.uint8
