"""RELIABILITY.md fault 16 against `qrgate run`: junk on a gate's command topics, retained
ones included. One unsigned retained message whose unverified id no UTF-8 encoder takes,
and one of 100 MB, are there before the gate connects; more junk comes while it runs.
Everything is answered or dropped, the connection never drops, events keep flowing, and
the gate's memory stays bounded (Maximum Packet Size).
"""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from mqtt.remote import sign_command
from scanner.credentials.keys import create_signing_key, load_private_key
from scanner.state.store import AllowEntry, Store
from tests.support.broker import Mosquitto
from tests.support.clients import publish
from tests.support.gate import wait_until
from tests.support.gateproc import GateProcess, write_config
from tests.support.gatescene import badge_frames, scene_config
from tests.support.recorder import Recorder
from tests.support.tokens import hand_jws

pytestmark = pytest.mark.slow
MB = 1024 * 1024
SITE_OPEN, GATE_CMD = "qrgate/factory-1/cmd/open", "qrgate/factory-1/gate-1/cmd/"


def peak_memory_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def unsigned(claims: dict[str, object]) -> bytes:
    return hand_jws({"alg": "none"}, claims, None).encode()


def test_junk_on_the_command_topics_drops_nothing_and_holds_no_memory(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    publish(mosquitto, SITE_OPEN, b"x" * (100 * MB), retain=True, timeout_s=30)
    publish(mosquitto, GATE_CMD + "lockdown", unsigned({"jti": "\ud800"}), retain=True)
    (tmp_path / "keys").mkdir()
    key_path, jwks = create_signing_key(tmp_path / "keys", "centre", "EdDSA")
    store = tmp_path / "state" / "qrgate.db"
    store.parent.mkdir()
    with Store.open(store) as opened:
        opened.allowlist.add(AllowEntry("B-1"))
    config = scene_config(
        badge_frames(tmp_path / "camera", [b"B-1", b"B-2"]),
        store,
        mosquitto.port,
        commands={"enabled": True, "jwks": str(jwks)},
    )
    recorder = Recorder(mosquitto).start()
    gate = GateProcess(write_config(config, tmp_path / "gate.toml"))
    try:
        assert recorder.wait(lambda r: len(r.on("reply")) >= 1, 20), gate.log
        assert recorder.wait(lambda r: len(r.events()) >= 3, 10), gate.log
        key = load_private_key(key_path)
        signed_junk = {
            "jti": "\ud800",
            "iat": float("nan"),
            "exp": 10**400,
        }
        now = int(time.time())
        for claim, value in signed_junk.items():
            claims = {"cmd": "open", "site": "factory-1", "gate": "gate-1", "jti": f"j-{claim}"}
            claims.update({"iat": now, "exp": now + 60, claim: value})
            token = jwt.encode(claims, key, "EdDSA", {"kid": "centre"})
            publish(mosquitto, GATE_CMD + "open", token.encode())
        publish(mosquitto, GATE_CMD + "emergency", unsigned({"jti": "\x1b[2J\ud800"}))
        add = sign_command(
            "allowlist",
            key=key,
            kid="centre",
            site="factory-1",
            gate="gate-1",
            args={"add": [{"subject": "B-2", "kinds": ["badge"], "valid_until": now + 600}]},
        )
        publish(mosquitto, GATE_CMD + "allowlist", add.token.encode())
        assert recorder.wait(lambda r: len(r.on("reply")) >= 6, 10), gate.log
        assert recorder.wait(
            lambda r: (
                ("granted", "ok") in {(e["result"], e["reason"]) for e in r.events()[-4:]}
                and any(e["subject"] == "B-2" and e["result"] == "granted" for e in r.events())
            ),
            10,
        ), gate.log
        events_before = len(recorder.events())
        assert wait_until(lambda: len(recorder.events()) >= events_before + 3, 10)
        health = recorder.on("health")[-1].json()
        peak_mb = peak_memory_mb(gate.process.pid)
        code, _ = gate.terminate()
    finally:
        gate.close()
        recorder.stop()
    replies = [message.json() for message in recorder.on("reply")]
    outcomes = sorted(reply["outcome"] for reply in replies)
    print(f"gate peak memory with a 100 MB retained command: {peak_mb:.0f} MB; {outcomes}")
    assert code == 0, gate.log
    assert health["mqtt"]["connects"] == 1  # no message dropped the connection
    assert outcomes == [
        "ok",
        "rejected: bad_algorithm",
        "rejected: malformed",
        "rejected: malformed",
        "rejected: malformed",
        "rejected: retained",
    ]
    assert {reply["id"] for reply in replies} >= {"\\ud800", "\\x1b[2J\\ud800"}
    assert peak_mb < 150  # the 100 MB message never reached the gate
    assert "Dropping too large outgoing PUBLISH" in mosquitto.log_path.read_text()
    assert all(event["type"] == "scan" for event in recorder.events())  # no mode, no open
