"""The gate's handlers for the centre's commands, on a real store, outbox and mock pins.

Signature, target, expiry and replay checks are the mqtt package's (tests/test_commands.py);
here the commands arrive verified and what matters is what they do to the gate, and that
bad arguments are refused with the gate unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from firmware.scheduler import ManualScheduler
from mqtt.clock import ClockTrust
from mqtt.commands import Command
from mqtt.errors import CommandRejectedError
from mqtt.outbox import Outbox
from mqtt.topics import COMMANDS
from scanner.clock import ManualClock
from scanner.config import Config, parse_config
from scanner.credentials.keys import create_signing_key, load_private_key, public_jwk
from scanner.credentials.passes import issue_pass
from scanner.daemon.gate import Gate
from scanner.daemon.hardware import open_outputs
from scanner.daemon.remote import Remote, load_pushed_keys, pushed_jwks_path
from scanner.decision.policy import Policy
from scanner.state.store import Store


class Rig:
    def __init__(self, folder: Path, factory: MockFactory) -> None:
        (folder / "keys").mkdir()
        key_path, jwks = create_signing_key(folder / "keys", "old", "EdDSA")
        self.old_key = load_private_key(key_path)
        self.config: Config = parse_config(
            {
                "gpio": {"pin_factory": "mock"},
                "passes": {"jwks": str(jwks)},
                "store": {"path": str(folder / "state" / "q.db")},
            }
        )
        self.clock, self.timer, self.factory = ManualClock(), ManualScheduler(), factory
        self.outbox = Outbox(self.config.store.path, "factory-1", "gate-1", "in")
        self.store = Store.open(self.config.store.path)
        self.outputs = open_outputs(self.config.gpio, factory, scheduler=self.timer)
        self.gate = self.new_gate()
        self.remote = Remote(
            self.gate, self.store, pushed_jwks_path(self.config.store.path), self.outbox
        )

    def new_gate(self) -> Gate:
        trust = ClockTrust(wall=self.clock.now, monotonic=self.clock.monotonic, synced=lambda: None)
        policy = Policy.from_config(self.config, self.store, self.clock)
        return Gate(policy, self.outbox, self.outputs, self.clock, trust)

    def run(self, name: str, **args: Any) -> str:
        command = Command(
            name, args, f"id-{name}", "factory-1", "gate-1", self.clock.now(), self.clock.now() + 60
        )
        detail = self.remote.handlers()[name](command)
        assert detail is not None
        return detail

    def scan(self, payload: bytes) -> tuple[str, str]:
        self.clock.advance(10)  # past the repeat window
        decision = self.gate.scan(payload)
        assert decision is not None
        return decision.result, decision.reason

    def close(self) -> None:
        self.outputs.close()
        self.store.close()
        self.outbox.close()


@pytest.fixture
def rig(tmp_path: Path, mock_factory: MockFactory) -> Iterator[Rig]:
    rig = Rig(tmp_path, mock_factory)
    yield rig
    rig.close()


def token(key: Any, kid: str, now: float, subject: str = "W-1") -> bytes:
    return issue_pass(key, kid, subject, now=now, valid_for_s=3600, jti=f"j-{subject}").encode()


def test_every_command_has_a_handler(rig: Rig) -> None:
    assert set(rig.remote.handlers()) == set(COMMANDS)


def test_open_pulses_or_holds_for_seconds(rig: Rig) -> None:
    assert rig.run("open") == "opened for one pulse"
    assert rig.outputs.snapshot().relay
    rig.timer.advance(1)
    assert not rig.outputs.snapshot().relay
    assert rig.run("open", seconds=30) == "opened for 30 s"
    rig.timer.advance(29)
    assert rig.outputs.snapshot().relay
    rig.timer.advance(2)
    assert not rig.outputs.snapshot().relay


@pytest.mark.parametrize("seconds", [0, -5, 3601, "10", True])
def test_open_refuses_bad_seconds(rig: Rig, seconds: object) -> None:
    with pytest.raises(CommandRejectedError, match="seconds"):
        rig.run("open", seconds=seconds)
    assert not rig.outputs.snapshot().relay


def test_modes_switch_and_survive_a_restart(rig: Rig) -> None:
    rig.run("allowlist", add=["B-1"])
    assert rig.run("lockdown") == "mode lockdown"
    assert rig.scan(b"B-1") == ("denied", "lockdown")
    restarted = rig.new_gate()
    assert restarted.policy.mode == "lockdown"
    assert rig.run("emergency") == "mode emergency"
    assert rig.outputs.snapshot().relay
    assert rig.run("normal") == "mode normal"
    assert not rig.outputs.snapshot().relay


def test_allowlist_snapshot_replaces_and_only_moves_forward(rig: Rig) -> None:
    rig.run("allowlist", add=["OLD-1"])
    detail = rig.run(
        "allowlist",
        version=3,
        entries=["B-1", {"subject": "001099012345", "kind": "cccd", "name": "Trần Văn Dũng"}],
    )
    assert detail == "allowlist replaced by snapshot 3 (2 entries)"
    assert sorted(entry.subject for entry in rig.store.allowlist.entries()) == [
        "001099012345",
        "B-1",
    ]
    assert rig.scan(b"B-1") == ("granted", "ok")
    assert rig.scan(b"OLD-1") == ("denied", "not_allowed")
    stale = rig.run("allowlist", version=2, entries=["OLD-1"])
    assert "ignored" in stale
    assert rig.scan(b"OLD-1") == ("denied", "not_allowed")


def test_allowlist_add_and_remove(rig: Rig) -> None:
    assert (
        rig.run("allowlist", add=["B-1", {"subject": "B-2", "valid_until": 1.0}], remove=[])
        == "allowlist: 2 added or updated, 0 removed"
    )
    assert rig.scan(b"B-2") == ("denied", "expired")
    assert rig.run("allowlist", remove=["B-1", "NOT-THERE"]) == (
        "allowlist: 0 added or updated, 1 removed"
    )
    assert rig.scan(b"B-1") == ("denied", "not_allowed")


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"add": "B-1"},
        {"add": [{"subject": "B 1"}]},
        {"add": [{"subject": "B-1", "kind": "passport"}]},
        {"add": [{"subject": "B-1", "valid_until": "tomorrow"}]},
        {"add": [42]},
        {"version": 0, "entries": []},
        {"version": "7", "entries": []},
        {"remove": [""]},
    ],
)
def test_allowlist_refuses_bad_arguments_and_changes_nothing(
    rig: Rig, args: dict[str, Any]
) -> None:
    rig.run("allowlist", add=["KEEP-1"])
    with pytest.raises(CommandRejectedError):
        rig.run("allowlist", **args)
    assert [entry.subject for entry in rig.store.allowlist.entries()] == ["KEEP-1"]


def test_revoke_by_jti_and_subject(rig: Rig) -> None:
    rig.run("allowlist", add=["B-1"])
    now = rig.clock.now()
    first, second = token(rig.old_key, "old", now, "W-1"), token(rig.old_key, "old", now, "W-2")
    assert rig.run("revoke", jti=["j-W-1"], subjects=["B-1"]) == "revoked 1 passes and 1 subjects"
    assert rig.scan(first) == ("denied", "revoked")
    assert rig.scan(second) == ("granted", "ok")
    assert rig.scan(b"B-1") == ("denied", "revoked")


@pytest.mark.parametrize(
    "args", [{}, {"jti": "j-1"}, {"subjects": [1]}, {"jti": ["j"], "until": "x"}]
)
def test_revoke_refuses_bad_arguments(rig: Rig, args: dict[str, Any]) -> None:
    with pytest.raises(CommandRejectedError):
        rig.run("revoke", **args)


def test_keys_replace_the_pass_keys_durably(rig: Rig, tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    new_path, _ = create_signing_key(tmp_path / "new", "new", "ES256")
    new_key = load_private_key(new_path)
    now = rig.clock.now()
    detail = rig.run("keys", jwks={"keys": [public_jwk(new_key, "new")]})
    assert detail == "pass keys replaced (1 keys)"
    assert rig.scan(token(new_key, "new", now, "W-3")) == ("granted", "ok")
    assert rig.scan(token(rig.old_key, "old", now, "W-4")) == ("denied", "unknown_key")
    pushed = pushed_jwks_path(rig.config.store.path)
    assert json.loads(pushed.read_text())["keys"][0]["kid"] == "new"
    assert not list(pushed.parent.glob(".pushed-jwks.json.*"))  # no staging file left

    restarted = rig.new_gate()
    load_pushed_keys(restarted, pushed)
    assert restarted.policy.evaluate(token(new_key, "new", now, "W-5")).granted


@pytest.mark.parametrize(
    "jwks",
    [
        None,
        {"keys": "none"},
        {"keys": []},
        {"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "d": "BBBB", "kid": "p"}]},
    ],
    ids=["missing", "not-a-list", "empty", "private-key"],
)
def test_keys_refuses_unusable_sets_and_keeps_the_old_keys(rig: Rig, jwks: object) -> None:
    with pytest.raises(CommandRejectedError):
        rig.run("keys", jwks=jwks)
    assert not pushed_jwks_path(rig.config.store.path).exists()
    assert rig.scan(token(rig.old_key, "old", rig.clock.now(), "W-6")) == ("granted", "ok")
