"""A plain MQTT v5 client for tests that must see what the broker answers: the reason
codes of CONNACK, PUBACK and SUBACK, and the messages that arrive."""

from __future__ import annotations

import queue
import ssl
import threading
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Arrived:
    topic: str
    payload: bytes
    retain: bool


class Probe:
    """One connection; every call waits for the broker's answer (bounded)."""

    def __init__(
        self,
        port: int,
        *,
        username: str | None = None,
        password: str | None = None,
        client_id: str = "",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        if tls is not None:
            self.client.tls_set_context(tls)
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack: ReasonCode | None = None
        self.messages: queue.Queue[Arrived] = queue.Queue()
        self._acks: dict[int, Any] = {}
        self._acked = threading.Condition()
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.disconnected.set()
        self.client.on_publish = self._on_ack
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = lambda _c, _u, m: self.messages.put(
            Arrived(m.topic, bytes(m.payload), bool(m.retain))
        )
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        self.connected.wait(TIMEOUT_S)

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self.connack = reason
        self.connected.set()

    def _on_ack(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self._acked:
            self._acks[mid] = reason
            self._acked.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, reasons: list[ReasonCode], _p: Any) -> None:
        self._on_ack(_c, _u, mid, reasons, _p)  # type: ignore[arg-type]

    def _wait(self, mid: int, timeout_s: float = TIMEOUT_S) -> Any:
        with self._acked:
            assert self._acked.wait_for(lambda: mid in self._acks, timeout_s), "no answer"
            return self._acks.pop(mid)

    @property
    def accepted(self) -> bool:
        return self.connack is not None and not self.connack.is_failure

    def publish(
        self,
        topic: str,
        payload: bytes = b"{}",
        *,
        retain: bool = False,
        timeout_s: float = TIMEOUT_S,
    ) -> ReasonCode:
        """Publish at QoS 1; the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        reason: ReasonCode = self._wait(info.mid, timeout_s)
        return reason

    def subscribe(self, *filters: str) -> list[ReasonCode]:
        """Subscribe at QoS 1; the SUBACK's reason codes."""
        _, mid = self.client.subscribe([(topic, 1) for topic in filters])
        assert mid is not None, "not connected"
        reasons: list[ReasonCode] = self._wait(mid)
        return reasons

    def take(self, timeout_s: float = TIMEOUT_S) -> Arrived | None:
        try:
            return self.messages.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
