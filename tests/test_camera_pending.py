"""A camera missing when the gate starts: tried again, then given up with an alert, while the
daemon runs on (no exit for systemd to answer with a restart loop)."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from scanner.camera import CameraError, CameraTimeout, EndOfStream
from scanner.camera.pending import ATTEMPTS, PendingCamera, open_camera
from scanner.config import CameraSection, parse_config
from scanner.daemon.assemble import Options, build_parts
from scanner.daemon.sdnotify import Notifier, Watchdog
from scanner.daemon.service import Daemon, health_figures
from tests.support.broker import free_port
from tests.support.fake_picamera2 import Rig, install
from tests.support.gate import wait_until
from tests.support.notify import NotifySocket


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> Rig:
    rig = Rig(connected=False)  # a Camera Module not found at boot
    install(monkeypatch, rig)
    return rig


def camera(**values: Any) -> CameraSection:
    return CameraSection(**{"source": "picamera2", "capture_timeout_s": 0.01, **values})


def test_tries_again_then_gives_up_with_an_alert(rig: Rig) -> None:
    alerts: list[str] = []
    source = open_camera(camera(), on_give_up=alerts.append)
    assert isinstance(source, PendingCamera)
    for _ in range(ATTEMPTS - 2):
        with pytest.raises(CameraTimeout, match="no camera yet"):
            source.read()
    with pytest.raises(EndOfStream, match="given up"):
        source.read()
    with pytest.raises(EndOfStream):
        source.read()  # no more attempts
    assert source.attempts == ATTEMPTS
    [alert] = alerts
    assert alert.startswith(f"no camera since the gate started ({ATTEMPTS} attempts; ")
    assert "reboot the gate" in alert


def test_a_camera_that_comes_is_used(rig: Rig) -> None:
    source = open_camera(camera())
    with pytest.raises(CameraTimeout):
        source.read()
    rig.connected = True  # a camera set up late
    frame = source.read()
    assert frame.image.shape == (480, 640)
    assert source.name == "picamera2"
    source.restart()  # the frame loop's, after a stall: the real camera is reopened
    assert source.read().number == 2
    assert len(rig.cameras) == 2
    source.close()
    assert rig.acquired == set()


def test_closing_ends_a_wait(rig: Rig) -> None:
    source = PendingCamera(camera(capture_timeout_s=30), CameraError("none"))
    done = threading.Event()

    def read() -> None:
        with pytest.raises(CameraError, match="closed"):
            source.read()
        done.set()

    reader = threading.Thread(target=read)
    reader.start()
    source.close()
    reader.join(5)
    assert done.is_set()


def test_a_missing_replay_is_an_error_at_once(tmp_path: Path) -> None:
    with pytest.raises(CameraError):
        open_camera(camera(source=f"replay:{tmp_path / 'none'}"))


def test_the_daemon_runs_without_a_camera_and_says_so(
    rig: Rig, tmp_path: Path, mock_factory: MockFactory
) -> None:
    config = parse_config(
        {
            "camera": {"source": "picamera2", "capture_timeout_s": 0.02, "stall_s": 0.3},
            "gpio": {"pin_factory": "mock"},
            "store": {"path": str(tmp_path / "state" / "q.db")},
            "mqtt": {"host": "127.0.0.1", "port": free_port()},  # no broker: events spool
            "commands": {"enabled": False},
            "policy": {"accept": ["badge"]},
        }
    )
    parts = build_parts(config, Options(pin_factory=mock_factory, trust_kernel_clock=False))
    seen: dict[str, Any] = {}
    with NotifySocket.abstract() as systemd:
        notifier = Notifier(systemd.env_value)
        checks = {"frame loop": lambda: parts.loop.stats().healthy}
        daemon = Daemon(parts, notifier, Watchdog(notifier, checks, interval_s=0.05))

        def scene() -> None:
            try:
                assert wait_until(lambda: daemon.ready, 10)  # or systemd's start times out
                messages = systemd.messages()
                seen["ready"] = next(m for m in messages if m.startswith(b"READY=1"))
                assert wait_until(lambda: b"WATCHDOG=1" in systemd.pending(), 5)
                seen["health"] = health_figures(parts.gate, parts.loop)
                parts.gate.open(None, by="test")  # what needs no camera still works
                seen["relay"] = parts.gate.outputs.snapshot().relay
            finally:
                os.kill(os.getpid(), signal.SIGTERM)

        driver = threading.Thread(target=scene, daemon=True)
        driver.start()
        assert daemon.run() == 0
        driver.join(5)
    assert len(rig.cameras) == 0  # picamera2 found none to open, every time
    assert b"FAULT camera: no camera since the gate started" in seen["ready"]
    assert "reboot the gate" in seen["health"]["faults"]["camera"]
    assert seen["health"]["camera"]["stalled"] is False  # given up, not hanging
    assert seen["relay"] is True
