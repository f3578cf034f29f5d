"""What `qrgate run` loads: the live path's libraries, the second look's when a frame
first needs one, a credential kind's only when the config accepts that kind, the command
intake (and PyJWT with it) only when commands are enabled; pydantic never (the config,
the events and the command arguments are msgspec's)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from scanner.config import parse_config
from scanner.credentials.keys import create_signing_key
from tests.support.frames import Gray, damaged_frame, empty_frame
from tests.support.gate import wait_until
from tests.support.gateproc import GateProcess, write_config

SECOND_LOOK = ("PIL", "pyzbar")  # loaded when a frame first needs a second look
# A credential kind's modules and libraries: loaded only when the config accepts the kind.
KINDS = {
    "pass": ("scanner.credentials.passes", "scanner.decision.passes"),
    "dcc": ("scanner.credentials.dcc", "scanner.decision.dcc", "cbor2", "base45"),
}
COMMANDS = ("mqtt.commands", "jwt")  # PyJWT also comes with the pass kind
CLI = ("click", "scanner.cli.group", "scanner.cli.run_cmd")  # `qrgate run` goes round them
NEVER = ("pydantic", "pydantic_core")  # 10 MB of the daemon's 74 when it did


def imported_by_run(
    folder: Path,
    frames: list[Gray],
    sections: dict[str, dict[str, object]],
) -> set[str]:
    """The modules a gate imported by the end of a replay of `frames` (its own
    `-X importtime` list); the broker is down, which changes nothing here."""
    folder.mkdir()
    np.save(folder / "frames.npy", np.stack(frames))
    config = parse_config(
        {
            "camera": {"source": f"replay:{folder / 'frames.npy'}", "fps": 60.0},
            "gpio": {"pin_factory": "mock"},
            "store": {"path": str(folder / "qrgate.db")},
            "mqtt": {"host": "127.0.0.1", "port": 9, "retry_min_s": 5.0},
            "commands": {"enabled": False},
            **sections,
        }
    )
    gate = GateProcess(write_config(config, folder / "gate.toml"), {"PYTHONPROFILEIMPORTTIME": "1"})
    try:
        assert wait_until(lambda: "frames delivered" in gate.log, 30), gate.log
        code, _ = gate.terminate()
        assert code == 0, gate.log
    finally:
        gate.close()
    return set(re.findall(r"^import time:.*\|\s+(\S+)$", gate.log, flags=re.MULTILINE))


def test_nobody_in_view_needs_neither_the_second_look_nor_other_kinds(tmp_path: Path) -> None:
    nobody = [empty_frame((320, 240), seed=seed, noise=2) for seed in range(20)]
    loaded = imported_by_run(tmp_path / "nobody", nobody, {"policy": {"accept": ["badge"]}})
    assert {"numpy", "zxingcpp", "scanner.vision.decode", "scanner.camera.memory"} <= loaded
    assert not loaded & {*SECOND_LOOK, *KINDS["pass"], *KINDS["dcc"], *COMMANDS, *CLI, *NEVER}


def test_a_symbol_not_read_loads_the_second_look_and_an_accepted_kind_its_module(
    tmp_path: Path,
) -> None:
    _, jwks = create_signing_key(tmp_path, "k1", "EdDSA")
    frames = [damaged_frame(), *(empty_frame((320, 240), seed=seed) for seed in range(10))]
    sections: dict[str, dict[str, object]] = {
        "policy": {"accept": ["pass", "badge"]},
        "passes": {"jwks": str(jwks)},
    }
    loaded = imported_by_run(tmp_path / "symbol", frames, sections)
    assert {*SECOND_LOOK, "scanner.credentials.passes", "jwt"} <= loaded
    assert not loaded & {*KINDS["dcc"], "mqtt.commands", *NEVER}


def test_enabled_commands_load_the_intake(tmp_path: Path) -> None:
    _, jwks = create_signing_key(tmp_path, "centre", "EdDSA")
    nobody = [empty_frame((320, 240), seed=seed) for seed in range(10)]
    sections = {
        "policy": {"accept": ["badge"]},
        "commands": {"enabled": True, "jwks": str(jwks)},
    }
    loaded = imported_by_run(tmp_path / "commands", nobody, sections)
    assert set(COMMANDS) <= loaded
    assert not loaded & set(NEVER)
