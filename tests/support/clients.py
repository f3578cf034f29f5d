"""Plain MQTT clients for tests: whoever else may publish on a broker."""

from __future__ import annotations

import threading

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.broker import Mosquitto


def publish(
    broker: Mosquitto, topic: str, payload: bytes, retain: bool = False, timeout_s: float = 5.0
) -> None:
    """Publish with QoS 1 as another client would, and wait for the broker's PUBACK."""
    sent = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.on_publish = lambda *_: sent.set()
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=retain)
    assert sent.wait(timeout_s)
    client.disconnect()
    client.loop_stop()
