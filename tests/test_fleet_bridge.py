"""A site as deployed (docs/monitor.md, "A province of gates"): a real gate -> its site
mosquitto -> the bridge over TLS -> the central mosquitto -> `qrgate monitor` -> the store,
every broker configured from the files `qrgate fleet` writes. The link to the centre is
cut while the gate scans and restored: every event is stored once, no seq missing."""

from __future__ import annotations

import sqlite3
import ssl
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from monitor.fleet.provision import Endpoint, Fleet, GateSettings, central_roles, hash_password
from scanner.config import Config, parse_config
from scanner.demo.scenario import background, card_frame
from tests.support.broker import Mosquitto
from tests.support.certs import CertificateAuthority, tls_listener
from tests.support.cli import ROOT
from tests.support.gate import wait_until
from tests.support.gateproc import GateProcess, outbox_rows, write_config
from tests.support.probe import Probe

pytestmark = pytest.mark.slow

SITE = "factory-1"
BADGES = 16
WATCH = f"topic read qrgate/{SITE}/bridge/state"  # the bridge's own notification: 1 up, 0 down


def scene(folder: Path) -> Path:
    """Sixteen badges shown one after the other at 20 fps: 0.5 s each."""
    folder.mkdir(parents=True)
    empty = background((640, 480))
    number = 0
    for index in range(BADGES):
        card = card_frame(empty, f"B-{index:02d}".encode(), tilt=0.0)
        for frame in [card] * 3 + [empty] * 7:
            number += 1
            Image.fromarray(frame).save(folder / f"{number:04d}.png", compress_level=1)
    return folder


def last_seq(gate_db: Path) -> int:
    """The highest seq the gate has handed out (0 before its first event)."""
    if not gate_db.exists():
        return 0
    with sqlite3.connect(gate_db.resolve().as_uri() + "?mode=ro", uri=True) as conn:
        try:
            row = conn.execute("SELECT max(last) FROM outbox_seq").fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(row[0] or 0)


def stored(db: Path) -> list[tuple[int, str]]:
    if not db.exists():
        return []
    with sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True) as conn:
        try:
            return conn.execute("SELECT seq, id FROM events ORDER BY seq").fetchall()
        except sqlite3.OperationalError:
            return []


Process = GateProcess | subprocess.Popen[bytes] | Mosquitto


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Gates, monitors and brokers a test started; ended (in reverse) after it."""
    started: list[Process] = []
    yield started
    for process in reversed(started):
        if isinstance(process, GateProcess):
            process.close()
        elif isinstance(process, Mosquitto):
            process.kill()
        elif process.poll() is None:
            process.terminate()
            process.wait(10)


def test_events_cross_the_bridge_once_each_when_the_link_is_cut_and_restored(
    pki: CertificateAuthority, processes: list[Process], tmp_path: Path
) -> None:
    fleet = Fleet(tmp_path / "fleet")
    central_files = tmp_path / "fleet/central"
    central_files.mkdir(parents=True)
    (central_files / "passwd.local").write_text(
        f"monitor:{hash_password('monitor-pw')}\nwatcher:{hash_password('watcher-pw')}\n"
    )
    (central_files / "acl.local").write_text(
        "\n".join([*central_roles("qrgate", "qrgate-ha"), "", "user watcher", WATCH, ""])
    )
    (tmp_path / "monitor-password").write_text("monitor-pw\n")

    # The centre: a TLS listener with the fleet's central files (bridge accounts, roles).
    central = Mosquitto(tmp_path / "central", persistence=True)
    fleet.refresh_central()
    central.extra_conf = [*tls_listener(pki), *read_lines(central_files / "broker.conf")]
    # The site: the fleet's site files and its bridge to the centre, TLS verified.
    site = Mosquitto(tmp_path / "site", persistence=True)
    provisioned = fleet.add_gate(SITE, "gate-1", GateSettings(Endpoint.parse(site.url)))
    bridge = fleet.add_bridge(
        SITE, Endpoint.parse(f"mqtts://127.0.0.1:{central.port}"), str(pki.cert)
    )
    fleet_site = tmp_path / "fleet/sites" / SITE
    site.extra_conf = [*read_lines(fleet_site / "broker.conf"), *read_lines(bridge)]
    processes += [central.start(), site.start()]

    link = Probe(central.port, username="watcher", password="watcher-pw", tls=pki_context(pki))
    link.subscribe(WATCH.removeprefix("topic read "))
    assert wait_for_payload(link, b"1", 15), site.log_tail()  # the bridge is up

    db = tmp_path / "centre.db"
    monitor_log = tmp_path / "monitor.log"
    processes.append(start_monitor(central, pki, db, tmp_path / "monitor-password", monitor_log))
    assert wait_until(lambda: "subscribed to" in monitor_log.read_text(), 20), (
        monitor_log.read_text()
    )

    config = gate_config(tmp_path, provisioned.config)
    gate = GateProcess(write_config(config, tmp_path / "gate.toml"))
    processes.append(gate)
    gate_db = config.store.path
    assert wait_until(lambda: len(stored(db)) >= 2, 30), gate.log + monitor_log.read_text()

    central.stop()  # the link to the centre is cut while the gate goes on scanning
    at_cut = last_seq(gate_db)
    assert wait_until(lambda: last_seq(gate_db) >= at_cut + 4 and not outbox_rows(gate_db), 15)
    during_cut = last_seq(gate_db) - at_cut  # delivered to the site broker, waiting there
    central.start()

    assert wait_until(lambda: "frames delivered" in gate.log, 30), gate.log
    total = last_seq(gate_db)
    assert wait_until(lambda: len(stored(db)) >= total, 30), (
        total,
        [s for s, _ in stored(db)],
        site.log_tail(60),
        central.log_tail(60),
    )
    events = stored(db)
    assert [seq for seq, _ in events] == list(range(1, total + 1))  # once each, no gap
    assert len({event_id for _, event_id in events}) == total
    assert during_cut >= 4
    assert total >= BADGES - 2  # nearly every badge was read (the gate decides, not us)
    link.close()


def read_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def pki_context(pki: CertificateAuthority) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.cert))


def wait_for_payload(probe: Probe, payload: bytes, timeout_s: float) -> bool:
    return wait_until(
        lambda: (m := probe.take(0.1)) is not None and m.payload == payload, timeout_s
    )


def start_monitor(
    central: Mosquitto, pki: CertificateAuthority, db: Path, password: Path, log: Path
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable, "-m", "scanner", "monitor", "--quiet",
                "--broker", f"mqtts://127.0.0.1:{central.port}", "--ca-file", str(pki.cert),
                "--username", "monitor", "--password-file", str(password),
                "--db", f"sqlite:///{db}", "--client-id", "monitor",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def gate_config(folder: Path, snippet: str) -> Config:
    """The gate's config: the fleet's [gate] and [mqtt] sections, a replayed camera,
    mock pins, its store in `folder`."""
    given = tomllib.loads(snippet)
    frames = scene(folder / "camera")
    (folder / "state").mkdir()
    mqtt = {
        **given["mqtt"],
        "password_file": str(folder / "fleet/gates" / SITE / "gate-1/mqtt-password"),
        "retry_min_s": 0.2,
        "retry_max_s": 0.5,
    }
    return parse_config(
        {
            "gate": given["gate"],
            "camera": {"source": f"replay:{frames}", "fps": 20.0},
            "gpio": {"pin_factory": "mock"},
            "policy": {"accept": ["badge"]},
            "store": {"path": str(folder / "state" / "qrgate.db")},
            "mqtt": mqtt,
            "commands": {"enabled": False},
        }
    )
