"""Plain MQTT clients for tests: whoever else may publish on a broker."""

from __future__ import annotations

from tests.support.broker import Mosquitto
from tests.support.probe import Probe


def publish(
    broker: Mosquitto, topic: str, payload: bytes, retain: bool = False, timeout_s: float = 5.0
) -> None:
    """Publish with QoS 1 as another client would, and wait for the broker's PUBACK."""
    probe = Probe(broker.port)
    try:
        probe.publish(topic, payload, retain=retain, timeout_s=timeout_s)
    finally:
        probe.close()
