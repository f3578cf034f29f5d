"""The installation guide against the code and the unit: what it quotes is what qrgate
prints, what it says the sandbox allows is what the unit allows, and the checklist for a
new Pi is there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_systemd_unit import GATE_UNIT, parse_unit

ROOT = Path(__file__).resolve().parent.parent
INSTALL = (ROOT / "docs" / "install.md").read_text()
SOURCES = "\n".join(
    path.read_text() for folder in ("scanner", "firmware") for path in (ROOT / folder).rglob("*.py")
)


def section(text: str, title: str) -> str:
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def test_the_checklist_for_a_new_pi_covers_camera_relay_and_a_scan() -> None:
    checklist = section(INSTALL, "On real hardware: the checklist")
    steps = [line for line in checklist.splitlines() if re.match(r"\| \d+ \|", line)]
    assert len(steps) >= 5
    text = " ".join(steps)
    assert "--list-cameras" in text  # the camera is detected
    assert "qrgate-sandboxed doctor" in text  # as the service, in its sandbox
    assert "restart qrgate" in text
    assert "stays off" in text  # the relay through a restart
    assert "valid pass" in text
    assert "relay clicks on" in text  # a scan opens it
    assert "reboot" in text
    for step in steps:  # each says what it should show
        assert step.count("|") >= 4
        assert step.rstrip(" |").rsplit("|", 1)[1].strip()


def test_the_walk_through_and_the_checklist_enroll_the_gates_event_key() -> None:
    walk_through = section(INSTALL, "7. Keys")
    checklist = section(INSTALL, "On real hardware: the checklist")
    for text in (walk_through, checklist):
        assert "sudo qrgate event-key" in text
        assert "qrgate gates enroll " in text
        assert re.search(r"factory-1/gate-1: key \S+ enrolled", text)  # what enrolling says
    assert "enroll it at the monitor with:" in walk_through  # what event-key says
    assert "not authenticated" in checklist


@pytest.mark.parametrize(
    ("quoted", "in_the_code"),
    [
        (
            "no camera found: picamera2 finds no camera connected; and no USB webcam among "
            "/dev/video*",
            ["no camera found: {", "picamera2 finds no camera connected", "and no USB webcam"],
        ),
        ("no camera since the gate started", ["no camera since the gate started ("]),
        ("picamera2 does not load: ", ["picamera2 does not load: {"]),
        ("is too old: qrgate needs ", ["is too old: qrgate needs {"]),
        ("cannot drive to the safe state: ", ["cannot drive to the safe state: "]),
        ("(held by another process, ", ["(held by another process, "]),
        ("cannot open the camera: ", ["cannot open the camera: {"]),
    ],
)
def test_troubleshooting_quotes_what_qrgate_prints(quoted: str, in_the_code: list[str]) -> None:
    assert quoted in section(INSTALL, "Troubleshooting")
    for fragment in in_the_code:
        assert fragment in SOURCES, fragment


def test_no_error_text_that_only_the_stand_in_printed() -> None:
    # picamera2 is never asked for a camera it has not listed, so its "No camera number
    # 0 found" cannot reach a technician; the gate's own message does.
    assert "No camera number 0 found" not in INSTALL
    assert "Camera __init__ sequence did not complete." in INSTALL  # picamera2's own


def test_the_sandbox_described_is_the_units() -> None:
    service = parse_unit(GATE_UNIT.read_text())["Service"]
    groups = [entry.split()[0].removeprefix("char-") for entry in service["DeviceAllow"]]
    sandbox = next(line for line in INSTALL.split("\n- ") if line.startswith("**Sandbox**"))
    for group in groups:
        assert f"`{group}`" in sandbox, group
    assert "/dev/vchiq" not in INSTALL
    assert "/dev/gpiomem`," not in sandbox  # a path some boards lack


def test_64_bit_only_is_said() -> None:
    assert "**64-bit only**" in INSTALL
    assert "32-bit" in section(INSTALL, "1. Write Raspberry Pi OS to the card")
