"""The safe state on its own: every output driven inactive, for `qrgate safe-state`.

systemd runs that command after the gate stops, crash included (`ExecStopPost=`), when
the process that drove the pins is gone and a line may still hold whatever it last had.
The lines are set through the pin factory directly, not through gpiozero devices: a
device turns its pin into a floating input when it is closed or garbage-collected, and
the safe state should stay driven after this short-lived command exits (where the
kernel keeps a released line's level; elsewhere the hardware pull resistor holds it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from firmware.errors import FirmwareError
from firmware.pins import ROLE_NAMES, OutputPins, passed_over

if TYPE_CHECKING:
    from gpiozero.pins import Factory


@dataclass(frozen=True)
class DrivenPin:
    """One output put into its inactive state: its role, BCM pin and the level driven."""

    role: str
    pin: int
    high: bool


def safe_state(pins: OutputPins, factory: Factory) -> list[DrivenPin]:
    """Drive the relay (first), the LEDs and the buzzer to their inactive level.

    Every output is tried even when one fails; then FirmwareError names each failure.
    Do not use it on pins that live `Outputs` drive: use `Outputs.safe_state()` there.
    """
    driven: list[DrivenPin] = []
    failures: list[str] = []
    for role, number in pins.fitted():
        level = not pins.active_high(role)
        try:
            factory.pin(number).output_with_state(level)
        except Exception as error:  # noqa: BLE001 - the other outputs must still be tried
            failures.append(f"{ROLE_NAMES[role]} on GPIO{number}: {error}{busy_hint(error)}")
        else:
            driven.append(DrivenPin(role, number, level))
    if failures:
        raise FirmwareError(
            "cannot drive to the safe state: " + "; ".join(failures) + passed_over(factory)
        )
    return driven


def busy_hint(error: Exception) -> str:
    """lgpio refuses a line another process holds with "GPIO busy": say who that may be."""
    if "GPIO busy" not in str(error):
        return ""
    return " (held by another process, such as the running gate: stop it first)"
