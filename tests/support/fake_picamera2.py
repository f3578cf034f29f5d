"""Stand-ins for the `picamera2` and `libcamera` modules, for machines without a Pi camera.

They follow picamera2's API as the gate uses it (checked against picamera2 0.3.x:
`Picamera2.global_camera_info()`, `camera_controls`, `create_video_configuration(main=,
lores=, controls=)`, `configure`, `start`, `capture_array(name, wait=)` raising
`TimeoutError`, `cancel_all_and_flush`, `stop`, `close`) and record what was done to them.
A `Rig` says what the cameras do: connected or not, failing to open, stalling after some
frames. Install with `install(monkeypatch, rig)`.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
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
)

# What a Camera Module 3 advertises (min, max, default), trimmed to what matters here.
MODULE_3_CONTROLS = {
    "FrameDurationLimits": (33333, 120000, None),
    "AeExposureMode": (0, 3, 0),
    "AfMode": (0, 2, 0),
    "AfRange": (0, 2, 0),
    "AfSpeed": (0, 1, 0),
}
# A Camera Module 2 has no autofocus.
MODULE_2_CONTROLS = {
    key: MODULE_3_CONTROLS[key] for key in ("FrameDurationLimits", "AeExposureMode")
}


def luma(number: int, size: tuple[int, int]) -> NDArray[np.uint8]:
    """The Y plane of frame `number`: a ramp, so that rows, columns and frames differ."""
    width, height = size
    ys, xs = np.indices((height, width))
    return ((xs + 2 * ys + 7 * number) % 200).astype(np.uint8)


@dataclass
class Rig:
    connected: bool = True
    controls: dict[str, tuple[Any, Any, Any]] = field(
        default_factory=lambda: dict(MODULE_3_CONTROLS)
    )
    open_error: Exception | None = None
    # Each camera opened takes the next entry: frames it delivers before every capture
    # times out (None: frames forever).
    stalls: list[int | None] = field(default_factory=list)
    cameras: list[Any] = field(default_factory=list)  # every FakePicamera2 created


def install(monkeypatch: pytest.MonkeyPatch, rig: Rig) -> types.ModuleType:
    """Put fake `picamera2` and `libcamera` modules in sys.modules for this test."""
    picamera2 = types.ModuleType("picamera2")
    picamera2.Picamera2 = fake_picamera2_class(rig)  # type: ignore[attr-defined]
    libcamera = types.ModuleType("libcamera")
    libcamera.controls = CONTROLS  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "picamera2", picamera2)
    monkeypatch.setitem(sys.modules, "libcamera", libcamera)
    return picamera2


def fake_picamera2_class(rig: Rig) -> Callable[..., Any]:
    class FakePicamera2:
        @staticmethod
        def global_camera_info() -> list[dict[str, Any]]:
            return (
                [{"Model": "imx708", "Location": 2, "Id": "/base/soc/i2c0mux"}]
                if rig.connected
                else []
            )

        def __init__(self, camera_num: int = 0) -> None:
            if not rig.connected:
                raise RuntimeError(f"No camera number {camera_num} found")
            if rig.open_error is not None:
                raise rig.open_error
            self.calls: list[str] = []
            self.config: dict[str, Any] | None = None
            self.started = self.closed = False
            self.delivered = 0
            self.stall_after = (
                rig.stalls[len(rig.cameras)] if len(rig.stalls) > len(rig.cameras) else None
            )
            self.waits: list[float | None] = []
            rig.cameras.append(self)

        @property
        def camera_controls(self) -> dict[str, tuple[Any, Any, Any]]:
            return rig.controls

        def create_video_configuration(
            self,
            main: dict[str, Any],
            lores: dict[str, Any] | None = None,
            controls: dict[str, Any] | None = None,
        ) -> dict[str, Any]:
            for name in controls or {}:
                if name not in rig.controls:
                    raise RuntimeError(f"Control {name} is not advertised by libcamera")
            return {"main": main, "lores": lores, "controls": controls or {}}

        def configure(self, config: dict[str, Any]) -> None:
            self.calls.append("configure")
            self.config = config

        def start(self) -> None:
            self.calls.append("start")
            self.started = True

        def capture_array(self, name: str = "main", wait: float | None = None) -> NDArray[np.uint8]:
            self.waits.append(wait)
            assert self.started, "capture on a camera that is not started"
            assert not self.closed, "capture on a closed camera"
            if self.stall_after is not None and self.delivered >= self.stall_after:
                raise TimeoutError
            assert self.config is not None
            stream = self.config[name]
            self.delivered += 1
            return yuv420(luma(self.delivered, stream["size"]))

        def cancel_all_and_flush(self) -> None:
            self.calls.append("cancel_all_and_flush")

        def stop(self) -> None:
            self.calls.append("stop")
            self.started = False

        def close(self) -> None:
            self.calls.append("close")
            self.closed = True

    return FakePicamera2


def yuv420(y: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """A YUV420 buffer as picamera2 returns it: (height * 3 / 2, stride), Y plane first,
    rows padded to a multiple of 64 bytes, grey chroma below."""
    height, width = y.shape
    stride = (width + 63) // 64 * 64
    array = np.full((height * 3 // 2, stride), 128, np.uint8)
    array[:height, width:] = 0
    array[:height, :width] = y
    return array
