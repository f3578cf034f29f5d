"""Home Assistant MQTT discovery from the monitor: payloads checked against the schema
Home Assistant documents for each entity type, and the whole exchange against a real
mosquitto: discovery when a gate appears, re-published when Home Assistant comes online,
removed when the gate is retired, and requests turned into signed commands (only those)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from monitor.intake.state import LiveState
from monitor.intake.subscriber import Broker, Settings, Subscriber
from monitor.integrations.homeassistant import OBJECTS, CommandKey, Discovery, HomeAssistant
from monitor.storage.store import Store
from tests.support.broker import Mosquitto
from tests.support.cli import ROOT, qrgate
from tests.support.gate import wait_until
from tests.support.monitor_events import gate_event, payload, topic
from tests.support.probe import Arrived, Probe

# What Home Assistant's MQTT docs list for each entity type we use (home-assistant.io,
# integrations binary_sensor.mqtt, event.mqtt, sensor.mqtt, select.mqtt, button.mqtt, and
# docs/mqtt/discovery for `origin`): the keys it accepts and the keys it requires.
COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "device", "enabled_by_default", "encoding", "entity_category", "icon",
    "json_attributes_template", "json_attributes_topic", "name", "object_id", "origin",
    "payload_available", "payload_not_available", "qos", "unique_id",
}  # fmt: skip
SCHEMA: dict[str, tuple[set[str], set[str]]] = {
    "binary_sensor": (
        {"device_class", "expire_after", "force_update", "off_delay", "payload_off",
         "payload_on", "state_topic", "value_template"},
        {"state_topic"},
    ),
    "event": ({"device_class", "event_types", "state_topic", "value_template"},
              {"event_types", "state_topic"}),
    "sensor": (
        {"device_class", "expire_after", "force_update", "last_reset_value_template",
         "options", "state_class", "state_topic", "suggested_display_precision",
         "unit_of_measurement", "value_template"},
        {"state_topic"},
    ),
    "select": (
        {"command_template", "command_topic", "optimistic", "options", "retain",
         "state_topic", "value_template"},
        {"command_topic", "options"},
    ),
    "button": ({"command_template", "command_topic", "device_class", "payload_press", "retain"},
               set()),
}  # fmt: skip
DEVICE_KEYS = {
    "configuration_url", "connections", "hw_version", "identifiers", "manufacturer",
    "model", "name", "suggested_area", "sw_version", "via_device",
}  # fmt: skip
AVAILABILITY_KEYS = {"payload_available", "payload_not_available", "topic", "value_template"}
TOPIC_RE = re.compile(r"^homeassistant/(\w+)/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/config$")
SITE, GATE = "f1", "in-1"


def check_discovery(topic: str, config: dict[str, Any]) -> str:
    """Check one discovery message as Home Assistant would; its component."""
    match = TOPIC_RE.fullmatch(topic)
    assert match, topic
    component = match.group(1)
    allowed, required = SCHEMA[component]
    assert set(config) <= allowed | COMMON, set(config) - allowed - COMMON
    assert required <= set(config), required - set(config)
    assert "unique_id" in config  # the device registry needs it
    device = config["device"]
    assert set(device) <= DEVICE_KEYS
    assert device["identifiers"]  # at least one of identifiers or connections
    for item in config.get("availability", []):
        assert set(item) <= AVAILABILITY_KEYS
        assert "topic" in item
    assert "availability_topic" not in config or "availability" not in config
    assert config.get("availability_mode", "latest") in ("all", "any", "latest")
    assert set(config["origin"]) <= {"name", "sw_version", "support_url"}
    assert "name" in config["origin"]
    return component


@pytest.mark.parametrize("commands", [False, True])
def test_every_discovery_payload_fits_home_assistants_schema(commands: bool) -> None:
    discovery = Discovery(commands=commands, version="1.0")
    configs = discovery.configs(SITE, GATE, "2.1.0")
    components = sorted(check_discovery(topic, body) for topic, body in configs.items())
    mode = ["button", "select"] if commands else ["sensor"]  # a command, or only a reading
    assert components == sorted(["binary_sensor", "event", "sensor", "sensor", *mode])
    unique_ids = [body["unique_id"] for body in configs.values()]
    assert len(set(unique_ids)) == len(unique_ids)
    assert {body["device"]["sw_version"] for body in configs.values()} == {"2.1.0"}
    event = next(body for topic, body in configs.items() if "/event/" in topic)
    assert event["event_types"] == ["granted", "denied"]
    assert set(discovery.removals(SITE, GATE)) >= set(configs)


def test_a_scan_shows_no_personal_data_unless_asked() -> None:
    from tests.support.monitor_events import record

    scan = record(gate_event(7, "2026-03-02T08:00", site=SITE, gate=GATE, subject="W-1"))
    plain = Discovery().scan(scan)
    assert plain is not None
    assert plain["event_type"] == "granted"
    assert {"reason", "direction", "credential", "seq", "ts"} <= set(plain)
    assert "W-1" not in json.dumps(plain)
    personal = Discovery(personal=True).scan(scan)
    assert personal is not None
    assert (personal["subject"], personal["name"]) == ("W-1", "Worker W-1")
    door = record(gate_event(8, "2026-03-02T08:01", site=SITE, gate=GATE, kind="door_held"))
    assert Discovery().scan(door) is None


def test_a_health_certificate_scan_shows_its_type_and_country_and_no_one() -> None:
    from tests.support.monitor_events import record

    event = gate_event(
        9, "2026-03-02T08:02", site=SITE, gate=GATE, credential="dcc", cert=("test", "VN")
    )
    shown = Discovery().scan(record(event))
    assert shown is not None
    assert (shown["cert_type"], shown["cert_country"]) == ("test", "VN")
    assert event["subject"] not in json.dumps(shown)
    plain = Discovery().scan(record(gate_event(10, "2026-03-02T08:03", site=SITE, gate=GATE)))
    assert plain is not None
    assert "cert_type" not in plain


@pytest.mark.parametrize(
    ("topic", "body", "retained", "wanted"),
    [
        ("qrgate-ha/f1/in-1/set/mode", b"lockdown", False, ("f1", "in-1", "lockdown")),
        ("qrgate-ha/f1/in-1/set/open", b"PRESS", False, ("f1", "in-1", "open")),
        ("qrgate-ha/f1/in-1/set/mode", b"lockdown", True, None),  # retained: never
        ("qrgate-ha/f1/in-1/set/mode", b"unlock", False, None),
        ("qrgate-ha/f1/in-1/set/open", b"open", False, None),
        ("qrgate-ha/f1/in-1/set/keys", b"{}", False, None),
        ("qrgate-ha/f1/in-1/get/mode", b"normal", False, None),
        ("qrgate/f1/in-1/set/mode", b"normal", False, None),
        ("qrgate-ha/f1/in 1/set/mode", b"normal", False, None),
    ],
)
def test_only_known_requests_are_accepted(
    topic: str, body: bytes, retained: bool, wanted: tuple[str, str, str] | None
) -> None:
    assert Discovery(commands=True).command(topic, body, retained) == wanted


# ---- against a real broker -----------------------------------------------------------


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@contextmanager
def monitor_with_ha(
    broker: Mosquitto, folder: Path, client_id: str, key: CommandKey | None = None
) -> Iterator[None]:
    """A monitor with Home Assistant discovery (and, if given, the centre's command key)."""
    settings = Settings(Broker("127.0.0.1", broker.port), client_id=client_id)
    store = Store(f"sqlite:///{folder / f'{client_id}.db'}")
    link = HomeAssistant(
        Discovery(commands=key is not None), settings.broker, f"{client_id}-ha", key
    )
    subscriber = Subscriber(settings, store, LiveState(), observers=[link.observe])
    link.start()
    subscriber.start()
    try:
        assert subscriber.subscribed.wait(10)
        assert link.connected.wait(10)
        yield
    finally:
        subscriber.stop()
        link.stop()
        store.close()


@pytest.fixture
def centre(mosquitto: Mosquitto, key: Ed25519PrivateKey, tmp_path: Path) -> Iterator[None]:
    with monitor_with_ha(mosquitto, tmp_path, "ha-monitor", CommandKey(key, "centre")):
        yield


def drain(probe: Probe, quiet_s: float = 0.5) -> list[Arrived]:
    """What arrives until nothing more comes for `quiet_s`."""
    arrived = []
    while (message := probe.take(quiet_s)) is not None:
        arrived.append(message)
    return arrived


def configs(messages: list[Arrived]) -> dict[str, bytes]:
    return {m.topic: m.payload for m in messages if m.topic.endswith("/config")}


@pytest.fixture
def clients(mosquitto: Mosquitto) -> Iterator[tuple[Probe, Probe, Probe]]:
    """Home Assistant, a gate, and a listener on the gate's command topics."""
    home, gate, commands = Probe(mosquitto.port), Probe(mosquitto.port), Probe(mosquitto.port)
    home.subscribe("homeassistant/+/+/+/config", "qrgate-ha/#")
    commands.subscribe(f"qrgate/{SITE}/{GATE}/cmd/+")
    yield home, gate, commands
    for probe in (home, gate, commands):
        probe.close()


def test_discovery_follows_the_gates_and_home_assistant(
    centre: None, clients: tuple[Probe, Probe, Probe], key: Ed25519PrivateKey
) -> None:
    home, gate, commands = clients
    status = json.dumps({"state": "online", "ts": "2026-03-02T08:00:00.000Z", "version": "2.1"})
    gate.publish(f"qrgate/{SITE}/{GATE}/status", status.encode(), retain=True)
    announced = configs(drain(home))
    live = {t: b for t, b in announced.items() if b}
    assert len(live) == 6  # connectivity, scan, outbox, last scan, mode (select), open
    for config_topic, body in live.items():
        check_discovery(config_topic, json.loads(body))
    assert {t for t, b in announced.items() if not b} == {
        f"homeassistant/sensor/qrgate_{SITE}_{GATE}/mode/config"  # the read-only variant
    }

    event = gate_event(1, "2026-03-02T08:00", site=SITE, gate=GATE, subject="W-9")
    gate.publish(topic(event), payload(event))
    scan = next(m for m in drain(home) if m.topic == f"qrgate-ha/{SITE}/{GATE}/scan")
    assert json.loads(scan.payload)["event_type"] == "granted"
    assert b"W-9" not in scan.payload

    # Home Assistant restarts: its birth message brings every config again.
    gate.publish("homeassistant/status", b"online")
    assert {t for t, b in configs(drain(home)).items() if b} == set(live)

    # A request from Home Assistant becomes a command signed with the centre's key.
    home.publish(f"qrgate-ha/{SITE}/{GATE}/set/mode", b"lockdown")
    command = commands.take()
    assert command is not None
    assert command.topic == f"qrgate/{SITE}/{GATE}/cmd/lockdown"
    claims = jwt.decode(command.payload, key.public_key(), algorithms=["EdDSA"])
    assert (claims["cmd"], claims["site"], claims["gate"]) == ("lockdown", SITE, GATE)
    # Anything else is not: a bad payload, a retained request, an unknown gate.
    home.publish(f"qrgate-ha/{SITE}/{GATE}/set/mode", b"unlock")
    home.publish(f"qrgate-ha/{SITE}/{GATE}/set/open", b"PRESS", retain=True)
    home.publish(f"qrgate-ha/{SITE}/gate-9/set/open", b"PRESS")
    assert commands.take(1.0) is None

    # The gate is retired: its retained status is cleared, and so is its device.
    gate.publish(f"qrgate/{SITE}/{GATE}/status", b"", retain=True)
    cleared = configs(drain(home))
    assert set(cleared) == {
        f"homeassistant/{component}/qrgate_{SITE}_{GATE}/{name}/config"
        for component, name in OBJECTS
    }
    assert not any(cleared.values())
    gate.publish("homeassistant/status", b"online")
    assert not configs(drain(home))  # a retired gate is not announced again


def test_without_the_command_key_home_assistant_can_only_watch(
    mosquitto: Mosquitto, clients: tuple[Probe, Probe, Probe], tmp_path: Path
) -> None:
    home, gate, commands = clients
    with monitor_with_ha(mosquitto, tmp_path, "watch-only"):
        gate.publish(f"qrgate/{SITE}/{GATE}/status", b'{"state": "online"}', retain=True)
        live = {t for t, b in configs(drain(home)).items() if b}
        assert f"homeassistant/sensor/qrgate_{SITE}_{GATE}/mode/config" in live
        assert not any("/select/" in t or "/button/" in t for t in live)
        home.publish(f"qrgate-ha/{SITE}/{GATE}/set/mode", b"lockdown")
        assert commands.take(1.0) is None


def test_the_command_key_needs_its_kid_and_a_user_of_it(tmp_path: Path) -> None:
    pem = tmp_path / "centre.key.pem"
    pem.write_text("not read: the options are refused first")
    base = ["monitor", "--broker", "mqtt://127.0.0.1:1", "--quiet", "--command-key", str(pem)]
    alone = qrgate(*base)
    assert alone.returncode == 2
    assert "--command-key and --command-kid go together" in alone.stderr
    without = qrgate(*base, "--command-kid", "centre")
    assert without.returncode == 2
    assert "add --http or --homeassistant" in without.stderr


def test_qrgate_monitor_with_home_assistant_as_deployed(
    mosquitto: Mosquitto, key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    pem = tmp_path / "centre.key.pem"
    pem.write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    log = tmp_path / "monitor.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "scanner", "monitor", "--quiet",
                "--broker", mosquitto.url, "--db", f"sqlite:///{tmp_path / 'm.db'}",
                "--homeassistant", "--command-key", str(pem), "--command-kid", "centre",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    gate, commands = Probe(mosquitto.port), Probe(mosquitto.port)
    try:
        assert wait_until(lambda: "subscribed to" in log.read_text(), 20), log.read_text()
        commands.subscribe(f"qrgate/{SITE}/{GATE}/cmd/+")
        gate.publish(f"qrgate/{SITE}/{GATE}/status", b'{"state": "online"}', retain=True)
        button = f"homeassistant/button/qrgate_{SITE}_{GATE}/open/config"

        def announced() -> bool:  # retained: a late subscriber gets it too
            home = Probe(mosquitto.port)
            try:
                home.subscribe(button)
                message = home.take(0.5)
                return message is not None and message.retain and bool(message.payload)
            finally:
                home.close()

        assert wait_until(announced, 10), log.read_text()
        gate.publish(f"qrgate-ha/{SITE}/{GATE}/set/open", b"PRESS")
        command = commands.take()
        assert command is not None, log.read_text()
        claims = jwt.decode(command.payload, key.public_key(), algorithms=["EdDSA"])
        assert claims["cmd"] == "open"
    finally:
        gate.close()
        commands.close()
        process.terminate()
        process.wait(10)
