"""Signed commands: what runs, what is rejected and why, and `qrgate cmd` end to end
through a real broker (RELIABILITY.md fault 13)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from jwt.algorithms import ECAlgorithm, OKPAlgorithm

from mqtt.commands import (
    ARGUMENTS,
    Command,
    CommandIntake,
    CommandKeyError,
    CommandPolicy,
    ReplayGuard,
    load_command_keys,
    public_keys,
)
from mqtt.errors import CommandRejectedError
from mqtt.remote import CommandError, sign_command
from mqtt.topics import COMMANDS
from scanner.cli import run
from scanner.config import parse_config
from scanner.errors import ConfigError
from scanner.mqttconfig import command_intake
from tests.support.broker import Mosquitto
from tests.support.clients import publish
from tests.support.gate import GATE, SITE, TOPICS, new_outbox, publisher_for
from tests.support.recorder import Recorder

NOW = 1_790_000_000.0
ED_KEY = ed25519.Ed25519PrivateKey.generate()
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ed25519.Ed25519PrivateKey.generate()


def jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = OKPAlgorithm if isinstance(key, ed25519.Ed25519PrivateKey) else ECAlgorithm
    return {**json.loads(algorithm.to_jwk(key.public_key())), "kid": kid}


JWKS = {"keys": [jwk(ED_KEY, "ops-1"), jwk(EC_KEY, "ops-2")]}


class Gate:
    """Handlers that record what they were asked to do."""

    def __init__(self) -> None:
        self.done: list[Command] = []

    def handlers(self) -> dict[str, Callable[[Command], str | None]]:
        return dict.fromkeys(("open", "lockdown", "allowlist", "keys"), self.record) | {
            "emergency": self.explode,
            "normal": self.busy,
        }

    def record(self, command: Command) -> str:
        self.done.append(command)
        return f"{command.name} done"

    @staticmethod
    def explode(_: Command) -> str:
        raise RuntimeError("relay driver gone")

    @staticmethod
    def busy(_: Command) -> str:
        raise CommandRejectedError("fire_alarm_active")


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def intake(tmp_path: Path, gate: Gate) -> CommandIntake:
    return CommandIntake(
        TOPICS,
        public_keys(JWKS),
        gate.handlers(),
        ReplayGuard(tmp_path / "qrgate.db"),
        CommandPolicy(max_lifetime_s=300, clock_skew_s=30),
        clock=lambda: NOW,
    )


def token(
    claims: dict[str, Any], key: Any = ED_KEY, kid: str = "ops-1", alg: str = "EdDSA"
) -> bytes:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid}).encode()


def claims(name: str = "open", **changes: Any) -> dict[str, Any]:
    base = {
        "cmd": name,
        "site": SITE,
        "gate": GATE,
        "jti": str(uuid.uuid4()),
        "iat": NOW - 5,
        "exp": NOW + 55,
        "args": {},
    }
    return {key: value for key, value in {**base, **changes}.items() if value is not None}


def test_a_signed_gate_command_runs_and_is_answered(intake: CommandIntake, gate: Gate) -> None:
    sent = claims("open", args={"seconds": 5})
    reply = intake.handle(TOPICS.command("open"), token(sent), retained=False)
    assert (reply.id, reply.command, reply.outcome, reply.detail) == (
        sent["jti"],
        "open",
        "ok",
        "open done",
    )
    (done,) = gate.done
    assert (done.args, done.gate, done.id) == ({"seconds": 5.0}, GATE, sent["jti"])


def test_a_site_command_signed_with_es256_runs(intake: CommandIntake, gate: Gate) -> None:
    sent = token(claims("lockdown", gate=None), EC_KEY, "ops-2", "ES256")
    reply = intake.handle(TOPICS.site_command("lockdown"), sent, retained=False)
    assert reply.outcome == "ok"
    assert gate.done[0].gate is None


HS256_WITH_PUBLIC_KEY = jwt.api_jws.PyJWS(algorithms=["HS256"])


@pytest.mark.parametrize(
    ("payload", "topic", "reason"),
    [
        (b"", "open", "malformed"),
        (b"\xff\x00 not a token", "open", "malformed"),
        (jwt.encode(claims(), None, algorithm="none").encode(), "open", "bad_algorithm"),
        (
            HS256_WITH_PUBLIC_KEY.encode(
                json.dumps(claims()).encode(),
                ED_KEY.public_key().public_bytes(
                    serialization.Encoding.Raw, serialization.PublicFormat.Raw
                ),
                algorithm="HS256",
                headers={"kid": "ops-1"},
            ).encode(),
            "open",
            "bad_algorithm",
        ),
        (token(claims(), OTHER_KEY), "open", "bad_signature"),
        (token(claims(), kid="nobody"), "open", "unknown_key"),
        (token(claims(), ED_KEY, "ops-2", "EdDSA"), "open", "bad_algorithm"),
        (token(claims(iat=NOW - 200, exp=NOW - 31)), "open", "expired"),
        (token(claims(iat=NOW + 31, exp=NOW + 90)), "open", "not_yet_valid"),
        (token(claims(exp=NOW + 3600)), "open", "lifetime_too_long"),
        (token(claims(jti=None)), "open", "missing_claim: jti"),
        (token(claims(exp=None)), "open", "missing_claim: exp"),
        (token(claims(exp="soon")), "open", "malformed"),
        (token(claims("lockdown")), "open", "wrong_command"),
        (token(claims(site="factory-2")), "open", "wrong_target"),
        (token(claims(gate="gate-2")), "open", "wrong_target"),
        (token(claims(gate=None)), "open", "wrong_target"),
        (token(claims(args={"seconds": -1})), "open", "bad_args: seconds: "),
        (token(claims(args={"door": "left"})), "open", "bad_args: door: "),
        (token(claims("reboot")), "reboot", "unsupported"),
        (token(claims("revoke", args={"subjects": ["W-1"]})), "revoke", "unsupported"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_bad_commands_are_rejected_and_change_nothing(
    intake: CommandIntake, gate: Gate, payload: bytes, topic: str, reason: str
) -> None:
    reply = intake.handle(TOPICS.command(topic), payload, retained=False)
    assert reply.outcome.startswith(f"rejected: {reason}")
    assert gate.done == []


def test_a_gate_claim_on_a_site_topic_is_the_wrong_target(intake: CommandIntake) -> None:
    reply = intake.handle(TOPICS.site_command("open"), token(claims()), retained=False)
    assert reply.outcome == "rejected: wrong_target"


def test_a_replay_is_rejected_even_after_a_restart(
    intake: CommandIntake, gate: Gate, tmp_path: Path
) -> None:
    sent = token(claims())
    assert intake.handle(TOPICS.command("open"), sent, retained=False).outcome == "ok"
    assert intake.handle(TOPICS.command("open"), sent, retained=False).outcome == (
        "rejected: replayed"
    )
    restarted = CommandIntake(
        TOPICS,
        public_keys(JWKS),
        gate.handlers(),
        ReplayGuard(tmp_path / "qrgate.db"),
        clock=lambda: NOW + 10,
    )
    assert restarted.handle(TOPICS.command("open"), sent, retained=False).outcome == (
        "rejected: replayed"
    )
    assert len(gate.done) == 1


def test_a_retained_command_is_ignored_and_answered(intake: CommandIntake, gate: Gate) -> None:
    sent = claims()
    reply = intake.handle(TOPICS.command("open"), token(sent), retained=True)
    assert (reply.id, reply.outcome) == (sent["jti"], "rejected: retained")
    assert gate.done == []


def test_a_failing_handler_becomes_a_failed_reply(intake: CommandIntake) -> None:
    reply = intake.handle(TOPICS.command("emergency"), token(claims("emergency")), retained=False)
    assert reply.outcome == "failed: RuntimeError: relay driver gone"


def test_a_handler_may_reject_with_its_own_reason(intake: CommandIntake) -> None:
    reply = intake.handle(TOPICS.command("normal"), token(claims("normal")), retained=False)
    assert reply.outcome == "rejected: fire_alarm_active"


@pytest.mark.parametrize(
    ("args", "accepted"),
    [
        ({"version": 3, "entries": ["W-1", {"subject": "079123456789", "kind": "cccd"}]}, True),
        ({"add": ["W-1"], "remove": ["W-2"]}, True),
        ({"add": [{"subject": "162979388586171100", "kind": "vnqr"}]}, True),
        ({"add": [{"subject": "W-1", "kind": "pass"}]}, False),
        ({"entries": ["W-1"]}, False),  # a snapshot without its version
        ({"version": 3, "entries": [], "add": ["W-1"]}, False),
        ({}, False),
        ({"add": ["bad id!"]}, False),
    ],
)
def test_allowlist_takes_a_snapshot_or_changes(
    intake: CommandIntake, gate: Gate, args: dict[str, Any], accepted: bool
) -> None:
    reply = intake.handle(
        TOPICS.command("allowlist"), token(claims("allowlist", args=args)), retained=False
    )
    assert (reply.outcome == "ok") is accepted
    if accepted and "entries" in args:
        assert gate.done[0].args["entries"][0] == {
            "subject": "W-1",
            "kind": "badge",
            "kinds": None,
            "name": None,
            "birth_date": None,
            "valid_from": None,
            "valid_until": None,
        }


def test_keys_accepts_public_keys_only(intake: CommandIntake) -> None:
    private = {**jwk(OTHER_KEY, "new"), "d": "secret"}
    bad = intake.handle(
        TOPICS.command("keys"),
        token(claims("keys", args={"jwks": {"keys": [private]}})),
        retained=False,
    )
    assert bad.outcome.startswith("rejected: bad_args")
    assert "private" in bad.outcome
    good = intake.handle(
        TOPICS.command("keys"),
        token(claims("keys", args={"jwks": {"keys": [jwk(OTHER_KEY, "new")]}})),
        retained=False,
    )
    assert good.outcome == "ok"


def test_every_command_has_an_argument_model() -> None:
    assert set(ARGUMENTS) == set(COMMANDS)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "No such file"),
        ("{not json", "Expecting property name"),
        (json.dumps({"keys": []}), "at least one key"),
        (json.dumps({"keys": [{**jwk(ED_KEY, "a"), "d": "x"}]}), "private"),
        (json.dumps({"keys": [{k: v for k, v in jwk(ED_KEY, "a").items() if k != "kid"}]}), "kid"),
    ],
)
def test_unusable_command_keys_say_why(tmp_path: Path, content: str | None, problem: str) -> None:
    path = tmp_path / "command-keys.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(CommandKeyError, match=problem):
        load_command_keys(path)


def test_config_maps_to_an_intake_or_names_the_key(tmp_path: Path) -> None:
    store = {"path": str(tmp_path / "q.db")}
    disabled = parse_config({"commands": {"enabled": False}, "store": store})
    assert command_intake(disabled, {}) is None
    missing = parse_config({"commands": {"jwks": "nope.json"}, "store": store}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"commands\.jwks"):
        command_intake(missing, {})
    (tmp_path / "keys.json").write_text(json.dumps(JWKS))
    enabled = parse_config({"commands": {"jwks": "keys.json"}, "store": store}, base_dir=tmp_path)
    assert isinstance(command_intake(enabled, {}), CommandIntake)


def test_sign_command_refuses_what_a_gate_would_reject() -> None:
    with pytest.raises(CommandError, match="unknown command"):
        sign_command("reboot", key=ED_KEY, kid="ops-1", site=SITE)
    with pytest.raises(CommandError, match="bad_args"):
        sign_command("open", key=ED_KEY, kid="ops-1", site=SITE, args={"seconds": 0})
    with pytest.raises(CommandError, match="site"):
        sign_command("open", key=ED_KEY, kid="ops-1", site="a/b")


# --- End to end: `qrgate cmd` -> broker -> publisher -> handler -> reply -> `qrgate cmd`


@pytest.fixture
def live_gate(tmp_path: Path, mosquitto: Mosquitto, gate: Gate) -> Iterator[Path]:
    """A gate connected to the broker with command intake; yields a CLI config for it."""
    db = tmp_path / "gate" / "qrgate.db"
    intake = CommandIntake(TOPICS, public_keys(JWKS), gate.handlers(), ReplayGuard(db))
    publisher = publisher_for(mosquitto, new_outbox(db), commands=intake)
    publisher.start()
    key = tmp_path / "ops-1.key.pem"
    key.write_bytes(
        ED_KEY.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    config = tmp_path / "centre.toml"
    config.write_text(
        f'[gate]\nsite = "{SITE}"\n[mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'
    )
    deadline = time.monotonic() + 10
    while not publisher.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    yield config
    publisher.stop()


def qrgate_cmd(config: Path, *args: str) -> int:
    key = config.parent / "ops-1.key.pem"
    return run(["cmd", *args, "--key", str(key), "--kid", "ops-1", "-c", str(config)])


def test_qrgate_cmd_opens_the_gate_and_prints_its_reply(
    live_gate: Path, gate: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    assert qrgate_cmd(live_gate, "open", "--gate", GATE, "seconds=3") == 0
    assert capsys.readouterr().out == f"{SITE}/{GATE}: ok (open done)\n"
    assert [command.args for command in gate.done] == [{"seconds": 3.0}]


def test_qrgate_cmd_to_a_site_collects_replies_as_json(
    live_gate: Path, gate: Gate, capsys: pytest.CaptureFixture[str]
) -> None:
    assert qrgate_cmd(live_gate, "lockdown", "--expect", "1", "--json") == 0
    reply = json.loads(capsys.readouterr().out)
    assert (reply["gate"], reply["command"], reply["outcome"]) == (GATE, "lockdown", "ok")
    assert gate.done[0].gate is None


def test_qrgate_cmd_exits_1_on_a_failed_command_or_no_reply(
    live_gate: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert qrgate_cmd(live_gate, "emergency", "--gate", GATE) == 1
    assert "failed: RuntimeError: relay driver gone" in capsys.readouterr().out
    assert qrgate_cmd(live_gate, "open", "--gate", "gate-9", "--timeout", "0.5") == 1
    assert "no reply from factory-1/gate-9 within 0.5 s" in capsys.readouterr().err


def test_qrgate_cmd_refuses_bad_arguments_before_sending(live_gate: Path) -> None:
    assert qrgate_cmd(live_gate, "open", "--gate", GATE, "seconds=-4") == 2
    assert qrgate_cmd(live_gate, "open", "--gate", GATE, "seconds") == 2


def test_unsigned_and_retained_commands_over_mqtt_change_nothing(
    mosquitto: Mosquitto, live_gate: Path, gate: Gate
) -> None:
    recorder = Recorder(mosquitto, TOPICS.reply, client_id="reply-recorder").start()
    forged = claims(iat=time.time(), exp=time.time() + 60)
    publish(mosquitto, TOPICS.command("open"), b"please open")
    publish(mosquitto, TOPICS.command("open"), token(forged, OTHER_KEY))
    assert recorder.wait(lambda r: len(r.messages) >= 2)
    outcomes = [message.json()["outcome"] for message in recorder.messages]
    assert outcomes == ["rejected: malformed", "rejected: bad_signature"]
    valid = claims(iat=time.time(), exp=time.time() + 60)
    publish(mosquitto, TOPICS.command("open"), token(valid), retain=True)
    assert recorder.wait(lambda r: len(r.messages) >= 3)
    assert recorder.messages[-1].json() | {"ts": None} == {
        "id": valid["jti"],
        "command": "open",
        "outcome": "rejected: retained",
        "detail": None,
        "ts": None,
    }
    publish(mosquitto, TOPICS.command("open"), b"", retain=True)  # clear the retained one
    recorder.stop()
    assert gate.done == []
