"""A packet over the link's bound, from a broker the client could not tell the bound to
(MQTT 3.1.1 has no Maximum Packet Size): the connection is closed as soon as the
packet's length is read, and the packet never reaches the gate (docs/mqtt.md, message
size). With MQTT v5 the broker drops it instead (tests/test_command_junk.py)."""

from __future__ import annotations

import queue
import time

from mqtt.link import Connected, Link, Lost, Received, Signal, Waker
from mqtt.settings import BrokerSettings
from tests.support.broker import Mosquitto
from tests.support.clients import publish

BOUND = 16 * 1024
TOPIC = "qrgate/factory-1/gate-1/cmd/open"


def next_signal(link: Link, signals: queue.Queue[Signal], waker: Waker) -> Signal:
    deadline = time.monotonic() + 10
    while signals.empty():
        assert time.monotonic() < deadline, "no signal from the link"
        link.pump(0.1, waker)
    return signals.get_nowait()


def test_a_v311_link_closes_on_a_packet_over_its_bound_before_reading_it(
    mosquitto: Mosquitto,
) -> None:
    publish(mosquitto, TOPIC, b"x" * (4 * BOUND), retain=True)
    broker = BrokerSettings(
        "127.0.0.1", mosquitto.port, "bounded", "v311", keepalive_s=5, max_packet_bytes=BOUND
    )
    signals: queue.Queue[Signal] = queue.Queue()
    waker = Waker()
    link = Link(broker, signals, 1)
    try:
        link.open()
        assert next_signal(link, signals, waker) == Connected(1, None, None)
        link.subscribe((TOPIC,))
        seen = [next_signal(link, signals, waker) for _ in range(2)]
    finally:
        link.close()
        waker.close()
    assert not any(isinstance(signal, Received) for signal in seen)
    lost = seen[-1]
    assert isinstance(lost, Lost)
    assert f"of {4 * BOUND + len(TOPIC) + 4} bytes, over the {BOUND} this client takes" in (
        lost.reason
    )
