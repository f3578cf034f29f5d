"""Poison for the centre (RELIABILITY.md fault 15): lone surrogates, deep nesting and
400-digit numbers on every topic the monitor reads, among genuine events, through a real
mosquitto into `qrgate monitor` as a process, on SQLite and PostgreSQL, and a restart.

Each bad message is set aside and counted, every genuine event is stored and
acknowledged, and the monitor and its live view keep running."""

from __future__ import annotations

import json
from itertools import cycle
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from monitor.storage.store import Store
from tests.support.broker import Mosquitto
from tests.support.central import MonitorProcess, gate_client, stored_events
from tests.support.monitor_events import gate_event, payload, topic

DAY = "2026-03-02"
DEEP = b"[" * 50_000 + b"]" * 50_000
HUGE = b"9" * 400


def poison_event(seq: int) -> dict[str, object]:
    return gate_event(seq, f"{DAY}T08:00", gate="poisoned")


def event_with(field: bytes, value: bytes) -> bytes:
    """A genuine-looking event of gate `poisoned` with one field's JSON value replaced."""
    data = json.loads(payload(poison_event(1)))
    data[field.decode()] = "PLACEHOLDER"
    return json.dumps(data).encode().replace(b'"PLACEHOLDER"', value)


# (topic, payload, retained): 32-byte statuses and the rest of the attack.
POISON: list[tuple[str, bytes, bool]] = [
    ("qrgate/f1/p1/status", b'{"state":"online","ts":"\\ud800"}', True),
    ("qrgate/f1/p2/status", DEEP, True),
    (
        "qrgate/f1/p3/status",
        b'{"state":"online","ts":' + HUGE + b',"version":' + DEEP + b"}",
        False,
    ),
    ("qrgate/f1/p4/health", b'{"camera_fps":' + HUGE + b',"decode_ms":1e400}', True),
    ("qrgate/f1/p5/health", b'{"last_scan":"\\ud800","outbox":{"rows":"\\udfff"}}', True),
    ("qrgate/f1/p6/health", DEEP, False),
    ("qrgate/f1/poisoned/events", event_with(b"name", b'"\\ud800"'), False),
    ("qrgate/f1/poisoned/events", event_with(b"seq", HUGE), False),
    ("qrgate/f1/poisoned/events", event_with(b"latency_ms", HUGE), False),
    ("qrgate/f1/poisoned/events", event_with(b"extra", DEEP), False),
    ("qrgate/f1/poisoned/events", DEEP, False),
]


def publish_mixed(client: paho.Client, poison: int, genuine: list[dict[str, object]]) -> None:
    """`poison` bad messages with the genuine events spread evenly among them."""
    every = max(poison // max(len(genuine), 1), 1)
    kinds = cycle(POISON)
    pending = list(genuine)
    infos = []
    for index in range(poison):
        where, body, retain = next(kinds)
        infos.append(client.publish(where, body, qos=1, retain=retain))
        if index % every == 0 and pending:
            event = pending.pop(0)
            infos.append(client.publish(topic(event), payload(event), qos=1))
    infos += [client.publish(topic(event), payload(event), qos=1) for event in pending]
    for info in infos:
        info.wait_for_publish(30)


def test_poison_on_every_topic_is_set_aside_and_every_event_stored(
    mosquitto: Mosquitto, store_url: str, tmp_path: Path
) -> None:
    genuine = [gate_event(seq, f"{DAY}T09:00") for seq in range(1, 141)]
    monitor = MonitorProcess(mosquitto.url, store_url, tmp_path)
    try:
        monitor.wait_subscribed()
        with gate_client(mosquitto, inflight=200) as gate:
            publish_mixed(gate, 1000, genuine[:110])
            monitor.wait_for(lambda: stored_events(store_url) == 110, "110 genuine events")
            monitor.wait_for(monitor.redrawn("p4", 2), "the view with p4's health")
            assert monitor.stop() == 0, monitor.tail
            publish_mixed(gate, 200, genuine[110:130])  # while the monitor is away
            monitor = MonitorProcess(mosquitto.url, store_url, tmp_path)
            monitor.wait_subscribed()
            monitor.wait_for(lambda: stored_events(store_url) == 130, "the backlog")
            publish_mixed(gate, 100, genuine[130:])  # nothing is stuck in flight
            monitor.wait_for(lambda: stored_events(store_url) == 140, "every event")
            monitor.wait_for(monitor.redrawn("p5", 2), "the view after the restart")
        assert monitor.stop() == 0, monitor.tail
        assert "Traceback" not in monitor.screen
    finally:
        monitor.close()
    store = Store(store_url, create=False)
    try:
        assert store.gaps() == []
        rows = {(row.site, row.gate): row for row in store.gates()}
        assert rows["f1", "in-1"].events == 140
        assert rows["f1", "p4"].health is not None  # kept, and shown blank
        reasons = [reason for _, _, reason, _ in store.rejects(limit=5000)]
        assert len(reasons) >= 1300 * 8 // 11  # every status, health and event poison
        assert any("nested too deeply" in reason for reason in reasons)
        assert all(len(kept) <= 2048 for _, _, _, kept in store.rejects(limit=5000))
    finally:
        store.close()


@pytest.mark.parametrize("how", ["retained health", "stored health"])
def test_a_health_message_no_view_can_show_is_blank_also_after_a_restart(
    mosquitto: Mosquitto, tmp_path: Path, how: str
) -> None:
    db = f"sqlite:///{tmp_path}/central.db"
    figures = b'{"camera_fps":' + HUGE + b',"outbox_depth":' + HUGE + b',"last_scan":' + HUGE
    figures += b',"decode_ms":"\\u001b[2J\\u0007"}'
    with gate_client(mosquitto) as gate:
        gate.publish("qrgate/f1/g1/health", figures, qos=1, retain=True).wait_for_publish(5)
    for start in range(2):
        monitor = MonitorProcess(mosquitto.url, db, tmp_path / str(start))
        try:
            monitor.wait_subscribed()
            monitor.wait_for(monitor.redrawn("g1", 3), "the gate's row, redrawn")
            assert monitor.stop() == 0, monitor.tail
        finally:
            monitor.close()
        if how == "stored health" and start == 0:
            with gate_client(mosquitto) as gate:  # gone from the broker: only the store has it
                gate.publish("qrgate/f1/g1/health", b"", qos=1, retain=True).wait_for_publish(5)
    row = next(line for line in monitor.screen.splitlines() if "g1" in line)
    assert "999" not in row
    assert "\x07" not in row
