"""The monitor against a real mosquitto: a plain paho client plays the gates."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho

from monitor.intake.enrollment import EnrolledKey
from monitor.intake.state import LiveState
from monitor.intake.subscriber import Subscriber
from monitor.storage.records import EventFilter, Gap
from monitor.storage.store import Store
from mqtt.outbox import Outbox
from mqtt.signing import EventSigner, public_text
from tests.support.broker import Mosquitto
from tests.support.central import gate_client, running_monitor
from tests.support.monitor_events import gate_event, payload, topic
from tests.support.postgres import Postgres

DAY = "2026-03-02"


def wait_for(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def publish(client: paho.Client, message_topic: str, body: bytes, retain: bool = False) -> None:
    client.publish(message_topic, body, qos=1, retain=retain).wait_for_publish(5)


def send(client: paho.Client, event: dict[str, Any]) -> None:
    publish(client, topic(event), payload(event))


def counted(subscriber: Subscriber) -> int:
    return subscriber.state.snapshot().counters.received


def test_each_event_stored_once_whatever_the_order(mosquitto: Mosquitto, store_url: str) -> None:
    events = {seq: gate_event(seq, f"{DAY}T08:0{seq}") for seq in (1, 2, 3, 5)}
    wrong_gate = gate_event(6, f"{DAY}T08:06", gate="other")
    with running_monitor(mosquitto, store_url) as monitor, gate_client(mosquitto) as gate:
        for seq in (3, 1, 2, 2, 5):  # out of order, 2 twice (a redelivery: same id)
            send(gate, events[seq])
        publish(gate, "qrgate/f1/in-1/events", b"{not json")
        publish(gate, "qrgate/f1/in-1/events", payload(wrong_gate))  # site/gate from the topic
        wait_for(lambda: counted(monitor) == 7)
        snapshot = monitor.state.snapshot()
    assert snapshot.counters.stored == 4
    assert snapshot.counters.duplicates == 1
    assert snapshot.counters.rejected == 2
    store = Store(store_url, create=False)
    assert store.count_events() == 4
    assert store.gaps() == [Gap("f1", "in-1", 4, 4)]
    (gate_row,) = store.gates()
    assert (gate_row.events, gate_row.last_seq, gate_row.missing) == (4, 5, 1)
    reasons = sorted(reason for _, _, reason, _ in store.rejects())
    assert reasons[0].startswith("event of f1/other published on f1/in-1")
    assert "Invalid JSON" in reasons[1]
    store.close()


GATE_SCRIPT = """
import json, sys, time
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
port, state_topic = int(sys.argv[1]), sys.argv[2]
client = paho.Client(CallbackAPIVersion.VERSION2, client_id="gate-f1-in-1", protocol=paho.MQTTv5)
client.will_set(state_topic, json.dumps({"state": "offline", "ts": "t0", "version": "9"}), 1, True)
client.connect("127.0.0.1", port, keepalive=5)
client.loop_start()
online = json.dumps({"state": "online", "ts": "t1", "version": "9"})
client.publish(state_topic, online, qos=1, retain=True).wait_for_publish(5)
client.publish(sys.argv[2].replace("status", "health"), json.dumps(
    {"uptime_s": 12, "outbox": {"depth": 3}, "camera_fps": 29.7, "decode_ms": 1.4}), qos=1,
    retain=True).wait_for_publish(5)
print("up", flush=True)
time.sleep(60)
"""


def test_gate_status_online_then_offline_by_its_last_will(
    mosquitto: Mosquitto, tmp_path: Any
) -> None:
    url = f"sqlite:///{tmp_path}/monitor.db"
    state_topic = "qrgate/f1/in-1/status"
    gate = subprocess.Popen(
        [sys.executable, "-c", GATE_SCRIPT, str(mosquitto.port), state_topic],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert gate.stdout is not None
        assert gate.stdout.readline().strip() == "up"
        # Started after the gate: status and health arrive as retained messages.
        with running_monitor(mosquitto, url) as monitor:

            def gate_state() -> str | None:
                gates = monitor.state.snapshot().gates
                return gates[0].state if gates else None

            wait_for(lambda: gate_state() == "online")
            gate.kill()  # no DISCONNECT: the broker publishes the gate's last will
            wait_for(lambda: gate_state() == "offline")
            with gate_client(mosquitto) as other:
                publish(other, state_topic, json.dumps({"state": "stopped"}).encode(), True)
                wait_for(lambda: gate_state() == "stopped")
                publish(other, state_topic, b'{"state": "exploded"}', True)
                wait_for(lambda: monitor.state.snapshot().counters.rejected == 1)
    finally:
        gate.kill()
        gate.wait()
    store = Store(url, create=False)
    (row,) = store.gates()
    assert (row.state, row.version, row.state_ts) == ("stopped", None, None)
    assert row.health == {
        "uptime_s": 12,
        "outbox": {"depth": 3},
        "camera_fps": 29.7,
        "decode_ms": 1.4,
    }
    store.close()


def test_two_monitors_on_one_shared_subscription(mosquitto: Mosquitto, store_url: str) -> None:
    events = [gate_event(seq, f"{DAY}T08:00", gate=f"g{seq % 2}") for seq in range(1, 201)]
    with (
        running_monitor(mosquitto, store_url, client_id="m1", shared_group="central") as first,
        running_monitor(mosquitto, store_url, client_id="m2", shared_group="central") as second,
        gate_client(mosquitto) as gate,
    ):
        for event in events:
            gate.publish(topic(event), payload(event), qos=1)
        wait_for(lambda: counted(first) + counted(second) >= 200)
        time.sleep(0.2)  # anything delivered twice would show up now
        shares = counted(first), counted(second)
    assert sum(shares) == 200
    assert min(shares) > 0, shares  # the broker split the events between the two
    store = Store(store_url, create=False)
    assert store.count_events() == 200
    assert sum(gate.events for gate in store.gates()) == 200
    store.close()


def test_a_value_the_database_refuses_is_set_aside(
    mosquitto: Mosquitto, postgres: Postgres
) -> None:
    url = postgres.create_database("refused")
    nul = gate_event(2, f"{DAY}T08:02", name="Bad\u0000Name")  # valid JSON, no PostgreSQL text
    with running_monitor(mosquitto, url) as monitor, gate_client(mosquitto) as gate:
        for event in (gate_event(1, f"{DAY}T08:01"), nul, gate_event(3, f"{DAY}T08:03")):
            gate.publish(topic(event), payload(event), qos=1)
        wait_for(lambda: counted(monitor) == 3)
    store = Store(url, create=False)
    assert store.count_events() == 2
    ((_, where, reason, kept),) = store.rejects()
    assert where == "qrgate/f1/in-1/events"
    assert "NUL" in reason
    assert json.loads(kept)["id"] == nul["id"]
    store.close()


def test_store_connection_lost_then_regained(mosquitto: Mosquitto, postgres: Postgres) -> None:
    url = postgres.create_database("flaky")
    with running_monitor(mosquitto, url) as monitor, gate_client(mosquitto) as gate:
        send(gate, gate_event(1, f"{DAY}T08:01"))
        wait_for(lambda: monitor.state.snapshot().counters.stored == 1)
        import psycopg

        with psycopg.connect(postgres.url(), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = 'flaky' AND pid <> pg_backend_pid()"
            )
        send(gate, gate_event(2, f"{DAY}T08:02"))
        wait_for(lambda: monitor.state.snapshot().counters.stored == 2)
    store = Store(url, create=False)
    assert store.count_events() == 2
    store.close()


def test_a_gate_is_trusted_once_enrolled_and_said_not_to_be_until_then(
    mosquitto: Mosquitto, tmp_path: Any, caplog: Any
) -> None:
    url = f"sqlite:///{tmp_path}/monitor.db"
    signer = EventSigner.load_or_create(tmp_path / "gate" / "event-key.pem")
    outbox = Outbox(tmp_path / "gate" / "q.db", "f1", "in-1", "in", signer=signer)
    for subject in ("A", "B", "C"):
        outbox.append("exit_request", ts=1.77e9, subject=subject)
    first, second, third = (row.payload for row in outbox.pending())
    outbox.close()
    with (
        running_monitor(mosquitto, url, enrollment_refresh_s=0.1) as monitor,
        gate_client(mosquitto) as gate,
    ):
        publish(gate, "qrgate/f1/in-1/events", first)
        publish(gate, "qrgate/f1/in-1/events", second[:-96] + b"}")  # unsigned, not enrolled
        wait_for(lambda: monitor.state.snapshot().counters.stored == 2)
        enrolling = Store(url)
        enrolling.enroll(EnrolledKey.make("f1", "in-1", public_text(signer.public), 0))
        enrolling.close()
        wait_for(lambda: monitor.state.snapshot().enrolled == {("f1", "in-1")})
        publish(gate, "qrgate/f1/in-1/events", third)
        publish(gate, "qrgate/f1/in-1/events", third[:-96] + b"}")  # unsigned: now refused
        wait_for(lambda: counted(monitor) == 4)
        snapshot = monitor.state.snapshot()
    assert (snapshot.counters.stored, snapshot.counters.rejected) == (3, 1)
    (row,) = snapshot.gates
    assert row.unauthenticated == 2
    warnings = [r.message for r in caplog.records if "NOT authenticated" in r.getMessage()]
    assert len(warnings) == 1  # once per gate, not once per event


def test_health_certificates_keep_their_type_and_country_in_the_store(
    mosquitto: Mosquitto, store_url: str, tmp_path: Any
) -> None:
    """A `dcc` scan and a passage paired with a certificate, as a gate's outbox writes
    them, through mosquitto: stored with the certificate's type and country, in columns
    of their own (not in `extra`), found by the Events filters, shown live."""
    outbox = Outbox(tmp_path / "gate" / "q.db", "f1", "in-1", "in")
    certificate = "dcc-" + "5a" * 16
    outbox.append("scan", ts=1.77e9, result="denied", reason="test_too_old", credential="dcc",
                  subject=certificate, code_sha256="a" * 64, cert_type="test",
                  cert_country="VN")  # fmt: skip
    outbox.append("scan", ts=1.77e9 + 1, result="granted", reason="ok", credential="cccd",
                  subject="001099012345", name="Trần Văn Dũng", code_sha256="b" * 64,
                  cert_type="vaccination", cert_country="DE")  # fmt: skip
    outbox.append("scan", ts=1.77e9 + 2, result="granted", reason="ok", credential="badge",
                  subject="B-1", code_sha256="c" * 64)  # fmt: skip
    payloads = [row.payload for row in outbox.pending()]
    outbox.close()
    with running_monitor(mosquitto, store_url) as monitor, gate_client(mosquitto) as gate:
        for body in payloads:
            publish(gate, "qrgate/f1/in-1/events", body)
        wait_for(lambda: monitor.state.snapshot().counters.stored == 3)
        recent = monitor.state.snapshot().recent
    assert [(line.cert_type, line.cert_country) for line in recent] == [
        ("test", "VN"), ("vaccination", "DE"), (None, None),
    ]  # fmt: skip
    store = Store(store_url, create=False)
    columns = "subject, credential, cert_type, cert_country, extra"
    assert store._read(f"SELECT {columns} FROM events ORDER BY seq") == [  # noqa: S608
        (certificate, "dcc", "test", "VN", None),
        ("001099012345", "cccd", "vaccination", "DE", None),
        ("B-1", "badge", None, None, None),
    ]
    (paired,) = store.events(EventFilter(cert_type="vaccination", cert_country="DE"))
    assert (paired.name, paired.credential) == ("Trần Văn Dũng", "cccd")
    assert [row.subject for row in store.events(EventFilter(cert_country="VN"))] == [certificate]
    assert [(line.subject, line.cert_type) for line in store.recent_events(5)] == [
        (certificate, "test"), ("001099012345", "vaccination"), ("B-1", None),
    ]  # fmt: skip
    store.close()


def test_the_monitor_notes_in_the_store_whether_it_sets_aside_gates_not_enrolled(
    mosquitto: Mosquitto, tmp_path: Any
) -> None:
    """For the dashboard's Gates page, which may run on another machine."""
    url = f"sqlite:///{tmp_path}/monitor.db"
    reader = Store(url)
    assert not reader.enrolled_only()  # no monitor has said: the default
    for required in (True, False):
        with running_monitor(mosquitto, url, enrolled_only=required):
            wait_for(lambda required=required: reader.enrolled_only() is required)  # type: ignore[misc]
    reader.close()


def test_a_retired_gate_leaves_the_live_view_and_stays_out_after_a_restart(
    mosquitto: Mosquitto, tmp_path: Any
) -> None:
    """`qrgate fleet retire` clears the gate's retained status: the monitor takes it out of
    the live view, the store marks it retired (its events stay), a restart does not bring
    it back, and no resend is asked of it."""
    from monitor.fleet.resend import plan

    url = f"sqlite:///{tmp_path}/monitor.db"
    online = json.dumps({"state": "online"}).encode()

    def live(monitor: Subscriber) -> set[str]:
        return {row.gate for row in monitor.state.snapshot().gates}

    with running_monitor(mosquitto, url) as monitor, gate_client(mosquitto) as gates:
        for gate in ("in-1", "in-2"):
            publish(gates, f"qrgate/f1/{gate}/status", online, retain=True)
        for seq in (1, 3):  # seq 2 missing: a gap only in-1 could fill
            send(gates, gate_event(seq, f"{DAY}T08:0{seq}", gate="in-1"))
        wait_for(lambda: live(monitor) == {"in-1", "in-2"})
        wait_for(lambda: monitor.state.snapshot().counters.stored == 2)
        publish(gates, "qrgate/f1/in-1/status", b"", retain=True)
        wait_for(lambda: live(monitor) == {"in-2"})
    store = Store(url, create=False)
    rows = {row.gate: row for row in store.gates()}
    assert (rows["in-1"].state, rows["in-1"].retired, rows["in-1"].events) == ("retired", True, 2)
    assert [(gap.gate, gap.first, gap.last) for gap in store.gaps(None)] == [("in-1", 2, 2)]
    assert [ask.gate for ask in plan(store.gaps(None), store.gates())] == ["in-2"]
    restarted = LiveState()  # as `qrgate monitor` starts: from what the store holds
    restarted.seed(store.gates(), store.recent_events(15))
    assert {row.gate for row in restarted.snapshot().gates} == {"in-2"}
    store.close()
