"""The shared fixtures do what later tests rely on them to do."""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import paho.mqtt.client as paho
import pytest
import zxingcpp
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.broker import Mosquitto, port_open
from tests.support.frames import Gray, Look, empty_frame, qr_modules


def round_trip(broker: Mosquitto, topic: str, payload: bytes) -> bytes:
    """Publish one message and receive it back through the broker."""
    got: list[bytes] = []
    arrived = threading.Event()
    subscribed = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda _c, _u, message: (got.append(message.payload), arrived.set())
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        client.subscribe(topic, qos=1)
        assert subscribed.wait(5)
        client.publish(topic, payload, qos=1).wait_for_publish(5)
        assert arrived.wait(5)
    finally:
        client.loop_stop()
        client.disconnect()
    return got[0]


def test_broker_is_private_and_carries_messages(mosquitto: Mosquitto) -> None:
    assert mosquitto.port != 1883
    assert round_trip(mosquitto, "t/one", b"hello") == b"hello"


def test_broker_stops_and_restarts_on_the_same_port(mosquitto: Mosquitto) -> None:
    port = mosquitto.port
    mosquitto.kill()
    assert not port_open(port)
    mosquitto.start()
    assert mosquitto.port == port
    assert mosquitto.starts == 2
    assert round_trip(mosquitto, "t/two", b"again") == b"again"


def test_broker_takes_extra_config(broker_factory: Callable[..., Mosquitto]) -> None:
    locked = broker_factory(["allow_anonymous false"])
    client = paho.Client(CallbackAPIVersion.VERSION2)
    refused = threading.Event()
    client.on_connect = lambda _c, _u, _f, reason, _p: reason.is_failure and refused.set()
    client.connect("127.0.0.1", locked.port)
    client.loop_start()
    try:
        assert refused.wait(5)
    finally:
        client.loop_stop()


def test_mock_factory_records_every_transition(mock_factory: object) -> None:
    from gpiozero import LED

    led = LED(23, pin_factory=mock_factory)
    led.on()
    led.off()
    led.on()
    pin = mock_factory.pin(23)  # type: ignore[attr-defined]
    assert [state for _, state in pin.states] == [False, True, False, True]
    led.close()


def test_mock_factory_is_fresh_per_test(mock_factory: object) -> None:
    from gpiozero import LED

    # Would raise GPIOPinInUse if the previous test's LED on pin 23 had leaked.
    led = LED(23, pin_factory=mock_factory)
    assert mock_factory.pin(23).states[-1][1] is False  # type: ignore[attr-defined]
    led.close()


@pytest.mark.parametrize(
    "look",
    [Look(), Look(module_px=2.0, angle=25), Look(tilt=35), Look(invert=True), Look(noise=6)],
    ids=["plain", "small-rotated", "tilted", "inverted", "noisy"],
)
def test_rendered_frames_read_back(qr_frame: Callable[..., Gray], look: Look) -> None:
    frame = qr_frame("W-1042", look=look)
    assert frame.shape == (480, 640)
    assert frame.dtype == np.uint8
    texts = [code.text for code in zxingcpp.read_barcodes(frame, try_invert=True)]
    assert texts == ["W-1042"]


def test_modules_are_exact_and_scaled(qr_frame: Callable[..., Gray]) -> None:
    modules = qr_modules("A", error="l", version=1)
    assert modules.shape == (29, 29)  # 21 modules + 2 × 4 quiet zone
    frame = qr_frame(
        "A", size=(200, 200), look=Look(module_px=4, background="flat"), error="l", version=1
    )
    # The top-left finder's dark corner module sits 4 quiet modules in, 4 px each.
    left = 100 - 29 * 4 // 2
    assert frame[left + 4 * 4 + 2, left + 4 * 4 + 2] < 60
    assert frame[left + 2, left + 2] > 200


def test_empty_frames_hold_no_code() -> None:
    assert zxingcpp.read_barcodes(empty_frame(seed=3)) == []
