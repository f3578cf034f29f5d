"""A stand-in for `RPi.GPIO` 0.7 as it behaves on a Raspberry Pi 5.

On a Pi 5, RPi.GPIO imports and `setmode()` works (gpiozero's `RPiGPIOFactory()` is built
without touching a pin), but every call that maps the GPIO registers fails: the Pi 5's
GPIO sits behind the RP1 chip, where RPi.GPIO looks for the SoC's own. Constants are
RPi.GPIO's values (`source/py_gpio.c`, `source/common.h`).
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

NO_REGISTERS = "Cannot determine SOC peripheral base address"

CONSTANTS = {
    "OUT": 0,
    "IN": 1,
    "HARD_PWM": 43,
    "SERIAL": 40,
    "I2C": 42,
    "SPI": 41,
    "UNKNOWN": -1,
    "BOARD": 10,
    "BCM": 11,
    "PUD_OFF": 20,
    "PUD_DOWN": 21,
    "PUD_UP": 22,
    "RISING": 31,
    "FALLING": 32,
    "BOTH": 33,
    "HIGH": 1,
    "LOW": 0,
}


def pi5_module() -> types.ModuleType:
    gpio = types.ModuleType("RPi.GPIO")
    vars(gpio).update(CONSTANTS)
    modes: list[int] = []
    gpio.modes = modes  # type: ignore[attr-defined]

    def setmode(mode: int) -> None:
        modes.append(mode)

    def setwarnings(flag: bool) -> None:
        return None

    def cleanup(*channels: Any) -> None:
        return None

    def needs_registers(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(NO_REGISTERS)

    for name, function in (
        ("setmode", setmode),
        ("setwarnings", setwarnings),
        ("cleanup", cleanup),
        ("remove_event_detect", cleanup),
    ):
        setattr(gpio, name, function)
    for name in ("setup", "output", "input", "gpio_function", "add_event_detect", "PWM"):
        setattr(gpio, name, needs_registers)
    return gpio


def install_pi5(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """RPi.GPIO as on a Pi 5, in sys.modules for this test."""
    gpio = pi5_module()
    package = types.ModuleType("RPi")
    package.GPIO = gpio  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "RPi", package)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", gpio)
    monkeypatch.setitem(sys.modules, "gpiozero.pins.rpigpio", None)
    monkeypatch.delitem(sys.modules, "gpiozero.pins.rpigpio")
    return gpio
