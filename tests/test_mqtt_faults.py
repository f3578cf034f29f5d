"""RELIABILITY.md faults 1, 2, 3, 4, 6, 10 and 12 against real mosquitto brokers.

Each test counts what an independent subscriber received: every seq from 1 up, no seq
reused by another event, duplicates only as repeats of an event (at-least-once), and
every event valid against docs/events.schema.json.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mqtt.clock import SANE_FLOOR, ClockTrust
from mqtt.link import tls_context
from mqtt.publisher import Publisher
from mqtt.settings import TlsSettings
from tests.support.broker import Mosquitto
from tests.support.certs import CertificateAuthority, Issued, tls_listener
from tests.support.gate import TOPICS, new_outbox, publisher_for, scans, start, wait_until
from tests.support.recorder import DURABLE, Recorder, check_stream, retained

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def durable(broker_factory: Callable[..., Mosquitto]) -> Mosquitto:
    """A broker whose sessions survive SIGKILL, so the recorder misses nothing."""
    return broker_factory(DURABLE, persistence=True)


@pytest.fixture
def recorders() -> Iterator[list[Recorder]]:
    started: list[Recorder] = []
    yield started
    for recorder in started:
        recorder.stop()


def record(recorders: list[Recorder], broker: Mosquitto, **options: object) -> Recorder:
    recorder = Recorder(broker, **options).start()  # type: ignore[arg-type]
    recorders.append(recorder)
    return recorder


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def freeze(broker: Mosquitto) -> None:
    """SIGSTOP: the broker's socket still takes bytes, but nothing is read or answered."""
    assert broker.process is not None
    os.kill(broker.process.pid, signal.SIGSTOP)


# Fault 1 --------------------------------------------------------------------------------


@pytest.mark.slow
def test_broker_killed_during_a_burst(
    durable: Mosquitto, tmp_path: Path, running: list[Publisher], recorders: list[Recorder]
) -> None:
    recorder = record(recorders, durable)
    outbox = new_outbox(tmp_path / "q.db")
    publisher = start(running, publisher_for(durable, outbox))
    appended_while_down = 0
    for n in range(300):
        if n == 100:
            # Frozen first: the events sent from now on stay in flight, unacknowledged and
            # unseen by the broker, until the crash. Only the gate's outbox still has them.
            freeze(durable)
        if n == 120:
            assert outbox.depth().rows >= 20
            durable.kill()
        if n == 200:
            durable.start()
        scans(outbox, 1)
        publisher.wake()
        appended_while_down += not durable.running
        time.sleep(0.002)
    assert appended_while_down == 80  # the gate kept deciding and recording
    assert recorder.wait_for_seqs(300, timeout=30)
    check_stream(recorder.events(), 300)
    assert wait_until(lambda: outbox.depth().rows == 0)
    assert publisher.alive
    assert publisher.stats.connects == 2


# Fault 2 --------------------------------------------------------------------------------


def test_broker_down_when_the_gate_starts(
    durable: Mosquitto, tmp_path: Path, running: list[Publisher], recorders: list[Recorder]
) -> None:
    recorder = record(recorders, durable)
    durable.kill()
    outbox = new_outbox(tmp_path / "q.db")
    publisher = start(running, publisher_for(durable, outbox))
    scans(outbox, 20)
    publisher.wake()
    assert wait_until(lambda: publisher.stats.last_error is not None)
    assert "cannot reach the broker" in str(publisher.stats.last_error)
    assert not publisher.connected
    assert outbox.depth().rows == 20
    durable.start()
    assert recorder.wait_for_seqs(20, timeout=30)
    check_stream(recorder.events(), 20)


# Fault 3 --------------------------------------------------------------------------------


@pytest.mark.slow
def test_flapping_broker_loses_nothing_and_leaks_nothing(
    durable: Mosquitto, tmp_path: Path, running: list[Publisher], recorders: list[Recorder]
) -> None:
    recorder = record(recorders, durable)
    outbox = new_outbox(tmp_path / "q.db")
    publisher = start(running, publisher_for(durable, outbox))
    scans(outbox, 10)
    publisher.wake()
    assert recorder.wait_for_seqs(10)
    threads, fds = threading.active_count(), open_fds()
    rng = random.Random(3)
    for _ in range(6):
        scans(outbox, 20)
        publisher.wake()
        time.sleep(rng.uniform(0.02, 0.3))
        # Restarts, not crashes: the recorder is mostly offline while the broker flaps, and
        # events queued for it die with a SIGKILLed broker before its autosave (fault 1
        # covers crashes, with the recorder online).
        durable.stop()
        scans(outbox, 20)
        durable.start()
    assert recorder.wait_for_seqs(250, timeout=40)
    check_stream(recorder.events(), 250)
    assert publisher.alive
    assert wait_until(lambda: publisher.connected and outbox.depth().rows == 0)
    assert threading.active_count() == threads
    assert open_fds() <= fds + 2


# Fault 4 --------------------------------------------------------------------------------


def spool_gate(
    db: Path, broker: Mosquitto, count: int, pause_s: float = 0.002
) -> subprocess.Popen[str]:
    arguments = [str(db), str(broker.port), str(count), str(pause_s)]
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.spool_gate", *arguments],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )


def read_seqs(process: subprocess.Popen[str], count: int) -> list[int]:
    assert process.stdout is not None
    return [int(process.stdout.readline()) for _ in range(count)]


@pytest.mark.slow
def test_gate_process_killed_at_random_points_and_restarted(
    durable: Mosquitto, tmp_path: Path, recorders: list[Recorder]
) -> None:
    recorder = record(recorders, durable)
    db = tmp_path / "q.db"
    printed: list[int] = []
    rng = random.Random(4)
    for _ in range(4):
        process = spool_gate(db, durable, 1000)
        printed += read_seqs(process, rng.randint(10, 150))
        process.kill()  # SIGKILL: no clean stop, no `stopped` status
        process.wait(timeout=10)
    assert wait_until(lambda: (retained(durable, TOPICS.status, 1) or {}).get("state") == "offline")
    final = spool_gate(db, durable, 40, pause_s=0.01)
    printed += read_seqs(final, 10)
    assert wait_until(lambda: (retained(durable, TOPICS.status, 1) or {}).get("state") == "online")
    freeze(durable)  # then a crash: what the restarted gate had in flight must be sent again
    printed += read_seqs(final, 10)
    durable.kill()
    durable.start()
    printed += read_seqs(final, 20)
    assert final.communicate(timeout=30)[0] == "drained\n"
    assert printed == sorted(set(printed))  # each restart continued the seq, never reused
    assert recorder.wait_for_seqs(printed[-1])
    check_stream(recorder.events(), printed[-1])
    assert retained(durable, TOPICS.status)["state"] == "stopped"


# Fault 6 --------------------------------------------------------------------------------


def test_clock_jumps_keep_order_and_flag_untrusted_times(
    mosquitto: Mosquitto, tmp_path: Path, running: list[Publisher], recorders: list[Recorder]
) -> None:
    recorder = record(recorders, mosquitto)
    wall = [SANE_FLOOR + 86_400 * 330]
    mono = [50.0]
    trust = ClockTrust(wall=lambda: wall[0], monotonic=lambda: mono[0], synced=lambda: None)
    outbox = new_outbox(tmp_path / "q.db")

    def decide(count: int) -> None:
        for _ in range(count):
            ts, trusted = trust.now()
            scans(outbox, 1, ts=ts, trusted=trusted)
            wall[0] += 1
            mono[0] += 1

    decide(3)
    saved = wall[0]
    wall[0] = 0.0  # the clock falls back to 1970
    decide(3)
    wall[0] = saved + 3  # NTP puts it right
    decide(2)
    wall[0] += 86_400 * 365  # and a bad fix throws it a year ahead
    decide(2)
    start(running, publisher_for(mosquitto, outbox))
    assert recorder.wait_for_seqs(10)
    events = recorder.events()
    check_stream(events, 10)
    assert [event["seq"] for event in events] == list(range(1, 11))
    assert [event["ts_trusted"] for event in events] == [True] * 3 + [False] * 3 + [True] * 2 + [
        False
    ] * 2
    assert {event["ts"][:10] for event in events[3:6]} == {"1970-01-01"}


# Fault 10 -------------------------------------------------------------------------------

ACL_WITHOUT_EVENTS = """\
topic read qrgate/#
topic write qrgate/factory-1/gate-1/status
topic write qrgate/factory-1/gate-1/health
topic write qrgate/factory-1/gate-1/reply
"""


def test_events_refused_by_the_broker_are_kept_and_flow_once_allowed(
    broker_factory: Callable[..., Mosquitto],
    tmp_path: Path,
    running: list[Publisher],
    recorders: list[Recorder],
) -> None:
    acl = tmp_path / "acl"
    acl.write_text(ACL_WITHOUT_EVENTS)
    broker = broker_factory([f"acl_file {acl}"])
    recorder = record(recorders, broker)
    outbox = new_outbox(tmp_path / "q.db", max_refusals=2)
    scans(outbox, 10)
    publisher = start(running, publisher_for(broker, outbox, heartbeat_s=0.2))
    assert wait_until(lambda: publisher.stats.refused >= 30)  # three rounds, all refused
    assert "Not authorized (0x87)" in str(publisher.stats.last_refusal)
    assert recorder.wait(lambda r: any(m.json()["mqtt"]["refused"] for m in r.on("health")))
    depth = outbox.depth()
    assert (depth.rows, depth.parked) == (10, 0)  # a refusing broker parks nothing
    assert recorder.events() == []
    acl.write_text(ACL_WITHOUT_EVENTS + "topic write qrgate/factory-1/gate-1/events\n")
    broker.reload()
    assert recorder.wait_for_seqs(10)
    check_stream(recorder.events(), 10)
    assert wait_until(lambda: outbox.depth().rows == 0)


def test_events_refused_while_others_pass_are_parked_and_the_rest_flows(
    broker_factory: Callable[..., Mosquitto],
    tmp_path: Path,
    running: list[Publisher],
    recorders: list[Recorder],
) -> None:
    acl = tmp_path / "acl"
    acl.write_text(ACL_WITHOUT_EVENTS + "topic write qrgate/factory-1/gate-1/events\n")
    broker = broker_factory([f"acl_file {acl}"])
    recorder = record(recorders, broker)
    db = tmp_path / "q.db"
    scans(new_outbox(db, gate="old-name"), 2)  # recorded before the gate was renamed
    outbox = new_outbox(db, max_refusals=3)
    scans(outbox, 30)
    publisher = start(running, publisher_for(broker, outbox, window=8, heartbeat_s=0.2))
    assert recorder.wait_for_seqs(30)
    check_stream(recorder.events(), 30)
    assert wait_until(lambda: outbox.depth().parked == 2)
    assert [(row.gate, row.seq, row.attempts) for row in outbox.parked()] == [
        ("old-name", 1, 3),
        ("old-name", 2, 3),
    ]
    assert recorder.wait(lambda r: r.on("health")[-1].json()["outbox"]["parked"] == 2)
    assert publisher.connected


def test_an_event_too_large_for_the_broker_is_parked_and_the_rest_flows(
    broker_factory: Callable[..., Mosquitto],
    tmp_path: Path,
    running: list[Publisher],
    recorders: list[Recorder],
) -> None:
    # mosquitto answers 0x95 (packet too large), which paho cannot decode: it drops the
    # connection instead, so the event shows up as one that takes the connection down.
    broker = broker_factory(["message_size_limit 700"])
    recorder = record(recorders, broker)
    outbox = new_outbox(tmp_path / "q.db", max_refusals=2)
    scans(outbox, 5)
    outbox.append("fault", ts=time.time(), detail="camera: " + "x" * 500)
    scans(outbox, 5)
    start(running, publisher_for(broker, outbox))
    assert wait_until(lambda: outbox.depth().parked == 1)
    assert recorder.wait(lambda r: len({e["seq"] for e in r.events()}) == 10)
    assert sorted({event["seq"] for event in recorder.events()}) == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11]
    (parked,) = outbox.parked()
    assert parked.seq == 6
    assert "connection lost" in str(parked.last_error)


# Fault 12 -------------------------------------------------------------------------------


@pytest.fixture
def tls_broker(broker_factory: Callable[..., Mosquitto], pki: CertificateAuthority) -> Mosquitto:
    """A broker whose only listener speaks TLS and wants a client certificate."""
    return broker_factory(tls_listener(pki, require_certificate=True))


def client_tls(pki: CertificateAuthority, client: Issued, ca: Path | None = None) -> TlsSettings:
    return TlsSettings(ca_file=ca or pki.cert, cert_file=client.cert, key_file=client.key)


def test_tls_with_a_client_certificate(
    tls_broker: Mosquitto,
    pki: CertificateAuthority,
    tmp_path: Path,
    running: list[Publisher],
    recorders: list[Recorder],
) -> None:
    watcher = tls_context(client_tls(pki, pki.issue("monitor", server=False)))
    recorder = record(recorders, tls_broker, tls=watcher)
    outbox = new_outbox(tmp_path / "q.db")
    scans(outbox, 5)
    gate_cert = client_tls(pki, pki.issue("gate-1", server=False))
    publisher = start(running, publisher_for(tls_broker, outbox, tls=gate_cert))
    assert recorder.wait_for_seqs(5)
    check_stream(recorder.events(), 5)
    assert publisher.settings.broker.address.startswith("mqtts://")


def test_tls_with_the_wrong_ca_refuses_keeps_spooling_and_says_why(
    tls_broker: Mosquitto, pki: CertificateAuthority, tmp_path: Path, running: list[Publisher]
) -> None:
    stranger = CertificateAuthority(tmp_path / "other", name="someone else's CA")
    outbox = new_outbox(tmp_path / "q.db")
    scans(outbox, 5)
    gate_cert = client_tls(pki, pki.issue("gate-1", server=False), ca=stranger.cert)
    publisher = start(running, publisher_for(tls_broker, outbox, tls=gate_cert))
    assert wait_until(lambda: publisher.stats.last_error is not None)
    assert "certificate verify failed" in str(publisher.stats.last_error)
    scans(outbox, 5)
    assert outbox.depth().rows == 10
    assert not publisher.connected
    assert publisher.alive


def test_tls_without_the_required_client_certificate_keeps_spooling(
    tls_broker: Mosquitto, pki: CertificateAuthority, tmp_path: Path, running: list[Publisher]
) -> None:
    outbox = new_outbox(tmp_path / "q.db")
    scans(outbox, 3)
    publisher = start(running, publisher_for(tls_broker, outbox, tls=TlsSettings(pki.cert)))
    assert wait_until(lambda: publisher.stats.last_error is not None)
    assert "socket" in str(publisher.stats.last_error)  # paho's own account of the failure
    assert outbox.depth().rows == 3
    assert not publisher.connected
