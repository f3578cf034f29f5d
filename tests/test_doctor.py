"""`qrgate doctor` on a whole gate made of real parts: a private mosquitto, a replayed
camera, gpiozero's mock pins, a real store and outbox; then each check's judgement alone."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from mqtt.outbox import Depth
from scanner.cli import run
from scanner.cli.config_cmd import toml_value
from scanner.config import Config, parse_config, read_toml
from scanner.doctor import checks
from scanner.doctor.broker import check_broker
from scanner.doctor.checks import (
    check_camera,
    check_command_keys,
    check_decoder,
    check_pins,
    clock_finding,
    disk_finding,
    run_checks,
)
from scanner.doctor.finding import Finding, failure, passed
from scanner.doctor.store import may_write, outbox_finding, store_finding, write_problem
from scanner.state.store import Store
from tests.support.broker import Mosquitto, free_port
from tests.support.certs import CertificateAuthority, tls_listener
from tests.support.frames import Gray, empty_frame, save_png
from tests.support.gate import new_outbox, scans
from tests.support.tokens import IssuerKey, write_jwks

LINE = re.compile(r"^(PASS|WARN|FAIL) (.{12}) (.*)$")
MB = 1024 * 1024
NOW = 1_800_000_000.0
NOBODY = 65534
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Gate:
    """A gate's files in a temporary folder, and the config sections that point at them."""

    folder: Path
    sections: dict[str, dict[str, object]] = field(default_factory=dict)

    def config(self, **changes: dict[str, object]) -> Path:
        """Write config.toml with `changes` merged into the sections; its path."""
        lines = []
        for name in {*self.sections, *changes}:
            values = {**self.sections.get(name, {}), **changes.get(name, {})}
            lines += [f"[{name}]", *(f"{key} = {toml_value(v)}" for key, v in values.items())]
        path = self.folder / "config.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def parsed(self, **changes: dict[str, object]) -> Config:
        return parse_config(
            read_toml(self.config(**changes)), base_dir=self.folder, source="config.toml"
        )

    @property
    def store(self) -> Path:
        return self.folder / "state" / "qrgate.db"


@pytest.fixture
def gate(tmp_path: Path, mosquitto: Mosquitto, qr_frame: Callable[..., Gray]) -> Gate:
    frames = tmp_path / "frames"
    frames.mkdir()
    save_png(qr_frame("W-1042"), str(frames / "1-code.png"))
    save_png(empty_frame(), str(frames / "2-empty.png"))
    write_jwks(tmp_path / "jwks.json", IssuerKey.ed25519("pass-1"), IssuerKey.p256("pass-2"))
    write_jwks(tmp_path / "command-keys.json", IssuerKey.ed25519("ops-1"))
    (tmp_path / "state").mkdir()
    return Gate(
        tmp_path,
        {
            "camera": {"source": f"replay:{frames}", "replay_loop": True},
            "gpio": {"pin_factory": "mock"},
            "passes": {"jwks": "jwks.json"},
            "commands": {"jwks": "command-keys.json"},
            "store": {"path": "state/qrgate.db"},
            "mqtt": {"host": "127.0.0.1", "port": mosquitto.port},
        },
    )


@pytest.fixture
def with_events(gate: Gate) -> Gate:
    """The gate has run: its store exists, and one event waits in the outbox."""
    Store.open(gate.store).close()
    outbox = new_outbox(gate.store)
    scans(outbox, 1)
    outbox.close()
    return gate


@pytest.fixture(autouse=True)
def quick_and_synced(monkeypatch: pytest.MonkeyPatch) -> None:
    """A shorter camera sample, and a clock the kernel calls synchronised: the host's own
    clock (a container's, say) must not decide these tests."""
    monkeypatch.setattr(checks, "CAMERA_SAMPLE_S", 0.3)
    monkeypatch.setattr(checks, "kernel_clock_synced", lambda: True)


Lines = dict[str, tuple[str, str]]


def doctor(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, Lines]:
    """Run `qrgate doctor`; its exit code and (status, text) by check name."""
    code = run(["doctor", "-c", str(config), *args])
    lines: Lines = {}
    for line in capsys.readouterr().out.splitlines():
        if found := LINE.match(line):
            lines[found[2].strip()] = (found[1], found[3])
    return code, lines


# --- The whole doctor -------------------------------------------------------------------


def test_a_working_gate_passes(
    with_events: Gate, mosquitto: Mosquitto, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = doctor(capsys, with_events.config())
    assert code == 0, lines
    assert list(lines) == [
        "config", "pass keys", "trust list", "command keys", "camera", "decoder", "pins",
        "broker", "clock", "disk", "store", "outbox",
    ]  # fmt: skip
    statuses = {name: status for name, (status, _) in lines.items()}
    assert statuses.pop("pins") == "WARN"  # mock pins are a simulation: said so
    assert statuses.pop("disk") in ("PASS", "WARN")  # depends on this machine's free space
    assert set(statuses.values()) == {"PASS"}, lines
    assert "2 keys (pass-1, pass-2)" in lines["pass keys"][1]
    assert "a code in view is read" in lines["camera"][1]
    assert "1 event waiting" in lines["outbox"][1]
    assert "qrgate-factory-1-gate-1-doctor" in lines["broker"][1]
    # The broker saw doctor's own client id, not the gate's.
    assert "as qrgate-factory-1-gate-1-doctor" in mosquitto.log_tail(200)


def test_an_unreachable_broker_fails_and_exits_1(
    gate: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = doctor(capsys, gate.config(mqtt={"port": free_port()}))
    assert code == 1
    status, text = lines["broker"]
    assert status == "FAIL"
    assert text.startswith("cannot connect to 127.0.0.1:")
    assert "(connection refused) -> nothing listens there: check mqtt.host and mqtt.port" in text


def test_a_missing_pass_key_set_fails(gate: Gate, capsys: pytest.CaptureFixture[str]) -> None:
    code, lines = doctor(capsys, gate.config(passes={"jwks": "nowhere.json"}))
    assert code == 1
    status, text = lines["pass keys"]
    assert status == "FAIL"
    assert "passes.jwks" in text
    assert "file not found" in text


def test_a_bad_config_says_so_and_stops_with_78(
    gate: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run(["doctor", "-c", str(gate.config(gpio={"realy": 17}))])
    out = capsys.readouterr().out
    assert code == 78
    assert out.startswith("FAIL config")
    assert "gpio.realy = 17: unknown key" in out
    assert "broker" not in out
    assert "Traceback" not in out


def test_json_for_machines(with_events: Gate, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["doctor", "--json", "-c", str(with_events.config(mqtt={"port": free_port()}))])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    assert report["ok"] is False
    assert report["config"].endswith("config.toml")
    broker = next(check for check in report["checks"] if check["check"] == "broker")
    assert broker["status"] == "FAIL"
    assert "mqtt.port" in broker["fix"]


def test_json_for_a_bad_config(gate: Gate, capsys: pytest.CaptureFixture[str]) -> None:
    config = gate.config(gpio={"relay": "seventeen"})
    assert run(["doctor", "--json", "-c", str(config)]) == 78
    report = json.loads(capsys.readouterr().out)
    assert report["config"] == str(config)
    assert [check["check"] for check in report["checks"]] == ["config"]
    assert "gpio.relay = 'seventeen': expected an integer" in report["checks"][0]["finding"]


def test_colour_stays_off_in_a_pipe(gate: Gate) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "scanner",
            "doctor",
            "-c",
            str(gate.config(mqtt={"port": free_port()})),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 1
    assert "\x1b[" not in done.stdout
    assert re.search(r"^FAIL broker ", done.stdout, re.MULTILINE)


# --- Doctor changes nothing -------------------------------------------------------------


def files_in(folder: Path) -> dict[str, tuple[int, int, int]]:
    return {
        path.name: (path.stat().st_mtime_ns, path.stat().st_size, path.stat().st_uid)
        for path in folder.iterdir()
    }


def test_no_store_is_created_where_there_is_none(
    gate: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = doctor(capsys, gate.config())
    assert code == 0, lines
    assert lines["store"][0] == "WARN"
    assert "does not exist yet" in lines["store"][1]
    assert list(gate.store.parent.iterdir()) == []
    elsewhere = gate.folder / "absent" / "qrgate.db"
    code, lines = doctor(capsys, gate.config(store={"path": str(elsewhere)}))
    assert lines["store"][0] == "FAIL"
    assert not elsewhere.parent.exists()


def test_a_store_at_rest_is_left_as_it_was(
    with_events: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    before = files_in(with_events.store.parent)
    # The gate is not running: no -wal, no -shm; the disk reserve it keeps beside its store.
    assert sorted(before) == ["qrgate.db", "qrgate.db-reserve"]
    doctor(capsys, with_events.config())
    assert files_in(with_events.store.parent) == before


def test_the_store_of_a_running_gate_is_left_as_it_was(
    with_events: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    outbox = new_outbox(with_events.store)  # the gate's open connection: -wal and -shm exist
    try:
        scans(outbox, 2)
        before = files_in(with_events.store.parent)
        assert sorted(before) == [
            "qrgate.db",
            "qrgate.db-reserve",
            "qrgate.db-shm",
            "qrgate.db-wal",
        ]
        _, lines = doctor(capsys, with_events.config())
        assert files_in(with_events.store.parent) == before
        assert "3 events waiting" in lines["outbox"][1]  # the uncheckpointed ones too
        scans(outbox, 1)  # the gate still writes
    finally:
        outbox.close()


def test_a_store_this_user_cannot_open_fails_with_the_fix(
    with_events: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scanner.doctor import store

    def closed(path: Path) -> sqlite3.Connection:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(store, "open_snapshot", closed)
    config = with_events.parsed()
    for finding in (store.check_store(config), store.check_outbox(config)):
        assert finding.status == "FAIL"
        assert "(unable to open database file)" in finding.text
        assert finding.fix == store.READ_FIX


# --- Broker -----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", ["v5", "v311"])
def test_a_wrong_password_fails_with_the_brokers_reason(
    gate: Gate, locked_broker: Mosquitto, protocol: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (gate.folder / "pw").write_text("wrong\n")
    mqtt = {"port": locked_broker.port, "protocol": protocol, "username": "gate-1"}
    code, lines = doctor(capsys, gate.config(mqtt={**mqtt, "password_file": "pw"}))
    assert code == 1
    status, text = lines["broker"]
    assert status == "FAIL"
    assert re.search(
        r"refused qrgate-factory-1-gate-1-doctor: (Bad user name or password|Not authorized)", text
    )
    assert "mqtt.password_file" in text


def test_the_right_password_passes(gate: Gate, locked_broker: Mosquitto) -> None:
    (gate.folder / "pw").write_text("s3cret\n")
    mqtt = {"port": locked_broker.port, "username": "gate-1", "password_file": "pw"}
    finding = check_broker(gate.parsed(mqtt=mqtt))
    assert finding.status == "PASS", finding
    assert "(MQTT 5, user gate-1)" in finding.text


def test_a_broker_wanting_a_login_says_so(gate: Gate, locked_broker: Mosquitto) -> None:
    finding = check_broker(gate.parsed(mqtt={"port": locked_broker.port}))
    assert finding.status == "FAIL"
    assert finding.fix == "the broker wants a login: set mqtt.username and mqtt.password_file"


@pytest.fixture
def tls_broker(broker_factory: Callable[..., Mosquitto], pki: CertificateAuthority) -> Mosquitto:
    return broker_factory(tls_listener(pki))


def test_tls_with_the_right_ca_passes_and_a_wrong_ca_says_which_key_to_fix(
    gate: Gate, tls_broker: Mosquitto, pki: CertificateAuthority
) -> None:
    tls = {"port": tls_broker.port, "tls": True}
    right = check_broker(gate.parsed(mqtt={**tls, "ca_file": str(pki.cert)}))
    assert right.status == "PASS", right
    assert right.text.startswith(f"mqtts://127.0.0.1:{tls_broker.port} accepted")
    stranger = CertificateAuthority(gate.folder / "other", name="someone else")
    wrong = check_broker(gate.parsed(mqtt={**tls, "ca_file": str(stranger.cert)}))
    assert wrong.status == "FAIL"
    assert wrong.text.startswith(f"cannot connect to 127.0.0.1:{tls_broker.port} (TLS: ")
    assert wrong.fix == "check that mqtt.ca_file is the CA that signed the broker's certificate"


def test_plain_mqtt_to_a_tls_port_and_tls_to_a_plain_port_are_told_apart(
    gate: Gate, tls_broker: Mosquitto
) -> None:
    plain_to_tls = check_broker(gate.parsed(mqtt={"port": tls_broker.port}))
    assert plain_to_tls.status == "FAIL"
    assert "set mqtt.tls = true" in (plain_to_tls.fix or "")
    tls_to_plain = check_broker(gate.parsed(mqtt={"tls": True}))
    assert tls_to_plain.status == "FAIL"
    assert "or set mqtt.tls = false" in (tls_to_plain.fix or "")


# --- Camera, decoder, pins, keys --------------------------------------------------------


@pytest.mark.parametrize(
    ("gain", "status", "problem"), [(0.3, "WARN", "too dark"), (0.05, "FAIL", "black")]
)
def test_a_dark_camera_is_told_to_get_light(
    gate: Gate, qr_frame: Callable[..., Gray], gain: float, status: str, problem: str
) -> None:
    dark = gate.folder / "dark.png"
    save_png((qr_frame("W-1042").astype(np.float64) * gain).astype(np.uint8), str(dark))
    finding = check_camera(gate.parsed(camera={"source": f"replay:{dark}"}))
    assert finding.status == status
    assert finding.text.endswith(f": {problem}")
    assert finding.fix is not None
    assert "add light" in finding.fix


def test_a_camera_that_cannot_open_fails_with_the_fix(gate: Gate) -> None:
    finding = check_camera(gate.parsed(camera={"source": "replay:/no/such/frames"}))
    assert finding == failure(
        "replay: /no/such/frames does not exist", "check the path in camera.source"
    )


@pytest.mark.parametrize("decoder", ["auto", "zxing", "pyzbar"])
def test_the_configured_decoder_reads_a_generated_code(gate: Gate, decoder: str) -> None:
    finding = check_decoder(gate.parsed(camera={"decoder": decoder}))
    assert finding.status == "PASS", finding
    assert "reads a generated test code" in finding.text


def test_auto_without_zbar_warns(gate: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    from scanner.vision.decode import DecodeError, ZbarReader

    def no_zbar(self: ZbarReader) -> None:
        raise DecodeError("pyzbar cannot load zbar (no libzbar0); install libzbar0")

    monkeypatch.setattr(ZbarReader, "__init__", no_zbar)
    finding = check_decoder(gate.parsed())
    assert finding.status == "WARN"
    assert finding.text.startswith("zxing reads a generated test code")
    assert "sudo apt install libzbar0" in (finding.fix or "")


def test_mock_pins_are_a_simulation(gate: Gate) -> None:
    finding = check_pins(gate.parsed(gpio={"exit_button": 5}))
    assert finding.status == "WARN"
    assert "relay 17, green LED 23, red LED 24, buzzer 25, exit button 5" in finding.text


def test_a_pin_library_that_is_missing_fails_and_leaves_nothing_behind(gate: Gate) -> None:
    here = Path.cwd()
    before = sorted(os.listdir(here))
    finding = check_pins(gate.parsed(gpio={"pin_factory": "lgpio"}))
    assert finding.status == "FAIL"
    assert finding.text.startswith("cannot use the lgpio pin factory")
    assert Path.cwd() == here
    assert "LG_WD" not in os.environ
    assert sorted(os.listdir(here)) == before


def test_command_keys(gate: Gate) -> None:
    assert check_command_keys(gate.parsed()) == passed(
        f"1 key (ops-1) in {gate.folder / 'command-keys.json'}"
    )
    missing = check_command_keys(gate.parsed(commands={"jwks": "gone.json"}))
    assert missing.status == "FAIL"
    assert "or set commands.enabled = false" in (missing.fix or "")
    assert check_command_keys(gate.parsed(commands={"enabled": False})).status == "WARN"


# --- Bounds -----------------------------------------------------------------------------


def test_a_check_that_hangs_is_failed_and_the_next_runs(gate: Gate) -> None:
    release = threading.Event()

    def hangs(config: Config) -> Finding:
        release.wait(10)
        return passed("too late")

    def broken(config: Config) -> Finding:
        raise RuntimeError("bug")

    listed = (("hangs", hangs), ("broken", broken), ("next", lambda _: passed("ran")))
    started = time.monotonic()
    try:
        results = list(run_checks(gate.parsed(), listed, deadline_s=0.2))
    finally:
        release.set()  # let the abandoned thread end with the test
    assert time.monotonic() - started < 1.5
    assert [result.finding.status for result in results] == ["FAIL", "FAIL", "PASS"]
    assert results[0].finding.text == "no answer within 0.2 s"
    assert results[1].finding.text == "the check itself failed: RuntimeError('bug')"


# --- Judgements -------------------------------------------------------------------------


def test_clock_judgement() -> None:
    assert clock_finding(NOW, True, None).status == "PASS"
    assert clock_finding(NOW, False, None).status == "FAIL"
    in_docker = clock_finding(NOW, False, "docker")
    assert in_docker.status == "WARN"
    assert "container (docker)" in in_docker.text
    assert clock_finding(NOW, None, None).status == "WARN"
    reset = clock_finding(0.0, True, None)
    assert reset.status == "FAIL"
    assert reset.text.startswith("reads 1970-01-01 00:00:00 UTC, before 2026-01-01")


def test_disk_judgement() -> None:
    folder = Path("/var/lib/qrgate")
    assert disk_finding(10 * MB, folder, 256).status == "FAIL"
    low = disk_finding(200 * MB, folder, 256)
    assert low.status == "WARN"
    assert "mqtt.outbox_max_mb = 256" in low.text
    assert disk_finding(300 * MB, folder, 256) == passed("300 MB free for /var/lib/qrgate")


def test_paths_the_system_will_not_look_at_are_findings_not_failed_checks(
    tmp_path: Path,
) -> None:
    too_long = tmp_path / ("x" * 300)
    centre_keys = too_long / "command-keys.json"
    config = parse_config(
        {"store": {"path": str(too_long / "qrgate.db")}, "commands": {"jwks": str(centre_keys)}}
    )
    assert checks.check_disk(config).text.endswith(f"free for {tmp_path}")
    keys = checks.check_command_keys(config)
    assert keys.status == "FAIL"
    refused = "file cannot be looked at: File name too long"
    assert keys.text == f"commands.jwks: {centre_keys}: {refused}"


def depth(rows: int = 0, parked: int = 0, age: float | None = None, fill: float = 0.0) -> Depth:
    return Depth(rows, rows * 300, parked, age, fill)


def test_outbox_judgement() -> None:
    assert outbox_finding(depth()).text == "empty: every event has reached the broker"
    assert outbox_finding(depth(12, age=3)) == passed(
        "12 events waiting (0.0% of the limit), the oldest for 3 s"
    )
    stale = outbox_finding(depth(12, age=7200))
    assert stale.status == "WARN"
    assert "the oldest for 2.0 h" in stale.text
    parked = outbox_finding(depth(12, parked=2, age=3))
    assert parked.status == "WARN"
    assert "qrgate outbox retry" in (parked.fix or "")
    full = outbox_finding(depth(450_000, age=3, fill=0.9))
    assert full.status == "FAIL"
    assert "new scans are denied" in full.text


def test_store_schema_judgement() -> None:
    path = Path("/var/lib/qrgate/qrgate.db")
    newer = store_finding(path, {"store": 1, "outbox": 9}, None)
    assert newer.status == "FAIL"
    assert "outbox 9 (this qrgate: 2)" in newer.text
    assert store_finding(path, {"store": 0}, None).status == "WARN"
    assert store_finding(path, {}, ("x is not writable", "chown")) == failure(
        "x is not writable", "chown"
    )


def test_a_store_file_the_gate_cannot_write_is_found(tmp_path: Path) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    database = folder / "qrgate.db"
    Store.open(database).close()
    assert write_problem(database) is None
    if os.geteuid() == 0:
        os.chown(folder, NOBODY, NOBODY)  # the service's folder; root made the file in it
    else:
        database.chmod(0o444)
    problem = write_problem(database)
    assert problem is not None
    assert problem[0].startswith(f"{database} is not writable by ")
    assert problem[1].startswith("sudo chown -R ")


def stat_of(mode: int, uid: int, gid: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


def test_who_may_write() -> None:
    file, folder = stat.S_IFREG, stat.S_IFDIR
    assert may_write(stat_of(file | 0o600, 1000, 1000), 1000, set())
    assert not may_write(stat_of(file | 0o400, 1000, 1000), 1000, {1000})
    assert not may_write(stat_of(file | 0o464, 1000, 1000), 1000, {1000})  # owner bits rule
    assert may_write(stat_of(file | 0o660, 0, 997), 1000, {997})
    assert not may_write(stat_of(file | 0o644, 0, 0), 1000, {1000})
    assert may_write(stat_of(file | 0o644, 0, 0), 0, set())
    assert not may_write(stat_of(folder | 0o600, 1000, 1000), 1000, set())  # no search bit
    assert may_write(stat_of(folder | 0o700, 1000, 1000), 1000, set())
