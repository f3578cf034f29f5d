"""The monitor's MQTT side: one MQTT v5 session that sees every gate.

paho's network thread only queues what arrives; one writer thread takes what is queued
in batches, stores each batch in one transaction, and only then acknowledges its
messages (paho's `manual_ack`): a PUBACK leaves for an event only once that event is
committed. If the monitor dies in between, the broker delivers the messages again when
the session resumes and the store's unique `id` turns them into no-ops.

A message that cannot be used (not an event, a forged signature, a value the database
refuses: whatever the reason) is set aside as a reject and acknowledged with the rest;
only a store outage holds acknowledgements back, since then nothing could be kept.

A monitor alone has a persistent session (clean start off, a session expiry), so QoS 1
events published while it is away wait in the broker for it. With `shared_group`, events
come through an MQTT v5 shared subscription, split between the monitors of the group,
and the session is clean by default (expiry 0): a broker keeps giving a member with a
persistent session its share while that member is dead, where no other member can take
it, so a clean session leaves the group as its connection ends, and the little it held
in flight is asked of the gates again (gate-side replay: `qrgate report gaps --resend`).
Status and health, retained and idempotent, reach every monitor.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from monitor.errors import StoreRefusedError, StoreUnavailableError
from monitor.intake.enrollment import Enrollment, GateKey
from monitor.intake.ingest import EventRecord, Record, Rejected, classify, reject
from monitor.intake.state import LiveState
from monitor.storage.store import Store
from mqtt.settings import MAX_PACKET_BYTES, BrokerSettings, BrokerUrl, TlsSettings
from mqtt.topics import check_level, monitor_filters

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.5
RETRY_MAX_S = 15.0
QUEUE_POLL_S = 0.2
REJECTS_LOGGED = 3  # per batch; the rest are counted
# Told of every committed batch: all its records, and its events that were new.
Observer = Callable[[Sequence[Record], Sequence[EventRecord]], None]


@dataclass(frozen=True)
class Broker:
    """Where the broker is and how to prove who we are (as the gates do)."""

    host: str
    port: int
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password: str | None = None

    def settings(self, client_id: str) -> BrokerSettings:
        """As the mqtt package's links take it (commands are sent through these)."""
        files = (self.ca_file, self.cert_file, self.key_file)
        return BrokerSettings(
            host=self.host,
            port=self.port,
            client_id=client_id,
            tls=TlsSettings(*files) if self.tls else None,
            username=self.username,
            password=self.password,
        )

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Broker:
        """`mqtt://host[:port]` or `mqtts://host[:port]` (TLS); ValueError if neither."""
        named = BrokerUrl.parse(url)
        return cls(named.host, named.port, tls=named.tls, **options)


@dataclass(frozen=True)
class Settings:
    broker: Broker
    client_id: str
    prefix: str = "qrgate"
    shared_group: str | None = None
    session_expiry_s: int = 7 * 24 * 3600
    keepalive_s: int = 30
    # How many unacknowledged messages the broker may have in flight to us: enough for
    # full batches, small enough to bound memory while the store is down.
    receive_maximum: int = 1000
    max_batch: int = 500
    enrolled_only: bool = False  # set aside events of gates with no enrolled key
    # Keys enrolled while the monitor runs (`qrgate gates enroll`) apply within this time.
    enrollment_refresh_s: float = 5.0

    def __post_init__(self) -> None:
        if self.shared_group is not None:
            check_level("shared subscription group", self.shared_group)

    @property
    def filters(self) -> list[str]:
        events, status, health = monitor_filters(self.prefix)
        if self.shared_group:
            events = f"$share/{self.shared_group}/{events}"
        return [events, status, health]


@dataclass(frozen=True)
class Delivery:
    """One message as it arrived, and the connection it arrived on."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    connection: int
    received_ms: int


class Subscriber:
    """Owns the MQTT client and the writer thread; `start()`, then `stop()`."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        state: LiveState,
        clock: Callable[[], float] = time.time,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.settings = settings
        self.store = store
        self.state = state
        self.clock = clock
        self.observers = tuple(observers)
        self.client = make_client(settings)
        self.client.on_connect = guarded(self._on_connect)
        self.client.on_disconnect = guarded(self._on_disconnect)
        self.client.on_subscribe = guarded(self._on_subscribe)
        self.client.on_message = guarded(self._on_message)
        self._deliveries: queue.Queue[Delivery] = queue.Queue()
        # Bumped on every connect and disconnect: a message is acknowledged only on the
        # connection it came in on, since packet ids restart with each connection.
        self._connection = 0
        self._ack_lock = threading.Lock()
        self._stopping = threading.Event()
        self.subscribed = threading.Event()  # set once the broker granted our subscriptions
        self.enrollment = Enrollment(required=settings.enrolled_only)
        self._enrollment_read_at: float | None = None
        self._policy_noted = False  # in the store, for the dashboard's Gates page
        self._unauthenticated_noticed: set[GateKey] = set()
        self._writer = threading.Thread(target=self._write_loop, name="monitor-writer")

    def start(self) -> None:
        broker = self.settings.broker
        self.client.connect_async(
            broker.host,
            broker.port,
            keepalive=self.settings.keepalive_s,
            # A session that ends with the connection has nothing to resume.
            clean_start=self.settings.session_expiry_s == 0,
            properties=connect_properties(self.settings),
        )
        self.client.loop_start()
        self._writer.start()
        log.info("connecting to %s:%d as %s", broker.host, broker.port, self.settings.client_id)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Store and acknowledge what has arrived, then leave; the session stays."""
        self._stopping.set()
        if self._writer.is_alive():
            self._writer.join(timeout_s)
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def alive(self) -> bool:
        return self._writer.is_alive()

    # ---- paho's network thread: queue and return -----------------------------------

    def _on_connect(self, _c: Any, _u: Any, flags: Any, reason: ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection: %s", reason)
            return
        with self._ack_lock:
            self._connection += 1
        options = SubscribeOptions(qos=1)
        self.client.subscribe([(topic, options) for topic in self.settings.filters])
        self.state.set_connected(True)
        log.info("connected (session resumed: %s)", bool(flags.session_present))

    def _on_subscribe(
        self, _c: Any, _u: Any, _mid: int, reasons: list[ReasonCode], _p: Any
    ) -> None:
        refused = [
            (topic, reason)
            for topic, reason in zip(self.settings.filters, reasons, strict=False)
            if reason.is_failure
        ]
        for topic, reason in refused:
            log.error("broker refused the subscription to %s: %s", topic, reason)
        if not refused:
            log.info("subscribed to %s", ", ".join(self.settings.filters))
            self.subscribed.set()

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        with self._ack_lock:
            self._connection += 1
        self.state.set_connected(False)
        if not self._stopping.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        self._deliveries.put(
            Delivery(
                message.topic,
                bytes(message.payload),
                message.mid,
                message.qos,
                self._connection,
                round(self.clock() * 1000),
            )
        )

    # ---- the writer thread: store, then acknowledge --------------------------------

    def _write_loop(self) -> None:
        while True:
            self._refresh_enrollment()
            batch = self._take_batch()
            if not batch and self._stopping.is_set():
                return
            try:
                self._store(batch)
            except Exception:
                log.exception(
                    "could not store %d messages; the broker will send them again", len(batch)
                )

    def _take_batch(self) -> list[Delivery]:
        try:
            batch = [self._deliveries.get(timeout=QUEUE_POLL_S)]
        except queue.Empty:
            return []
        while len(batch) < self.settings.max_batch:
            try:
                batch.append(self._deliveries.get_nowait())
            except queue.Empty:
                break
        return batch

    def _refresh_enrollment(self) -> None:
        """Re-read the enrolled keys now and then: `qrgate gates enroll` writes the store."""
        now = time.monotonic()
        read_at = self._enrollment_read_at
        if read_at is not None and now - read_at < self.settings.enrollment_refresh_s:
            return
        self._enrollment_read_at = now
        try:
            keys = self.store.enrolled_keys()
            if not self._policy_noted:
                self.store.note_enrolled_only(self.settings.enrolled_only)
                self._policy_noted = True
        except StoreUnavailableError as error:  # StoreConflictError is one too
            log.warning("enrolled keys not re-read: %s", error)
            return
        self.enrollment = Enrollment.of(keys, required=self.settings.enrolled_only)
        self.state.set_enrolled(self.enrollment.gates)

    def _store(self, batch: list[Delivery]) -> None:
        if not batch:
            return
        enrollment = self.enrollment
        records = [classify(self.settings.prefix, *arrived(d), enrollment) for d in batch]
        new = self._write_until_stored(batch, records)
        if new is None:
            return
        self._ack(batch)
        self.state.stored(records, new)
        self._tell_observers(records, new)
        log_rejects(records)
        self._notice_unauthenticated(new)
        log_seq_jumps(new)

    def _notice_unauthenticated(self, new: list[EventRecord]) -> None:
        """Once per gate and run: its events are stored, but nothing proves they are its."""
        for record in new:
            key = record.gate_key
            if record.authenticated or key in self._unauthenticated_noticed:
                continue
            self._unauthenticated_noticed.add(key)
            site, gate = key
            signs = (
                f"it signs with key {record.event.kid}"
                if record.event.kid
                else "its events are unsigned (a gate older than signed events)"
            )
            log.warning(
                "events of %s/%s are NOT authenticated: no key is enrolled for it (%s); run "
                "`qrgate event-key` on the gate, then `qrgate gates enroll %s/%s KEY` here",
                site, gate, signs, site, gate,
            )  # fmt: skip

    def _write_until_stored(
        self, batch: Sequence[Delivery], records: list[Record]
    ) -> list[EventRecord] | None:
        """Retry while the store is unavailable; None if asked to stop meanwhile."""
        delay = RETRY_FIRST_S
        while True:
            try:
                new = self._write(batch, records)
            except StoreUnavailableError as error:
                log.warning("%s; trying again in %.1f s", error, delay)
                self.state.set_store_problem(str(error))
                if self._stopping.wait(delay):
                    return None
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            self.state.set_store_problem(None)
            return new

    def _write(self, batch: Sequence[Delivery], records: list[Record]) -> list[EventRecord]:
        """One transaction. If the store refuses something in it, halve the batch until
        the message at fault is alone and keep that one as a reject instead (`records` is
        updated to say so). A store outage (StoreUnavailableError) passes up."""
        try:
            return self.store.write(records)
        except StoreUnavailableError:
            raise
        except Exception as error:  # noqa: BLE001 - a refusal, whatever the driver calls it
            if len(records) == 1:
                return self._set_aside(batch[0], records, error)
        middle = len(records) // 2
        first, second = records[:middle], records[middle:]
        new = self._write(batch[:middle], first) + self._write(batch[middle:], second)
        records[:] = first + second
        return new

    def _set_aside(
        self, delivery: Delivery, records: list[Record], error: Exception
    ) -> list[EventRecord]:
        """Keep one message the store would not take as a reject (its payload is bytes,
        which any store takes); if even that fails, the store is at fault, not the message."""
        if isinstance(records[0], Rejected):
            raise StoreUnavailableError(f"the store cannot keep a reject: {error}") from error
        if not isinstance(error, StoreRefusedError):
            log.error("unexpected error storing a message on %s", delivery.topic, exc_info=error)
        records[0] = reject(
            delivery.topic, f"the store refused it: {error}", delivery.payload, delivery.received_ms
        )
        return self._write([delivery], records)

    def _tell_observers(self, records: list[Record], new: list[EventRecord]) -> None:
        """Hand a committed batch to each observer (metrics, Home Assistant); one that
        fails is logged, never allowed to stop the writer."""
        for observer in self.observers:
            try:
                observer(records, new)
            except Exception:  # logged: storing must go on
                log.exception("observer %r failed", observer)

    def _ack(self, batch: list[Delivery]) -> None:
        with self._ack_lock:
            for delivery in batch:
                if delivery.qos and delivery.connection == self._connection:
                    self.client.ack(delivery.mid, delivery.qos)


def arrived(delivery: Delivery) -> tuple[str, bytes, int]:
    return delivery.topic, delivery.payload, delivery.received_ms


def log_rejects(records: list[Record]) -> None:
    """One line per batch: a flood of junk must not flood the journal too."""
    rejected = [record for record in records if isinstance(record, Rejected)]
    if not rejected:
        return
    shown = "; ".join(f"{record.topic}: {record.reason}" for record in rejected[:REJECTS_LOGGED])
    more = f" (and {len(rejected) - REJECTS_LOGGED} more)" if len(rejected) > REJECTS_LOGGED else ""
    log.warning("set aside %d message(s): %s%s", len(rejected), shown, more)


def log_seq_jumps(new: list[EventRecord]) -> None:
    jumps = [record for record in new if not record.seq_believed]
    for record in jumps[:REJECTS_LOGGED]:
        site, gate = record.gate_key
        log.warning(
            "%s/%s: seq %d is beyond what the gate can have made since its last event: "
            "stored, flagged, and left out of the gaps", site, gate, record.event.seq,
        )  # fmt: skip


def make_client(settings: Settings) -> paho.Client:
    return make_client_for(settings.broker, settings.client_id, manual_ack=True)


def make_client_for(broker: Broker, client_id: str, *, manual_ack: bool) -> paho.Client:
    """An MQTT v5 client for `broker`: TLS and login as configured, backing off 1-30 s."""
    client = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=paho.MQTTv5,
        manual_ack=manual_ack,
    )
    if broker.tls:
        client.tls_set(
            ca_certs=str(broker.ca_file) if broker.ca_file else None,
            certfile=str(broker.cert_file) if broker.cert_file else None,
            keyfile=str(broker.key_file) if broker.key_file else None,
        )
    if broker.username is not None:
        client.username_pw_set(broker.username, broker.password)
    client.reconnect_delay_set(1, 30)
    return client


def connect_properties(settings: Settings) -> Properties:
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: unannotated
    properties.SessionExpiryInterval = settings.session_expiry_s
    properties.ReceiveMaximum = settings.receive_maximum
    # The broker drops anything larger instead of sending it: one huge retained message
    # on a gate's topic cannot take the monitor's memory.
    properties.MaximumPacketSize = MAX_PACKET_BYTES
    return properties


def guarded(callback: Callable[..., None]) -> Callable[..., None]:
    """An exception in a paho callback would end paho's thread silently: log it instead."""

    def call(*args: Any) -> None:
        try:
            callback(*args)
        except Exception:  # logged: the network thread must live on
            log.exception("error in MQTT callback %s", callback.__name__)

    return call
