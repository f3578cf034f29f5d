"""The relay on lgpio, through gpiozero's own lgpio backend, over a stand-in for lg.

gpiozero's MockPin keeps its state across a change of function, which real lines do not:
lg claims an output *at* a level (low unless told otherwise). These tests run gpiozero's
`LGPIOFactory`/`LGPIOPin` code on `tests.support.fake_lgpio`, which records every level
a line takes, so that a relay energised for a moment (at a start, a stop or
`qrgate safe-state`) shows. Levels: True high, False low, None an input (floating, or
held by the pull resistor of docs/wiring.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from firmware.errors import FirmwareError, PinFactoryError
from firmware.outputs import Outputs
from firmware.pins import OutputPins, make_pin_factory
from firmware.safe import safe_state
from firmware.scheduler import ManualScheduler
from tests.support import fake_lgpio
from tests.support.fake_lgpio import PI_5, Lines
from tests.support.fake_rpigpio import NO_REGISTERS, install_pi5

RELAY = 17
ACTIVE_LOW = OutputPins(relay=RELAY, relay_active_high=False, green_led=23, red_led=24, buzzer=25)
OFF, ON = True, False  # an active-low relay


@pytest.fixture
def lines() -> Lines:
    board = Lines()
    board.found(RELAY, None, pull=True)  # the wiring guide's pull-up: the relay off
    return board


class Processes:
    """Pin factories made one after another, as the daemon and `qrgate safe-state` do:
    each a new import of lgpio on the same lines; the previous one closed first (gpiozero
    keeps its pins in a class-wide table, so two factories cannot live side by side)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, lines: Lines) -> None:
        self._monkeypatch = monkeypatch
        self._lines = lines
        self._open: Any = None

    def new(self) -> Any:
        self.end()
        fake_lgpio.install(self._monkeypatch, self._lines)
        self._open = make_pin_factory("lgpio")
        return self._open

    def end(self) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None


@pytest.fixture
def processes(monkeypatch: pytest.MonkeyPatch, lines: Lines) -> Iterator[Processes]:
    made = Processes(monkeypatch, lines)
    yield made
    made.end()


def test_the_stand_in_reproduces_gpiozeros_blip(
    monkeypatch: pytest.MonkeyPatch, lines: Lines
) -> None:
    # gpiozero's own pins claim an output low, then write the wanted level: on an
    # active-low relay module that low is the relay energised for a moment.
    from gpiozero import OutputDevice

    fake_lgpio.install(monkeypatch, lines)
    from gpiozero.pins.lgpio import LGPIOFactory

    factory = LGPIOFactory()
    try:
        relay = OutputDevice(RELAY, active_high=False, initial_value=False, pin_factory=factory)
        relay.close()
    finally:
        factory.close()
    assert lines.levels(RELAY) == [None, ON, OFF, None]


def test_an_active_low_relay_is_never_energised_at_start_or_stop(
    processes: Processes, lines: Lines
) -> None:
    clock = ManualScheduler()
    with Outputs(ACTIVE_LOW, processes.new(), pulse_s=0.8, scheduler=clock) as outputs:
        assert lines.levels(RELAY) == [None, OFF]  # claimed at its inactive level
        outputs.granted()
        clock.advance(1)
    processes.end()
    assert lines.levels(RELAY) == [None, OFF, ON, OFF]  # the pulse, and nothing else
    assert lines[RELAY].holder is None  # released, and still driven off


def test_safe_state_after_a_crash_never_energises_the_relay(
    processes: Processes, lines: Lines
) -> None:
    lines.found(RELAY, ON)  # a crash in the middle of a pulse
    safe_state(ACTIVE_LOW, processes.new())
    processes.end()
    assert lines.levels(RELAY) == [ON, None, OFF]  # the pull-up holds it off in between


def test_a_restart_keeps_the_relay_off_throughout(processes: Processes, lines: Lines) -> None:
    clock = ManualScheduler()
    for _ in range(2):  # the daemon, then systemd's safe-state, then the daemon again
        Outputs(ACTIVE_LOW, processes.new(), pulse_s=0.8, scheduler=clock).close()
        safe_state(ACTIVE_LOW, processes.new())
    processes.end()
    assert ON not in lines.levels(RELAY)
    for led in (23, 24, 25):
        assert True not in lines.levels(led)  # LEDs and buzzer are active-high: never lit


def test_an_active_high_relay_is_claimed_low(processes: Processes, lines: Lines) -> None:
    pins = OutputPins(relay=RELAY)
    with Outputs(pins, processes.new(), pulse_s=0.8, scheduler=ManualScheduler()) as outputs:
        outputs.pulse_relay()
    assert lines.levels(RELAY) == [None, False, True, False]


def test_safe_state_on_lines_the_gate_holds_says_they_are_busy(
    processes: Processes, lines: Lines
) -> None:
    gate = fake_lgpio.make_module(lines)  # another process that holds the relay line
    handle = gate.gpiochip_open(0)
    gate.gpio_claim_output(handle, RELAY, 1)
    with pytest.raises(FirmwareError, match=r"relay on GPIO17: 'GPIO busy' \(held by another"):
        safe_state(ACTIVE_LOW, processes.new())
    assert lines.levels(RELAY) == [None, OFF]  # as the other process holds it


def test_inputs_get_edges_through_lg_alerts(processes: Processes, lines: Lines) -> None:
    from gpiozero import DigitalInputDevice

    pressed: list[bool] = []
    button = DigitalInputDevice(5, pull_up=True, pin_factory=processes.new())
    button.when_activated = lambda: pressed.append(True)
    button.when_deactivated = lambda: pressed.append(False)
    lines.drive(5, False)  # the button closes the contact to ground
    lines.drive(5, True)
    button.close()
    assert pressed == [True, False]
    assert lines[5].flags == fake_lgpio.SET_PULL_NONE  # closed: a floating input again


def test_auto_keeps_lgpios_reason_when_rpigpio_fails_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    fake_lgpio.install(monkeypatch, Lines(chips=()), revision=PI_5)  # lgpio cannot open
    install_pi5(monkeypatch)  # RPi.GPIO loads on a Pi 5, and fails at the first pin
    factory = make_pin_factory("auto")
    try:
        assert type(factory).__name__ == "RPiGPIOFactory"
        with pytest.raises(FirmwareError) as failed:
            Outputs(ACTIVE_LOW, factory, pulse_s=0.8, scheduler=ManualScheduler())
        with pytest.raises(FirmwareError) as safe_failed:
            safe_state(ACTIVE_LOW, factory)
    finally:
        factory.close()
    for message in (str(failed.value), str(safe_failed.value)):
        assert NO_REGISTERS in message
        assert "lgpio: 'can not open gpiochip'" in message


def test_lgpio_that_cannot_open_the_chip_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_lgpio.install(monkeypatch, Lines(chips=()))
    with pytest.raises(PinFactoryError, match="cannot use the lgpio pin factory: 'can not open"):
        make_pin_factory("lgpio")
