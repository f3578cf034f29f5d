"""An independent subscriber that records what a gate publishes, and checks the stream.

It keeps a persistent session (MQTT v5, clean start off), so on a broker that saves its
state after every change (`DURABLE`) it misses nothing across a broker SIGKILL: the
session, with its subscription, comes back with the broker, and messages published
before the recorder reconnects are queued for it.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.support.broker import Mosquitto

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "docs" / "events.schema.json").read_text()
)
# Broker options that save sessions after every change: they survive a SIGKILL.
DURABLE = ["autosave_interval 1", "autosave_on_changes true"]


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool

    def json(self) -> Any:
        return json.loads(self.payload)


class Recorder:
    """Records every message under `topic` (QoS 1) from start() to stop()."""

    def __init__(
        self,
        broker: Mosquitto,
        topic: str = "qrgate/#",
        client_id: str = "recorder",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.broker = broker
        self.topic = topic
        self.messages: list[Message] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
        )
        if tls is not None:
            self.client.tls_set_context(tls)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *_: self._subscribed.set()
        self.client.on_message = self._on_message

    def start(self) -> Recorder:
        # paho-mqtt leaves Properties.__init__ unannotated.
        session = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        session.SessionExpiryInterval = 3600
        self.client.connect(
            "127.0.0.1", self.broker.port, keepalive=10, clean_start=False, properties=session
        )
        self.client.loop_start()
        assert self._subscribed.wait(5), "the recorder could not subscribe"
        if self.broker.persistence:
            self._wait_until_saved()
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _wait_until_saved(self) -> None:
        """Until the broker's saved state holds our subscription (mosquitto replaces
        the file atomically, so reading it is safe)."""
        saved = self.broker.workdir / "mosquitto.db"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if saved.exists() and self.topic.encode() in saved.read_bytes():
                return
            time.sleep(0.02)
        raise AssertionError("the broker did not save the recorder's subscription")

    def _on_connect(self, client: paho.Client, _u: Any, flags: Any, _r: Any, _p: Any) -> None:
        if not flags.session_present:
            client.subscribe(self.topic, qos=1)

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        with self._changed:
            self.messages.append(Message(message.topic, bytes(message.payload), message.retain))
            self._changed.notify_all()

    def on(self, stream: str) -> list[Message]:
        """Messages on one stream: events, status, health or reply."""
        with self._changed:
            return [m for m in self.messages if m.topic.endswith("/" + stream)]

    def events(self) -> list[dict[str, Any]]:
        return [message.json() for message in self.on("events")]

    def wait(self, ready: Callable[[Recorder], bool], timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not ready(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.2))
        return True

    def wait_for_seqs(self, count: int, timeout: float = 15.0) -> bool:
        """Wait until events with every seq from 1 to `count` arrived."""
        return self.wait(
            lambda r: {e["seq"] for e in r.events()} >= set(range(1, count + 1)), timeout
        )


@dataclass(frozen=True)
class Stream:
    seqs: list[int]
    duplicates: int


def check_stream(events: list[dict[str, Any]], count: int) -> Stream:
    """Nothing missing, no seq reused, duplicates only as repeats of the same event,
    every event valid against docs/events.schema.json."""
    for event in events:
        jsonschema.validate(event, SCHEMA)
    ids_by_seq: dict[int, set[str]] = {}
    for event in events:
        ids_by_seq.setdefault(event["seq"], set()).add(event["id"])
    assert sorted(ids_by_seq) == list(range(1, count + 1)), "a seq is missing or extra"
    reused = {seq: ids for seq, ids in ids_by_seq.items() if len(ids) > 1}
    assert not reused, f"seq reused by different events: {reused}"
    repeats = Counter(event["id"] for event in events)
    return Stream([event["seq"] for event in events], sum(n - 1 for n in repeats.values()))


def retained(broker: Mosquitto, topic: str, timeout: float = 5.0) -> Any:
    """The retained message on `topic` as JSON (a fresh subscriber), or None."""
    got: list[bytes] = []
    arrived = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)

    def on_message(_c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        if message.retain:
            got.append(bytes(message.payload))
            arrived.set()

    client.on_message = on_message
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        arrived.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return json.loads(got[-1]) if got else None
