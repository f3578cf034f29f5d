"""The demo's view from the centre: a plain MQTT subscriber to the demo gate's topics."""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from mqtt.events import parse_event

log = logging.getLogger(__name__)


class EventFeed:
    """Collects the events, status and health one gate publishes (QoS 1)."""

    def __init__(self, port: int, base_topic: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.status: str | None = None
        self.invalid = 0
        self._base = base_topic
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="qrgate-demo-centre", protocol=paho.MQTTv5
        )
        self._client.on_connect = lambda client, *_: client.subscribe(f"{base_topic}/#", qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = self._on_message
        self._port = port

    def start(self, timeout_s: float = 5.0) -> bool:
        self._client.connect("127.0.0.1", self._port)
        self._client.loop_start()
        return self._subscribed.wait(timeout_s)

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def _on_message(self, _client: Any, _userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            self._take(message.topic.removeprefix(self._base + "/"), bytes(message.payload))
        except Exception:  # a callback that raises would kill paho's thread
            log.exception("demo feed: message on %s", message.topic)

    def _take(self, stream: str, payload: bytes) -> None:
        if stream == "events":
            try:
                event = parse_event(payload).as_dict()
            except ValueError:
                self.invalid += 1
                return
            with self._lock:
                self.events.append(event)
        elif stream == "status":
            self.status = json.loads(payload).get("state")
