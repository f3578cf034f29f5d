"""The daemon's own faults on real parts: a capture thread that dies of an unexpected
exception (the camera is restarted, and the fault ends only with frames after it), and a
wall clock reset to 1970 (a fault in health until the clock is set).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from mqtt.events import format_ts
from scanner.camera import CameraTimeout, Frame
from scanner.config import Config, parse_config
from scanner.daemon.assemble import Options, build_parts
from scanner.daemon.sdnotify import Notifier
from scanner.daemon.service import Daemon
from tests.support.broker import free_port
from tests.support.gate import wait_until
from tests.support.gateproc import outbox_events


class CrashingSource:
    """A camera whose read raises an unexpected error when told to, and which then
    delivers nothing until it has been restarted `heal_after` times (a driver left in a
    bad state); `healed_at` is the wall-clock time it delivers again."""

    name = "crashing"

    def __init__(self, heal_after: int = 2) -> None:
        self.crash = False
        self.broken = False
        self.heal_after = heal_after
        self.restarts = 0
        self.frames = 0
        self.healed_at = 0.0
        self._image = np.full((120, 160), 128, dtype=np.uint8)

    def read(self) -> Frame:
        time.sleep(0.01)
        if self.crash:
            self.crash, self.broken = False, True
            raise RuntimeError("a bug in the camera driver")
        if self.broken:
            raise CameraTimeout("no frame within 0.01 s")
        self.frames += 1
        return Frame(self._image, time.monotonic(), self.frames)

    def restart(self) -> None:
        self.restarts += 1
        if self.broken and self.restarts >= self.heal_after:
            self.broken = False
            self.healed_at = time.time()

    def close(self) -> None:
        pass


def gate_config(folder: Path) -> Config:
    return parse_config(
        {
            "camera": {"stall_s": 0.5},
            "gpio": {"pin_factory": "mock"},
            "policy": {"accept": ["badge"]},
            "store": {"path": str(folder / "state" / "q.db")},
            "mqtt": {"host": "127.0.0.1", "port": free_port()},  # no broker: events spool
            "commands": {"enabled": False},
        }
    )


def events(config: Config) -> list[dict[str, Any]]:
    return outbox_events(config.store.path)


class WallClock:
    """The machine's clocks, the wall clock moved by `offset` seconds (a test sets it)."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def now(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic()


@dataclass
class Running:
    daemon: Daemon
    config: Config
    source: CrashingSource
    clock: WallClock


@pytest.fixture
def running(
    tmp_path: Path, mock_factory: MockFactory, request: pytest.FixtureRequest
) -> Iterator[Running]:
    """A daemon run on a thread of its own (no signal handlers there); stopped after. Its
    wall clock is off by the test's parameter, in seconds (default: right)."""
    config = gate_config(tmp_path)
    source = CrashingSource()
    clock = WallClock(getattr(request, "param", 0.0))
    options = Options(
        pin_factory=mock_factory, source=source, clock=clock, trust_kernel_clock=False
    )
    daemon = Daemon(build_parts(config, options), Notifier(None))
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    assert wait_until(lambda: daemon.ready, 10)
    yield Running(daemon, config, source, clock)
    daemon.stop()
    thread.join(5)


def test_a_dead_capture_thread_is_a_fault_and_the_camera_is_restarted(running: Running) -> None:
    daemon, config, source = running.daemon, running.config, running.source
    source.crash = True
    assert wait_until(lambda: any(e["type"] == "fault" for e in events(config)), 5)
    assert wait_until(lambda: len(events(config)) >= 2, 5)  # recovered, once frames came
    fault, recovered = events(config)[:2]
    stats = daemon.parts.loop.stats()
    assert "the capture thread failed: RuntimeError('a bug in the camera driver')" in str(
        fault["detail"]
    )
    assert recovered["detail"].startswith("camera: recovered after: ")
    assert source.restarts == 2  # after the crash, then after a stall: then it delivered
    # Recovered once frames came back, not while the camera still delivered nothing.
    assert recovered["ts"] >= format_ts(source.healed_at)
    assert stats.capture_alive
    frames = stats.frames_captured
    assert wait_until(lambda: daemon.parts.loop.stats().frames_captured > frames + 5, 5)


@pytest.mark.parametrize("running", [-time.time()], indirect=True)  # back to 1970
def test_a_clock_reset_to_1970_is_a_fault_in_health_until_set(running: Running) -> None:
    gate = running.daemon.parts.gate
    assert wait_until(lambda: "clock" in gate.figures()["faults"], 5)
    fault = gate.figures()["faults"]["clock"]
    assert fault.startswith("the wall clock reads 1970-01-01: passes and commands are refused")
    assert gate.policy.evaluate(b"B-1").reason == "not_allowed"  # still decides, and records
    running.clock.offset = 0.0  # NTP, or `timedatectl set-time`
    assert wait_until(lambda: "clock" not in gate.figures()["faults"], 5)
    assert wait_until(lambda: len(events(running.config)) >= 2, 5)
    details = [event["detail"] for event in events(running.config)]
    assert details[0].startswith("clock: the wall clock reads 1970-01-01")
    assert details[1].startswith("clock: recovered after: ")
