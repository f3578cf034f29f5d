"""The broker setup docs/mqtt.md asks for, run as written: mosquitto with the lines of
its "Broker requirements" (client ids bound to users, a packet size bound) and its ACL.
A client that knows a gate's client id but not its password can no longer knock the
gate off (RELIABILITY.md fault 16's flapping status); what is over the size bound never
reaches a gate or the monitor.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from mqtt.publisher import Publisher
from tests.support.broker import Mosquitto
from tests.support.cli import ROOT
from tests.support.gate import TOPICS, new_outbox, publisher_for, scans, start, wait_until

DOCS = ROOT / "docs" / "mqtt.md"
USERS = ("gate-1", "centre", "monitor", "intruder")


def documented_block(first_line: str) -> list[str]:
    """The lines of the fenced block in docs/mqtt.md that starts with `first_line`."""
    blocks = re.findall(r"```conf\n(.*?)```", DOCS.read_text(), re.DOTALL)
    block = next(block for block in blocks if block.startswith(first_line))
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def documented_broker(broker_factory: Callable[..., Mosquitto], folder: Path) -> Mosquitto:
    acl, passwords = folder / "qrgate.acl", folder / "qrgate.passwd"
    acl.write_text("\n".join(documented_block("# /etc/mosquitto/qrgate.acl")) + "\n")
    for number, user in enumerate(USERS):
        create = ["-c"] if number == 0 else []
        subprocess.run(
            ["mosquitto_passwd", "-b", *create, str(passwords), user, f"{user}-pw"], check=True
        )
    lines = documented_block("# /etc/mosquitto/conf.d/qrgate.conf")
    lines = [
        line.replace("/etc/mosquitto/qrgate.acl", str(acl)).replace(
            "/etc/mosquitto/qrgate.passwd", str(passwords)
        )
        for line in lines
        if not line.startswith("per_listener_settings")  # the test broker sets it already
    ]
    return broker_factory(lines)


def client(
    broker: Mosquitto, user: str, client_id: str, on_message: Callable[..., None] | None = None
) -> paho.Client:
    connected = threading.Event()
    mqtt = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    mqtt.username_pw_set(user, f"{user}-pw")
    mqtt.on_connect = lambda *_: connected.set()
    mqtt.on_message = on_message
    mqtt.connect("127.0.0.1", broker.port)
    mqtt.loop_start()
    assert connected.wait(5)
    return mqtt


def retained_status(broker: Mosquitto) -> str | None:
    """The gate's retained status, as the monitor's user reads it."""
    got: list[str] = []
    arrived = threading.Event()

    def on_message(_c: object, _u: object, message: paho.MQTTMessage) -> None:
        got.append(json.loads(message.payload)["state"])
        arrived.set()

    monitor = client(broker, "monitor", "monitor", on_message)
    monitor.subscribe(TOPICS.status, qos=1)
    arrived.wait(5)
    monitor.disconnect()
    monitor.loop_stop()
    return got[-1] if got else None


def test_the_documented_broker_binds_client_ids_and_bounds_packets(
    broker_factory: Callable[..., Mosquitto], tmp_path: Path, running: list[Publisher]
) -> None:
    broker = documented_broker(broker_factory, tmp_path)
    outbox = new_outbox(tmp_path / "q.db")
    gate = start(running, publisher_for(broker, outbox, username="gate-1", password="gate-1-pw"))
    assert wait_until(lambda: gate.connected)
    intruder = client(broker, "intruder", client_id=gate.settings.broker.client_id)
    centre = client(broker, "centre", client_id="anything")
    try:
        centre.publish(TOPICS.command("open"), b"x" * (5 * 1024 * 1024), qos=1)
        scans(outbox, 5)
        gate.wake()
        assert wait_until(lambda: outbox.depth().rows == 0)
        time.sleep(0.5)  # the gate would have been taken over by now
    finally:
        intruder.disconnect()
        centre.loop_stop()
        intruder.loop_stop()
    assert gate.stats.connects == 1
    assert retained_status(broker) == "online"
    assert "Client centre disconnected due to oversize packet" in broker.log_path.read_text()


def test_the_monitor_announces_its_maximum_packet_size(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    health = "qrgate/factory-1/gate-1/health"
    publisher = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    publisher.publish(health, b"{" + b" " * (8 * 1024 * 1024) + b"}", qos=1, retain=True)
    publisher.publish(health.replace("gate-1", "gate-2"), b"{}", qos=1, retain=True)
    publisher.disconnect()
    publisher.loop_stop()
    url = f"sqlite:///{tmp_path / 'centre.db'}"
    arguments = ["monitor", "--quiet", "--broker", mosquitto.url, "--db", url]
    monitor = subprocess.Popen(
        [sys.executable, "-m", "scanner", *arguments, "--client-id", "centre-test"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        dropped = "Dropping too large outgoing PUBLISH for centre-test"
        assert wait_until(lambda: dropped in mosquitto.log_path.read_text(), 15)
    finally:
        monitor.terminate()
        monitor.wait(10)
