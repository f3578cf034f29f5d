"""RELIABILITY.md faults 5 and 17: the store's disk full, read-only, damaged or hanging,
on real filesystems (a small tmpfs, an ext4 image on a loop device), with real brokers.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from mqtt.outbox import Outbox, OutboxLimits
from mqtt.publisher import Publisher
from scanner.camera import CameraTimeout, Frame
from scanner.clock import ManualClock
from scanner.config import Config
from scanner.daemon.assemble import Options, build_parts
from scanner.daemon.gate import STUCK_AFTER_S, Gate
from scanner.decision.policy import Decision, Waiting
from scanner.doctor.store import check_store
from scanner.state.store import AllowEntry, Store
from tests.support.broker import Mosquitto, free_port
from tests.support.gate import SITE, publisher_for, scans, start, wait_until
from tests.support.gateproc import GateProcess, write_config
from tests.support.gatescene import badge_frames, scene_config
from tests.support.mounts import (
    StallingDisk,
    ext4_image,
    fill,
    remount_readonly,
    storage_error,
    tmpfs,
)
from tests.support.notify import NotifySocket, notified
from tests.support.recorder import Recorder

MB = 1024 * 1024
TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(publisher: Publisher) -> float:
    """CPU seconds the publisher's thread has used (user and system)."""
    tid = publisher._thread.native_id
    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * TICK_S


def outbox_on(path: Path, reserve_mb: float) -> Outbox:
    return Outbox(path, SITE, "gate-1", "in", OutboxLimits(reserve_bytes=int(reserve_mb * MB)))


def spooled_then_disk_filled(outbox: Outbox, count: int) -> Path:
    """`count` events waiting, the write-ahead log folded away (so that deleting them
    needs new space), then every free byte of the disk taken."""
    scans(outbox, count)
    with sqlite3.connect(outbox.path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return fill(outbox.path.parent)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "disk", "6m") as mounted:
        yield mounted


@pytest.mark.slow
def test_a_full_disk_neither_spins_nor_floods_and_drains_when_space_returns(
    disk: Path, mosquitto: Mosquitto, running: list[Publisher], caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(mosquitto).start()
    outbox = outbox_on(disk / "q.db", reserve_mb=0)  # no reserve: nothing can leave
    filler = spooled_then_disk_filled(outbox, 200)
    caplog.set_level(logging.INFO)
    try:
        publisher = start(running, publisher_for(mosquitto, outbox))
        assert recorder.wait(lambda r: len(r.events()) > 0)  # acknowledged: deletes fail
        time.sleep(0.2)
        cpu, lines = thread_cpu_s(publisher), len(caplog.records)
        time.sleep(2.0)
        cpu_share = (thread_cpu_s(publisher) - cpu) / 2.0
        logged = len(caplog.records) - lines
        assert outbox.depth().rows == 200
        filler.unlink()
        freed = time.monotonic()
        assert wait_until(lambda: outbox.depth().rows == 0, 10)
        drained_s = time.monotonic() - freed
        assert recorder.wait_for_seqs(200)
    finally:
        recorder.stop()
    print(
        f"disk full: publisher thread {cpu_share:.1%} of a core, {logged} log lines in 2 s; "
        f"drained {drained_s:.2f} s after space was freed"
    )
    assert cpu_share < 0.25  # it was 0.77 when the recovery path spun
    assert logged <= 2  # it was thousands a second
    assert publisher.stats.connects == 1  # the connection stayed up throughout
    assert "database or disk is full" in str(publisher.stats.last_error)


def test_the_reserve_lets_the_outbox_drain_on_a_full_disk(
    disk: Path, mosquitto: Mosquitto, running: list[Publisher]
) -> None:
    recorder = Recorder(mosquitto).start()
    outbox = outbox_on(disk / "q.db", reserve_mb=1)
    assert outbox.reserve.held
    filler = spooled_then_disk_filled(outbox, 200)
    try:
        start(running, publisher_for(mosquitto, outbox))
        assert wait_until(lambda: outbox.depth().rows == 0, 10)  # the disk is still full
        assert recorder.wait_for_seqs(200)
    finally:
        recorder.stop()
    assert not outbox.reserve.held
    assert filler.exists()
    filler.unlink()
    scans(outbox, 1)  # changes, then a checkpoint: the reserve is made again
    assert wait_until(lambda: outbox.reserve.held, 5)


# A store that cannot be used at start ------------------------------------------------


@pytest.fixture(scope="module")
def badges(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return badge_frames(tmp_path_factory.mktemp("camera"), [b"B-1", b"B-2"])


def existing_store(folder: Path) -> Path:
    """A gate's database as a gate leaves it: store, outbox, one event waiting."""
    path = folder / "qrgate.db"
    Store.open(path).close()
    outbox = Outbox(path, SITE, "gate-1", "in")
    scans(outbox, 1)
    outbox.close()
    return path


@pytest.mark.slow
def test_a_read_only_store_at_start_runs_the_fault_state_not_a_restart_loop(
    tmp_path: Path, mosquitto: Mosquitto, badges: Path
) -> None:
    with ext4_image(tmp_path / "state") as state:
        store = existing_store(state)
        remount_readonly(state)
        config = scene_config(badges, store, mosquitto.port)
        recorder = Recorder(mosquitto).start()
        with NotifySocket.abstract() as systemd:
            config_path = write_config(config, tmp_path / "gate.toml")
            gate = GateProcess.under_systemd(config_path, systemd.env_value, 1_000_000)
            try:
                seen: list[bytes] = []
                assert notified(systemd, b"READY=1", seen, 20), gate.log
                assert wait_until(lambda: "denied: badge B-1 (store_error)" in gate.log, 15)
                health = recorder.wait(lambda r: bool(r.on("health")), 10)
                assert health, gate.log
                assert gate.process.poll() is None  # running, not exiting to be restarted
                doctor = check_store(config)
                assert (doctor.status, "mounted read-only" in doctor.text) == ("FAIL", True)
                assert notified(systemd, b"WATCHDOG=1", seen, 3)
                code, _ = gate.terminate()
            finally:
                gate.close()
                recorder.stop()
    assert code == 0, gate.log
    status = [m.json() for m in recorder.on("status") if m.json()["state"] == "online"][-1]
    assert "mounted read-only" in status["fault"]
    store_fault = recorder.on("health")[-1].json()["faults"]["database"]
    assert "mounted read-only" in store_fault
    assert "dmesg" in store_fault  # what to do
    assert recorder.events() == []  # nothing recorded, so nothing published


def scramble(path: Path) -> None:
    path.write_bytes(os.urandom(64 * 1024))


def truncate(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 3)


def break_header(path: Path) -> None:
    with path.open("r+b") as file:
        file.write(b"\xff" * 40)


def big_store(folder: Path, events: int = 2000) -> Path:
    """A gate's database whose outbox spans many pages (copies of one real event, in one
    transaction: quicker than as many synced appends), the log folded in."""
    path = existing_store(folder)
    with sqlite3.connect(path) as conn:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO outbox (site, gate, seq, id, created, payload) "
            "SELECT site, gate, i, id, created, payload FROM outbox, n",
            (events,),
        )
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.mark.parametrize(
    ("damage", "finding", "fix"),
    [
        (scramble, "is not a database", "move the file aside"),
        (break_header, "is not a database", "move the file aside"),
        (truncate, "is damaged", ".recover"),
    ],
)
def test_an_unusable_store_at_start_denies_every_scan_and_says_what_to_do(
    tmp_path: Path,
    mock_factory: MockFactory,
    damage: Callable[[Path], None],
    finding: str,
    fix: str,
) -> None:
    path = big_store(tmp_path)
    damage(path)
    config = scene_config(tmp_path, path, free_port())
    decision, figures = first_scan(config, mock_factory)
    assert decision is not None
    assert (decision.result, decision.reason) == ("denied", "store_error")
    assert finding in figures["faults"]["database"]
    assert fix in figures["faults"]["database"]
    doctor = check_store(config)  # the same finding and fix from `qrgate doctor`
    assert (doctor.status, finding in doctor.text, fix in str(doctor.fix)) == ("FAIL", True, True)


def test_a_store_path_the_system_will_not_look_at_is_the_fault_state_not_a_crash(
    tmp_path: Path, mock_factory: MockFactory
) -> None:
    path = tmp_path / ("s" * 300) / "qrgate.db"  # a folder name longer than a name may be
    config = scene_config(tmp_path, path, free_port())
    decision, figures = first_scan(config, mock_factory)
    assert decision is not None
    assert (decision.result, decision.reason) == ("denied", "store_error")
    assert "File name too long" in figures["faults"]["database"]


def first_scan(
    config: Config, mock_factory: MockFactory
) -> tuple[Decision | Waiting | None, dict[str, Any]]:
    """A badge scanned at a gate built from `config`, and the gate's figures after it."""
    parts = build_parts(config, Options(pin_factory=mock_factory, source=NoFrames()))
    try:
        return parts.gate.scan(b"B-1"), parts.gate.figures()
    finally:
        for close in reversed(parts.closers):
            close()
        parts.gate.outputs.close()


class NoFrames:
    """A camera never read: these gates are built, not run."""

    name = "none"

    def read(self) -> Frame:
        raise CameraTimeout("no frame")

    def restart(self) -> None:
        pass

    def close(self) -> None:
        pass


# Bit rot while running ----------------------------------------------------------------


def rot(path: Path) -> None:
    """40 bytes flipped at the start of a page in the middle of the file: the classic
    SD-card failure, where the pages before it still read fine."""
    pages = path.stat().st_size // 4096
    with path.open("r+b") as file:
        file.seek((pages // 2) * 4096 + 8)
        data = file.read(40)
        file.seek((pages // 2) * 4096 + 8)
        file.write(bytes(byte ^ 0xFF for byte in data))


def test_bit_rot_is_found_raised_and_nothing_more_is_granted(
    tmp_path: Path, mosquitto: Mosquitto, mock_factory: MockFactory
) -> None:
    path = big_store(tmp_path)
    with Store.open(path) as store:
        store.allowlist.add(AllowEntry("B-1"))
    rot(path)
    config = scene_config(tmp_path, path, mosquitto.port)
    doctor = check_store(config)
    assert (doctor.status, "is damaged" in doctor.text, ".recover" in str(doctor.fix)) == (
        "FAIL",
        True,
        True,
    )
    clock = ManualClock(time.time())
    options = Options(pin_factory=mock_factory, source=NoFrames(), clock=clock)
    parts = build_parts(config, options)
    recorder = Recorder(mosquitto).start()
    try:
        assert decide(parts.gate, clock) == ("granted", "ok")  # not found yet: pages read fine
        parts.publisher.start()
        assert wait_until(lambda: parts.outbox.unusable is not None, 10)  # the drain tripped
        assert decide(parts.gate, clock) == ("denied", "store_error")
        assert "is damaged" in parts.gate.figures()["faults"]["outbox"]
        assert recorder.wait(lambda r: "fault" in r.on("status")[-1].json(), 5)
    finally:
        recorder.stop()
        parts.publisher.stop()
        for close in reversed(parts.closers):
            close()
        parts.gate.outputs.close()


def decide(gate: Gate, clock: ManualClock) -> tuple[str, str]:
    clock.advance(1)  # past the repeat window
    decision = gate.scan(b"B-1")
    assert decision is not None
    return decision.result, decision.reason


# A write that hangs -------------------------------------------------------------------


def pings(seen: list[bytes]) -> int:
    return sum(message == b"WATCHDOG=1" for message in seen)


@pytest.mark.slow
def test_a_hung_sync_stops_the_watchdog_and_shows_in_health(
    tmp_path: Path, mosquitto: Mosquitto, badges: Path
) -> None:
    with StallingDisk(tmp_path) as disk:
        store = disk.where / "qrgate.db"
        with Store.open(store) as opened:
            opened.allowlist.add(AllowEntry("B-1"))
        config = scene_config(badges, store, mosquitto.port)
        recorder = Recorder(mosquitto).start()
        with NotifySocket.abstract() as systemd:
            config_path = write_config(config, tmp_path / "gate.toml")
            gate = GateProcess.under_systemd(config_path, systemd.env_value, 400_000)
            try:
                assert notified(systemd, b"READY=1", [], 20), gate.log
                assert recorder.wait(lambda r: len(r.events()) >= 2, 15), gate.log
                with disk.stalled():
                    # The next scan (within a second) waits in its fsync; once it has
                    # waited STUCK_AFTER_S, health says so and the watchdog goes quiet.
                    assert recorder.wait(lambda r: "decision" in faults(r), STUCK_AFTER_S + 5)
                    systemd.pending()
                    time.sleep(1.0)
                    quiet = pings(systemd.pending())
                    stuck = faults(recorder)["decision"]
                assert notified(systemd, b"WATCHDOG=1", [], 3)  # the sync came back
                assert recorder.wait(lambda r: (commit_ms(r)["p99"] or 0) > 1000, 10)
                code, _ = gate.terminate()
            finally:
                gate.close()
                recorder.stop()
    print(f"hung sync: {quiet} pings in a second; health: {stuck}; commit {commit_ms(recorder)}")
    assert quiet == 0
    assert code == 0, gate.log


def faults(recorder: Recorder) -> dict[str, str]:
    health = recorder.on("health")
    return health[-1].json()["faults"] if health else {}


def commit_ms(recorder: Recorder) -> dict[str, float | None]:
    health = recorder.on("health")
    return health[-1].json()["commit_ms"] if health else {"p99": None}


# Fault 5: the disk fills up, or turns read-only, while the gate runs --------------------


def test_a_full_or_read_only_disk_while_running_denies_and_shows_the_fault(
    tmp_path: Path, mock_factory: MockFactory
) -> None:
    with ext4_image(tmp_path / "state") as state:
        store = state / "qrgate.db"
        with Store.open(store) as opened:
            opened.allowlist.add(AllowEntry("B-1"))
        clock = ManualClock(time.time())
        config = scene_config(tmp_path, store, free_port())
        options = Options(pin_factory=mock_factory, source=NoFrames(), clock=clock)
        parts = build_parts(config, options)
        relay = mock_factory.pin(config.gpio.relay)

        def denied_without_moving_the_relay() -> str:
            moves = len(relay.states)
            result, reason = decide(parts.gate, clock)
            assert (result, len(relay.states)) == ("denied", moves)
            return reason

        try:
            assert decide(parts.gate, clock) == ("granted", "ok")
            filler = fill(state)
            assert denied_without_moving_the_relay() == "store_full"
            assert "database or disk is full" in parts.gate.figures()["faults"]["outbox"]
            filler.unlink()
            assert decide(parts.gate, clock) == ("granted", "ok")
            storage_error(state)  # the kernel turns it read-only, files open or not
            assert denied_without_moving_the_relay() == "store_full"
            assert "disk I/O error" in parts.gate.figures()["faults"]["outbox"]
            doctor = check_store(config)
        finally:
            for close in reversed(parts.closers):
                close()
            parts.gate.outputs.close()
    assert (doctor.status, "read-only" in doctor.text, "dmesg" in str(doctor.fix)) == (
        "FAIL",
        True,
        True,
    )
