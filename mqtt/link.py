"""One connection to the broker, driven by the thread that owns it.

Each connection attempt gets a fresh paho client: paho's session lives in memory only
and resends on its own after a reconnect, while the outbox is our session. Callbacks do
nothing but put a small signal on a queue, and each is guarded: an exception inside a
paho callback would otherwise end the read step and drop the connection (or, in paho's
own thread, kill its loop silently). The owning thread handles signals between calls to
`pump`, which runs paho's read/write/keepalive steps around a select() that a `Waker`
can interrupt.

Size: with MQTT v5 the client sends Maximum Packet Size in CONNECT, and the broker must
not send anything larger (mosquitto drops it). Should one come anyway (v3.1.1 cannot say
so), it is refused as soon as its length is read (`BoundedClient`): the connection is
closed rather than the packet read into memory.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from mqtt.errors import MqttError
from mqtt.settings import MAX_PACKET_BYTES, BrokerSettings, TlsSettings

log = logging.getLogger(__name__)

FAILURE = 0x80  # reason codes from 0x80 up are failures (MQTT v5, 2.4)
P = ParamSpec("P")


class LinkError(MqttError):
    """The broker cannot be reached or refused the connection; says why in one line."""


@dataclass(frozen=True)
class Connected:
    link: int
    refused: str | None  # None: accepted; else the broker's reason
    receive_maximum: int | None


@dataclass(frozen=True)
class Lost:
    link: int
    reason: str


@dataclass(frozen=True)
class Acked:
    link: int
    mid: int
    code: int
    reason: str

    @property
    def accepted(self) -> bool:
        return self.code < FAILURE


@dataclass(frozen=True)
class Received:
    link: int
    topic: str
    payload: bytes
    retain: bool


@dataclass(frozen=True)
class Subscribed:
    link: int
    refused: tuple[str, ...]  # reasons of the filters the broker refused


Signal = Connected | Lost | Acked | Received | Subscribed


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes


def guarded(
    callback: Callable[Concatenate[Link, P], None],
) -> Callable[Concatenate[Link, P], None]:
    """A paho callback that never raises: an exception is logged, and the read step it
    came from goes on with the next packet."""

    def call(link: Link, /, *args: P.args, **kwargs: P.kwargs) -> None:
        try:
            callback(link, *args, **kwargs)
        except Exception:  # a single message must never drop the connection
            log.exception("error in the MQTT callback %s", callback.__name__)

    return call


# What poll() reports that select() would call readable: data, or a socket that failed
# or hung up (paho's read then finds out which).
READABLE = select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | select.POLLNVAL


def ready(reading: list[int], writing: list[int], timeout: float) -> tuple[set[int], set[int]]:
    """The file descriptors ready to read and to write, within `timeout` seconds. poll(),
    not select(): select() cannot watch a descriptor numbered 1024 or more, which a
    process with many connections (a monitor serving browsers, many gates in one
    process) soon hands out."""
    poller = select.poll()
    for fd in {*reading, *writing}:
        mask = (select.POLLIN if fd in reading else 0) | (select.POLLOUT if fd in writing else 0)
        poller.register(fd, mask)
    events = poller.poll(max(0.0, timeout) * 1000)
    readable = {fd for fd, event in events if event & READABLE}
    writable = {fd for fd, event in events if event & select.POLLOUT}
    return readable, writable


class Waker:
    """Interrupts `Link.pump` from any thread."""

    def __init__(self) -> None:
        self._read, self._write = socket.socketpair()
        self._read.setblocking(False)
        self._write.setblocking(False)

    def wake(self) -> None:
        # BlockingIOError: a wake-up is already pending; other OSErrors: closed, stopped.
        with contextlib.suppress(OSError):
            self._write.send(b"\0")

    def fileno(self) -> int:
        return self._read.fileno()

    def wait(self, timeout: float) -> None:
        """Sleep up to `timeout` seconds, or until woken."""
        ready([self.fileno()], [], timeout)
        self.clear()

    def clear(self) -> None:
        try:
            while self._read.recv(4096):
                pass
        except BlockingIOError:
            pass

    def close(self) -> None:
        self._read.close()
        self._write.close()


class Link:
    """A paho client for one connection; its signals carry `number` so that late signals
    of an abandoned connection can be told apart from the current one's."""

    def __init__(
        self,
        broker: BrokerSettings,
        signals: queue.Queue[Signal],
        number: int,
        will: Will | None = None,
        window: int = 20,
    ) -> None:
        self.broker = broker
        self.number = number
        self._signals = signals
        self.client = new_client(broker)
        self.client.max_inflight_messages_set(window)
        if will is not None:
            self.client.will_set(will.topic, will.payload, qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        # paho reports why a socket failed (a TLS alert, a reset) only in its log.
        self.client.on_log = self._on_log
        self._socket_error: str | None = None

    def open(self) -> None:
        """Open the socket (TCP, TLS) and send CONNECT; blocks up to connect_timeout_s.

        The answer (CONNACK) arrives later as a `Connected` signal.
        """
        broker = self.broker
        try:
            if broker.protocol == "v5":
                self.client.connect(
                    broker.host,
                    broker.port,
                    broker.keepalive_s,
                    clean_start=True,
                    properties=connect_properties(broker),
                )
            else:
                self.client.connect(broker.host, broker.port, broker.keepalive_s)
        except ssl.SSLError as error:
            raise LinkError(f"TLS with {broker.address} failed: {error}") from None
        except (OSError, ValueError) as error:
            raise LinkError(f"cannot reach the broker at {broker.address}: {error}") from None

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int | None:
        """Publish with QoS 1; the message id, or None when the connection is gone."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        return info.mid if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS else None

    def subscribe(self, filters: tuple[str, ...]) -> None:
        """Subscribe with QoS 1. With MQTT v5, messages keep their retain flag even when
        they arrive live (Retain As Published), so a retained command is always seen as
        one; v3.1.1 clears the flag on live delivery."""
        if self.broker.protocol == "v5":
            options = SubscribeOptions(qos=1, retainAsPublished=True)
            self.client.subscribe([(topic, options) for topic in filters])
        else:
            self.client.subscribe([(topic, 1) for topic in filters])

    def pump(self, timeout: float, waker: Waker) -> None:
        """Wait up to `timeout` for the socket or the waker, then let paho do its work."""
        sock = self.client.socket()
        if sock is None:
            waker.wait(timeout)
            return
        pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
        writing = [sock.fileno()] if self.client.want_write() else []
        readable, writable = ready(
            [sock.fileno(), waker.fileno()], writing, 0 if pending else timeout
        )
        if sock.fileno() in readable or pending:
            self.client.loop_read()
        if waker.fileno() in readable:
            waker.clear()
        if writable and self.client.socket() is not None:
            self.client.loop_write()
        if self.client.socket() is not None:
            self.client.loop_misc()

    def close(self) -> None:
        """Disconnect cleanly (the broker then does not publish the will)."""
        if self.client.socket() is not None:
            self.client.disconnect()

    def _emit(self, signal: Signal) -> None:
        self._signals.put(signal)

    @guarded
    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, props: Any) -> None:
        refused = str(reason) if reason.is_failure else None
        receive_maximum = getattr(props, "ReceiveMaximum", None)
        self._emit(Connected(self.number, refused, receive_maximum))

    @guarded
    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        cause = f" ({self._socket_error})" if self._socket_error else ""
        self._emit(Lost(self.number, f"{reason}{cause}"))

    @guarded
    def _on_log(self, _c: Any, _u: Any, level: int, text: str) -> None:
        if level == paho.MQTT_LOG_ERR:
            self._socket_error = text

    @guarded
    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        self._emit(Acked(self.number, mid, reason.value, str(reason)))

    @guarded
    def _on_subscribe(self, _c: Any, _u: Any, _m: int, codes: list[ReasonCode], _p: Any) -> None:
        self._emit(Subscribed(self.number, tuple(str(code) for code in codes if code.is_failure)))

    @guarded
    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        self._emit(
            Received(self.number, message.topic, bytes(message.payload), bool(message.retain))
        )


class BoundedClient(paho.Client):
    """A paho client that refuses a packet announced larger than `max_packet_bytes`
    before reading its body: paho reads the fixed header (type and length) a byte at a
    time, then asks for the whole body at once, so the check sits in front of that ask.
    The refusal is an OSError, which paho reports as a lost connection."""

    max_packet_bytes = MAX_PACKET_BYTES

    def _sock_recv(self, bufsize: int) -> bytes:
        incoming = self._in_packet  # paho's state of the packet being read
        if incoming["have_remaining"] and incoming["remaining_length"] > self.max_packet_bytes:
            raise ConnectionAbortedError(
                f"the broker sent a packet of {incoming['remaining_length']} bytes, over the "
                f"{self.max_packet_bytes} this client takes (docs/mqtt.md, message size)"
            )
        return super()._sock_recv(bufsize)


def connect_properties(broker: BrokerSettings) -> Properties:
    """CONNECT properties (MQTT v5): the largest packet this client takes."""
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: unannotated
    properties.MaximumPacketSize = broker.max_packet_bytes
    return properties


def new_client(broker: BrokerSettings) -> paho.Client:
    """A paho client configured from `broker`: protocol, clean session, TLS, login."""
    if broker.protocol == "v5":
        client = BoundedClient(
            CallbackAPIVersion.VERSION2, client_id=broker.client_id, protocol=paho.MQTTv5
        )
    else:
        client = BoundedClient(
            CallbackAPIVersion.VERSION2,
            client_id=broker.client_id,
            protocol=paho.MQTTv311,
            clean_session=True,
        )
    client.max_packet_bytes = broker.max_packet_bytes
    client.connect_timeout = broker.connect_timeout_s
    if broker.tls is not None:
        client.tls_set_context(tls_context(broker.tls))
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    return client


def tls_context(tls: TlsSettings) -> ssl.SSLContext:
    """Verify the broker (its certificate and host name) and present ours if configured."""
    try:
        context = ssl.create_default_context(cafile=str(tls.ca_file) if tls.ca_file else None)
        if tls.cert_file is not None:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    except OSError as error:  # ssl.SSLError included
        raise LinkError(f"cannot use the TLS files (CA, certificate, key): {error}") from None
    return context
