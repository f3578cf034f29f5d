"""The Pi camera source against a stand-in for picamera2 with its API (no camera here)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from scanner.camera import CameraError, CameraTimeout, open_source
from scanner.camera.picamera import NoPiCameraError, PiCameraSource
from scanner.config import CameraSection
from tests.support.fake_picamera2 import MODULE_2_CONTROLS, Rig, install, luma


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Rig:
    rig = Rig()
    install(monkeypatch, rig)
    return rig


def settings(**values: Any) -> CameraSection:
    return CameraSection(**{"source": "picamera2", "width": 320, "height": 240, **values})


def clock() -> Iterator[float]:
    return iter(float(n) for n in range(100))


def test_reads_the_luma_plane_of_the_lores_stream(rig: Rig) -> None:
    source = PiCameraSource(settings(fps=25), clock=clock().__next__)
    frames = [source.read() for _ in range(3)]
    [camera] = rig.cameras
    assert camera.config["lores"] == {"size": (320, 240), "format": "YUV420"}
    assert camera.config["main"]["size"] == (320, 240)
    assert camera.config["controls"]["FrameDurationLimits"] == (40_000, 40_000)
    assert [frame.number for frame in frames] == [1, 2, 3]
    assert [frame.captured for frame in frames] == [0.0, 1.0, 2.0]
    for number, frame in enumerate(frames, 1):
        assert frame.image.shape == (240, 320)
        assert np.array_equal(frame.image, luma(number, (320, 240)))


def test_every_capture_waits_at_most_the_capture_timeout(rig: Rig) -> None:
    source = PiCameraSource(settings(capture_timeout_s=0.75))
    for _ in range(3):
        source.read()
    assert rig.cameras[0].waits == [0.75, 0.75, 0.75]


def test_autofocus_and_short_exposure_where_the_camera_has_them(rig: Rig) -> None:
    PiCameraSource(settings(exposure="short"))
    controls = rig.cameras[0].config["controls"]
    assert (controls["AfMode"], controls["AfRange"], controls["AfSpeed"]) == (2, 1, 1)
    assert controls["AeExposureMode"] == 1


def test_no_autofocus_on_a_camera_without_it(rig: Rig) -> None:
    rig.controls = dict(MODULE_2_CONTROLS)
    PiCameraSource(settings(autofocus=True))
    assert not {"AfMode", "AfRange", "AfSpeed"} & set(rig.cameras[0].config["controls"])


def test_normal_exposure_and_no_autofocus_when_configured(rig: Rig) -> None:
    PiCameraSource(settings(autofocus=False, exposure="normal"))
    assert set(rig.cameras[0].config["controls"]) == {"FrameDurationLimits"}


def test_timeout_cancels_the_capture_and_restart_reopens(rig: Rig) -> None:
    rig.stalls = [2, None]
    source = PiCameraSource(settings(capture_timeout_s=0.5))
    source.read()
    source.read()
    with pytest.raises(CameraTimeout, match=r"no frame within 0\.5 s"):
        source.read()
    first = rig.cameras[0]
    assert first.calls[-1] == "cancel_all_and_flush"
    source.restart()
    assert first.calls[-3:] == ["cancel_all_and_flush", "stop", "close"]
    assert source.read().number == 3
    assert rig.cameras[1].started


def test_no_camera_connected_is_unavailable(rig: Rig) -> None:
    rig.connected = False
    with pytest.raises(NoPiCameraError, match="no camera connected"):
        PiCameraSource(settings())


def test_busy_camera_is_an_error_not_unavailable(rig: Rig) -> None:
    rig.open_error = RuntimeError("Camera __init__ sequence did not complete.")
    with pytest.raises(CameraError, match="did not complete") as raised:
        PiCameraSource(settings())
    assert not isinstance(raised.value, NoPiCameraError)


def test_without_picamera2_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(NoPiCameraError, match="apt install python3-picamera2"):
        PiCameraSource(settings())


def test_close_is_final_and_survives_a_failing_stop(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    source = PiCameraSource(settings())
    camera = rig.cameras[0]

    def broken_stop() -> None:
        raise RuntimeError("camera already stopped")

    camera.stop = broken_stop
    with caplog.at_level(logging.WARNING):
        source.close()
        source.close()
    assert camera.closed
    assert "stop failed" in caplog.text
    with pytest.raises(CameraError, match="closed"):
        source.read()


def test_auto_prefers_the_pi_camera(rig: Rig) -> None:
    source = open_source(settings(source="auto"))
    assert source.name == "picamera2"
    assert source.read().image.shape == (240, 320)
