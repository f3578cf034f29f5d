"""`qrgate run` end to end, as systemd runs it: a real process with a replayed camera,
mock pins, a private broker, a notify socket, signed commands, signals; and the central
monitor storing what it publishes. RELIABILITY.md faults 2, 4 and 11 at the daemon level.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from msgspec.structs import replace
from PIL import Image

from mqtt.remote import send_command, sign_command
from mqtt.settings import BrokerSettings
from scanner.config import Config
from scanner.credentials.keys import create_signing_key, load_private_key
from scanner.demo.scenario import Kit, background, build_kit, card_frame
from scanner.state.store import AllowEntry, Store
from tests.support.broker import Mosquitto
from tests.support.cli import ROOT, qrgate
from tests.support.gate import wait_until
from tests.support.gateproc import GateProcess, badge_gate_config, outbox_rows, write_config
from tests.support.notify import NotifySocket, notified
from tests.support.recorder import Recorder, check_stream, retained

pytestmark = pytest.mark.slow


def with_commands(config: Config, folder: Path) -> tuple[Config, Path]:
    """The config with signed commands on, and the private key that signs them."""
    (folder / "command-keys").mkdir()
    key, jwks = create_signing_key(folder / "command-keys", "centre", "EdDSA")
    commands = replace(config.commands, enabled=True, jwks=jwks)
    log = replace(config.log, level="info")
    return replace(config, commands=commands, log=log), key


@pytest.fixture
def monitor_db(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[str]:
    """The central monitor, as deployed (`qrgate monitor --quiet`), storing into SQLite."""
    url = f"sqlite:///{tmp_path / 'centre.db'}"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scanner",
            "monitor",
            "--quiet",
            "--broker",
            mosquitto.url,
            "--db",
            url,
            "--client-id",
            "centre-test",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    yield url
    process.terminate()
    process.wait(10)


def stored_events(url: str) -> int:
    import sqlite3

    path = url.removeprefix("sqlite:///")
    if not Path(path).exists():
        return 0
    with sqlite3.connect(Path(path).resolve().as_uri() + "?mode=ro", uri=True) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def test_a_scripted_day_at_the_gate(mosquitto: Mosquitto, monitor_db: str, tmp_path: Path) -> None:
    kit = build_kit(tmp_path / "gate", time.time(), mosquitto.port)
    config, command_key = with_commands(kit.config, tmp_path)
    config_path = write_config(config, tmp_path / "gate.toml")
    recorder = Recorder(mosquitto).start()
    with NotifySocket.abstract() as systemd:
        gate = GateProcess(
            config_path, {"NOTIFY_SOCKET": systemd.env_value, "WATCHDOG_USEC": "1000000"}
        )
        try:
            seen: list[bytes] = []
            assert notified(systemd, b"READY=1", seen, 20), gate.log
            expected = len(kit.expected)
            assert recorder.wait_for_seqs(expected, timeout=40), gate.log
            scans = [(e["result"], e["reason"]) for e in recorder.events()[:expected]]
            assert scans == kit.expected
            # Commands once nobody is in view: a mode change gives a code held up a fresh
            # decision, which would add a scan event here.
            assert wait_until(lambda: "frames delivered" in gate.log, 10), gate.log
            time.sleep(0.3)
            for mode in ("lockdown", "normal"):
                command = sign_command(
                    mode,
                    key=load_private_key(command_key),
                    kid="centre",
                    site=config.gate.site,
                    gate=config.gate.id,
                )
                (reply,) = send_command(
                    BrokerSettings("127.0.0.1", mosquitto.port), "qrgate", command, timeout_s=10
                )
                assert reply.ok, reply.reply
            assert recorder.wait_for_seqs(expected + 2, timeout=10)
            assert notified(systemd, b"WATCHDOG=1", seen, 5)
            code, took = gate.terminate()
            assert notified(systemd, b"STOPPING=1", seen, 2)
        finally:
            gate.close()
    assert code == 0, gate.log
    assert took < 5, f"the stop took {took:.1f} s"
    assert "stopped; relay off" in gate.log
    assert any(message.startswith(b"STATUS=mode normal") for message in seen)
    assert sum(message == b"WATCHDOG=1" for message in seen) >= 1

    events = recorder.events()
    stream = check_stream(events, expected + 2)
    assert stream.duplicates == 0
    modes = [e["detail"].split(" by ")[0] for e in events if e["type"] == "mode"]
    assert modes == ["lockdown", "normal"]
    status = retained(mosquitto, "qrgate/factory-1/gate-1/status")
    assert status is not None
    assert status["state"] == "stopped"
    recorder.stop()

    assert wait_until(lambda: stored_events(monitor_db) >= expected + 2, 15)
    onsite = qrgate("report", "onsite", "--db", monitor_db, "--format", "json")
    assert onsite.returncode == 0, onsite.stderr
    inside = {row["subject"] for row in json.loads(onsite.stdout)}
    # The vaccine passport passed with its holder's ID card: the card's subject, once; the
    # personal QR was recorded without an allowlist.
    assert inside == {"W-1042", "C-0007", "163512345678901234", "001099012345"}
    gaps = qrgate("report", "gaps", "--db", monitor_db, "--format", "json")
    assert json.loads(gaps.stdout) == []


def badge_kit(folder: Path, port: int) -> Kit:
    """A short scene: six badges, three of them allowlisted, shown at 20 fps."""
    from scanner.demo.scenario import Step

    frames = folder / "camera"
    frames.mkdir(parents=True)
    scene = background((640, 480))
    number = 0
    steps = []
    for index in range(6):
        badge = f"B-{index}".encode()
        steps.append(Step(badge.decode(), badge, None))
        for frame in [card_frame(scene, badge, tilt=0.0)] * 3 + [scene] * 2:
            number += 1
            Image.fromarray(frame).save(frames / f"{number:04d}.png", compress_level=1)
    config = badge_gate_config(frames, folder, port)
    with Store.open(config.store.path) as store:
        store.allowlist.add_all(AllowEntry(f"B-{index}") for index in range(3))
    return Kit(folder, config, tuple(steps), ())


def test_killed_and_restarted_gate_loses_nothing_and_continues_seq(
    broker_factory: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    broker = Mosquitto(tmp_path / "broker")  # not started: the broker is down (fault 2)
    kit = badge_kit(tmp_path / "gate", broker.port)
    config_path = write_config(kit.config, tmp_path / "gate.toml")
    db = kit.config.store.path

    first = GateProcess(config_path)
    try:
        assert wait_until(lambda: len(outbox_rows(db)) >= 4, 30), first.log
    finally:
        first.kill()  # SIGKILL, mid-scene (fault 4)
    spooled = outbox_rows(db)
    safe = qrgate("safe-state", "-c", str(config_path))  # what ExecStopPost= runs
    assert safe.returncode == 0, safe.stderr

    broker.start()
    recorder = Recorder(broker).start()
    second = GateProcess(config_path)
    try:
        # The scene shows six new badges after the restart: wait for all of their events
        # (a frame delivered is not yet a decision), then for an empty outbox.
        expected = len(spooled) + 6
        assert wait_until(
            lambda: (
                "all 30 frames delivered" in second.log
                and len({event["id"] for event in recorder.events()}) >= expected
                and not outbox_rows(db)
            ),
            60,
        ), second.log
    finally:
        second.terminate()
        broker.kill()
    events = recorder.events()
    last = max(event["seq"] for event in events)
    check_stream(events, last)  # every seq from 1 to the last, none reused
    received = {(event["seq"], event["id"]) for event in events}
    assert set(spooled) <= received  # every event committed before the kill arrived
    assert last == len(spooled) + 6  # the restart went on counting: six new badges


def test_a_config_typo_stops_the_gate_before_any_pin_moves(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[gpio]\npin_factory = "mock"\nrealy = 17\n')
    done = qrgate("run", "-c", str(bad))
    assert done.returncode == 78
    assert "gpio.realy" in done.stderr
    assert "Traceback" not in done.stderr
