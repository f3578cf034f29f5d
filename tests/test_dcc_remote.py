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

from mqtt.commands import check_args
from mqtt.errors import CommandRejectedError
from scanner.config import parse_config
from scanner.credentials.dcc.trustlist import pushed_trust_list_path
from scanner.decision.policy import Policy
from scanner.doctor.trustlist import check_trust_list
from tests.support import dcc as data
from tests.support.dcc import NOW
from tests.support.realgate import RealGate

SIGNER = data.signer("VN")
NEWCOMER = data.signer("LA", "PS256")


@pytest.fixture
def rig(tmp_path: Path, mock_factory: MockFactory) -> Iterator[RealGate]:
    trust = data.write_trust_list(tmp_path / "trust.json", SIGNER)
    gate = RealGate(tmp_path, mock_factory, accept=["dcc"], dcc={"trust_list": str(trust)})
    yield gate
    gate.close()


def reason(rig: RealGate, payload: bytes) -> str:
    rig.clock.advance(2)  # past the repeat window
    decision = rig.gate.scan(payload)
    assert decision is not None
    return decision.reason


def run(rig: RealGate, name: str, args: dict[str, Any]) -> str:
    """`name` signed by the centre, through the gate's intake into its handler: the detail
    of an `ok` reply, else the outcome."""
    reply = rig.command(name, args=args)
    return reply.detail if reply.outcome == "ok" and reply.detail else reply.outcome


def hashes(rig: RealGate, payload: bytes) -> tuple[str, ...]:
    trust = rig.gate.policy.trust_list
    assert trust is not None
    from scanner.credentials.dcc.verifier import DccVerifier

    signed = DccVerifier(trust, 60).verify(payload, NOW).signed
    assert signed is not None
    return signed.revocation_hashes()


def test_revoke_takes_eu_hashes_in_base64_or_hex(rig: RealGate) -> None:
    by_uvci, by_signature = data.vaccination(SIGNER), data.vaccination(SIGNER)
    listed = base64.b64encode(bytes.fromhex(hashes(rig, by_uvci)[0])).decode()
    args = {"dcc": [listed, hashes(rig, by_signature)[2].upper()]}
    assert run(rig, "revoke", args) == "revoked 0 passes and 0 subjects and 2 health certificates"
    assert reason(rig, by_uvci) == "revoked"
    assert reason(rig, by_signature) == "revoked"
    assert reason(rig, data.vaccination(SIGNER)) == "ok"


@pytest.mark.parametrize(
    "args", [{"dcc": ["short"]}, {"dcc": ["%" * 24]}, {"dcc": "not-a-list"}, {}]
)
def test_revoke_refuses_what_is_no_hash(args: dict[str, Any]) -> None:
    with pytest.raises(CommandRejectedError, match="bad_args"):
        check_args("revoke", args)


def test_a_pushed_trust_list_replaces_the_configured_one_and_survives_a_restart(
    rig: RealGate,
) -> None:
    newcomer = data.vaccination(NEWCOMER)
    assert reason(rig, newcomer) == "unknown_key"
    pushed = {"certificates": [NEWCOMER.trust_list_entry(), SIGNER.trust_list_entry()]}
    assert run(rig, "trustlist", {"trust_list": pushed}) == "trust list replaced (2 signers)"
    assert reason(rig, newcomer) == "ok"
    stored = pushed_trust_list_path(rig.config.store.path)
    assert json.loads(stored.read_text()) == pushed
    restarted = Policy.from_config(rig.config, rig.store, rig.clock).decide(newcomer)
    assert restarted is not None
    assert restarted.reason == "ok"
    doctor = check_trust_list(rig.config).text
    assert "2 signers of 2 countries (LA, VN)" in doctor
    assert "(pushed by the centre)" in doctor


def test_an_unusable_trust_list_is_rejected_and_the_old_one_stays(rig: RealGate) -> None:
    with pytest.raises(CommandRejectedError, match="bad_args"):
        check_args("trustlist", {"trust_list": []})
    with pytest.raises(CommandRejectedError, match="bad_args"):
        check_args("trustlist", {"trust_list": [{"kid": "x"}]})
    rejected = run(rig, "trustlist", {"trust_list": [{"rawData": "%%%"}]})
    assert rejected.startswith("rejected: ")
    assert "base64" in rejected
    assert not pushed_trust_list_path(rig.config.store.path).exists()
    assert reason(rig, data.vaccination(SIGNER)) == "ok"


def test_doctor_reports_count_countries_and_age(rig: RealGate) -> None:
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
