"""Events the broker lost after the gates were told they were delivered come back from
the gates: `qrgate report gaps --resend` with real monitors, a real broker restarted
without persistence, several monitors in one shared group on PostgreSQL with one killed
in the middle of a burst. The gates are the real gate code (tests.support.simgates)."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from monitor.storage.records import Gap
from monitor.storage.store import Store
from tests.support.broker import Mosquitto
from tests.support.central import MonitorProcess, stored_events
from tests.support.cli import qrgate
from tests.support.gate import wait_until
from tests.support.postgres import Postgres
from tests.support.simgates import SimulatedGate, centre_key, connected, drained, make_gate

# A central broker as docs/monitor.md asks for one, but without persistence: a restart
# loses every session and every message queued for a monitor.
CENTRAL = ["max_queued_messages 0"]
FAST = {"retry_min_s": 0.1, "retry_max_s": 0.5, "heartbeat_s": 5.0}


@pytest.fixture
def gates_of(tmp_path: Path) -> Iterator[Callable[..., list[SimulatedGate]]]:
    made: list[SimulatedGate] = []

    def make(broker: Mosquitto, keys: dict[str, object], names: list[str]) -> list[SimulatedGate]:
        gates = [
            make_gate(tmp_path / "gates", "f1", name, broker.port, keys, **FAST) for name in names
        ]
        made.extend(gates)
        for gate in gates:
            gate.publisher.start()
        assert connected(gates, 20)
        return gates

    yield make
    for gate in made:
        gate.close()


def scan(gate: SimulatedGate, count: int, rng: random.Random) -> None:
    for _ in range(count):
        gate.scan(rng)


def resend(
    db: str, broker: Mosquitto, key: Path, *extra: str
) -> tuple[int, list[dict[str, object]], str]:
    """`qrgate report gaps --resend --wait`: exit code, the gaps left (JSON), stderr."""
    done = qrgate(
        "report", "gaps", "--db", db, "--format", "json", "--resend", "--broker", broker.url,
        "--command-key", key, "--command-kid", "centre-1", "--wait", "30", *extra,
        timeout=90,
    )  # fmt: skip
    return done.returncode, json.loads(done.stdout), done.stderr


def test_every_monitor_down_and_the_broker_emptied_then_resend_completes_the_store(
    broker_factory: Callable[..., Mosquitto],
    gates_of: Callable[..., list[SimulatedGate]],
    tmp_path: Path,
) -> None:
    """A gate scans 22 times: 1-5 stored; 6-15 while the monitor is down, queued for it,
    then the broker restarts without them; 16-18 stored; 19-22 lost the same way, and
    nothing after them to show they are missing. The resend brings back both the hole
    and the tail, as the gate signed them."""
    broker = broker_factory(CENTRAL)
    db = f"sqlite:///{tmp_path}/monitor.db"
    key, keys = centre_key(tmp_path)
    (gate,) = gates_of(broker, keys, ["in-1"])
    store = Store(db)
    store.enroll(gate.enrolled())
    rng = random.Random(1)
    stored_after: list[int] = []
    for count, then_lose in ((5, 10), (3, 4)):
        monitor = MonitorProcess(broker.url, db, tmp_path / "monitor", live=False)
        monitor.wait_subscribed()
        scan(gate, count, rng)
        expected = (stored_after[-1] if stored_after else 0) + count
        monitor.wait_for(lambda n=expected: stored_events(db) == n, f"{expected} events")
        stored_after.append(expected)
        assert monitor.stop() == 0  # its session stays in the broker, queueing events
        scan(gate, then_lose, rng)
        assert drained([gate], 20)  # the broker acknowledged them: the gate keeps them only
        broker.kill()
        broker.start()  # no persistence: the monitor's session and its queue are gone
        assert connected([gate], 20)
    monitor = MonitorProcess(broker.url, db, tmp_path / "monitor", live=False)
    monitor.wait_subscribed()
    assert stored_events(db) == 8
    assert store.gaps() == [Gap("f1", "in-1", 6, 15)]  # 19-22 are not even known to be missing
    code, left, said = resend(db, broker, key)
    assert code == 0, said
    assert left == []
    assert "resend f1/in-1: 10 missing asked for" in said
    assert "resending 14 kept events" in said
    seqs = sorted(row[0] for row in store._read("SELECT seq FROM events"))
    assert seqs == list(range(1, 23))
    assert store._read("SELECT COUNT(*) FROM events WHERE kid IS NULL") == [(0,)]  # all verified
    monitor.stop()
    store.close()


def test_three_shared_monitors_one_killed_mid_burst_every_event_stored_once(
    broker_factory: Callable[..., Mosquitto],
    gates_of: Callable[..., list[SimulatedGate]],
    postgres: Postgres,
    tmp_path: Path,
) -> None:
    """Twelve gates, 480 events at about 200 a second, into three monitors sharing the
    events (clean sessions, the default for --shared) and one PostgreSQL. The third is
    frozen mid-burst, so the broker surely hands it events it never commits, then killed:
    its session ends with it and those events are gone from the broker; the gates keep
    them, and the resend brings each back. Events after the kill all go to the living
    (a persistent session would go on taking a third of them). Every event ends up
    stored exactly once."""
    broker = broker_factory(CENTRAL)
    db = postgres.create_database("shared_monitors")
    key, keys = centre_key(tmp_path)
    gates = gates_of(broker, keys, [f"g{n:02d}" for n in range(12)])
    store = Store(db)
    for gate in gates:
        store.enroll(gate.enrolled())
    monitors = [
        MonitorProcess(broker.url, db, tmp_path / f"m{n}", "--shared", "central",
                       "--client-id", f"central-{n}", live=False)
        for n in range(3)
    ]  # fmt: skip
    for monitor in monitors:
        monitor.wait_subscribed()
    burst = threading.Thread(target=scan_all, args=(gates, 40, 200.0))
    burst.start()
    time.sleep(0.8)
    monitors[2].process.send_signal(signal.SIGSTOP)
    time.sleep(0.5)
    monitors[2].process.send_signal(signal.SIGKILL)
    burst.join(30)
    assert drained(gates, 30)
    assert wait_until(lambda: settled(db), 30)
    lost = 480 - stored_events(db)
    assert lost > 0  # what the dead member held
    scan_all(gates, 10, 400.0)  # after the kill: the two living monitors take all of it
    assert drained(gates, 30)
    assert wait_until(lambda: settled(db), 30)
    assert stored_events(db) == 600 - lost
    code, left, said = resend(db, broker, key)
    assert code == 0, said
    assert left == []
    assert store._read(
        "SELECT COUNT(*), COUNT(DISTINCT id), COUNT(DISTINCT (site, gate, seq)) FROM events"
    ) == [(600, 600, 600)]
    assert [(row.gate, row.events, row.last_seq) for row in store.gates()] == [
        (gate.gate, 50, 50) for gate in gates
    ]
    for monitor in monitors[:2]:
        assert monitor.stop() == 0
    store.close()


def scan_all(gates: list[SimulatedGate], each: int, rate: float) -> None:
    """`each` scans at every gate, in a random order, `rate` a second in all."""
    rng = random.Random(2)
    order = [gate for gate in gates for _ in range(each)]
    rng.shuffle(order)
    started = time.monotonic()
    for number, gate in enumerate(order):
        delay = started + number / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        gate.scan(rng)


_last_count: dict[str, tuple[int, float]] = {}


def settled(db: str, quiet_s: float = 1.0) -> bool:
    """The store's count has not moved for `quiet_s`."""
    count, now = stored_events(db), time.monotonic()
    previous = _last_count.get(db)
    if previous is None or previous[0] != count:
        _last_count[db] = (count, now)
        return False
    return now - previous[1] >= quiet_s
