"""Home Assistant, through MQTT discovery: a device per gate, kept by the monitor.

For every gate with a retained status the monitor publishes (retained) the discovery
config of its entities under `{discovery}/{component}/qrgate_{site}_{gate}/{object}/config`:

- `binary_sensor` connectivity: the gate's own status topic (online / offline);
- `event` scan: `granted` / `denied`, fed by the monitor on `{base}/{site}/{gate}/scan`
  with the reason, direction, kind of credential, seq and time as attributes (and a
  health certificate's type and country, when the scan had one); the subject and name
  only when asked for (`personal`);
- `sensor` outbox (events waiting in the gate) and last scan, from the gate's health;
- the gate's mode: a `select` (normal / lockdown / emergency) and an `open` `button` when
  the monitor holds the centre's command key, else a read-only `sensor`.

Home Assistant never drives a gate: it writes `{base}/{site}/{gate}/set/mode` or
`/set/open` (a topic only its broker user may write); the monitor checks the gate is
known, the message is not retained and the payload is one of the options, then signs the
command with the centre's key (mqtt.remote) and sends it to the gate, which verifies it
as any other. Configs are re-published when Home Assistant announces itself online on
`{discovery}/status`, and removed (empty retained configs) when a gate's retained status
is cleared: the gate was retired.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.subscribeoptions import SubscribeOptions

from monitor.intake.ingest import Cleared, EventRecord, Record, StatusRecord
from monitor.intake.subscriber import Broker, guarded, make_client_for
from mqtt.remote import SigningKey, sign_command
from mqtt.topics import LEVEL, MODES, check_prefix

log = logging.getLogger(__name__)

PRESS = "PRESS"
ONLINE, OFFLINE = "online", "offline"
# Every discovery config a gate may have had, so that retiring removes them all.
OBJECTS = (
    ("binary_sensor", "connectivity"),
    ("event", "scan"),
    ("sensor", "outbox"),
    ("sensor", "last_scan"),
    ("sensor", "mode"),
    ("select", "mode"),
    ("button", "open"),
)


@dataclass(frozen=True)
class CommandKey:
    """The centre's command signing key, as `qrgate cmd` uses it."""

    key: SigningKey = field(repr=False)
    kid: str


@dataclass(frozen=True)
class Discovery:
    """What Home Assistant is told, and on which topics: pure, no connection."""

    prefix: str = "qrgate"
    discovery: str = "homeassistant"
    base: str = "qrgate-ha"
    personal: bool = False
    commands: bool = False
    version: str = ""

    def __post_init__(self) -> None:
        for topic in (self.prefix, self.discovery, self.base):
            check_prefix(topic)

    @property
    def availability_topic(self) -> str:
        """The monitor's own: online while it runs (its last will says offline)."""
        return f"{self.base}/status"

    @property
    def birth_topic(self) -> str:
        return f"{self.discovery}/status"

    @property
    def command_filter(self) -> str:
        return f"{self.base}/+/+/set/+"

    def config_topic(self, component: str, site: str, gate: str, name: str) -> str:
        return f"{self.discovery}/{component}/{node_id(site, gate)}/{name}/config"

    def scan_topic(self, site: str, gate: str) -> str:
        return f"{self.base}/{site}/{gate}/scan"

    def set_topic(self, site: str, gate: str, name: str) -> str:
        return f"{self.base}/{site}/{gate}/set/{name}"

    def configs(self, site: str, gate: str, version: str | None) -> dict[str, dict[str, Any]]:
        """Every discovery config of one gate, by topic."""
        gate_topic = f"{self.prefix}/{site}/{gate}"
        device = {
            "identifiers": [node_id(site, gate)],
            "name": f"Gate {site}/{gate}",
            "manufacturer": "qrgate",
            "model": "QR-code gate",
            **({"sw_version": version} if version else {}),
        }
        gate_online = {
            "topic": f"{gate_topic}/status",
            "value_template": "{{ value_json.state }}",
            "payload_available": ONLINE,
            "payload_not_available": OFFLINE,
        }
        monitor_online = {"topic": self.availability_topic}
        entities: list[tuple[str, str, dict[str, Any]]] = [
            (
                "binary_sensor",
                "connectivity",
                {
                    "name": "Connected",
                    "device_class": "connectivity",
                    "state_topic": f"{gate_topic}/status",
                    "value_template": "{{ 'ON' if value_json.state == 'online' else 'OFF' }}",
                },
            ),
            (
                "event",
                "scan",
                {
                    "name": "Scan",
                    "event_types": ["granted", "denied"],
                    "state_topic": self.scan_topic(site, gate),
                    "availability": [monitor_online],
                },
            ),
            (
                "sensor",
                "outbox",
                {
                    "name": "Events waiting",
                    "state_topic": f"{gate_topic}/health",
                    "value_template": "{{ value_json.outbox.rows }}",
                    "unit_of_measurement": "events",
                    "state_class": "measurement",
                    "entity_category": "diagnostic",
                    "availability": [gate_online],
                },
            ),
            (
                "sensor",
                "last_scan",
                {
                    "name": "Last scan",
                    "device_class": "timestamp",
                    "state_topic": f"{gate_topic}/health",
                    "value_template": "{{ value_json.last_scan }}",
                    "availability": [gate_online],
                },
            ),
            self._mode(site, gate, gate_online, monitor_online),
        ]
        if self.commands:
            entities.append(
                (
                    "button",
                    "open",
                    {
                        "name": "Open",
                        "command_topic": self.set_topic(site, gate, "open"),
                        "payload_press": PRESS,
                        "availability": [gate_online, monitor_online],
                        "availability_mode": "all",
                    },
                )
            )
        return {
            self.config_topic(component, site, gate, name): {
                **body,
                "unique_id": f"{node_id(site, gate)}_{name}",
                "object_id": f"{node_id(site, gate)}_{name}",
                "qos": 1,
                "device": device,
                "origin": {"name": "qrgate monitor", "sw_version": self.version},
            }
            for component, name, body in entities
        }

    def _mode(
        self, site: str, gate: str, gate_online: dict[str, str], monitor_online: dict[str, str]
    ) -> tuple[str, str, dict[str, Any]]:
        state = {
            "name": "Mode",
            "state_topic": f"{self.prefix}/{site}/{gate}/health",
            "value_template": "{{ value_json.mode }}",
        }
        if not self.commands:
            return "sensor", "mode", {**state, "availability": [gate_online]}
        return (
            "select",
            "mode",
            {
                **state,
                "options": list(MODES),
                "command_topic": self.set_topic(site, gate, "mode"),
                "availability": [gate_online, monitor_online],
                "availability_mode": "all",
            },
        )

    def removals(self, site: str, gate: str) -> list[str]:
        """The config topics to clear (empty, retained) when a gate is retired."""
        return [self.config_topic(c, site, gate, name) for c, name in OBJECTS]

    def scan(self, record: EventRecord) -> dict[str, Any] | None:
        """The event entity's payload for a scan; None for events that are no scan."""
        event = record.event
        if event.type != "scan" or event.result not in ("granted", "denied"):
            return None
        payload: dict[str, Any] = {
            "event_type": event.result,
            "reason": event.reason,
            "direction": event.direction,
            "credential": event.credential,
            "seq": event.seq,
            "ts": event.ts,
        }
        if event.cert_type is not None:  # a health certificate's kind and issuer: no one's name
            payload.update(cert_type=event.cert_type, cert_country=event.cert_country)
        if self.personal:
            payload.update(subject=event.subject, name=event.name)
        return payload

    def command(self, topic: str, payload: bytes, retained: bool) -> tuple[str, str, str] | None:
        """(site, gate, command) that a message from Home Assistant asks for, or None if it
        is not one the monitor accepts."""
        parts = topic.removeprefix(self.base + "/").split("/")
        if retained or not topic.startswith(self.base + "/") or len(parts) != 4:
            return None
        site, gate, verb, name = parts
        if verb != "set" or not (LEVEL.fullmatch(site) and LEVEL.fullmatch(gate)):
            return None
        if name == "mode" and payload.decode("ascii", "replace") in MODES:
            return site, gate, payload.decode("ascii")
        if name == "open" and payload == PRESS.encode():
            return site, gate, "open"
        return None


def node_id(site: str, gate: str) -> str:
    return f"qrgate_{site}_{gate}"


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class HomeAssistant:
    """The monitor's link to Home Assistant: its own MQTT connection (clean session: a
    command sent while the monitor was away is not run later), an observer of every
    committed batch, and the signer of what Home Assistant asks for."""

    def __init__(
        self,
        discovery: Discovery,
        broker: Broker,
        client_id: str,
        command_key: CommandKey | None = None,
    ) -> None:
        self.discovery = discovery
        self.command_key = command_key
        self.client = make_client_for(broker, client_id, manual_ack=False)
        self.client.will_set(discovery.availability_topic, OFFLINE, qos=1, retain=True)
        self.client.on_connect = guarded(self._on_connect)
        self.client.on_message = guarded(self._on_message)
        self._broker = broker
        self._lock = threading.Lock()
        self._gates: dict[tuple[str, str], str | None] = {}  # known gates: their version
        self.connected = threading.Event()

    def start(self) -> None:
        self.client.connect_async(self._broker.host, self._broker.port, keepalive=30)
        self.client.loop_start()

    def stop(self) -> None:
        info = self.client.publish(self.discovery.availability_topic, OFFLINE, 1, retain=True)
        if self.connected.is_set():
            info.wait_for_publish(5)
        self.client.disconnect()
        self.client.loop_stop()

    # ---- from the subscriber's writer thread ----------------------------------------

    def observe(self, records: Sequence[Record], new: Sequence[EventRecord]) -> None:
        """A committed batch: gates that appeared, gates retired, scans to announce."""
        for record in records:
            match record:
                case StatusRecord(site, gate, _state, _ts, version, _ms):
                    self._know(site, gate, version)
                case Cleared(site=site, gate=gate) if record.retires:
                    self._forget(site, gate)
                case _:
                    pass
        for event in new:
            payload = self.discovery.scan(event)
            if payload is not None:
                site, gate = event.gate_key
                self._publish(self.discovery.scan_topic(site, gate), encode(payload))

    def _know(self, site: str, gate: str, version: str | None) -> None:
        with self._lock:
            if (site, gate) in self._gates and self._gates[(site, gate)] == version:
                return
            self._gates[(site, gate)] = version
        self._announce(site, gate, version)

    def _forget(self, site: str, gate: str) -> None:
        with self._lock:
            self._gates.pop((site, gate), None)
        for config in self.discovery.removals(site, gate):
            self._publish(config, b"", retain=True)
        log.info("gate %s/%s retired: removed from Home Assistant", site, gate)

    def _announce(self, site: str, gate: str, version: str | None) -> None:
        configs = self.discovery.configs(site, gate, version)
        for topic in self.discovery.removals(site, gate):
            if topic not in configs:  # the other variant of the mode entity, say
                self._publish(topic, b"", retain=True)
        for topic, body in configs.items():
            self._publish(topic, encode(body), retain=True)

    def announce_all(self) -> None:
        with self._lock:
            gates = dict(self._gates)
        for (site, gate), version in sorted(gates.items()):
            self._announce(site, gate, version)

    def _publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain)

    # ---- paho's network thread -------------------------------------------------------

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("Home Assistant link refused by the broker: %s", reason)
            return
        filters = [(self.discovery.birth_topic, SubscribeOptions(qos=1))]
        if self.command_key is not None:
            # Retain as published: a request sent retained shows as such even when it
            # arrives live, and is refused (it would run again at every reconnect).
            options = SubscribeOptions(qos=1, retainAsPublished=True)
            filters.append((self.discovery.command_filter, options))
        self.client.subscribe(filters)
        self._publish(self.discovery.availability_topic, ONLINE.encode(), retain=True)
        self.connected.set()
        self.announce_all()

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        if message.topic == self.discovery.birth_topic:
            if message.payload == ONLINE.encode():
                log.info("Home Assistant is online: announcing %d gates", len(self._gates))
                self.announce_all()
            return
        self._on_request(message.topic, bytes(message.payload), bool(message.retain))

    def _on_request(self, topic: str, payload: bytes, retained: bool) -> None:
        asked = self.discovery.command(topic, payload[:32], retained)
        with self._lock:
            known = asked is not None and (asked[0], asked[1]) in self._gates
        if asked is None or not known or self.command_key is None:
            log.warning("ignored a request from Home Assistant on %s", topic[:200])
            return
        site, gate, name = asked
        signed = sign_command(
            name, key=self.command_key.key, kid=self.command_key.kid, site=site, gate=gate
        )
        self._publish(signed.topic(self.discovery.prefix), signed.token.encode())
        log.info("Home Assistant asked for %s at %s/%s: signed and sent", name, site, gate)
