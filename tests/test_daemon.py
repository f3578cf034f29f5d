"""The daemon's supervision in one process, on real parts and real signals: a camera that
stops delivering (fault 14), the watchdog that only pings while the loops are healthy,
SIGHUP reloading the key sets and logging what it read, SIGTERM stopping with the relay off.

`Daemon.run()` runs on the test's main thread (it owns the signal handlers) while a
driver thread plays the scene and finally sends SIGTERM to this very process.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory
from msgspec.structs import replace

from scanner.camera import CameraTimeout, Frame
from scanner.config import Config, parse_config
from scanner.credentials.keys import create_signing_key, load_private_key
from scanner.credentials.passes import issue_pass
from scanner.daemon.assemble import Options, build_parts
from scanner.daemon.sdnotify import Notifier, Watchdog
from scanner.daemon.service import Daemon
from tests.support import dcc
from tests.support.broker import free_port
from tests.support.gate import wait_until
from tests.support.gateproc import outbox_events, outbox_rows
from tests.support.notify import NotifySocket


class FlakySource:
    """A camera that delivers empty frames, can be made to stop (every read times out),
    and comes back after `heal_after` restarts."""

    name = "flaky"

    def __init__(self, heal_after: int = 1) -> None:
        self.broken = False
        self.restarts = 0
        self.heal_after = heal_after
        self._number = 0
        self._image = np.full((120, 160), 128, dtype=np.uint8)

    def read(self) -> Frame:
        time.sleep(0.01)
        if self.broken:
            raise CameraTimeout("no frame within 0.01 s")
        self._number += 1
        return Frame(self._image, time.monotonic(), self._number)

    def restart(self) -> None:
        self.restarts += 1
        if self.restarts >= self.heal_after:
            self.broken = False

    def close(self) -> None:
        pass


def gate_config(folder: Path) -> Config:
    (folder / "keys").mkdir()
    _, jwks = create_signing_key(folder / "keys", "k1", "EdDSA")
    trust = dcc.write_trust_list(folder / "trust.json", dcc.signer("VN", "ES256"))
    return parse_config(
        {
            "camera": {"stall_s": 0.3},
            "gpio": {"pin_factory": "mock"},
            "policy": {"accept": ["pass", "badge", "dcc"]},
            "passes": {"jwks": str(jwks)},
            "dcc": {"trust_list": str(trust)},
            "store": {"path": str(folder / "state" / "q.db")},
            "mqtt": {"host": "127.0.0.1", "port": free_port()},  # no broker: events spool
            "commands": {"enabled": False},
        }
    )


def events(config: Config) -> list[dict[str, Any]]:
    return outbox_events(config.store.path)


def pings_within(systemd: NotifySocket, seconds: float) -> int:
    systemd.pending()  # what came before does not count
    time.sleep(seconds)
    return sum(message == b"WATCHDOG=1" for message in systemd.pending())


class Driver(threading.Thread):
    """Runs `script` beside the daemon; whatever it raises is kept for the test."""

    def __init__(self, script: Callable[[], None]) -> None:
        super().__init__(daemon=True)
        self.script = script
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.script()
        except BaseException as error:
            self.error = error
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # as systemd stops the service


@pytest.mark.slow
def test_camera_stall_watchdog_reload_and_stop(
    tmp_path: Path, mock_factory: MockFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="scanner.daemon.service")
    config = gate_config(tmp_path)
    source = FlakySource(heal_after=2)
    parts = build_parts(
        config, Options(pin_factory=mock_factory, source=source, trust_kernel_clock=False)
    )
    relay = mock_factory.pin(config.gpio.relay)
    with NotifySocket.abstract() as systemd:
        notifier = Notifier(systemd.env_value)
        checks = {
            "frame loop": lambda: parts.loop.stats().healthy,
            "publisher": lambda: parts.publisher.alive,
        }
        daemon = Daemon(parts, notifier, Watchdog(notifier, checks, interval_s=0.05))
        seen: dict[str, Any] = {}

        def scene() -> None:
            assert wait_until(lambda: daemon.ready, 10)
            seen["healthy pings"] = pings_within(systemd, 0.4)
            source.broken = True
            assert wait_until(lambda: parts.loop.stats().stalled, 5)
            seen["stalled pings"] = pings_within(systemd, 0.3)
            assert wait_until(lambda: any(e["type"] == "fault" for e in events(config)), 5)
            assert wait_until(lambda: not source.broken and not parts.loop.stats().stalled, 10)
            assert wait_until(lambda: len(events(config)) >= 2, 5)
            seen["keys"] = new_pass_keys(config, tmp_path)
            config.dcc.trust_list.write_text("{broken")  # kept as it was, and said
            os.kill(os.getpid(), signal.SIGHUP)
            assert wait_until(lambda: parts.gate.policy.evaluate(seen["keys"]).granted, 5)
            assert wait_until(lambda: reload_lines(caplog), 5)

        driver = Driver(scene)
        driver.start()
        assert daemon.run() == 0
        driver.join(5)
    if driver.error is not None:
        raise driver.error

    assert seen["healthy pings"] >= 3
    assert seen["stalled pings"] == 0  # systemd would restart a gate whose camera hangs
    fault, recovered = (e["detail"] for e in events(config)[:2])
    assert fault.startswith("camera: ")
    assert recovered.startswith("camera: recovered after: ")
    assert source.restarts == 2
    assert [bool(change.state) for change in relay.states] == [False]  # no grant, no release
    assert not parts.publisher.alive
    assert daemon.shutdown() is None  # idempotent
    (read, reading), (kept, keeping) = reload_lines(caplog)
    assert (read, reading) == (
        logging.INFO,
        f"reloaded: accepting pass, badge, dcc; mode normal; 1 pass key (k2) from "
        f"{config.passes.jwks}",
    )
    trust = config.dcc.trust_list
    assert kept == logging.ERROR
    assert keeping.startswith(
        f"reload: 1 health-certificate signer (1 country) from {trust} kept: "
        f"dcc.trust_list = '{trust}': "
    )


def reload_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    """What the daemon logged of its reloads, with each line's level."""
    return [
        (record.levelno, record.getMessage())
        for record in caplog.records
        if record.name == "scanner.daemon.service" and record.getMessage().startswith("reload")
    ]


def new_pass_keys(config: Config, folder: Path) -> bytes:
    """Replace passes.jwks with a new key's set (as a technician would); a pass it signs."""
    (folder / "new").mkdir()
    key_path, jwks = create_signing_key(folder / "new", "k2", "EdDSA")
    config.passes.jwks.write_text(jwks.read_text())
    key = load_private_key(key_path)
    return issue_pass(key, "k2", "W-9", now=time.time(), valid_for_s=600).encode()


@pytest.mark.slow
def test_sigterm_during_a_pulse_ends_it(tmp_path: Path, mock_factory: MockFactory) -> None:
    config = gate_config(tmp_path)
    config = replace(config, gpio=replace(config.gpio, relay_pulse_ms=60_000))
    parts = build_parts(
        config, Options(pin_factory=mock_factory, source=FlakySource(), trust_kernel_clock=False)
    )
    daemon = Daemon(parts, Notifier(None))

    def open_then_stop() -> None:
        assert wait_until(lambda: daemon.ready, 10)
        parts.gate.open(None, by="test")
        assert parts.gate.outputs.snapshot().relay

    driver = Driver(open_then_stop)
    driver.start()
    daemon.run()
    driver.join(5)
    if driver.error is not None:
        raise driver.error
    levels = [bool(change.state) for change in mock_factory.pin(config.gpio.relay).states]
    assert levels == [False, True, False]  # the minute-long pulse was cut at the stop
    assert [row[0] for row in outbox_rows(config.store.path)] == [1]
