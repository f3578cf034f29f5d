"""The centre and health certificates: revoking them by the EU hashes and pushing a new
trust list (signed commands), and what `qrgate doctor` says of the trust list."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from firmware.scheduler import ManualScheduler
from mqtt.clock import ClockTrust
from mqtt.commands import Command, check_args
from mqtt.errors import CommandRejectedError
from mqtt.outbox import Outbox
from scanner.clock import ManualClock
from scanner.config import Config, parse_config
from scanner.credentials.dcc.trustlist import pushed_trust_list_path
from scanner.daemon.gate import Gate
from scanner.daemon.hardware import open_outputs
from scanner.daemon.remote import Remote, pushed_jwks_path
from scanner.decision.policy import Policy
from scanner.doctor.trustlist import check_trust_list
from scanner.state.store import Store
from tests.support import dcc as data
from tests.support.dcc import NOW

SIGNER = data.signer("VN")
NEWCOMER = data.signer("LA", "PS256")


class Rig:
    def __init__(self, folder: Path, factory: MockFactory) -> None:
        trust = data.write_trust_list(folder / "trust.json", SIGNER)
        self.config: Config = parse_config(
            {
                "gpio": {"pin_factory": "mock"},
                "policy": {"accept": ["dcc"], "repeat_window_s": 0},
                "dcc": {"trust_list": str(trust)},
                "store": {"path": str(folder / "state" / "q.db")},
            }
        )
        self.config.store.path.parent.mkdir(parents=True)
        self.clock = ManualClock(NOW)
        self.outbox = Outbox(self.config.store.path, "factory-1", "gate-1", "in")
        self.store = Store.open(self.config.store.path)
        self.outputs = open_outputs(self.config.gpio, factory, scheduler=ManualScheduler())
        self.gate = self.new_gate()
        self.remote = Remote(
            self.gate, self.store, pushed_jwks_path(self.config.store.path), self.outbox
        )

    def new_gate(self) -> Gate:
        trust = ClockTrust(wall=self.clock.now, monotonic=self.clock.monotonic, synced=lambda: None)
        policy = Policy.from_config(self.config, self.store, self.clock)
        return Gate(policy, self.outbox, self.outputs, self.clock, trust)

    def run(self, name: str, **args: Any) -> str:
        command = Command(name, args, f"id-{name}", "factory-1", "gate-1", NOW, NOW + 60)
        detail = self.remote.handlers()[name](command)
        assert detail is not None
        return detail

    def reason(self, payload: bytes) -> str:
        decision = self.gate.scan(payload)
        assert decision is not None
        return decision.reason

    def close(self) -> None:
        self.outputs.close()
        self.store.close()
        self.outbox.close()


@pytest.fixture
def rig(tmp_path: Path, mock_factory: MockFactory) -> Iterator[Rig]:
    rig = Rig(tmp_path, mock_factory)
    yield rig
    rig.close()


def hashes(rig: Rig, payload: bytes) -> tuple[str, ...]:
    trust = rig.gate.policy.trust_list
    assert trust is not None
    from scanner.credentials.dcc.verifier import DccVerifier

    signed = DccVerifier(trust, 60).verify(payload, NOW).signed
    assert signed is not None
    return signed.revocation_hashes()


def test_revoke_takes_eu_hashes_in_base64_or_hex(rig: Rig) -> None:
    by_uvci, by_signature = data.vaccination(SIGNER), data.vaccination(SIGNER)
    listed = base64.b64encode(bytes.fromhex(hashes(rig, by_uvci)[0])).decode()
    args = check_args("revoke", {"dcc": [listed, hashes(rig, by_signature)[2].upper()]})
    assert rig.run("revoke", **args) == "revoked 0 passes and 0 subjects and 2 health certificates"
    assert rig.reason(by_uvci) == "revoked"
    assert rig.reason(by_signature) == "revoked"
    assert rig.reason(data.vaccination(SIGNER)) == "ok"


@pytest.mark.parametrize(
    "args", [{"dcc": ["short"]}, {"dcc": ["%" * 24]}, {"dcc": "not-a-list"}, {}]
)
def test_revoke_refuses_what_is_no_hash(args: dict[str, Any]) -> None:
    with pytest.raises(CommandRejectedError, match="bad_args"):
        check_args("revoke", args)


def test_a_pushed_trust_list_replaces_the_configured_one_and_survives_a_restart(
    rig: Rig,
) -> None:
    newcomer = data.vaccination(NEWCOMER)
    assert rig.reason(newcomer) == "unknown_key"
    pushed = {"certificates": [NEWCOMER.trust_list_entry(), SIGNER.trust_list_entry()]}
    args = check_args("trustlist", {"trust_list": pushed})
    assert rig.run("trustlist", **args) == "trust list replaced (2 signers)"
    assert rig.reason(newcomer) == "ok"
    stored = pushed_trust_list_path(rig.config.store.path)
    assert json.loads(stored.read_text()) == pushed
    restarted = rig.new_gate().policy.decide(newcomer)
    assert restarted is not None
    assert restarted.reason == "ok"
    doctor = check_trust_list(rig.config).text
    assert "2 signers of 2 countries (LA, VN)" in doctor
    assert "(pushed by the centre)" in doctor


def test_an_unusable_trust_list_is_rejected_and_the_old_one_stays(rig: Rig) -> None:
    with pytest.raises(CommandRejectedError, match="bad_args"):
        check_args("trustlist", {"trust_list": []})
    with pytest.raises(CommandRejectedError, match="bad_args"):
        check_args("trustlist", {"trust_list": [{"kid": "x"}]})
    with pytest.raises(CommandRejectedError, match="base64"):
        rig.run("trustlist", trust_list=[{"rawData": "%%%"}])
    assert not pushed_trust_list_path(rig.config.store.path).exists()
    assert rig.reason(data.vaccination(SIGNER)) == "ok"


def test_doctor_reports_count_countries_and_age(rig: Rig) -> None:
    finding = check_trust_list(rig.config)
    assert finding.status == "PASS"
    assert "1 signer of 1 country (VN)" in finding.text
    old = time.time() - 25 * 3600
    os.utime(rig.config.dcc.trust_list, (old, old))
    stale = check_trust_list(rig.config)
    assert stale.status == "WARN"
    assert "older than dcc.trust_list_max_age_h (24 h)" in stale.text
    rig.config.dcc.trust_list.write_text("[]")
    assert check_trust_list(rig.config).status == "FAIL"
    rig.config.dcc.trust_list.unlink()
    missing = check_trust_list(rig.config)
    assert (missing.status, "file not found" in missing.text) == ("FAIL", True)


def test_doctor_says_when_no_trust_list_is_needed() -> None:
    finding = check_trust_list(parse_config({}))
    assert (finding.status, finding.text) == ("PASS", 'not needed: policy.accept has no "dcc"')
