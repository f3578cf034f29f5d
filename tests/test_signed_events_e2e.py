"""Signed events end to end (RELIABILITY.md fault 18): `qrgate run` signs with the key it
made, `qrgate event-key` shows it, `qrgate gates enroll` trusts it, and `qrgate monitor`
verifies every event after a site broker bridged it (MQTT 3.1.1) to the central one.
Events forged on the central broker, with a gate's topic but not its key, are set aside
and the reports do not move."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.storage.store import Store
from mqtt.outbox import Outbox
from mqtt.signing import EventSigner
from tests.support.broker import Mosquitto
from tests.support.central import MonitorProcess, stored_events
from tests.support.cli import qrgate
from tests.support.gate import wait_until
from tests.support.gateproc import GateProcess, write_config
from tests.support.recorder import Recorder
from tests.test_daemon_e2e import badge_kit

pytestmark = pytest.mark.slow

SCENE_EVENTS = 6  # badge_kit: six badges shown, three allowlisted


def bridge_to(central: Mosquitto) -> list[str]:
    """A site broker's bridge to the centre, in MQTT 3.1.1: no properties survive it."""
    return [
        "connection central",
        f"address 127.0.0.1:{central.port}",
        "topic qrgate/# out 1",
        "bridge_protocol_version mqttv311",
        "cleansession false",
    ]


def forged(tmp_path: Path, genuine: bytes) -> list[bytes]:
    """What someone with the gate's broker credentials, or a bridge in the middle, sends."""
    forger = Outbox(
        tmp_path / "forger" / "q.db", "factory-1", "gate-1", "in",
        signer=EventSigner.load_or_create(tmp_path / "forger" / "key.pem"),
    )  # fmt: skip
    fields = {"result": "granted", "reason": "ok", "credential": "badge", "code_sha256": "0" * 64}
    forger.append("scan", ts=1.0e9, subject="INTRUDER", **fields)  # type: ignore[arg-type]
    forger.signer = None
    forger.append("scan", ts=1.0e9, subject="INTRUDER", **fields)  # type: ignore[arg-type]
    own_key, unsigned = (row.payload for row in forger.pending())
    forger.close()
    return [
        own_key,  # signed, but not with the gate's key
        unsigned,
        genuine.replace(b'"direction":"in"', b'"direction":"out"'),  # a forged exit
        re.sub(rb'"seq":\d+,', b'"seq":1000000000000000,', genuine),
    ]


def test_forged_events_are_rejected_by_their_signature_at_the_centre(
    broker_factory: Callable[..., Mosquitto], tmp_path: Path
) -> None:
    central = broker_factory(["max_queued_messages 0"])
    site = broker_factory(bridge_to(central))
    kit = badge_kit(tmp_path / "gate", site.port)
    config_path = write_config(kit.config, tmp_path / "gate.toml")
    db = f"sqlite:///{tmp_path}/central.db"

    shown = qrgate("event-key", "-c", config_path, "--json")
    assert shown.returncode == 0, shown.stderr
    key = json.loads(shown.stdout)
    enrolled = qrgate("gates", "enroll", "factory-1/gate-1", key["x"], "--db", db)
    assert enrolled.returncode == 0, enrolled.stderr
    assert f"key {key['kid']} enrolled" in enrolled.stdout

    at_site, at_centre = Recorder(site, "qrgate/+/+/events").start(), Recorder(central).start()
    monitor = MonitorProcess(central.url, db, tmp_path / "monitor", live=False)
    gate = GateProcess(config_path)
    try:
        monitor.wait_subscribed()
        monitor.wait_for(lambda: stored_events(db) == SCENE_EVENTS, "the gate's events", 40)
        genuine = at_centre.on("events")[0].payload
        for payload in forged(tmp_path, genuine):
            at_centre.client.publish("qrgate/factory-1/gate-1/events", payload, qos=1)
        monitor.wait_for(lambda: len(rejects(db)) == 4, "the forgeries set aside")
        assert gate.terminate()[0] == 0, gate.log
        assert monitor.stop() == 0, monitor.tail
    finally:
        gate.close()
        monitor.close()
    sent = sorted(message.payload for message in at_site.on("events"))
    bridged = sorted(m.payload for m in at_centre.on("events") if b'"INTRUDER"' not in m.payload)
    assert len(sent) >= SCENE_EVENTS
    assert set(bridged) >= set(sent)  # byte for byte through the bridge
    at_site.stop()
    at_centre.stop()

    reasons = sorted(rejects(db))
    assert len(reasons) == 4
    assert (
        reasons[0]
        == reasons[1]
        == f"signature does not verify with factory-1/gate-1's key {key['kid']}"
    )
    assert reasons[2].startswith("signed with key ")
    assert reasons[2].endswith(", not enrolled for factory-1/gate-1")
    assert reasons[3] == "unsigned event from factory-1/gate-1, an enrolled gate"
    store = Store(db, create=False)
    kids = {row[0] for row in store._read("SELECT kid FROM events")}
    store.close()
    assert kids == {key["kid"]}  # every stored event verified with the enrolled key
    onsite = qrgate("report", "onsite", "--db", db, "--format", "json")
    assert {row["subject"] for row in json.loads(onsite.stdout)} == {"B-0", "B-1", "B-2"}
    assert "not authenticated" not in onsite.stderr
    gaps = qrgate("report", "gaps", "--db", db, "--format", "json")
    assert json.loads(gaps.stdout) == []
    listed = qrgate("gates", "list", "--db", db)
    assert re.search(
        rf"factory-1/gate-1 +stopped +{SCENE_EVENTS} +0 +0 +{key['kid']}", listed.stdout
    )


def rejects(db: str) -> list[str]:
    if not wait_until(lambda: stored_events(db) > 0, 0.01):
        return []
    store = Store(db, create=False)
    try:
        return [reason for _, _, reason, _ in store.rejects()]
    finally:
        store.close()
