"""The `[gpio]` config section mapped onto the firmware's plain specs and objects.

`firmware` knows nothing of our config; these functions are the one place that
translates it, used by `qrgate safe-state` and by the daemon alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from firmware.inputs import Gate, InputEvent, Inputs
from firmware.outputs import Outputs
from firmware.pins import Contact, ContactState, InputPins, OutputPins
from firmware.scheduler import REAL_TIME, Scheduler
from scanner.config import GpioSection

if TYPE_CHECKING:
    from gpiozero.pins import Factory


def output_pins(gpio: GpioSection) -> OutputPins:
    return OutputPins(
        relay=gpio.relay,
        relay_active_high=gpio.relay_active_high,
        green_led=gpio.green_led,
        red_led=gpio.red_led,
        buzzer=gpio.buzzer,
    )


def input_pins(gpio: GpioSection) -> InputPins:
    return InputPins(
        exit_button=contact(gpio.exit_button, gpio.exit_button_active),
        door_contact=contact(gpio.door_contact, gpio.door_contact_active),
        fire_alarm=contact(gpio.fire_alarm, gpio.fire_alarm_active),
    )


def contact(pin: int | None, active_when: ContactState) -> Contact | None:
    return None if pin is None else Contact(pin, active_when)


def open_outputs(
    gpio: GpioSection,
    factory: Factory,
    on_error: Callable[[str], None] | None = None,
    scheduler: Scheduler = REAL_TIME,
) -> Outputs:
    """The gate's relay, LEDs and buzzer as configured; close() it (or use `with`)."""
    return Outputs(
        output_pins(gpio),
        factory,
        gpio.relay_pulse_ms / 1000,
        scheduler=scheduler,
        on_error=on_error,
    )


def open_inputs(
    gpio: GpioSection,
    factory: Factory,
    gate: Gate,
    report: Callable[[InputEvent], None],
    scheduler: Scheduler = REAL_TIME,
) -> Inputs:
    """The configured inputs, acting on `gate` (the Outputs) and telling `report`."""
    return Inputs(
        input_pins(gpio),
        factory,
        gate,
        report,
        door_held_s=gpio.door_held_s,
        door_grace_s=gpio.door_grace_s,
        scheduler=scheduler,
    )
