"""Stand-ins for the `picamera2` and `libcamera` modules, for machines without a Pi camera.

They follow picamera2 as the gate uses it, read from its source (0.3.20 to 0.3.36,
`picamera2/picamera2.py`, `job.py`, `request.py`, `dma_heap.py`), including its failures:

- `Picamera2.global_camera_info()` lists every camera libcamera sees, USB (UVC) webcams
  too, sorted with those (an `Id` containing "/usb") last; `Picamera2(n)` opens entry
  n, and an index past the list is an `IndexError`;
- the constructor acquires the camera, then opens the DMA heap: a `PermissionError` there
  leaves the camera acquired (picamera2 registered it to be closed at exit); any other
  failure inside is `RuntimeError("Camera __init__ sequence did not complete.")`, also
  what a camera another process holds gives;
- a UVC camera has no `ColorFilterArrangement` property and no `FrameDurationLimits`
  control, and libcamera gives no configuration for two streams of it: picamera2 then
  fails with `AttributeError` on `None`;
- `create_video_configuration(main=, lores=, raw=, buffer_count=6, controls=, ...)` fills
  in picamera2's defaults (an XBGR8888 main at 1280x720, a raw stream, six buffers);
  `configure` checks the streams as picamera2 does, allocates buffers (`OSError` ENOMEM
  when the DMA heap is exhausted), rejects controls the camera does not advertise, and
  writes back the size and the row stride libcamera chose (the Pi 5 pads YUV420 rows to
  128 bytes: a 704-wide stream has a stride of 768);
- `capture_array(name, wait=S)` returns a YUV420 stream as `(height * 3 // 2, stride)`,
  raises `TimeoutError` after `wait` seconds without a frame, and
  `concurrent.futures.CancelledError` when another thread's `cancel_all_and_flush()`
  cancels the waiting capture;
- picamera2 older than 0.3.20 has no `cancel_all_and_flush`.

A `Rig` says what the cameras do. Install with `install(monkeypatch, rig)`, or make the
import itself fail with `install_failing_import`.
"""

from __future__ import annotations

import errno
import importlib.abc
import importlib.machinery
import sys
import threading
import types
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

# libcamera.controls enums the gate uses, with libcamera's values.
CONTROLS = types.SimpleNamespace(
    AfModeEnum=types.SimpleNamespace(Manual=0, Auto=1, Continuous=2),
    AfRangeEnum=types.SimpleNamespace(Normal=0, Macro=1, Full=2),
    AfSpeedEnum=types.SimpleNamespace(Normal=0, Fast=1),
    AeExposureModeEnum=types.SimpleNamespace(Normal=0, Short=1, Long=2, Custom=3),
    draft=types.SimpleNamespace(NoiseReductionModeEnum=types.SimpleNamespace(Fast=1)),
)

# What a Camera Module 3 advertises (min, max, default), trimmed to what matters here.
MODULE_3_CONTROLS = {
    "FrameDurationLimits": (33333, 120000, None),
    "NoiseReductionMode": (0, 4, 0),
    "AeExposureMode": (0, 3, 0),
    "AfMode": (0, 2, 0),
    "AfRange": (0, 2, 0),
    "AfSpeed": (0, 1, 0),
}
# A Camera Module 2 has no autofocus.
MODULE_2_CONTROLS = {
    key: MODULE_3_CONTROLS[key] for key in ("FrameDurationLimits", "AeExposureMode")
}
# A UVC webcam through libcamera's uvcvideo pipeline: V4L2 controls, no frame duration.
UVC_CONTROLS = {"Brightness": (-1.0, 1.0, 0.0), "Contrast": (0.0, 2.0, 1.0)}

CSI_CAMERA = {
    "Model": "imx708",
    "Location": 2,
    "Rotation": 180,
    "Id": "/base/soc/i2c0mux/i2c@1/imx708@1a",
}
USB_CAMERA = {
    "Model": "HD Pro Webcam C920",
    "Id": "/base/scb/pcie@7d500000/pci@0,0/usb@0,0-1:1.0-046d:082d",
}
PI_PROPERTIES = {"Model": "imx708", "ColorFilterArrangement": 0, "PixelArraySize": (4608, 2592)}
UVC_PROPERTIES = {"Model": "HD Pro Webcam C920", "Location": 2}

INIT_FAILED = "Camera __init__ sequence did not complete."
RAW_DEFAULT: Any = object()  # picamera2's raw={}: a raw stream, sized like main
NUMPY_ABI = (
    "numpy.dtype size changed, may indicate binary incompatibility. "
    "Expected 96 from C header, got 88 from PyObject"
)


def luma(number: int, size: tuple[int, int]) -> NDArray[np.uint8]:
    """The Y plane of frame `number`: a ramp, so that rows, columns and frames differ."""
    width, height = size
    ys, xs = np.indices((height, width))
    return ((xs + 2 * ys + 7 * number) % 200).astype(np.uint8)


@dataclass
class Rig:
    connected: bool = True
    usb_webcam: bool = False  # a UVC webcam plugged in too, which libcamera lists
    webcam_id: str = USB_CAMERA["Id"]
    controls: dict[str, tuple[Any, Any, Any]] = field(
        default_factory=lambda: dict(MODULE_3_CONTROLS)
    )
    platform: str = "vc4"  # "vc4" (Pi 4 and older) or "pisp" (Pi 5)
    version: tuple[int, int, int] = (0, 3, 36)
    open_error: Exception | None = None  # raised inside the constructor's sequence
    dma_heap_denied: bool = False  # /dev/dma_heap not accessible to this user
    dma_exhausted: bool = False  # frame buffers cannot be allocated (ENOMEM)
    start_error: Exception | None = None
    # Each camera opened takes the next entry: frames it delivers before every capture
    # times out (None: frames forever).
    stalls: list[int | None] = field(default_factory=list)
    cameras: list[Any] = field(default_factory=list)  # every FakePicamera2 created
    acquired: set[str] = field(default_factory=set)  # camera ids held

    def camera_list(self) -> list[dict[str, Any]]:
        webcam = {**USB_CAMERA, "Id": self.webcam_id}
        listed = ([CSI_CAMERA] if self.connected else []) + ([webcam] if self.usb_webcam else [])
        numbered = [{**camera, "Num": number} for number, camera in enumerate(listed)]
        return sorted(
            numbered, key=lambda camera: ("/usb" not in camera["Id"], camera["Id"]), reverse=True
        )


def install(monkeypatch: pytest.MonkeyPatch, rig: Rig) -> types.ModuleType:
    """Put fake `picamera2` and `libcamera` modules in sys.modules for this test."""
    picamera2 = types.ModuleType("picamera2")
    picamera2.Picamera2 = fake_picamera2_class(rig)  # type: ignore[attr-defined]
    libcamera = types.ModuleType("libcamera")
    libcamera.controls = CONTROLS  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", picamera2)
    monkeypatch.setitem(sys.modules, "libcamera", libcamera)
    monkeypatch.setattr("importlib.metadata.version", package_version(rig))
    return picamera2


def package_version(rig: Rig) -> Callable[[str], str]:
    from importlib import metadata

    real = metadata.version

    def version(name: str) -> str:
        return ".".join(map(str, rig.version)) if name == "picamera2" else real(name)

    return version


class FailingImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds `picamera2` and fails while executing it, as a broken install does."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "picamera2":
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        raise self.error


def install_failing_import(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """`import picamera2` raises `error`: apt's picamera2 (and simplejpeg, built against
    numpy 1.x) under a venv's numpy 2 raises ValueError(NUMPY_ABI) at import."""
    monkeypatch.delitem(sys.modules, "picamera2", raising=False)
    monkeypatch.setattr(sys, "meta_path", [FailingImport(error), *sys.meta_path])


def stride_for(width: int, platform: str) -> int:
    """libcamera's row stride of a YUV420 stream: the ISP writes rows 64 bytes aligned on a
    Pi 4 and older, 128 on a Pi 5."""
    align = 128 if platform == "pisp" else 64
    return (width + align - 1) // align * align


def fake_picamera2_class(rig: Rig) -> Callable[..., Any]:
    class FakePicamera2:
        @staticmethod
        def global_camera_info() -> list[dict[str, Any]]:
            return rig.camera_list()

        def __init__(self, camera_num: int = 0) -> None:
            info = self.global_camera_info()[camera_num]  # IndexError past the list
            self.info = info
            self.calls: list[str] = []
            self.camera_config: dict[str, Any] | None = None
            self.started = self.closed = False
            self.is_open = False
            self.delivered = 0
            self.waits: list[float | None] = []
            self.stall_after = (
                rig.stalls[len(rig.cameras)] if len(rig.stalls) > len(rig.cameras) else None
            )
            self._jobs: list[threading.Event] = []
            self.capturing = threading.Event()  # set while a capture waits for a frame
            rig.cameras.append(self)
            try:
                if rig.open_error is not None or info["Id"] in rig.acquired:
                    raise RuntimeError("camera busy or failing")
                rig.acquired.add(info["Id"])
                self.is_open = True
            except Exception:
                raise RuntimeError(INIT_FAILED) from None
            if rig.dma_heap_denied:  # DmaAllocator(), after the try: the camera stays held
                raise PermissionError(errno.EACCES, "Permission denied", "/dev/dma_heap/linux,cma")

        @property
        def usb(self) -> bool:
            return bool(self.info["Id"] == rig.webcam_id)

        @property
        def camera_properties(self) -> dict[str, Any]:
            return dict(UVC_PROPERTIES if self.usb else PI_PROPERTIES) if self.is_open else {}

        @property
        def camera_controls(self) -> dict[str, tuple[Any, Any, Any]]:
            return dict(UVC_CONTROLS if self.usb else rig.controls)

        def create_video_configuration(  # noqa: PLR0917 - picamera2's own signature
            self,
            main: dict[str, Any] | None = None,
            lores: dict[str, Any] | None = None,
            raw: Any = RAW_DEFAULT,
            buffer_count: int = 6,
            controls: dict[str, Any] | None = None,
            display: str | None = "main",
            encode: str | None = "main",
            **ignored: Any,
        ) -> dict[str, Any]:
            if not self.is_open:
                raise RuntimeError("Camera not opened")
            raw = {} if raw is RAW_DEFAULT else raw
            main = stream({"format": "XBGR8888", "size": (1280, 720)}, main or {})
            lores = (
                None if lores is None else stream({"format": "YUV420", "size": main["size"]}, lores)
            )
            if self.usb:
                raw = None
            elif raw is not None:
                raw = stream({"format": "SBGGR10_CSI2P", "size": main["size"]}, raw)
            defaults = {}
            if {"NoiseReductionMode", "FrameDurationLimits"} <= set(self.camera_controls):
                defaults = {"NoiseReductionMode": 1, "FrameDurationLimits": (33333, 33333)}
            return {
                "main": main,
                "lores": lores,
                "raw": raw,
                "buffer_count": buffer_count,
                "controls": defaults | (controls or {}),
                "display": display,
                "encode": encode,
            }

        def configure(self, config: dict[str, Any]) -> None:
            self.calls.append("configure")
            if self.started:
                raise RuntimeError("Camera must be stopped before configuring")
            check_streams(config, rig.platform)
            if self.usb and config["lores"] is not None:
                # libcamera's uvcvideo pipeline gives no configuration for two streams.
                raise AttributeError("'NoneType' object has no attribute 'orientation'")
            for name in config["controls"]:
                if name not in self.camera_controls:
                    raise RuntimeError(f"Control {name} is not advertised by libcamera")
            if rig.dma_exhausted:
                raise OSError(errno.ENOMEM, "Cannot allocate memory")
            for name in ("main", "lores"):
                if config[name] is not None:
                    width, height = config[name]["size"]
                    config[name]["stride"] = stride_for(width, rig.platform)
                    config[name]["framesize"] = config[name]["stride"] * height * 3 // 2
            self.camera_config = config

        def start(self) -> None:
            self.calls.append("start")
            if self.camera_config is None:
                raise RuntimeError("Camera has not been configured")
            if rig.start_error is not None:
                raise rig.start_error
            self.started = True

        def capture_array(self, name: str = "main", wait: float | None = None) -> NDArray[np.uint8]:
            self.waits.append(wait)
            assert self.started, "capture on a camera that is not started"
            assert not self.closed, "capture on a closed camera"
            if self.stall_after is not None and self.delivered >= self.stall_after:
                self._wait_for_a_frame(wait)
            assert self.camera_config is not None
            config = self.camera_config[name]
            assert config["format"] == "YUV420", "the fake delivers YUV420 only"
            self.delivered += 1
            return yuv420(luma(self.delivered, config["size"]), config["stride"])

        def _wait_for_a_frame(self, wait: float | None) -> None:
            """No frame comes: the job waits until `wait` runs out or it is cancelled."""
            cancelled = threading.Event()
            self._jobs.append(cancelled)
            self.capturing.set()
            try:
                if cancelled.wait(wait):
                    raise CancelledError
                raise TimeoutError
            finally:
                self.capturing.clear()

        def cancel_all_and_flush(self) -> None:
            self.calls.append("cancel_all_and_flush")
            jobs, self._jobs = self._jobs, []
            for job in jobs:
                job.set()

        def stop(self) -> None:
            self.calls.append("stop")
            self.started = False

        def close(self) -> None:
            self.calls.append("close")
            if self.is_open:
                self.stop()
                rig.acquired.discard(self.info["Id"])
            self.is_open = False
            self.closed = True

    if rig.version < (0, 3, 20):
        del FakePicamera2.cancel_all_and_flush
    return FakePicamera2


def stream(defaults: dict[str, Any], updates: dict[str, Any]) -> dict[str, Any]:
    """picamera2's _make_initial_stream_config and align_stream(optimal=False)."""
    valid = ("format", "size", "stride", "preserve_ar")
    for key in updates:
        if key not in valid:
            raise ValueError(f"Bad key {key!r}: valid stream configuration keys are {valid}")
    config = {**defaults, **updates}
    width, height = config["size"]
    config["size"] = (width - width % 2, height - height % 2)
    return config


def check_streams(config: dict[str, Any], platform: str) -> None:
    """picamera2's check_camera_config, for what the gate can get wrong."""
    if config["lores"] is None:
        return
    main_w, main_h = config["main"]["size"]
    lores_w, lores_h = config["lores"]["size"]
    if lores_w > main_w or lores_h > main_h:
        raise RuntimeError("lores stream dimensions may not exceed main stream")
    if platform == "vc4" and config["lores"]["format"] not in ("YUV420", "YVU420"):
        raise RuntimeError("lores stream must be YUV")


def yuv420(y: NDArray[np.uint8], stride: int) -> NDArray[np.uint8]:
    """A YUV420 buffer as picamera2 returns it: (height * 3 / 2, stride), Y plane first,
    rows padded to the stride, grey chroma below."""
    height, width = y.shape
    array = np.full((height * 3 // 2, stride), 128, np.uint8)
    array[:height, width:] = 0
    array[:height, :width] = y
    return array
