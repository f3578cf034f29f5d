"""The [gpio] config mapped onto the firmware: the mapping the daemon and safe-state share."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from firmware.inputs import InputEvent
from firmware.pins import Contact, InputPins, OutputPins
from firmware.scheduler import ManualScheduler
from scanner.config import parse_config
from scanner.daemon.hardware import input_pins, open_inputs, open_outputs, output_pins
from scanner.errors import ConfigError


def test_default_config_maps_to_the_documented_pins() -> None:
    gpio = parse_config({}).gpio
    assert output_pins(gpio) == OutputPins(
        relay=17, relay_active_high=True, green_led=23, red_led=24, buzzer=25
    )
    assert input_pins(gpio) == InputPins()


def test_inputs_carry_their_polarity() -> None:
    gpio = parse_config(
        {
            "gpio": {
                "exit_button": 5,
                "door_contact": 6,
                "fire_alarm": 13,
                "fire_alarm_active": "open",
            }
        }
    ).gpio
    assert input_pins(gpio) == InputPins(
        exit_button=Contact(5, "closed"),
        door_contact=Contact(6, "open"),
        fire_alarm=Contact(13, "open"),
    )


def test_bad_polarity_and_grace_are_config_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"gpio": {"door_contact_active": "shut", "door_grace_s": -1}})
    keys = {problem.key for problem in caught.value.problems}
    assert keys == {"gpio.door_contact_active", "gpio.door_grace_s"}


def test_an_input_cannot_share_the_relay_pin() -> None:
    with pytest.raises(ConfigError, match="pin 17 is used by both relay and exit_button"):
        parse_config({"gpio": {"exit_button": 17}})


def test_configured_gate_pulses_for_relay_pulse_ms_and_times_the_door() -> None:
    gpio = parse_config(
        {"gpio": {"relay_pulse_ms": 300, "door_contact": 6, "door_held_s": 5, "door_grace_s": 0}}
    ).gpio
    factory, clock = MockFactory(), ManualScheduler()
    events: list[InputEvent] = []
    with open_outputs(gpio, factory, scheduler=clock) as outputs:
        inputs = open_inputs(gpio, factory, outputs, events.append, scheduler=clock)
        factory.pin(6).drive_low()  # door shut
        events.clear()
        outputs.granted()
        clock.advance(0.299)
        assert outputs.released()
        clock.advance(0.001)
        assert not outputs.released()
        factory.pin(6).drive_high()  # just after the pulse, and no grace configured
        clock.advance(5)
        inputs.close()
    assert events == [InputEvent("door_forced"), InputEvent("door_held")]
