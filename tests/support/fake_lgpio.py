"""A stand-in for the `lgpio` module (lg 0.2) and the GPIO lines behind it, on any machine.

It copies what lg's Python module and its C library do, read from their sources
(`PY_LGPIO/lgpio_extra.py`, `lgGpio.c`, `lgErr.c`), so that gpiozero's own `LGPIOFactory`
and `LGPIOPin` run on top of it unchanged:

- errors are `lgpio.error`, whose text is lg's error string and whose `str()` is its
  repr, quotes included (`'GPIO busy'`), as lg's `_u2i` raises them;
- `gpio_claim_output(handle, gpio, level=0, lFlags=0)` claims the line *at* `level`: with
  the default 0 the line is driven low before anyone writes to it. A line that this
  handle already drives as an output is left alone ("nothing to do, already an output":
  the level is ignored);
- claiming a line this handle holds for another purpose frees it first (lg's "auto
  free"); a line another handle (another process) holds is `GPIO busy`;
- `gpio_write` on a line that is not an output claims it as one at that level;
  `gpio_read` on a line not claimed claims it as an input;
- `gpio_get_mode` is the kernel's line flags in the low byte, lg's own mode above;
- `gpio_claim_alert` and `callback(handle, gpio, edge, func)` report edges that the
  outside world makes (`Lines.drive`) as `func(chip, gpio, level, tick_ns)`; lg calls
  them from its notification thread, this stand-in calls them at once;
- lines released (`gpio_free`, `gpiochip_close`) keep the level they were driven at, as
  Raspberry Pi kernels do, so a later process (a restart, `qrgate safe-state`) finds
  them as they were left.

`Lines` is the hardware: one per test, shared by every "process" (module) made from it,
recording each level a line takes: True (driven high), False (driven low), None (an
input: floating, or held by the board's pull resistor). Install with `install()`.
"""

from __future__ import annotations

import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

# lg's error numbers and texts (lgpio.h, lgErr.c), those this stand-in raises.
BAD_HANDLE = -5
GPIO_BUSY = -79
GPIO_NOT_ALLOCATED = -80
BAD_GPIO_NUMBER = -73
CANNOT_OPEN_CHIP = -78
GPIO_NOT_AN_OUTPUT = -104
ERROR_TEXT = {
    BAD_HANDLE: "unknown handle",
    GPIO_BUSY: "GPIO busy",
    GPIO_NOT_ALLOCATED: "GPIO not allocated",
    BAD_GPIO_NUMBER: "bad GPIO number",
    CANNOT_OPEN_CHIP: "can not open gpiochip",
    GPIO_NOT_AN_OUTPUT: "GPIO not set as an output",
}

# Line flags: the kernel's (GPIOHANDLE_REQUEST_* and GPIOLINE_FLAG_*) share these bits.
KERNEL, IS_OUT = 1, 2
SET_ACTIVE_LOW, SET_OPEN_DRAIN, SET_OPEN_SOURCE = 4, 8, 16
SET_PULL_UP, SET_PULL_DOWN, SET_PULL_NONE = 32, 64, 128
LINE_FLAGS = SET_ACTIVE_LOW | SET_OPEN_DRAIN | SET_OPEN_SOURCE | 32 | 64 | 128
# lg's own mode bits, reported above the kernel's byte by gpio_get_mode.
LG_INPUT, LG_OUTPUT, LG_ALERT = 1, 2, 4
RISING_EDGE, FALLING_EDGE, BOTH_EDGES = 1, 2, 3

# Raspberry Pi revision codes (what gpiozero reads from the device tree).
PI_4B = 0xC03111
PI_5 = 0xD04170

Level = bool | None


@dataclass
class Line:
    """One GPIO line: who holds it and how, and what it is at."""

    level: Level = None  # True/False while driven, None while an input
    holder: int | None = None  # the chip handle that claimed it
    mode: int = 0  # lg's mode bits while claimed
    flags: int = 0  # the request's line flags while claimed
    pull: bool | None = None  # what the board's resistor holds an undriven line at
    outside: bool | None = None  # what a switch outside drives an input line to
    history: list[Level] = field(default_factory=list)
    debounce_us: int = 0

    def __post_init__(self) -> None:
        self.history = [self.level]  # how the line was found

    def set(self, level: Level) -> None:
        if level != self.level:
            self.history.append(level)
        self.level = level

    @property
    def reads(self) -> int:
        """What the line reads: its driven level, else what drives it from outside, else
        the bias asked for, else the board's resistor (low without one)."""
        for level in (self.level, self.outside, self.bias, self.pull):
            if level is not None:
                return int(level)
        return 0

    @property
    def bias(self) -> bool | None:
        if self.flags & SET_PULL_UP:
            return True
        return False if self.flags & SET_PULL_DOWN else None


@dataclass
class Watch:
    chip: int
    gpio: int
    edge: int
    func: Callable[[int, int, int, int], None]
    active: bool = True


class Lines:
    """The GPIO lines of a board (gpiochip0 of a Pi: 54 lines), and who holds them."""

    def __init__(self, count: int = 54, chips: tuple[int, ...] = (0,)) -> None:
        self.lines = [Line() for _ in range(count)]
        self.chips = chips
        self.watches: list[Watch] = []
        self.calls: list[tuple[Any, ...]] = []
        self._handles: dict[int, int] = {}  # open handle -> chip
        self._next = 0

    def __getitem__(self, gpio: int) -> Line:
        return self.lines[gpio]

    def levels(self, gpio: int) -> list[Level]:
        """Every level the line took, from how it was found."""
        return list(self.lines[gpio].history)

    def found(self, gpio: int, level: Level, pull: bool | None = None) -> None:
        """How a line is at the start: as an earlier process left it, the board's pull."""
        self.lines[gpio] = Line(level=level, pull=pull)

    def drive(self, gpio: int, level: bool) -> None:
        """The outside world (a button, a door contact) drives an input line."""
        line = self.lines[gpio]
        before = line.reads
        line.outside = level
        if line.reads != before and line.mode & LG_ALERT:
            edge = RISING_EDGE if level else FALLING_EDGE
            for watch in list(self.watches):
                if watch.active and watch.gpio == gpio and watch.edge & edge:
                    watch.func(watch.chip, gpio, int(level), time.time_ns())

    def open(self, chip: int) -> int:
        if chip not in self.chips:
            raise Error(CANNOT_OPEN_CHIP)
        self._next += 1
        self._handles[self._next] = chip
        return self._next | (chip << 16)

    def close(self, handle: int) -> None:
        own = self.handle(handle)
        for gpio, line in enumerate(self.lines):
            if line.holder == own:
                self.release(gpio)
        del self._handles[own]

    def handle(self, handle: int) -> int:
        own = handle & 0xFFFF
        if own not in self._handles:
            raise Error(BAD_HANDLE)
        return own

    def line(self, handle: int, gpio: int) -> tuple[int, Line]:
        own = self.handle(handle)
        if not 0 <= gpio < len(self.lines):
            raise Error(BAD_GPIO_NUMBER)
        return own, self.lines[gpio]

    def claim(self, handle: int, gpio: int, mode: int, flags: int, level: Level) -> None:
        own, line = self.line(handle, gpio)
        if line.holder not in (None, own):
            raise Error(GPIO_BUSY)
        if line.holder == own:
            self.release(gpio)  # lg frees a singleton before claiming it again
        line.holder, line.mode, line.flags = own, mode, flags & LINE_FLAGS
        line.set(level)

    def release(self, gpio: int) -> None:
        """Free a line: an output keeps its level (Raspberry Pi kernels keep it driven)."""
        line = self.lines[gpio]
        line.holder, line.mode, line.flags = None, 0, 0
        for watch in self.watches:
            if watch.gpio == gpio:
                watch.active = False
        self.watches = [watch for watch in self.watches if watch.active]


class Error(Exception):
    """lgpio.error: the value is lg's text, and str() is its repr, as lg's own."""

    def __init__(self, code: int) -> None:
        super().__init__(ERROR_TEXT[code])
        self.value = ERROR_TEXT[code]

    def __str__(self) -> str:
        return repr(self.value)


def make_module(lines: Lines) -> types.ModuleType:
    """A fresh `lgpio` module over `lines`: what one process sees when it imports lg."""
    lg = types.ModuleType("lgpio")
    constants = {
        "SET_ACTIVE_LOW": SET_ACTIVE_LOW,
        "SET_OPEN_DRAIN": SET_OPEN_DRAIN,
        "SET_OPEN_SOURCE": SET_OPEN_SOURCE,
        "SET_PULL_UP": SET_PULL_UP,
        "SET_PULL_DOWN": SET_PULL_DOWN,
        "SET_PULL_NONE": SET_PULL_NONE,
        "RISING_EDGE": RISING_EDGE,
        "FALLING_EDGE": FALLING_EDGE,
        "BOTH_EDGES": BOTH_EDGES,
        "LOW": 0,
        "HIGH": 1,
        "GPIO_BUSY": GPIO_BUSY,
    }
    vars(lg).update(constants)
    lg.error = Error  # type: ignore[attr-defined]
    lg.lines = lines  # type: ignore[attr-defined]

    def record(name: str, *args: Any) -> None:
        lines.calls.append((name, *args))

    def error_text(code: int) -> str:
        return ERROR_TEXT.get(code, "unknown error")

    def gpiochip_open(gpiochip: int) -> int:
        record("gpiochip_open", gpiochip)
        return lines.open(gpiochip)

    def gpiochip_close(handle: int) -> int:
        record("gpiochip_close", handle)
        lines.close(handle)
        return 0

    def gpio_claim_input(handle: int, gpio: int, lFlags: int = 0) -> int:  # noqa: N803
        record("gpio_claim_input", gpio, lFlags)
        own, line = lines.line(handle, gpio)
        if line.holder == own and line.mode & LG_INPUT:
            return 0  # lg: "nothing to do, already an input" (the flags stay as they were)
        lines.claim(handle, gpio, LG_INPUT, lFlags, None)
        return 0

    def gpio_claim_output(handle: int, gpio: int, level: int = 0, lFlags: int = 0) -> int:  # noqa: N803
        record("gpio_claim_output", gpio, level, lFlags)
        own, line = lines.line(handle, gpio)
        if line.holder == own and line.mode & LG_OUTPUT:
            return 0  # lg: "nothing to do, already an output": the level is ignored
        lines.claim(handle, gpio, LG_OUTPUT, lFlags, level != 0)
        return 0

    def gpio_claim_alert(
        handle: int,
        gpio: int,
        eFlags: int,  # noqa: N803
        lFlags: int = 0,  # noqa: N803
        notify_handle: int | None = None,
    ) -> int:
        record("gpio_claim_alert", gpio, eFlags, lFlags)
        lines.claim(handle, gpio, LG_ALERT, lFlags, None)
        return 0

    def gpio_free(handle: int, gpio: int) -> int:
        record("gpio_free", gpio)
        own, line = lines.line(handle, gpio)
        if line.holder != own:
            raise Error(GPIO_NOT_ALLOCATED)
        lines.release(gpio)
        return 0

    def gpio_read(handle: int, gpio: int) -> int:
        own, line = lines.line(handle, gpio)
        if line.holder != own:
            gpio_claim_input(handle, gpio)
        return line.reads

    def gpio_write(handle: int, gpio: int, level: int) -> int:
        record("gpio_write", gpio, level)
        own, line = lines.line(handle, gpio)
        if line.holder == own and line.mode & LG_OUTPUT:
            line.set(level != 0)
        else:  # lg makes a singleton that is not an output one, at this level
            lines.claim(handle, gpio, LG_OUTPUT, 0, level != 0)
        return 0

    def gpio_get_mode(handle: int, gpio: int) -> int:
        own, line = lines.line(handle, gpio)
        kernel = (KERNEL if line.holder is not None else 0) | line.flags
        if line.level is not None:
            kernel |= IS_OUT
        lg_mode = line.mode if line.holder == own else 0
        return (kernel & 0xFF) | (lg_mode << 8)

    def gpio_set_debounce_micros(handle: int, gpio: int, debounce_micros: int) -> int:
        _, line = lines.line(handle, gpio)
        line.debounce_us = debounce_micros
        return 0

    def tx_pwm(handle: int, gpio: int, pwm_frequency: float, pwm_duty_cycle: float) -> int:
        record("tx_pwm", gpio, pwm_frequency, pwm_duty_cycle)
        own, line = lines.line(handle, gpio)
        if not (line.holder == own and line.mode & LG_OUTPUT):
            lines.claim(handle, gpio, LG_OUTPUT, 0, False)  # lg: auto output, low
        return 0

    class Callback:
        def __init__(self, watch: Watch) -> None:
            self._watch = watch

        def cancel(self) -> None:
            self._watch.active = False
            if self._watch in lines.watches:
                lines.watches.remove(self._watch)

    def callback(
        handle: int,
        gpio: int,
        edge: int = RISING_EDGE,
        func: Callable[[int, int, int, int], None] | None = None,
    ) -> Callback:
        if func is None:
            raise NotImplementedError("lg's tally callback is not used by gpiozero")
        watch = Watch(handle >> 16, gpio, edge, func)
        lines.watches.append(watch)
        return Callback(watch)

    for function in (
        error_text,
        gpiochip_open,
        gpiochip_close,
        gpio_claim_input,
        gpio_claim_output,
        gpio_claim_alert,
        gpio_free,
        gpio_read,
        gpio_write,
        gpio_get_mode,
        gpio_set_debounce_micros,
        tx_pwm,
        callback,
    ):
        setattr(lg, function.__name__, function)
    return lg


# Modules that bind `lgpio` when imported: dropped so that each test imports them again
# over its own stand-in.
BOUND_TO_LGPIO = ("gpiozero.pins.lgpio", "firmware.lgpiopins")


def install(
    monkeypatch: pytest.MonkeyPatch, lines: Lines, revision: int = PI_4B
) -> types.ModuleType:
    """Put a fresh `lgpio` over `lines` in sys.modules, on a board with this revision."""
    for name in BOUND_TO_LGPIO:  # gone for this test; as they were after it
        monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.delitem(sys.modules, name)
        package, _, attribute = name.rpartition(".")
        monkeypatch.delattr(sys.modules[package], attribute, raising=False)
    module = make_module(lines)
    monkeypatch.setitem(sys.modules, "lgpio", module)
    monkeypatch.setattr("gpiozero.pins.local.get_pi_revision", lambda: revision)
    return module
