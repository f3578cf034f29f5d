"""Where the gate's parts are wired, and the gpiozero pin factory that drives them.

The pin specs are plain dataclasses so that the application maps its own config onto
them; `make_pin_factory` picks the pin library. Pin libraries are imported only here,
and only when asked for: `lgpio` opens a FIFO in the working directory on import and
`RPi.GPIO` raises on import off a Pi.
"""

from __future__ import annotations

import glob
import importlib
import os
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from firmware.errors import PinFactoryError

if TYPE_CHECKING:
    from gpiozero.pins import Factory

FactoryName = Literal["auto", "lgpio", "rpigpio", "mock"]
ContactState = Literal["closed", "open"]

FACTORY_ENV = "GPIOZERO_PIN_FACTORY"
# Tried in this order by "auto": lgpio drives every Pi including the Pi 5; RPi.GPIO is
# the fallback for older boards and images. The lgpio pins are gpiozero's with outputs
# claimed at their level in one step (see firmware.lgpiopins).
BACKENDS = {
    "lgpio": "firmware.lgpiopins:LGPIOFactory",
    "rpigpio": "gpiozero.pins.rpigpio:RPiGPIOFactory",
}
INSTALL_HINTS = {
    "lgpio": "sudo apt install python3-lgpio",
    "rpigpio": "sudo apt install python3-rpi.gpio",
}


# Output roles as people name them, for messages.
ROLE_NAMES = {"relay": "relay", "green": "green LED", "red": "red LED", "buzzer": "buzzer"}


@dataclass(frozen=True)
class OutputPins:
    """BCM numbers of the outputs; an indicator set to None is not fitted."""

    relay: int
    relay_active_high: bool = True
    green_led: int | None = None
    red_led: int | None = None
    buzzer: int | None = None

    def fitted(self) -> list[tuple[str, int]]:
        """(role, BCM pin) of each fitted output in write order: the relay first."""
        roles = (
            ("relay", self.relay),
            ("green", self.green_led),
            ("red", self.red_led),
            ("buzzer", self.buzzer),
        )
        return [(role, pin) for role, pin in roles if pin is not None]

    def active_high(self, role: str) -> bool:
        """Only the relay may be active-low: the indicators are wired to light on high."""
        return self.relay_active_high if role == "relay" else True


@dataclass(frozen=True)
class Contact:
    """A switch between a BCM pin and ground, read with the pin's pull-up.

    `active_when` says which contact state means "active": "closed" for a normally-open
    contact (a push button), "open" for a normally-closed one (a door contact that is
    closed while the door is shut, a supervised fire-alarm loop).
    """

    pin: int
    active_when: ContactState = "closed"


@dataclass(frozen=True)
class InputPins:
    """The optional gate inputs; None means not fitted."""

    exit_button: Contact | None = None
    door_contact: Contact | None = None
    fire_alarm: Contact | None = None

    @property
    def any_fitted(self) -> bool:
        return any((self.exit_button, self.door_contact, self.fire_alarm))


def make_pin_factory(name: FactoryName) -> Factory:
    """The gpiozero pin factory called `name`.

    "auto" honours $GPIOZERO_PIN_FACTORY when set, else tries lgpio then RPi.GPIO and
    raises PinFactoryError saying what it tried and why each failed. "mock" is
    gpiozero's MockFactory: no hardware, pins recorded in memory (demo and tests).
    """
    if name == "auto":
        chosen = os.environ.get(FACTORY_ENV, "").strip().lower()
        return make_pin_factory(checked_name(chosen)) if chosen else first_working_backend()
    if name == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    if name not in BACKENDS:
        raise PinFactoryError(f"unknown pin factory {name!r}", {})
    try:
        return load_backend(name)
    except Exception as error:  # noqa: BLE001 - each library fails in its own way
        reason = explain(name, error)
        raise PinFactoryError(
            f"cannot use the {name} pin factory: {reason}", {name: reason}
        ) from None


def checked_name(name: str) -> FactoryName:
    """A pin factory name from the environment, refused unless it is one of ours."""
    for known in ("lgpio", "rpigpio", "mock"):
        if name == known:
            return known
    raise PinFactoryError(f"{FACTORY_ENV}={name!r} is not one of lgpio, rpigpio, mock", {})


# Why "auto" passed over the libraries before the one it chose, by factory: RPi.GPIO
# loads on a Pi 5 (its constructor only sets the numbering mode) and fails at the first
# pin, where lgpio's reason is the one that matters.
PASSED_OVER: weakref.WeakKeyDictionary[Factory, dict[str, str]] = weakref.WeakKeyDictionary()


def first_working_backend() -> Factory:
    attempts: dict[str, str] = {}
    for name in BACKENDS:
        try:
            factory = load_backend(name)
        except Exception as error:  # noqa: BLE001 - collected and reported below
            attempts[name] = explain(name, error)
        else:
            if attempts:
                PASSED_OVER[factory] = attempts
            return factory
    tried = "; ".join(f"{name}: {reason}" for name, reason in attempts.items())
    raise PinFactoryError(
        f"no GPIO pin library works here ({machine_summary()}); tried {tried}. "
        'Use the "mock" pin factory to run without GPIO hardware',
        attempts,
    )


def passed_over(factory: Factory) -> str:
    """For a pin failure's message: the libraries `auto` tried before this one, and why
    each failed; "" when it chose the first."""
    attempts = PASSED_OVER.get(factory)
    if not attempts:
        return ""
    tried = "; ".join(f"{name}: {reason}" for name, reason in attempts.items())
    return f" (the pin factory is a fallback; tried first: {tried})"


def load_backend(name: str) -> Factory:
    module_name, _, class_name = BACKENDS[name].partition(":")
    factory_class = getattr(importlib.import_module(module_name), class_name)
    return factory_class()


def explain(name: str, error: Exception) -> str:
    """Why a pin library failed, with the fix when the cause is a common one."""
    reason = str(error) or type(error).__name__
    if isinstance(error, ImportError):
        return f"{reason} ({INSTALL_HINTS[name]})"
    chips = gpio_chips()
    if chips and not all(os.access(chip, os.R_OK | os.W_OK) for chip in chips):
        return f"{reason} (no read/write access to {chips[0]}: add the user to group gpio)"
    workdir = os.environ.get("LG_WD") or os.getcwd()
    if name == "lgpio" and not os.access(workdir, os.W_OK):
        return f"{reason} (lgpio needs a writable working directory; {workdir} is not)"
    return reason


def machine_summary() -> str:
    chips = gpio_chips()
    return "GPIO chips: " + ", ".join(chips) if chips else "this machine has no /dev/gpiochip*"


def gpio_chips() -> list[str]:
    return sorted(glob.glob("/dev/gpiochip*"))
