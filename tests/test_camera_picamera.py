"""The Pi camera source against a stand-in for picamera2 that behaves, and fails, as
picamera2 does (no camera here)."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from scanner.camera import CameraError, CameraTimeout, open_source
from scanner.camera import v4l2 as v4l2_module
from scanner.camera.picamera import NoPiCameraError, PiCameraSource
from scanner.config import CameraSection
from tests.support.fake_picamera2 import (
    INIT_FAILED,
    MODULE_2_CONTROLS,
    NUMPY_ABI,
    Rig,
    install,
    install_failing_import,
    luma,
)


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Rig:
    rig = Rig()
    install(monkeypatch, rig)
    return rig


def settings(**values: Any) -> CameraSection:
    return CameraSection(**{"source": "picamera2", "width": 320, "height": 240, **values})


def clock() -> Iterator[float]:
    return iter(float(n) for n in range(100))


def test_reads_the_luma_plane_of_one_yuv420_stream(rig: Rig) -> None:
    source = PiCameraSource(settings(fps=25), clock=clock().__next__)
    frames = [source.read() for _ in range(3)]
    [camera] = rig.cameras
    config = camera.camera_config
    assert config["main"]["size"] == (320, 240)
    assert config["main"]["format"] == "YUV420"
    assert config["lores"] is None  # the ISP writes one image per frame, not two
    assert config["raw"] is None
    assert config["buffer_count"] < 6  # fewer than picamera2's video default
    assert config["controls"]["FrameDurationLimits"] == (40_000, 40_000)
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
    controls = rig.cameras[0].camera_config["controls"]
    assert (controls["AfMode"], controls["AfRange"], controls["AfSpeed"]) == (2, 1, 1)
    assert controls["AeExposureMode"] == 1


def test_no_autofocus_on_a_camera_without_it(rig: Rig) -> None:
    rig.controls = dict(MODULE_2_CONTROLS)
    PiCameraSource(settings(autofocus=True))
    assert not {"AfMode", "AfRange", "AfSpeed"} & set(rig.cameras[0].camera_config["controls"])


def test_normal_exposure_and_no_autofocus_when_configured(rig: Rig) -> None:
    PiCameraSource(settings(autofocus=False, exposure="normal"))
    assert set(rig.cameras[0].camera_config["controls"]) == {
        "FrameDurationLimits",
        "NoiseReductionMode",  # picamera2's own default for video
    }


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
    assert first.calls[-4:] == ["cancel_all_and_flush", "stop", "close", "stop"]
    assert source.read().number == 3
    assert rig.cameras[1].started


def test_no_camera_connected_is_unavailable(rig: Rig) -> None:
    rig.connected = False
    with pytest.raises(NoPiCameraError, match="no camera connected"):
        PiCameraSource(settings())


def test_busy_camera_is_an_error_not_unavailable(rig: Rig) -> None:
    holder = PiCameraSource(settings())  # another program (qrgate aim, rpicam-hello)
    with pytest.raises(CameraError, match="did not complete") as raised:
        PiCameraSource(settings())
    assert not isinstance(raised.value, NoPiCameraError)
    holder.close()
    PiCameraSource(settings()).close()  # free again


def test_without_picamera2_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(NoPiCameraError, match="apt install python3-picamera2"):
        PiCameraSource(settings())


def test_close_is_final_and_survives_a_failing_flush(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    source = PiCameraSource(settings())
    camera = rig.cameras[0]

    def broken_flush() -> None:
        raise RuntimeError("camera system in an indeterminate state")

    camera.cancel_all_and_flush = broken_flush
    with caplog.at_level(logging.WARNING):
        source.close()
        source.close()
    assert camera.closed
    assert rig.acquired == set()
    assert "broken_flush failed" in caplog.text
    with pytest.raises(CameraError, match="closed"):
        source.read()


def test_auto_prefers_the_pi_camera(rig: Rig) -> None:
    source = open_source(settings(source="auto"))
    assert source.name == "picamera2"
    assert source.read().image.shape == (240, 320)


def test_rows_padded_by_the_isp_are_cut_to_the_configured_width(rig: Rig) -> None:
    rig.platform = "pisp"  # a Pi 5 pads a 704-pixel row to 768 bytes
    source = PiCameraSource(settings(width=704, height=400))
    frame = source.read()
    assert rig.cameras[0].camera_config["main"]["stride"] == 768
    assert frame.image.shape == (400, 704)
    assert np.array_equal(frame.image, luma(1, (704, 400)))


def test_frames_are_cut_to_the_size_libcamera_configured(rig: Rig) -> None:
    source = PiCameraSource(settings(width=321, height=241))  # picamera2 makes them even
    assert source.read().image.shape == (240, 320)


def test_auto_skips_a_usb_webcam_that_picamera2_lists_first(rig: Rig) -> None:
    rig.usb_webcam = True
    source = open_source(settings(source="auto"))
    assert source.name == "picamera2"
    [camera] = rig.cameras
    assert "/usb" not in camera.info["Id"]
    assert source.read().image.shape == (240, 320)


def test_a_usb_webcam_alone_is_left_to_v4l2(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    rig.connected, rig.usb_webcam = False, True
    with pytest.raises(NoPiCameraError, match=r"only USB cameras \(HD Pro Webcam C920\)"):
        PiCameraSource(settings())
    assert rig.cameras == []  # never opened through picamera2
    monkeypatch.setattr(v4l2_module, "capture_devices", lambda: [])
    with pytest.raises(CameraError, match="no USB webcam among /dev/video"):
        open_source(settings(source="auto"))


def test_a_camera_without_a_colour_filter_is_not_a_pi_camera(rig: Rig) -> None:
    # A UVC camera whose id has no "/usb" is told apart by its properties; asked for
    # picamera2's usual streams it would fail with AttributeError.
    rig.connected, rig.usb_webcam = False, True
    rig.webcam_id = "/base/soc/uvc-1"
    with pytest.raises(NoPiCameraError, match="not a Pi camera"):
        PiCameraSource(settings())
    assert rig.cameras[0].closed
    assert rig.acquired == set()


def test_picamera2_that_does_not_load_is_no_pi_camera_with_its_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install_failing_import(monkeypatch, ValueError(NUMPY_ABI))
    with pytest.raises(NoPiCameraError, match=r"numpy\.dtype size changed") as raised:
        PiCameraSource(settings())
    assert "numpy 2 in the venv" in str(raised.value)
    monkeypatch.setattr(v4l2_module, "capture_devices", lambda: [])
    with pytest.raises(CameraError, match=r"no camera found: picamera2 does not load: ValueError"):
        open_source(settings(source="auto"))  # auto goes on to the webcams


def test_picamera2_older_than_0_3_20_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(version=(0, 3, 19))
    install(monkeypatch, rig)
    with pytest.raises(CameraError, match=r"picamera2 0\.3\.19 is too old: qrgate needs 0\.3\.20"):
        PiCameraSource(settings())
    assert rig.cameras == []


def test_no_access_to_the_dma_heap_releases_the_camera(rig: Rig) -> None:
    rig.dma_heap_denied = True
    with pytest.raises(CameraError, match=r"PermissionError: .*/dev/dma_heap/linux,cma"):
        PiCameraSource(settings())
    assert rig.cameras[0].closed
    assert rig.acquired == set()  # not held until the process exits


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("dma_exhausted", r"cannot start the camera: OSError: \[Errno 12\] Cannot allocate memory"),
        ("start_error", r"cannot start the camera: camera start failed"),
    ],
)
def test_a_camera_that_fails_to_start_is_released(rig: Rig, fault: str, message: str) -> None:
    if fault == "dma_exhausted":
        rig.dma_exhausted = True
    else:
        rig.start_error = RuntimeError("camera start failed")
    with pytest.raises(CameraError, match=message):
        PiCameraSource(settings())
    assert rig.cameras[0].closed
    assert rig.acquired == set()


def test_a_capture_cancelled_by_closing_is_a_camera_error(rig: Rig) -> None:
    rig.stalls = [0]
    source = PiCameraSource(settings(capture_timeout_s=30))
    failures: list[BaseException] = []

    def capture() -> None:
        try:
            source.read()
        except BaseException as error:
            failures.append(error)

    reader = threading.Thread(target=capture)
    reader.start()
    assert rig.cameras[0].capturing.wait(5)
    source.close()  # another thread (the frame loop's stop) flushes the waiting capture
    reader.join(5)
    assert len(failures) == 1
    assert isinstance(failures[0], CameraError)
    assert "cancelled" in str(failures[0])


def test_the_init_failure_text_is_picamera2s(rig: Rig) -> None:
    rig.open_error = RuntimeError("no")
    with pytest.raises(CameraError, match=f"cannot open the camera: {INIT_FAILED}"):
        PiCameraSource(settings())


def test_two_streams_fail_on_a_uvc_camera_one_does_not(rig: Rig) -> None:
    # Why a USB webcam is never configured the Pi camera's way: libcamera gives no
    # configuration for two streams of it, and picamera2 fails on that None.
    rig.connected, rig.usb_webcam = False, True
    from picamera2 import Picamera2

    webcam = Picamera2(0)
    two = webcam.create_video_configuration(main={"size": (640, 480)}, lores={"size": (320, 240)})
    with pytest.raises(AttributeError, match="'NoneType' object has no attribute"):
        webcam.configure(two)
    assert two["raw"] is None  # picamera2 drops the raw stream of a USB camera itself
    assert "FrameDurationLimits" not in webcam.camera_controls
    one = webcam.create_video_configuration(main={"size": (640, 480), "format": "YUV420"})
    webcam.configure(one)
    webcam.close()
