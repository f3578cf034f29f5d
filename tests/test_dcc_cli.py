"""`qrgate dcc issue` and `qrgate dcc inspect`, `qrgate pass check --at` for every kind, a
store migrated to hold health-certificate revocations, and the event schema's reasons."""

from __future__ import annotations

import json
import sqlite3
import stat
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mqtt.events import REASONS as EVENT_REASONS
from mqtt.events import event_schema
from scanner.cli import run
from scanner.clock import ManualClock
from scanner.config import load_config
from scanner.credentials.dcc.subject import DEFAULT_KEY_NAME
from scanner.decision.policy import Decision, Policy
from scanner.decision.verdict import REASONS
from scanner.state.store import MIGRATIONS, Store
from tests.support.cli import qrgate


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def config_file(folder: Path, trust: Path) -> Path:
    (folder / "state").mkdir(exist_ok=True)
    config = folder / "config.toml"
    config.write_text(
        '[policy]\naccept = ["badge", "dcc"]\n'
        f'[dcc]\ntrust_list = "{trust}"\n'
        f'[store]\npath = "{folder / "state" / "qrgate.db"}"\n'
        "[commands]\nenabled = false\n"
    )
    return config


def issued(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[str, str]:
    assert run(["dcc", "issue", *args]) == 0
    captured = capsys.readouterr()
    return captured.out.strip(), captured.err


def checked(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> dict[str, str]:
    run(["pass", "check", "-c", str(config), *args])
    decision: dict[str, str] = json.loads(capsys.readouterr().out)
    return decision


def test_issue_makes_a_signer_once_and_marks_test_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signer = tmp_path / "signer"
    first, said = issued(capsys, "--signer", str(signer), "--country", "VN", "--alg", "PS256")
    assert "new throwaway signer" in said
    assert "TEST DATA" in said
    assert stat.S_IMODE((signer / "signer.key.pem").stat().st_mode) == 0o600
    second, said = issued(
        capsys, "--signer", str(signer), "--type", "test", "--png", str(tmp_path / "t.png")
    )
    assert "new throwaway signer" not in said
    assert (tmp_path / "t.png").stat().st_size > 0
    config = config_file(tmp_path, signer / "trust-list.json")
    assert checked(capsys, config, first)["reason"] == "ok"
    assert checked(capsys, config, second)["cert_type"] == "test"
    assert run(["dcc", "inspect", "--json", "-c", str(config), first]) == 0
    seen = json.loads(capsys.readouterr().out)
    assert seen["test_data"] is True
    assert seen["algorithm"] == "PS256"
    assert seen["signer"] == "found; the signature verifies"
    assert seen["signer_certificate"]["subject"] == "CN=qrgate TEST signer,O=qrgate test data,C=VN"
    assert "qrgate test data" in seen["content"]["v"][0]["is"]
    assert len(seen["revocation_hashes"]) == 3


def test_pass_check_at_judges_every_kind_at_that_instant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signer = tmp_path / "signer"
    now = time.time()
    sampled = iso(now - 3600)
    test, _ = issued(capsys, "--signer", str(signer), "--type", "test", "--date", sampled)
    config = config_file(tmp_path, signer / "trust-list.json")
    assert checked(capsys, config, "--at", iso(now + 3600), test)["reason"] == "ok"
    assert checked(capsys, config, "--at", iso(now + 24 * 3600), test)["reason"] == "test_too_old"
    naive = iso(now + 3600).removesuffix("+00:00")  # no offset: UTC
    assert checked(capsys, config, "--at", naive, test)["reason"] == "ok"
    assert checked(capsys, config, "--at", iso(now - 7200), test)["reason"] == "not_yet_valid"
    assert run(["allow", "add", "W-1", "--valid-until", "2026-06-30", "-c", str(config)]) == 0
    capsys.readouterr()
    assert checked(capsys, config, "--at", "2026-03-01T00:00:00+07:00", "W-1")["reason"] == "ok"
    assert checked(capsys, config, "--at", "2027-01-01T00:00:00Z", "W-1")["reason"] == "expired"
    assert run(["pass", "check", "-c", str(config), "--at", "yesterday", "W-1"]) == 2


def test_pass_check_says_when_its_subject_is_not_the_gates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    certificate, _ = issued(capsys, "--signer", str(tmp_path / "signer"))
    config = config_file(tmp_path, tmp_path / "signer" / "trust-list.json")
    assert run(["check-config", "-c", str(config)]) == 0  # as the installer runs it, as root
    key = tmp_path / "state" / DEFAULT_KEY_NAME
    assert not key.exists()  # else the service's user could not read a key root made
    capsys.readouterr()
    run(["pass", "check", "-c", str(config), certificate])
    alone = capsys.readouterr()
    assert json.loads(alone.out)["reason"] == "ok"
    assert f"the subject is not the gate's: the gate's subject key {key} does not exist" in (
        " ".join(alone.err.split())
    )

    with Store.open(tmp_path / "state" / "qrgate.db") as store:  # the gate, at its start
        gate = Policy.from_config(load_config(config)[0], store, ManualClock(time.time()))
        decision = gate.decide(certificate.encode())
    assert isinstance(decision, Decision)
    assert checked(capsys, config, certificate)["subject"] == decision.subject
    run(["pass", "check", "-c", str(config), certificate])
    assert capsys.readouterr().err == ""
    assert json.loads(alone.out)["subject"] != decision.subject


def test_inspect_reads_an_image_and_says_what_is_no_certificate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    signer = tmp_path / "signer"
    issued(capsys, "--signer", str(signer), "--png", str(tmp_path / "v.png"), "--type", "recovery")
    config = config_file(tmp_path, signer / "trust-list.json")
    assert run(["dcc", "inspect", "-c", str(config), str(tmp_path / "v.png")]) == 0
    out = capsys.readouterr().out
    assert 'type                ["recovery"]' in out
    assert "found; the signature verifies" in out
    assert run(["dcc", "inspect", "-c", str(config), "HC1:NOT*BASE45~"]) == 1
    assert "not a health certificate (base45: not Base45)" in capsys.readouterr().err
    assert run(["dcc", "inspect", "-c", str(config), "W-1"]) == 1
    assert "unprefix" in capsys.readouterr().err
    elsewhere = (
        config_file(tmp_path / "x", tmp_path / "missing.json")
        if (tmp_path / "x").mkdir() is None
        else None
    )
    assert elsewhere is not None
    assert run(["dcc", "inspect", "-c", str(elsewhere), str(tmp_path / "v.png")]) == 0
    assert "no trust list" in capsys.readouterr().out


@pytest.mark.slow
def test_issue_and_check_as_separate_processes(tmp_path: Path) -> None:
    done = qrgate("dcc", "issue", "--signer", tmp_path / "signer", "--type", "test")
    assert done.returncode == 0, done.stderr
    config = config_file(tmp_path, tmp_path / "signer" / "trust-list.json")
    checked_ = qrgate("pass", "check", "-c", config, done.stdout.strip())
    assert checked_.returncode == 0, checked_.stdout + checked_.stderr
    assert json.loads(checked_.stdout)["credential"] == "dcc"


def test_a_store_of_the_first_schema_is_migrated_to_hold_dcc_revocations(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute(
            "CREATE TABLE schema_version (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
        )
        for statement in MIGRATIONS[0]:
            old.execute(statement)
        old.execute("INSERT INTO schema_version VALUES ('store', 1)")
        old.execute("INSERT INTO revocations VALUES ('subject', 'W-9', NULL)")
    with Store.open(path) as store:
        assert store.schema_version() == len(MIGRATIONS)
        store.revocations.revoke_dcc(["ab" * 16], until=time.time() + 60)
        assert store.revocations.is_dcc_revoked(["00" * 16, "ab" * 16], time.time())
        assert store.revocations.is_revoked(jti=None, subject="W-9", now=time.time())
        store.prune(time.time() + 120, passages_before=0)
        assert not store.revocations.is_dcc_revoked(["ab" * 16], time.time())


def test_the_event_schema_lists_every_reason() -> None:
    assert EVENT_REASONS == REASONS
    assert event_schema()["properties"]["reason"]["examples"] == list(REASONS)
    cert_type = event_schema()["properties"]["cert_type"]
    assert {"vaccination", "test", "recovery"} <= set(json.dumps(cert_type).split('"'))
