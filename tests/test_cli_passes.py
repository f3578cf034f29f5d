"""`qrgate keys`, `qrgate pass issue|check` and `qrgate allow`, as a technician runs them."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jwt
import numpy as np
import pytest
import zxingcpp
from click.testing import CliRunner
from PIL import Image

from scanner.cli import run
from tests.support.cli import QRGATE
from tests.support.tokens import IssuerKey, hand_jws, hmac_signer, pyjwt_token, write_jwks

ROOT = Path(__file__).resolve().parent.parent
ED = IssuerKey.ed25519("central-ed")
ES = IssuerKey.p256("central-es")


pytestmark = pytest.mark.usefixtures("restore_logging")


def qrgate(*args: str | Path, stdin: bytes = b"") -> tuple[int, str, str]:
    """Run a command in-process: exit code, stdout, stderr."""
    with CliRunner().isolation(input=stdin) as streams:
        code = run([str(arg) for arg in args])
    return code, streams[0].getvalue().decode(), streams[1].getvalue().decode()


@pytest.fixture
def gate(tmp_path: Path) -> Path:
    """A gate's config: the centre's keys, a store in a temp folder, every kind accepted."""
    write_jwks(tmp_path / "jwks.json", ED, ES)
    config = tmp_path / "config.toml"
    config.write_text(
        '[gate]\nsite = "factory-1"\n'
        '[policy]\naccept = ["pass", "badge", "cccd", "vnqr"]\nanti_passback_s = 60\n'
        '[passes]\njwks = "jwks.json"\n[store]\npath = "state/qrgate.db"\n'
    )
    (tmp_path / "state").mkdir()
    return config


def check(config: Path, payload: str | bytes) -> tuple[int, dict[str, Any]]:
    args: tuple[str | Path, ...] = ("pass", "check", "-c", config)
    if isinstance(payload, bytes):
        code, out, err = qrgate(*args, "-", stdin=payload)
    else:
        code, out, err = qrgate(*args, payload)
    assert out.count("\n") == 1, err
    return code, json.loads(out)


def claims(**extra: Any) -> dict[str, Any]:
    import time

    return {"sub": "W-1042", "name": "Nguyễn Văn An", "exp": int(time.time()) + 600, **extra}


def test_keys_new_writes_a_private_pem_and_the_public_set(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    assert qrgate("keys", "new", "--out", out, "--kid", "k1")[0] == 0
    assert qrgate("keys", "new", "--out", out, "--kid", "k2", "--alg", "ES256")[0] == 0
    assert stat.S_IMODE((out / "k1.key.pem").stat().st_mode) == 0o600
    keys = json.loads((out / "jwks.json").read_text())["keys"]
    assert [(key["kid"], key["alg"], key["use"]) for key in keys] == [
        ("k1", "EdDSA", "sig"),
        ("k2", "ES256", "sig"),
    ]
    assert all("d" not in key for key in keys)


def test_keys_new_never_overwrites_and_replaces_a_kid_in_the_set(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    qrgate("keys", "new", "--out", out, "--kid", "k1")
    pem = (out / "k1.key.pem").read_bytes()
    code, _, err = qrgate("keys", "new", "--out", out, "--kid", "k1")
    assert code == 1
    assert "refusing to overwrite" in err
    assert (out / "k1.key.pem").read_bytes() == pem
    old_x = json.loads((out / "jwks.json").read_text())["keys"][0]["x"]
    (out / "k1.key.pem").unlink()
    qrgate("keys", "new", "--out", out, "--kid", "k1")
    keys = json.loads((out / "jwks.json").read_text())["keys"]
    assert len(keys) == 1
    assert keys[0]["x"] != old_x


def test_keys_new_default_kid_and_bad_kids(tmp_path: Path) -> None:
    code, out, _ = qrgate("keys", "new", "--out", tmp_path)
    assert code == 0
    kid = out.split()[1]
    assert (tmp_path / f"{kid}.key.pem").exists()
    for bad in ("../escape", ".hidden", "a/b", ""):
        assert qrgate("keys", "new", "--out", tmp_path, "--kid", bad)[0] == 1


@pytest.fixture
def issuer(tmp_path: Path) -> Path:
    qrgate("keys", "new", "--out", tmp_path / "keys", "--kid", "k1")
    return tmp_path / "keys"


def test_issued_pass_verifies_with_pyjwt_and_reads_back_from_its_qr(
    issuer: Path, tmp_path: Path
) -> None:
    code, out, err = qrgate(
        "pass", "issue", "--key", issuer / "k1.key.pem", "--kid", "k1", "--subject", "W-7",
        "--name", "Trần Thị Bình", "--valid-for", "1d12h", "--site", "factory-1",
        "--png", tmp_path / "p.png", "--svg", tmp_path / "p.svg",
    )  # fmt: skip
    assert code == 0, err
    token = out.strip()
    jwk = jwt.PyJWK(json.loads((issuer / "jwks.json").read_text())["keys"][0])
    decoded = jwt.decode(token, jwk, algorithms=["EdDSA"])
    assert decoded["exp"] - decoded["iat"] == 36 * 3600
    assert (decoded["sub"], decoded["name"], decoded["site"]) == (
        "W-7",
        "Trần Thị Bình",
        "factory-1",
    )
    image = np.asarray(Image.open(tmp_path / "p.png").convert("L"))
    assert [code.bytes for code in zxingcpp.read_barcodes(image)] == [token.encode()]
    assert 'width="' in (svg := (tmp_path / "p.svg").read_text())
    assert "mm" in svg.split(">", 2)[1]


@pytest.mark.parametrize("bad", ["12", "0h", "h", "-1h", "1.5h", "12x"])
def test_valid_for_needs_a_unit(issuer: Path, bad: str) -> None:
    args = ("pass", "issue", "--key", issuer / "k1.key.pem", "--kid", "k1", "--subject", "W")
    code, _, err = qrgate(*args, "--valid-for", bad)
    assert code == 2
    assert "--valid-for" in err


def test_issue_with_a_missing_or_wrong_key(issuer: Path, tmp_path: Path) -> None:
    args = ("pass", "issue", "--kid", "k1", "--subject", "W")
    code, _, err = qrgate(*args, "--key", tmp_path / "none.pem")
    assert (code, "cannot read" in err) == (1, True)
    code, _, err = qrgate(*args, "--key", issuer / "jwks.json")
    assert (code, "not an unencrypted PEM private key" in err) == (1, True)


@pytest.mark.parametrize("key", [ED, ES], ids=["EdDSA", "ES256"])
def test_check_grants_passes_from_independent_issuers(gate: Path, key: IssuerKey) -> None:
    for token in (
        pyjwt_token(key, claims(site=["factory-1", "factory-2"])),
        hand_jws({"alg": key.alg, "kid": key.kid, "typ": "JWT"}, claims(), key.sign),
    ):
        code, decision = check(gate, token)
        assert code == 0
        assert decision["result"] == "granted"
        assert (decision["reason"], decision["credential"], decision["subject"]) == (
            "ok",
            "pass",
            "W-1042",
        )
        assert decision["name"] == "Nguyễn Văn An"


def forged_passes() -> dict[str, tuple[str, str]]:
    good = pyjwt_token(ED, claims())
    header, _, signature = good.split(".")
    import base64

    raised = base64.urlsafe_b64encode(json.dumps(claims(sub="BOSS")).encode()).rstrip(b"=")
    return {
        "alg none": (hand_jws({"alg": "none", "kid": ED.kid}, claims(), None), "bad_signature"),
        "hs256 with public key": (
            hand_jws({"alg": "HS256", "kid": ES.kid}, claims(), hmac_signer(ES.public_pem())),
            "bad_signature",
        ),
        "tampered payload": (f"{header}.{raised.decode()}.{signature}", "bad_signature"),
        "tampered signature": (
            good[:-3] + ("AAA" if good[-3:] != "AAA" else "BBB"),
            "bad_signature",
        ),
        "unknown key": (pyjwt_token(IssuerKey.ed25519("other"), claims()), "unknown_key"),
        "expired": (pyjwt_token(ED, claims(exp=1_000_000_000)), "expired"),
        "not yet valid": (pyjwt_token(ED, claims(nbf=4_000_000_000)), "not_yet_valid"),
        "wrong site": (pyjwt_token(ES, claims(site="factory-2")), "wrong_site"),
        "no exp": (
            hand_jws({"alg": "EdDSA", "kid": ED.kid}, {"sub": "W"}, ED.sign),
            "unknown_format",
        ),
    }


@pytest.mark.parametrize("case", list(forged_passes()))
def test_check_denies_forged_and_invalid_passes(gate: Path, case: str) -> None:
    token, reason = forged_passes()[case]
    code, decision = check(gate, token)
    assert (code, decision["result"], decision["reason"]) == (1, "denied", reason)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "unknown_format"),
        (b"W-1\x00", "unknown_format"),
        (b"\x00" * 100, "unknown_format"),
        (b"A" * 1_000_000, "too_large"),
        (b"\xff\xfe\x80", "unknown_format"),
        (b"\x07\x1b[2J", "unknown_format"),
        (b"'; DROP TABLE allowlist; --", "unknown_format"),
        (b'{"result": "granted"}', "unknown_format"),
        (b"qrgate/factory-1/+/#", "unknown_format"),
        (b"x|y", "unknown_format"),
    ],
)
def test_check_denies_hostile_payloads_from_stdin(gate: Path, payload: bytes, reason: str) -> None:
    code, decision = check(gate, payload)
    assert (code, decision["result"], decision["reason"]) == (1, "denied", reason)
    assert len(decision["code_sha256"]) == 64


def test_badges_and_cards_are_checked_against_the_store(gate: Path) -> None:
    card = "001099012345|123456789|Nguyễn Văn An|01011990|Nam|Hà Nội|15082021"
    assert check(gate, "W-1")[1]["reason"] == "not_allowed"
    assert qrgate("allow", "add", "W-1", "-c", gate)[0] == 0
    assert qrgate("allow", "add", "001099012345", "--kind", "cccd", "-c", gate)[0] == 0
    assert check(gate, "W-1") == (
        0,
        {
            "result": "granted", "reason": "ok", "credential": "badge", "subject": "W-1",
            "name": None, "code_sha256": check(gate, "W-1")[1]["code_sha256"],
        },
    )  # fmt: skip
    assert check(gate, card)[1]["subject"] == "001099012345"
    personal = "******029317|NGUYEN LE KHA HAN|1987-**-**|0|162979388586171100|<1<HS4010120878821"
    assert check(gate, personal)[1]["reason"] == "not_allowed"
    assert qrgate("allow", "add", "162979388586171100", "--kind", "vnqr", "-c", gate)[0] == 0
    assert check(gate, personal)[1] | {"code_sha256": None} == {
        "result": "granted", "reason": "ok", "credential": "vnqr",
        "subject": "162979388586171100", "name": "NGUYEN LE KHA HAN", "code_sha256": None,
    }  # fmt: skip


def test_check_changes_nothing(gate: Path, tmp_path: Path) -> None:
    qrgate("allow", "add", "W-1", "-c", gate)
    db = tmp_path / "state" / "qrgate.db"
    before = db.read_bytes()
    for _ in range(3):  # anti_passback_s = 60 would deny a second real passage
        assert check(gate, "W-1")[0] == 0
    assert db.read_bytes() == before


def test_check_without_a_store_does_not_create_one(gate: Path, tmp_path: Path) -> None:
    code, out, err = qrgate("pass", "check", "-c", gate, "W-1")
    assert code == 1
    assert "does not exist: the allowlist is empty" in err
    assert json.loads(out)["reason"] == "not_allowed"
    assert not (tmp_path / "state" / "qrgate.db").exists()


def test_check_by_a_user_who_may_not_see_the_store_says_so() -> None:
    # The gate's state directory is the service's alone (mode 0700): someone else's
    # check must say what to do, not end in a traceback.
    with tempfile.TemporaryDirectory(dir="/tmp") as name:
        folder = Path(name)
        folder.chmod(0o755)
        (folder / "state").mkdir(mode=0o700 if os.geteuid() == 0 else 0)
        config = folder / "config.toml"
        config.write_text(f'[policy]\naccept = ["badge"]\n[store]\npath = "{folder}/state/q.db"\n')
        config.chmod(0o644)
        other = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        done = subprocess.run(
            [*(other if os.geteuid() == 0 else []), *QRGATE, "pass", "check", "-c", config, "W-1"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        (folder / "state").chmod(0o700)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    assert done.stderr == (
        f"qrgate: store {folder}/state/q.db: permission denied; run this as the gate's user "
        "(sudo -u qrgate qrgate ...) or as root\n"
    )


def test_check_without_jwks_exits_78_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[passes]\njwks = "missing.json"\n[store]\npath = "q.db"\n')
    code, _, err = qrgate("pass", "check", "-c", config, "W-1")
    assert code == 78
    assert "passes.jwks" in err
    assert "Traceback" not in err
    config.write_text('[policy]\naccept = ["badge"]\n[passes]\njwks = "missing.json"\n')
    assert qrgate("pass", "check", "-c", config, "W-1")[0] == 1


def test_raw_argv_bytes_reach_the_decision(gate: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "scanner", "pass", "check", "-c", str(gate), b"W-1\xff\xfe"],
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert done.returncode == 1
    decision = json.loads(done.stdout)
    assert decision["reason"] == "unknown_format"
    import hashlib

    assert decision["code_sha256"] == hashlib.sha256(b"W-1\xff\xfe").hexdigest()


def test_allow_commands_are_idempotent(gate: Path) -> None:
    add = (
        "allow",
        "add",
        "W-5",
        "--name",
        "Lê Văn Cường",
        "--valid-until",
        "2030-12-31",
        "--birth-date",
        "02/03/1985",
        "-c",
        gate,
    )
    assert qrgate(*add)[1].startswith(
        "added: W-5  [badge+cccd+vnqr] until 2030-12-31 born 1985-03-02  Lê Văn Cường"
    )
    assert qrgate(*add)[1].startswith("unchanged: ")
    code, out, _ = qrgate("allow", "list", "--json", "-c", gate)
    assert (json.loads(out)["subject"], json.loads(out)["birth_date"]) == ("W-5", "1985-03-02")
    assert qrgate("allow", "remove", "W-5", "-c", gate)[1] == "removed: W-5\n"
    assert qrgate("allow", "remove", "W-5", "-c", gate)[1] == "W-5 was not on the allowlist\n"
    code, _, err = qrgate("allow", "add", "not valid", "-c", gate)
    assert code == 2
    assert "subject" in err
    code, _, err = qrgate("allow", "add", "W-6", "--birth-date", "31/02/1985", "-c", gate)
    assert (code, "'31/02/1985' is not a calendar date" in err) == (2, True)


def test_allow_import(gate: Path, tmp_path: Path) -> None:
    hr = tmp_path / "hr.csv"
    hr.write_text(
        "subject,name,valid_until\nW-10,An,31/12/2030\nW-11,Bình,\n", encoding="utf-8-sig"
    )
    for _ in range(2):
        code, out, _ = qrgate("allow", "import", hr, "-c", gate)
        assert (code, out) == (0, f"imported 2 entries from {hr}; 2 allowed in all\n")
    code, out, _ = qrgate("allow", "list", "-c", gate)
    assert out.splitlines() == [
        "W-10  [badge+cccd+vnqr] until 2030-12-31  An",
        "W-11  [badge+cccd+vnqr]  Bình",
    ]
    hr.write_text("W-12,x\nbad id\n")
    code, _, err = qrgate("allow", "import", hr, "-c", gate)
    assert code == 1
    assert "line 2" in err
    assert "W-12" not in qrgate("allow", "list", "-c", gate)[1]


def test_allow_needs_the_store_folder(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[store]\npath = "no/such/folder/q.db"\n')
    code, _, err = qrgate("allow", "add", "W-1", "-c", config)
    assert code == 78
    assert "store.path" in err


def test_a_store_path_the_system_will_not_look_at_is_said_not_raised(tmp_path: Path) -> None:
    # A folder name longer than the file system takes: Path.exists raises rather than answers.
    db = tmp_path / ("s" * 300) / "q.db"
    config = tmp_path / "c.toml"
    config.write_text(f'[policy]\naccept = ["badge"]\n[store]\npath = "{db}"\n')
    assert qrgate("allow", "list", "-c", config) == (
        1,
        "",
        f"qrgate: store {db}: File name too long\n",
    )
    code, _, err = qrgate("allow", "add", "W-1", "-c", config)
    assert code == 78
    assert f"store.path = '{db}': its folder cannot be looked at: File name too long" in err


def test_a_payload_starting_with_a_dash(gate: Path) -> None:
    code, out, _ = qrgate("pass", "check", "-c", gate, "--", "-W1")
    assert code == 1
    assert (json.loads(out)["credential"], json.loads(out)["subject"]) == ("badge", "-W1")
