"""Commands through the real intake into the gate's own handlers (RELIABILITY.md fault
13 against the real gate): what arrives signed does what docs/mqtt.md says, with every
documented argument; what arrives unsigned, retained, forged or hostile changes nothing,
is answered, and never raises.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import jwt
import pytest
from gpiozero.pins.mock import MockFactory

from scanner.decision.policy import Waiting
from tests.support import dcc
from tests.support.realgate import TOPICS, RealGate
from tests.support.tokens import IssuerKey, hand_jws


@pytest.fixture
def real(tmp_path: Path, mock_factory: MockFactory) -> Iterator[RealGate]:
    gate = RealGate(tmp_path, mock_factory, accept=["pass", "badge", "cccd"])
    yield gate
    gate.close()


def scan(real: RealGate, payload: bytes) -> tuple[str, str]:
    real.clock.advance(2)  # past the repeat window
    decision = real.gate.scan(payload)
    assert decision is not None
    return decision.result, decision.reason


def test_allowlist_add_and_remove_with_every_documented_field(real: RealGate) -> None:
    now = real.clock.now()
    add = [
        "B-1",
        {"subject": "001099012345", "kinds": ["cccd"], "name": "Trần Văn Dũng"},
        {"subject": "B-2", "valid_from": now + 3600},
        {"subject": "B-3", "valid_until": now + 5, "kind": "badge"},
    ]
    reply = real.command("allowlist", args={"add": add})
    assert reply.outcome == "ok", reply
    assert reply.detail == "allowlist: 4 added or updated, 0 removed"
    entries = {entry.subject: entry for entry in real.store.allowlist.entries()}
    assert entries["001099012345"].kinds == {"cccd"}
    assert entries["B-2"].valid_from == now + 3600
    assert scan(real, b"B-1") == ("granted", "ok")
    assert scan(real, b"B-2") == ("denied", "not_yet_valid")
    assert scan(real, b"B-3") == ("denied", "expired")  # two scans later: 6 s on
    assert real.command("allowlist", args={"remove": ["B-1"]}).outcome == "ok"
    assert scan(real, b"B-1") == ("denied", "not_allowed")


def test_allowlisted_badges_carry_the_birth_date_that_pairing_compares(
    tmp_path: Path, mock_factory: MockFactory
) -> None:
    signer = dcc.signer("VN")
    trust = dcc.write_trust_list(tmp_path / "trust.json", signer)
    pairs = {"trust_list": str(trust), "pair_with": ["badge"]}
    real = RealGate(tmp_path / "gate", mock_factory, accept=["badge", "dcc"], dcc=pairs)
    try:
        an = {"name": "Nguyễn Văn An", "birth_date": dcc.HOLDER[2]}  # the certificate's
        add = [{"subject": "B-1", **an}, {"subject": "B-2", **an, "birth_date": "1991-01-01"}]
        assert real.command("allowlist", args={"add": add}).outcome == "ok"
        entries = {entry.subject: entry for entry in real.store.allowlist.entries()}
        assert entries["B-1"].birth_date == date(1990, 1, 1)
        certificate = dcc.vaccination(signer)
        assert paired(real, certificate, b"B-2") == ("denied", "pair_mismatch")  # not his date
        assert paired(real, certificate, b"B-1") == ("granted", "ok")
        snapshot = {"version": 2, "entries": [{"subject": "B-2", **an}]}
        assert real.command("allowlist", args=snapshot).outcome == "ok"
        assert real.store.allowlist.get("B-2").birth_date == date(1990, 1, 1)
        for wrong in ("1990-02-30", "01/01/1990", "1990-01-01T00:00", 19900101):
            reply = real.command(
                "allowlist", args={"add": [{"subject": "B-3", "birth_date": wrong}]}
            )
            assert reply.outcome.startswith("rejected: bad_args: add.0.birth_date"), reply
        assert real.store.allowlist.get("B-3") is None
    finally:
        real.close()


def paired(real: RealGate, certificate: bytes, badge: bytes) -> tuple[str, str]:
    """A certificate, then a badge: the passage's decision."""
    real.clock.advance(2)
    assert isinstance(real.gate.scan(certificate), Waiting)
    return scan(real, badge)


def test_a_snapshot_and_a_revocation_until_a_time(real: RealGate) -> None:
    entries = ["B-1", {"subject": "B-2", "name": "Badge Two"}]
    reply = real.command("allowlist", args={"version": 4, "entries": entries})
    assert (reply.outcome, reply.detail) == ("ok", "allowlist replaced by snapshot 4 (2 entries)")
    until = real.clock.now() + 10
    reply = real.command("revoke", args={"subjects": ["B-1"], "until": until})
    assert reply.outcome == "ok", reply
    assert scan(real, b"B-1") == ("denied", "revoked")
    real.clock.advance(10)
    assert scan(real, b"B-1") == ("granted", "ok")


def unsigned(claims: dict[str, Any]) -> bytes:
    return hand_jws({"alg": "none", "typ": "JWT"}, claims, None).encode()


def test_unsigned_retained_and_forged_commands_leave_the_real_gate_as_it_was(
    real: RealGate,
) -> None:
    now = int(real.clock.now())
    claims = {"cmd": "emergency", "site": "factory-1", "gate": "gate-1", "jti": "x", "iat": now}
    claims["exp"] = now + 60
    forger = IssuerKey.ed25519("centre")  # the centre's kid, another key
    forged = jwt.encode(claims, forger.private, "EdDSA", {"kid": "centre"}).encode()
    answers = [
        real.intake.handle(TOPICS.command("emergency"), unsigned(claims), retained=False),
        real.intake.handle(TOPICS.command("emergency"), forged, retained=False),
        real.command("emergency", retained=True),
        real.command("open", retained=True),
        real.intake.handle(TOPICS.command("open"), b"\x00\xff" * 100, retained=False),
    ]
    assert [reply.outcome for reply in answers] == [
        "rejected: bad_algorithm",
        "rejected: bad_signature",
        "rejected: retained",
        "rejected: retained",
        "rejected: malformed",
    ]
    assert real.gate.policy.mode == "normal"
    assert real.store.get_mode() == "normal"
    assert real.relay_moves() == 0
    assert real.events() == []


HOSTILE_CLAIMS = [
    {"jti": "\ud800"},  # a lone surrogate: JSON carries it, UTF-8 cannot
    {"jti": "line\nbreak"},
    {"iat": float("nan")},
    {"exp": 10**400},
    {"exp": float("inf")},
    {"gate": ["gate-1"]},
    {"site": {"a": 1}},
    {"args": {"seconds": 10**400}},
]


@pytest.mark.parametrize("changes", HOSTILE_CLAIMS)
def test_signed_values_no_issuer_should_send_are_rejected_never_raised(
    real: RealGate, changes: dict[str, Any]
) -> None:
    reply = real.command("open", **changes)
    assert reply.outcome.startswith("rejected: "), reply
    json.loads(reply.to_json())  # the reply always encodes
    assert real.relay_moves() == 0
    assert real.events() == []


def test_an_unverified_id_is_echoed_escaped(real: RealGate) -> None:
    token = unsigned({"cmd": "open", "jti": "\ud800\x1b[2J"})
    reply = real.intake.handle(TOPICS.command("open"), token, retained=True)
    assert reply.id == "\\ud800\\x1b[2J"
    assert json.loads(reply.to_json())["id"] == "\\ud800\\x1b[2J"
