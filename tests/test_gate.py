"""The gate's decision path on real parts: SQLite store and outbox, mock pins, real keys.

What matters most here is the order (persist, then act) and what happens when the event
cannot be persisted: nobody passes, the fault is visible, and the gate recovers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from firmware.inputs import InputEvent
from firmware.scheduler import ManualScheduler
from mqtt.clock import ClockTrust
from mqtt.outbox import Outbox, OutboxLimits
from scanner.clock import ManualClock
from scanner.config import parse_config
from scanner.credentials.keys import create_signing_key, load_private_key
from scanner.credentials.passes import issue_pass
from scanner.daemon.assemble import LateBound
from scanner.daemon.gate import Gate
from scanner.daemon.hardware import open_inputs, open_outputs
from scanner.decision.policy import Policy
from scanner.state.store import AllowEntry, Store, StoreError

RELAY, GREEN, RED = 17, 23, 24
EXIT, DOOR, FIRE = 5, 6, 13


def levels(factory: MockFactory, pin: int) -> list[bool]:
    return [bool(change.state) for change in factory.pin(pin).states]


class SpyOutbox(Outbox):
    """An outbox that notes where the relay was each time an event was committed."""

    factory: MockFactory
    relay_at_append: list[bool]

    def append(self, *args: Any, **kwargs: Any) -> Any:
        event = super().append(*args, **kwargs)
        self.relay_at_append.append(bool(self.factory.pin(RELAY).state))
        return event


@dataclass
class Rig:
    gate: Gate
    outbox: SpyOutbox
    store: Store
    clock: ManualClock
    timer: ManualScheduler
    factory: MockFactory
    key: Any

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(row.payload) for row in self.outbox.pending(limit=1000)]

    def pass_for(self, subject: str, **claims: Any) -> bytes:
        return issue_pass(
            self.key, "k1", subject, now=self.clock.now(), valid_for_s=3600, **claims
        ).encode()


CONFIG = {
    "gpio": {"pin_factory": "mock", "exit_button": EXIT, "door_contact": DOOR, "fire_alarm": FIRE},
    "policy": {"accept": ["pass", "badge", "cccd"], "repeat_window_s": 5.0},
}


@pytest.fixture
def rig(tmp_path: Path, mock_factory: MockFactory) -> Iterator[Rig]:
    (tmp_path / "keys").mkdir()
    key_path, jwks = create_signing_key(tmp_path / "keys", "k1", "EdDSA")
    config = parse_config(
        {**CONFIG, "passes": {"jwks": str(jwks)}, "store": {"path": str(tmp_path / "q.db")}}
    )
    clock, timer = ManualClock(), ManualScheduler()
    outbox = SpyOutbox(config.store.path, "factory-1", "gate-1", "in", OutboxLimits(max_rows=5))
    outbox.factory, outbox.relay_at_append = mock_factory, []
    store = Store.open(config.store.path)
    store.allowlist.add(AllowEntry("B-1", "Badge One"))
    outputs = open_outputs(config.gpio, mock_factory, scheduler=timer)
    trust = ClockTrust(wall=clock.now, monotonic=clock.monotonic, synced=lambda: None)
    gate = Gate(Policy.from_config(config, store, clock), outbox, outputs, clock, trust)
    yield Rig(gate, outbox, store, clock, timer, mock_factory, load_private_key(key_path))
    outputs.close()
    store.close()
    outbox.close()


def test_a_granted_pass_is_recorded_before_the_relay_moves(rig: Rig) -> None:
    decision = rig.gate.scan(rig.pass_for("W-1", name="An"), captured=rig.clock.monotonic())
    assert decision is not None
    assert (decision.result, decision.reason) == ("granted", "ok")
    assert rig.outbox.relay_at_append == [False]
    assert levels(rig.factory, RELAY) == [False, True]
    (event,) = rig.events()
    assert (event["type"], event["result"], event["subject"], event["name"]) == (
        "scan",
        "granted",
        "W-1",
        "An",
    )
    assert event["seq"] == 1
    assert event["latency_ms"] == 0.0  # the manual clock did not move
    assert event["ts_trusted"] is True


def test_denied_and_unreadable_codes_get_their_own_patterns(rig: Rig) -> None:
    rig.gate.scan(b"B-unknown")
    assert rig.gate.outputs.snapshot().pattern == "denied"
    rig.timer.advance(5)
    rig.gate.scan(b"https://example.com")
    assert rig.gate.outputs.snapshot().pattern == "unreadable"
    assert levels(rig.factory, RELAY) == [False]
    assert [(e["reason"], e["credential"]) for e in rig.events()] == [
        ("not_allowed", "badge"),
        ("unknown_format", "unknown"),
    ]


def test_the_same_code_held_up_gives_one_event(rig: Rig) -> None:
    assert rig.gate.scan(b"B-1") is not None
    rig.clock.advance(1)
    assert rig.gate.scan(b"B-1") is None
    assert len(rig.events()) == 1
    assert levels(rig.factory, RELAY) == [False, True]


def test_a_full_outbox_denies_without_opening_and_recovers(rig: Rig) -> None:
    for number in range(5):
        rig.gate.record("fault", detail=f"filler {number}")
    decision = rig.gate.scan(b"B-1")
    assert decision is not None
    assert (decision.result, decision.reason) == ("denied", "store_full")
    assert levels(rig.factory, RELAY) == [False]
    assert rig.gate.outputs.snapshot().pattern == "fault"
    assert "outbox" in rig.gate.figures()["faults"]

    rig.outbox.ack([row.entry for row in rig.outbox.pending()])  # the broker took them
    rig.clock.advance(10)
    decision = rig.gate.scan(b"B-1")
    assert decision is not None
    assert decision.granted
    recovered, scan = rig.events()
    assert recovered["type"] == "fault"
    assert "recovered" in recovered["detail"]
    assert "1 scans denied meanwhile" in recovered["detail"]
    assert (recovered["seq"], scan["result"], scan["seq"]) == (6, "granted", 7)
    assert rig.gate.figures()["faults"] == {}


def test_an_unreadable_store_denies_and_raises_a_fault(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_subject: str) -> None:
        raise StoreError("database disk image is malformed")

    monkeypatch.setattr(rig.store.allowlist, "get", broken)
    decision = rig.gate.scan(b"B-1")
    assert decision is not None
    assert (decision.result, decision.reason) == ("denied", "store_error")
    assert levels(rig.factory, RELAY) == [False]
    fault, scan = rig.events()
    assert fault["type"] == "fault"
    assert "store" in fault["detail"]
    assert scan["reason"] == "store_error"


def test_a_clock_stepped_back_flags_events_but_keeps_seq(rig: Rig) -> None:
    rig.gate.scan(b"B-1")
    rig.clock.jump(0.0)  # a Pi without a real-time clock, booted before NTP answered
    rig.clock.advance(10)
    rig.gate.scan(b"B-2")
    first, second = rig.events()
    assert (first["seq"], first["ts_trusted"]) == (1, True)
    assert (second["seq"], second["ts_trusted"]) == (2, False)
    assert second["ts"].startswith("1970-01-01")


def test_modes_are_persisted_recorded_and_shown(rig: Rig, tmp_path: Path) -> None:
    assert rig.gate.set_mode("lockdown", by="command c-1") == "mode lockdown"
    decision = rig.gate.scan(b"B-1")
    assert decision is not None
    assert (decision.result, decision.reason) == ("denied", "lockdown")
    assert rig.gate.outputs.snapshot().red
    assert rig.store.get_mode() == "lockdown"
    mode_event = rig.events()[0]
    assert (mode_event["type"], mode_event["detail"]) == ("mode", "lockdown by command c-1")


def test_a_remote_opening_is_recorded_then_timed(rig: Rig) -> None:
    assert rig.gate.open(10, by="command c-2") == "opened for 10 s"
    assert rig.outbox.relay_at_append == [False]
    rig.timer.advance(9)
    assert rig.gate.outputs.snapshot().relay
    rig.timer.advance(2)
    assert levels(rig.factory, RELAY) == [False, True, False]
    (event,) = rig.events()
    assert (event["type"], event["reason"], event["detail"]) == (
        "exit_request",
        "remote",
        "opened for 10 s by command c-2",
    )


def test_inputs_are_recorded_as_events(rig: Rig, tmp_path: Path) -> None:
    config = parse_config(CONFIG)
    inputs = open_inputs(
        config.gpio, rig.factory, rig.gate.outputs, rig.gate.on_input, scheduler=rig.timer
    )
    try:
        exit_button, door, fire = (rig.factory.pin(n) for n in (EXIT, DOOR, FIRE))
        exit_button.drive_low()  # pressed: the contact closes to ground
        exit_button.drive_high()
        rig.timer.advance(5)
        door.drive_low()  # shut (the contact closes; the mock pin starts pulled up, open)
        door.drive_high()  # opened without a grant
        door.drive_low()
        fire.drive_low()
        fire.drive_high()
    finally:
        inputs.close()
    kinds = [(e["type"], e["reason"] or e["detail"]) for e in rig.events()]
    assert kinds == [
        ("exit_request", "button"),
        ("door_forced", "door opened without a grant"),
        ("mode", "emergency (fire alarm active: gate held open)"),
        ("mode", "normal (fire alarm cleared)"),
    ]


def test_health_figures(rig: Rig) -> None:
    rig.gate.scan(b"B-1")
    rig.gate.scan(b"B-2")
    figures = rig.gate.figures()
    assert figures["scans"] == {"granted": 1, "denied": 1}
    assert figures["last_result"] == "denied not_allowed"
    assert figures["mode"] == "normal"
    assert figures["outputs"]["relay"] is True
    assert figures["last_scan"].endswith("Z")


@pytest.mark.parametrize("direct", [InputEvent("door_held"), InputEvent("door_held", False)])
def test_door_held_reports_both_edges(rig: Rig, direct: InputEvent) -> None:
    rig.gate.on_input(direct)
    (event,) = rig.events()
    assert event["type"] == "door_held"
    assert event["detail"] == ("door held open" if direct.active else "door closed again")


def test_output_errors_before_and_after_the_gate_exists(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """The outputs come up before the gate: an error then is logged; once the gate is
    wired, it becomes a fault in health and a `fault` event."""
    late = LateBound()
    late.output_error("GPIO write failed")  # no gate yet: logged, nothing raised
    assert "outputs: GPIO write failed" in caplog.text
    assert rig.events() == []
    late.gate = rig.gate
    late.output_error("GPIO write failed")
    assert rig.gate.figures()["faults"] == {"outputs": "GPIO write failed"}
    (event,) = rig.events()
    assert (event["type"], event["detail"]) == ("fault", "outputs: GPIO write failed")
