"""Relay, LEDs and buzzer on gpiozero's MockFactory: exact transitions, counted.

Most tests run on the manual clock, so each pin's recorded transitions are compared in
full (sequence and count, not only `assert_states`, which ignores extras) at exact
moments. One test runs the real timer thread and checks the pulse length in tolerance.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from firmware.errors import FirmwareError
from firmware.outputs import Outputs
from firmware.pins import OutputPins
from firmware.scheduler import ManualScheduler

PINS = OutputPins(relay=17, green_led=23, red_led=24, buzzer=25)
F, T = False, True


def levels(pin: Any) -> list[bool]:
    """Every level the pin has had, the first being its state when created."""
    return [bool(change.state) for change in pin.states]


class Pins:
    """The mock pins behind PINS, by role."""

    def __init__(self, factory: MockFactory, pins: OutputPins = PINS) -> None:
        self.relay, self.green, self.red, self.buzzer = (
            factory.pin(number) for _, number in pins.fitted()
        )


class BrokenPin(MockPWMPin):
    """A mock pin whose writes fail once `broken` is set, as a faulty GPIO line would."""

    broken = False

    def _set_state(self, value: bool) -> None:
        if self.broken:
            raise OSError("GPIO write failed")
        super()._set_state(value)


@pytest.fixture
def clock() -> ManualScheduler:
    return ManualScheduler()


@pytest.fixture
def outputs(mock_factory: MockFactory, clock: ManualScheduler) -> Iterator[Outputs]:
    gate = Outputs(PINS, mock_factory, pulse_s=0.8, scheduler=clock)
    yield gate
    gate.close()


@pytest.fixture
def pins(mock_factory: MockFactory, outputs: Outputs) -> Pins:
    return Pins(mock_factory)


def test_every_output_starts_inactive_and_driven(pins: Pins) -> None:
    for pin in (pins.relay, pins.green, pins.red, pins.buzzer):
        assert pin.function == "output"
        assert levels(pin) == [F]


def test_granted_releases_the_relay_before_it_returns(outputs: Outputs, pins: Pins) -> None:
    outputs.granted()
    assert pins.relay.state
    snapshot = outputs.snapshot()
    assert (snapshot.relay, snapshot.green, snapshot.buzzer, snapshot.pattern) == (
        T,
        T,
        T,
        "granted",
    )


def test_granted_green_one_beep_one_pulse_of_exact_length(
    outputs: Outputs, pins: Pins, clock: ManualScheduler
) -> None:
    outputs.granted()
    clock.advance(0.119)
    assert pins.buzzer.state
    clock.advance(0.001)
    assert not pins.buzzer.state
    clock.advance(0.679)
    assert pins.relay.state
    clock.advance(0.001)
    assert not pins.relay.state  # off at exactly 0.800 s on the injected clock
    clock.advance(5)
    assert levels(pins.relay) == [F, T, F]
    assert levels(pins.green) == [F, T, F]
    assert levels(pins.buzzer) == [F, T, F]
    assert levels(pins.red) == [F]
    assert outputs.snapshot().pattern is None


def test_second_grant_during_a_pulse_extends_it_without_a_gap(
    outputs: Outputs, pins: Pins, clock: ManualScheduler
) -> None:
    outputs.granted()
    clock.advance(0.5)
    outputs.granted()
    clock.advance(0.799)
    assert pins.relay.state
    clock.advance(0.001)
    assert not pins.relay.state  # 0.5 + 0.8 s after the first grant
    clock.advance(5)
    assert levels(pins.relay) == [F, T, F]
    assert levels(pins.green) == [F, T, F]
    assert levels(pins.buzzer) == [F, T, F, T, F]


def test_denied_red_and_three_beeps_relay_untouched(
    outputs: Outputs, pins: Pins, clock: ManualScheduler
) -> None:
    outputs.denied()
    clock.advance(1.49)
    assert pins.red.state
    clock.advance(0.01)
    assert not pins.red.state
    assert levels(pins.red) == [F, T, F]
    assert levels(pins.buzzer) == [F, T, F, T, F, T, F]
    assert levels(pins.relay) == [F]
    assert levels(pins.green) == [F]


def test_unreadable_alternates_leds_with_one_long_beep(
    outputs: Outputs, pins: Pins, clock: ManualScheduler
) -> None:
    outputs.unreadable()
    clock.advance(0.499)
    assert pins.buzzer.state
    clock.advance(5)
    assert levels(pins.green) == [F, T, F, T, F, T, F]
    assert levels(pins.red) == [F, T, F, T, F, T, F]
    assert levels(pins.buzzer) == [F, T, F]
    assert levels(pins.relay) == [F]


def test_second_code_two_quick_beeps_then_green_blinks_until_the_wait_ends(
    outputs: Outputs, pins: Pins, clock: ManualScheduler
) -> None:
    outputs.awaiting(3.0, prompt=True)
    assert outputs.snapshot().pattern == "second code"
    clock.advance(2.5)
    assert outputs.snapshot().awaiting
    outputs.awaiting(2.0)  # someone else still waits: longer, no new beeps, same rhythm
    clock.advance(10)
    assert levels(pins.buzzer) == [F, T, F, T, F]
    assert levels(pins.green) == [F, T, F, T, F, T, F, T, F, T, F]  # at 0, 1, 2, 3, 4 s
    assert levels(pins.relay) == [F]
    assert levels(pins.red) == [F]
    assert not outputs.snapshot().awaiting


def test_the_wait_stops_when_told(outputs: Outputs, pins: Pins, clock: ManualScheduler) -> None:
    outputs.awaiting(20.0, prompt=True)
    clock.advance(1.1)
    outputs.awaiting(None)
    clock.advance(5)
    assert levels(pins.green) == [F, T, F, T, F]
    outputs.denied()  # the timeout's pattern: red, three beeps, relay untouched
    clock.advance(5)
    assert levels(pins.red) == [F, T, F]
    assert levels(pins.relay) == [F]


def test_fault_flashes_red_five_times_with_two_long_beeps(
    outputs: Outputs, pins: Pins, clock: ManualScheduler
) -> None:
    outputs.fault()
    clock.advance(5)
    assert levels(pins.red) == [F, T, F, T, F, T, F, T, F, T, F]
    assert levels(pins.buzzer) == [F, T, F, T, F]
    assert levels(pins.green) == [F]
    assert levels(pins.relay) == [F]


def test_a_new_decision_replaces_the_pattern_but_keeps_the_pulse(
    outputs: Outputs, pins: Pins, clock: ManualScheduler
) -> None:
    outputs.granted()
    clock.advance(0.3)
    outputs.denied()
    assert (pins.green.state, pins.red.state, pins.relay.state) == (F, T, T)
    clock.advance(0.5)
    assert not pins.relay.state
    clock.advance(5)
    assert levels(pins.green) == [F, T, F]
    assert levels(pins.red) == [F, T, F]
    assert levels(pins.relay) == [F, T, F]
    assert levels(pins.buzzer) == [F, T, F, T, F, T, F, T, F]


def test_pulse_relay_alone_gives_no_feedback(
    outputs: Outputs, pins: Pins, clock: ManualScheduler
) -> None:
    outputs.pulse_relay()
    clock.advance(5)
    assert levels(pins.relay) == [F, T, F]
    assert levels(pins.green) == levels(pins.red) == levels(pins.buzzer) == [F]


def test_timed_opening_holds_the_relay_that_long_then_releases_it(
    outputs: Outputs, pins: Pins, clock: ManualScheduler
) -> None:
    outputs.pulse_relay(seconds=10)
    clock.advance(9.9)
    assert levels(pins.relay) == [F, T]
    clock.advance(0.2)
    assert levels(pins.relay) == [F, T, F]


@pytest.mark.parametrize("seconds", [0, -1, 3601])
def test_timed_opening_is_bounded(outputs: Outputs, pins: Pins, seconds: float) -> None:
    with pytest.raises(FirmwareError, match="opening lasts"):
        outputs.pulse_relay(seconds=seconds)
    assert levels(pins.relay) == [F]


def test_lockdown_keeps_red_on_between_patterns(
    outputs: Outputs, pins: Pins, clock: ManualScheduler
) -> None:
    outputs.set_mode("lockdown")
    clock.advance(60)
    outputs.denied()
    clock.advance(5)
    outputs.granted()
    clock.advance(5)
    assert outputs.mode == "lockdown"
    assert levels(pins.red) == [F, T, F, T]  # steady through denied, off for the green
    assert levels(pins.green) == [F, T, F]


def test_emergency_holds_relay_and_both_leds_until_normal(
    outputs: Outputs, pins: Pins, clock: ManualScheduler
) -> None:
    outputs.set_mode("emergency")
    clock.advance(3600)
    assert outputs.released()
    assert (pins.relay.state, pins.green.state, pins.red.state) == (T, T, T)
    outputs.set_mode("normal")
    assert levels(pins.relay) == [F, T, F]
    assert levels(pins.green) == levels(pins.red) == [F, T, F]


def test_fire_alarm_opens_and_then_returns_to_the_commanded_mode(
    outputs: Outputs, pins: Pins, clock: ManualScheduler
) -> None:
    outputs.set_mode("lockdown")
    outputs.set_fire_alarm(True)
    assert outputs.mode == "emergency"
    assert outputs.snapshot().fire_alarm
    clock.advance(600)
    outputs.set_fire_alarm(False)
    assert outputs.mode == "lockdown"
    assert levels(pins.relay) == [F, T, F]
    assert levels(pins.red) == [F, T]


def test_door_alarm_beats_on_the_buzzer_until_stopped(
    outputs: Outputs, pins: Pins, clock: ManualScheduler
) -> None:
    outputs.set_door_alarm(True)
    clock.advance(2.2)
    assert outputs.snapshot().door_alarm
    outputs.set_door_alarm(False)
    clock.advance(5)
    assert levels(pins.buzzer) == [F, T, F, T, F, T, F]
    assert levels(pins.relay) == [F]


def test_released_includes_the_grace_after_a_pulse(
    outputs: Outputs, clock: ManualScheduler
) -> None:
    assert not outputs.released(grace_s=10)
    outputs.pulse_relay()
    clock.advance(1.5)
    assert not outputs.released()
    assert outputs.released(grace_s=1.0)
    clock.advance(0.3)
    assert not outputs.released(grace_s=1.0)


def test_unknown_mode_is_refused(outputs: Outputs) -> None:
    with pytest.raises(FirmwareError, match="unknown mode 'open'"):
        outputs.set_mode("open")  # type: ignore[arg-type]


def test_safe_state_ends_everything_at_once(
    outputs: Outputs, pins: Pins, clock: ManualScheduler
) -> None:
    outputs.set_mode("emergency")
    outputs.granted()
    outputs.set_door_alarm(True)
    outputs.safe_state()
    assert (pins.relay.state, pins.green.state, pins.red.state, pins.buzzer.state) == (F, F, F, F)
    assert outputs.mode == "normal"
    clock.advance(10)
    assert levels(pins.relay) == [F, T, F]
    outputs.granted()
    assert pins.relay.state


def test_close_ends_a_pulse_in_progress_and_holds_the_pins_off(
    mock_factory: MockFactory, clock: ManualScheduler
) -> None:
    outputs = Outputs(PINS, mock_factory, pulse_s=0.8, scheduler=clock)
    pins = Pins(mock_factory)
    outputs.granted()
    clock.advance(0.3)
    outputs.close()
    outputs.close()
    assert levels(pins.relay) == [F, T, F]
    assert levels(pins.buzzer) == [F, T, F]
    assert pins.relay.function == "output"  # driven off, not left floating
    outputs.granted()
    outputs.set_mode("emergency")
    clock.advance(5)
    assert levels(pins.relay) == [F, T, F]
    assert outputs.closed
    Outputs(PINS, mock_factory, pulse_s=0.8, scheduler=clock).close()  # the pins are free again


def test_active_low_relay_is_driven_high_to_stay_off(clock: ManualScheduler) -> None:
    factory = MockFactory()  # plain pins: a closed PWM mock pin would read low
    pins_low = OutputPins(relay=17, relay_active_high=False, green_led=23, red_led=24, buzzer=25)
    with Outputs(pins_low, factory, pulse_s=0.8, scheduler=clock) as outputs:
        relay = factory.pin(17)
        assert levels(relay) == [F, T]  # an input until claimed, then driven high: off
        outputs.granted()
        assert not relay.state
        assert outputs.snapshot().relay
        clock.advance(0.8)
        assert relay.state
        outputs.set_mode("emergency")
    assert levels(relay) == [F, T, F, T, F, T]
    assert relay.function == "output"  # closed, and still driven high: off


def test_indicators_are_optional(mock_factory: MockFactory, clock: ManualScheduler) -> None:
    with Outputs(OutputPins(relay=17), mock_factory, pulse_s=0.8, scheduler=clock) as outputs:
        outputs.granted()
        snapshot = outputs.snapshot()
        assert (snapshot.relay, snapshot.green, snapshot.buzzer) == (T, F, F)
        clock.advance(1)
        assert levels(mock_factory.pin(17)) == [F, T, F]


def test_a_pin_in_use_is_named_and_nothing_is_left_claimed(
    mock_factory: MockFactory, clock: ManualScheduler, outputs: Outputs
) -> None:
    other = OutputPins(relay=5, green_led=23)
    with pytest.raises(FirmwareError, match="cannot drive the green LED on GPIO23"):
        Outputs(other, mock_factory, pulse_s=0.8, scheduler=clock)
    assert mock_factory.pin(5).function == "input"
    Outputs(OutputPins(relay=5), mock_factory, pulse_s=0.8, scheduler=clock).close()


def test_a_pulse_must_have_a_length(mock_factory: MockFactory) -> None:
    with pytest.raises(FirmwareError, match="longer than 0 s"):
        Outputs(PINS, mock_factory, pulse_s=0)


def test_write_failure_during_a_pulse_ends_it_with_the_relay_off(
    mock_factory: MockFactory, clock: ManualScheduler
) -> None:
    buzzer = mock_factory.pin(25, pin_class=BrokenPin)
    errors: list[str] = []
    with Outputs(PINS, mock_factory, pulse_s=0.8, scheduler=clock, on_error=errors.append) as gate:
        relay = mock_factory.pin(17)
        gate.granted()
        buzzer.broken = True  # the beep cannot end: writing the buzzer off fails at 0.12 s
        clock.advance(0.12)
        assert not relay.state  # forced off at once, long before the 0.8 s pulse ends
        assert errors == [
            "writing the outputs failed (GPIO write failed); relay forced off, decision dropped"
        ]
        snapshot = gate.snapshot()
        assert (snapshot.relay, snapshot.green, snapshot.pattern) == (F, F, None)
        clock.advance(5)
        assert levels(relay) == [F, T, F]
        buzzer.broken = False
        gate.granted()  # the gate serves the next decision
        assert relay.state
    assert levels(relay) == [F, T, F, T, F]


def test_write_failure_while_releasing_turns_the_relay_back_off(
    mock_factory: MockFactory, clock: ManualScheduler
) -> None:
    green = mock_factory.pin(23, pin_class=BrokenPin)
    errors: list[str] = []
    with Outputs(PINS, mock_factory, pulse_s=0.8, scheduler=clock, on_error=errors.append) as gate:
        green.broken = True
        gate.set_mode("emergency")
        relay = mock_factory.pin(17)
        clock.advance(60)
        assert levels(relay) == [F, T, F]  # on first, then off when the green LED failed
        assert len(errors) == 1
        assert gate.mode == "normal"


def test_a_failing_error_callback_does_not_stop_the_outputs(
    mock_factory: MockFactory, clock: ManualScheduler
) -> None:
    green = mock_factory.pin(23, pin_class=BrokenPin)

    def explode(message: str) -> None:
        raise RuntimeError(message)

    with Outputs(PINS, mock_factory, pulse_s=0.8, scheduler=clock, on_error=explode) as gate:
        green.broken = True
        gate.granted()
        green.broken = False
        gate.denied()
        assert gate.snapshot().red


def test_an_error_callback_that_calls_back_in_is_not_called_again(
    mock_factory: MockFactory, clock: ManualScheduler
) -> None:
    red = mock_factory.pin(24, pin_class=BrokenPin)
    errors: list[str] = []
    holder: list[Outputs] = []

    def show_fault(message: str) -> None:
        errors.append(message)
        holder[0].fault()  # red is broken: this fails again, inside the callback

    with Outputs(PINS, mock_factory, pulse_s=0.8, scheduler=clock, on_error=show_fault) as gate:
        holder.append(gate)
        red.broken = True
        gate.denied()
        assert len(errors) == 1
        assert not gate.snapshot().relay


def test_real_timer_ends_the_pulse_on_time(mock_factory: MockFactory) -> None:
    with Outputs(PINS, mock_factory, pulse_s=0.15) as outputs:
        relay = mock_factory.pin(17)
        outputs.granted()
        deadline = time.monotonic() + 2
        while outputs.snapshot().relay and time.monotonic() < deadline:
            time.sleep(0.005)
        assert levels(relay) == [F, T, F]
        assert 0.149 <= relay.states[2].timestamp < 0.25


def test_calls_from_many_threads_end_with_the_relay_off(mock_factory: MockFactory) -> None:
    outputs = Outputs(PINS, mock_factory, pulse_s=0.05)
    relay = mock_factory.pin(17)
    calls = [outputs.granted, outputs.denied, outputs.pulse_relay, outputs.unreadable]
    start = threading.Barrier(len(calls) + 1)

    def hammer(call: Any) -> None:
        start.wait()
        for _ in range(200):
            call()

    threads = [threading.Thread(target=hammer, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    start.wait()
    outputs.close()
    for thread in threads:
        thread.join(5)
    assert not relay.state
    assert levels(relay)[-1] is F
    assert relay.function == "output"
