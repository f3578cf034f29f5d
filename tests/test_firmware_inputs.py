"""Exit button, door contact and fire alarm, driven with drive_high/drive_low on mock pins.

The inputs use pull-ups, so a mock input pin reads high (contact open) until the test
drives it low (contact closed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory

from firmware.errors import FirmwareError
from firmware.inputs import BOUNCE_S, InputEvent, Inputs
from firmware.outputs import Outputs
from firmware.pins import Contact, InputPins, OutputPins
from firmware.scheduler import ManualScheduler

OUTPUTS = OutputPins(relay=17, green_led=23, red_led=24, buzzer=25)
INPUTS = InputPins(
    exit_button=Contact(5, "closed"),
    door_contact=Contact(6, "open"),
    fire_alarm=Contact(13, "closed"),
)
F, T = False, True


def levels(pin: Any) -> list[bool]:
    return [bool(change.state) for change in pin.states]


@dataclass
class Rig:
    factory: MockFactory
    clock: ManualScheduler
    outputs: Outputs
    inputs: Inputs
    events: list[InputEvent]

    def pin(self, number: int) -> Any:
        return self.factory.pin(number)

    @property
    def relay(self) -> Any:
        return self.pin(17)

    @property
    def buzzer(self) -> Any:
        return self.pin(25)

    def press_exit(self) -> None:
        self.pin(5).drive_low()
        self.pin(5).drive_high()

    def open_door(self) -> None:
        self.pin(6).drive_high()

    def shut_door(self) -> None:
        self.pin(6).drive_low()


def build(factory: MockFactory, inputs: InputPins = INPUTS) -> Rig:
    clock = ManualScheduler()
    outputs = Outputs(OUTPUTS, factory, pulse_s=0.8, scheduler=clock)
    events: list[InputEvent] = []
    watched = Inputs(
        inputs, factory, outputs, events.append, door_held_s=30, door_grace_s=1, scheduler=clock
    )
    return Rig(factory, clock, outputs, watched, events)


@pytest.fixture
def rig(mock_factory: MockFactory) -> Iterator[Rig]:
    """A gate at rest: door shut, no alarm, every record cleared."""
    built = build(mock_factory)
    built.shut_door()
    built.events.clear()
    for number in (17, 23, 24, 25):
        built.pin(number).clear_states()
    yield built
    built.inputs.close()
    built.outputs.close()


def test_exit_button_pulses_the_relay_once_and_reports(rig: Rig) -> None:
    rig.pin(5).drive_low()
    assert rig.relay.state
    rig.clock.advance(10)  # held down: still a single timed pulse
    rig.pin(5).drive_high()
    rig.clock.advance(10)
    assert levels(rig.relay) == [F, T, F]
    assert rig.events == [InputEvent("exit_request")]
    assert levels(rig.pin(23)) == [F]  # no feedback pattern


def test_exit_button_still_opens_in_lockdown(rig: Rig) -> None:
    rig.outputs.set_mode("lockdown")
    rig.press_exit()
    assert rig.relay.state
    assert rig.events == [InputEvent("exit_request")]


def test_door_opened_without_release_is_forced(rig: Rig) -> None:
    rig.open_door()
    rig.shut_door()
    rig.open_door()
    assert rig.events == [InputEvent("door_forced"), InputEvent("door_forced")]


def test_door_opened_during_a_pulse_or_its_grace_is_a_passage(rig: Rig) -> None:
    rig.outputs.granted()
    rig.clock.advance(0.5)
    rig.open_door()
    rig.shut_door()
    rig.clock.advance(1.2)  # 0.5 s after the pulse ended: within the 1 s grace
    rig.open_door()
    rig.shut_door()
    rig.clock.advance(0.5)  # 1.0 s after: no longer
    rig.open_door()
    assert rig.events == [InputEvent("door_forced")]


def test_exit_button_then_door_is_a_passage(rig: Rig) -> None:
    rig.press_exit()
    rig.open_door()
    assert rig.events == [InputEvent("exit_request")]


def test_door_held_open_raises_the_alarm_until_shut(rig: Rig) -> None:
    rig.outputs.granted()
    rig.open_door()
    rig.clock.advance(29.9)
    assert rig.events == []
    rig.clock.advance(0.1)
    assert rig.events == [InputEvent("door_held")]
    assert rig.outputs.snapshot().door_alarm
    assert rig.inputs.snapshot().door_held
    rig.clock.advance(1.7)  # on 0.5, off 0.5, on 0.5, off from 31.5
    rig.shut_door()
    rig.clock.advance(60)
    assert rig.events == [InputEvent("door_held"), InputEvent("door_held", active=False)]
    # the grant's beep, then the alarm's two beats, silent once the door is shut
    assert levels(rig.buzzer) == [F, T, F, T, F, T, F]
    assert not rig.outputs.snapshot().door_alarm


def test_door_shut_in_time_raises_nothing(rig: Rig) -> None:
    rig.outputs.granted()
    rig.open_door()
    rig.clock.advance(29.9)
    rig.shut_door()
    rig.clock.advance(60)
    assert rig.events == []
    assert levels(rig.buzzer) == [F, T, F]


def test_door_open_in_emergency_is_not_held_until_the_emergency_ends(rig: Rig) -> None:
    rig.outputs.set_mode("emergency")
    rig.open_door()
    rig.clock.advance(300)
    assert rig.events == []
    rig.outputs.set_mode("normal")
    rig.clock.advance(1.0)
    assert rig.events == [InputEvent("door_held")]


def test_fire_alarm_opens_the_gate_and_then_returns_to_the_commanded_mode(rig: Rig) -> None:
    rig.outputs.set_mode("lockdown")
    rig.pin(13).drive_low()
    assert rig.outputs.mode == "emergency"
    assert rig.relay.state
    rig.open_door()  # people leaving: not forced
    rig.clock.advance(600)  # nor held
    rig.pin(13).drive_high()
    assert rig.outputs.mode == "lockdown"
    assert not rig.relay.state
    assert rig.events == [InputEvent("fire_alarm"), InputEvent("fire_alarm", active=False)]
    assert levels(rig.relay) == [F, T, F]


def test_normally_closed_fire_loop_cut_at_start_opens_the_gate(mock_factory: MockFactory) -> None:
    # The pull-up reads the loop open: a cut wire, or the alarm. Both must open the gate.
    supervised = InputPins(fire_alarm=Contact(13, "open"))
    rig = build(mock_factory, supervised)
    try:
        assert rig.events == [InputEvent("fire_alarm")]
        assert rig.outputs.mode == "emergency"
        rig.pin(13).drive_low()  # loop restored
        assert rig.outputs.mode == "normal"
        assert rig.events[-1] == InputEvent("fire_alarm", active=False)
    finally:
        rig.inputs.close()
        rig.outputs.close()


def test_door_found_open_at_start_is_timed_but_not_forced(mock_factory: MockFactory) -> None:
    rig = build(mock_factory, InputPins(door_contact=Contact(6, "open")))
    try:
        assert rig.inputs.snapshot().door_open
        rig.clock.advance(30)
        assert rig.events == [InputEvent("door_held")]
    finally:
        rig.inputs.close()
        rig.outputs.close()


def test_normally_closed_exit_button_presses_by_opening(mock_factory: MockFactory) -> None:
    rig = build(mock_factory, InputPins(exit_button=Contact(5, "open")))
    try:
        rig.pin(5).drive_low()  # at rest
        rig.pin(5).drive_high()  # pressed: the contact opens
        assert rig.events == [InputEvent("exit_request")]
        assert rig.relay.state
    finally:
        rig.inputs.close()
        rig.outputs.close()


def test_a_failing_report_does_not_stop_the_gate(mock_factory: MockFactory) -> None:
    clock = ManualScheduler()
    seen: list[InputEvent] = []

    def report(event: InputEvent) -> None:
        seen.append(event)
        raise RuntimeError("broker client gone")

    with Outputs(OUTPUTS, mock_factory, pulse_s=0.8, scheduler=clock) as outputs:
        inputs = Inputs(INPUTS, mock_factory, outputs, report, scheduler=clock)
        mock_factory.pin(6).drive_low()
        mock_factory.pin(5).drive_low()
        assert outputs.snapshot().relay
        mock_factory.pin(13).drive_low()
        assert outputs.mode == "emergency"
        assert seen == [InputEvent("exit_request"), InputEvent("fire_alarm")]
        inputs.close()


def test_close_lifts_what_the_inputs_raised_and_stops_listening(rig: Rig) -> None:
    rig.pin(13).drive_low()
    rig.open_door()
    rig.outputs.set_mode("normal")
    rig.inputs.close()
    rig.inputs.close()
    assert rig.outputs.mode == "normal"
    assert not rig.outputs.snapshot().door_alarm
    events = list(rig.events)
    rig.clock.advance(60)
    assert rig.events == events
    assert rig.pin(5).when_changed is None
    assert not rig.inputs.snapshot().exit_pressed


def test_door_alarm_is_lifted_on_close(rig: Rig) -> None:
    rig.open_door()
    rig.clock.advance(30)
    assert rig.outputs.snapshot().door_alarm
    rig.inputs.close()
    assert not rig.outputs.snapshot().door_alarm


def test_inputs_are_debounced_and_pulled_up(rig: Rig) -> None:
    for number in (5, 6, 13):
        assert rig.pin(number).bounce == BOUNCE_S
        assert rig.pin(number).pull == "up"


def test_no_inputs_fitted(mock_factory: MockFactory) -> None:
    rig = build(mock_factory, InputPins())
    try:
        assert rig.inputs.snapshot() == type(rig.inputs.snapshot())(F, F, F, F)
        assert rig.events == []
    finally:
        rig.inputs.close()
        rig.outputs.close()


def test_an_input_on_a_pin_in_use_is_named(mock_factory: MockFactory) -> None:
    clock = ManualScheduler()
    with Outputs(OUTPUTS, mock_factory, pulse_s=0.8, scheduler=clock) as outputs:
        clash = InputPins(exit_button=Contact(5), fire_alarm=Contact(17))
        with pytest.raises(FirmwareError, match="cannot read the fire_alarm on GPIO17"):
            Inputs(clash, mock_factory, outputs, print, scheduler=clock)
        Inputs(InputPins(exit_button=Contact(5)), mock_factory, outputs, print).close()
