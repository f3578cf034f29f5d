"""`qrgate fleet`: gate accounts and ACL entries that a real mosquitto enforces, written
idempotently for many gates; the gate's config snippet is a valid gate config."""

from __future__ import annotations

import re
import subprocess
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.fleet.provision import (
    BridgeAccount,
    Endpoint,
    Fleet,
    FleetError,
    GateAccount,
    GateSettings,
    bridge_conf,
    broker_conf,
    central_roles,
    gate_config,
    hash_password,
    password_matches,
    read_gate_csv,
)
from scanner.cli.group import cli
from scanner.config import parse_config
from tests.support.broker import Mosquitto
from tests.support.cli import ROOT
from tests.support.probe import Probe

SITE_BROKER = GateSettings(Endpoint.parse("mqtt://127.0.0.1:1883"))


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder`: contents and modification time (ns)."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_hashes_are_those_of_mosquitto_passwd(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwd), "someone", "pa55:word"],
        check=True,
        capture_output=True,
    )
    theirs = passwd.read_text().strip().partition(":")[2]
    assert password_matches(theirs, "pa55:word")
    assert not password_matches(theirs, "pa55:wore")
    ours = hash_password("pa55:word")
    assert ours.startswith("$7$101$")
    assert ours != hash_password("pa55:word")
    assert password_matches(ours, "pa55:word")
    assert not password_matches("$6$abc$def", "pa55:word")  # other formats: never "matches"


@pytest.fixture
def site_broker(broker_factory: Callable[..., Mosquitto], tmp_path: Path) -> Mosquitto:
    """A site broker loaded with the fleet's files for two gates of factory-1, and an
    operator's own user `sender` (in the .local files) who may publish anywhere."""
    site = tmp_path / "fleet/sites/factory-1"
    site.mkdir(parents=True)
    (site / "passwd.local").write_text(f"sender:{hash_password('sender')}\n")
    (site / "acl.local").write_text("user sender\ntopic write qrgate/#\n")
    fleet = Fleet(tmp_path / "fleet")
    fleet.add_gates([("factory-1", "gate-1", SITE_BROKER), ("factory-1", "gate-2", SITE_BROKER)])
    conf = (tmp_path / "fleet/sites/factory-1/broker.conf").read_text().splitlines()
    return broker_factory(conf)


@pytest.fixture
def probes() -> Iterator[list[Probe]]:
    opened: list[Probe] = []
    yield opened
    for probe in opened:
        probe.close()


def login(probes: list[Probe], broker: Mosquitto, folder: Path, gate: str, **kw: str) -> Probe:
    password = (folder / "gates/factory-1" / gate / "mqtt-password").read_text().strip()
    probe = Probe(broker.port, username=f"factory-1/{gate}", password=password, **kw)
    probes.append(probe)
    return probe


def test_a_gate_publishes_on_its_own_topics_and_nowhere_else(
    site_broker: Mosquitto, probes: list[Probe], tmp_path: Path
) -> None:
    gate = login(probes, site_broker, tmp_path / "fleet", "gate-1")
    assert gate.accepted, gate.connack
    for stream in ("events", "status", "health", "reply"):
        assert not gate.publish(f"qrgate/factory-1/gate-1/{stream}").is_failure
        refused = gate.publish(f"qrgate/factory-1/gate-2/{stream}")
        assert refused.value == 0x87, refused  # Not authorized
    assert gate.publish("qrgate/factory-1/gate-1/cmd/open").value == 0x87  # no self-commands
    assert gate.publish("qrgate/factory-2/gate-1/events").value == 0x87


def test_a_gate_reads_its_own_commands_and_nothing_of_other_gates(
    site_broker: Mosquitto, probes: list[Probe], tmp_path: Path
) -> None:
    gate = login(probes, site_broker, tmp_path / "fleet", "gate-1")
    other = login(probes, site_broker, tmp_path / "fleet", "gate-2")
    sender = Probe(site_broker.port, username="sender", password="sender")
    probes.append(sender)
    # mosquitto grants any subscription and applies the ACL to each message it delivers.
    gate.subscribe("qrgate/factory-1/gate-1/cmd/+", "qrgate/factory-1/cmd/+", "qrgate/#")
    assert not other.publish("qrgate/factory-1/gate-2/events", b"personal").is_failure
    for topic in ("gate-2/cmd/open", "gate-1/cmd/open", "cmd/lockdown"):
        assert not sender.publish(f"qrgate/factory-1/{topic}", topic.encode()).is_failure
    topics = set()
    while (message := gate.take(0.5)) is not None:  # overlapping filters: copies
        topics.add(message.topic)
    assert topics == {"qrgate/factory-1/gate-1/cmd/open", "qrgate/factory-1/cmd/lockdown"}


def test_a_wrong_password_or_no_account_is_refused(
    site_broker: Mosquitto, probes: list[Probe]
) -> None:
    wrong = Probe(site_broker.port, username="factory-1/gate-1", password="guess")
    anonymous = Probe(site_broker.port)
    probes += [wrong, anonymous]
    assert wrong.connack is not None
    assert wrong.connack.is_failure
    assert anonymous.connack is not None
    assert anonymous.connack.is_failure


def test_a_gate_cannot_take_over_another_gates_session(
    site_broker: Mosquitto, probes: list[Probe], tmp_path: Path
) -> None:
    folder = tmp_path / "fleet"
    second = login(probes, site_broker, folder, "gate-2", client_id="factory-1/gate-2")
    first = login(probes, site_broker, folder, "gate-1", client_id="factory-1/gate-2")
    assert first.accepted
    assert second.accepted
    # The broker gave gate-1 its own user name as client id: gate-2 stays connected.
    assert not second.disconnected.wait(1.0)
    assert not second.publish("qrgate/factory-1/gate-2/events").is_failure


def test_provisioning_is_idempotent_and_keeps_passwords(tmp_path: Path) -> None:
    folder = tmp_path / "fleet"
    rows = [(f"site-{n % 3}", f"gate-{n}", SITE_BROKER) for n in range(150)]
    first = Fleet(folder).add_gates(rows)
    assert all(made.created for made in first)
    before = snapshot(folder)
    again = Fleet(folder).add_gates(rows)
    assert not any(made.created for made in again)
    assert [m.password for m in again] == [m.password for m in first]
    assert snapshot(folder) == before  # nothing rewritten, not even touched
    passwd = (folder / "sites/site-0/passwd").read_text().splitlines()
    assert len(passwd) == 50
    assert (folder / "sites/site-0/passwd").stat().st_mode & 0o777 == 0o600
    assert (folder / "gates/site-0/gate-0/mqtt-password").stat().st_mode & 0o777 == 0o600


def test_retiring_a_gate_removes_its_account(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "fleet")
    fleet.add_gates([("s", "a", SITE_BROKER), ("s", "b", SITE_BROKER)])
    (tmp_path / "fleet/sites/s/acl.local").write_text("user local-display\ntopic read #\n")
    assert fleet.retire_gate("s", "a")
    assert not fleet.retire_gate("s", "a")
    acl = (tmp_path / "fleet/sites/s/acl").read_text()
    passwd = (tmp_path / "fleet/sites/s/passwd").read_text()
    assert "s/a" not in acl
    assert "s/a:" not in passwd
    assert "user s/b" in acl
    assert passwd.startswith("s/b:")
    assert acl.startswith("user local-display\n")  # the operator's own entries, kept first


def test_fleet_add_prints_credentials_acl_and_a_valid_gate_config(tmp_path: Path) -> None:
    folder = tmp_path / "fleet"
    secret = folder / "gates/factory-1/gate-7/mqtt-password"
    ca = tmp_path / "ca.pem"
    ca.write_text("(a CA certificate)")
    args = ["fleet", "add", "factory-1", "gate-7", "--dir", str(folder)]
    args += ["--broker", "mqtts://site-broker.example", "--ca-file", str(ca)]
    args += ["--password-file", str(secret)]
    done = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    password = secret.read_text().strip()
    lines = done.output.splitlines()
    assert password in lines
    assert "factory-1/gate-7" in lines
    passwd_line = next(line for line in lines if line.startswith("factory-1/gate-7:$7$"))
    assert password_matches(passwd_line.partition(":")[2], password)
    assert "topic write qrgate/factory-1/gate-7/events" in lines
    snippet = (folder / "gates/factory-1/gate-7/qrgate.toml").read_text()
    assert snippet.strip() in done.output
    # The snippet is a gate's config, as the gate reads it.
    config = parse_config({**tomllib.loads(snippet), "gpio": {"pin_factory": "mock"}})
    assert (config.mqtt.host, config.mqtt.port, config.mqtt.tls) == (
        "site-broker.example",
        8883,
        True,
    )
    assert config.mqtt.username == config.client_id == "factory-1/gate-7"
    again = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert "account kept" in again.output
    assert password in again.output.splitlines()


def test_fleet_import_reads_a_csv_and_says_what_it_did(tmp_path: Path) -> None:
    table = tmp_path / "gates.csv"
    table.write_text("site,gate\nfactory-1,gate-1\n\nfactory-2,gate-1,mqtt://10.0.0.2\n")
    args = ["fleet", "import", str(table), "--dir", str(tmp_path / "f"), "--broker", "mqtt://b"]
    done = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert done.output.splitlines() == ["factory-1,gate-1,new", "factory-2,gate-1,new"]
    own = (tmp_path / "f/gates/factory-2/gate-1/qrgate.toml").read_text()
    assert 'host = "10.0.0.2"' in own
    done = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert done.output.splitlines() == ["factory-1,gate-1,kept", "factory-2,gate-1,kept"]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("factory-1\n", "line 1: expected site,gate[,broker]"),
        ("a,b,c,d\n", "line 1: expected"),
    ],
)
def test_a_bad_csv_line_is_named(text: str, error: str) -> None:
    with pytest.raises(FleetError, match=error.replace("[", r"\[").replace("]", r"\]")):
        list(read_gate_csv(text))


@pytest.mark.parametrize(
    ("site", "gate"), [("factory 1", "g"), ("f", "gate/2"), ("f", "+"), ("f", "")]
)
def test_names_that_are_no_topic_level_are_refused(tmp_path: Path, site: str, gate: str) -> None:
    with pytest.raises(FleetError, match="not a valid topic level"):
        Fleet(tmp_path).add_gate(site, gate, SITE_BROKER)
    assert not (tmp_path / "gates").exists()


def test_a_bridge_needs_tls_to_the_centre(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match="mqtts://"):
        Fleet(tmp_path).add_bridge("factory-1", Endpoint.parse("mqtt://centre"), "/ca.pem")


def fenced_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```\w*\n(.*?)^```$", markdown, flags=re.MULTILINE | re.DOTALL)


def test_the_docs_show_exactly_what_fleet_writes() -> None:
    """docs/monitor.md shows the brokers' config and ACLs as `qrgate fleet` renders them
    (and the bridge test runs them): neither can drift from the other."""
    blocks = fenced_blocks((ROOT / "docs" / "monitor.md").read_text())
    gate = GateAccount("qrgate", "factory-1", "gate-1")
    site_broker = GateSettings(
        Endpoint.parse("mqtts://broker.factory-1.example"), "/etc/qrgate/broker-ca.pem"
    )
    centre = Endpoint.parse("mqtts://centre.example:8883")
    secret = "(generated: in sites/factory-1/bridge-password)"
    bridge = BridgeAccount("qrgate", "factory-1")
    expected = {
        "site broker.conf": broker_conf(
            "site", "/etc/mosquitto/qrgate/passwd", "/etc/mosquitto/qrgate/acl"
        ),
        "bridge.conf": bridge_conf(bridge, centre, secret, "/etc/mosquitto/certs/centre-ca.pem"),
        "gate ACL": "\n".join(gate.acl()) + "\n",
        "bridge ACL": "\n".join(bridge.acl()) + "\n",
        "central roles": "\n".join(central_roles("qrgate", "qrgate-ha")) + "\n",
        "gate config": gate_config(gate, site_broker),
    }
    missing = [name for name, text in expected.items() if text not in blocks]
    assert missing == []
