"""The safe state: relay off on every way out, and `qrgate safe-state` for systemd."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory, MockPin

from firmware.errors import FirmwareError
from firmware.pins import OutputPins
from firmware.safe import DrivenPin, safe_state
from tests.support.cli import heavy_imports, qrgate

ROOT = Path(__file__).resolve().parent.parent
NO_GPIO = not list(Path("/dev").glob("gpiochip*"))

# A gate process on mock pins that grants (a 30 s pulse) and then leaves in one of
# several ways. A hook registered before the outputs runs after their own exit hook and
# prints what the relay pin was left at.
GATE_PROCESS = """
import atexit, signal, sys, time
from gpiozero.pins.mock import MockFactory
from firmware.outputs import Outputs
from firmware.pins import OutputPins

factory = MockFactory()
relay = factory.pin(17)
atexit.register(lambda: print("relay", "on" if relay.state else "off", relay.function,
                              len(relay.states), flush=True))
how = sys.argv[1]
if how == "sigterm":  # what the daemon's handler does: turn SIGTERM into a clean exit
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
outputs = Outputs(OutputPins(relay=17), factory, pulse_s=30)
outputs.granted()
print("released" if relay.state else "not released", flush=True)
if how == "exception":
    raise RuntimeError("the application crashed")
if how == "exit":
    sys.exit(0)
time.sleep(30)
"""


class BrokenPin(MockPin):
    def _set_function(self, value: str) -> None:
        if value == "output":
            raise OSError("line busy")
        super()._set_function(value)


@pytest.mark.parametrize("how", ["exit", "exception", "sigint", "sigterm"])
def test_relay_is_off_however_the_process_ends(how: str) -> None:
    gate = subprocess.Popen(
        [sys.executable, "-c", GATE_PROCESS, how],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert gate.stdout is not None
        assert gate.stdout.readline().strip() == "released"
        if how in ("sigint", "sigterm"):
            gate.send_signal(signal.SIGINT if how == "sigint" else signal.SIGTERM)
        out, _ = gate.communicate(timeout=20)
    finally:
        gate.kill()
        gate.wait()
    # on, then off: three recorded states, and the pin still driven (not floating)
    assert out.strip().splitlines()[-1] == "relay off output 3"


def test_drives_every_output_inactive_and_keeps_it_driven() -> None:
    factory = MockFactory()
    left_on = factory.pin(17)
    left_on.output_with_state(True)  # as a crashed gate may have left the relay
    driven = safe_state(OutputPins(relay=17, green_led=23, red_led=24, buzzer=25), factory)
    assert driven == [
        DrivenPin("relay", 17, high=False),
        DrivenPin("green", 23, high=False),
        DrivenPin("red", 24, high=False),
        DrivenPin("buzzer", 25, high=False),
    ]
    assert [bool(change.state) for change in left_on.states] == [False, True, False]
    for number in (17, 23, 24, 25):
        assert factory.pin(number).function == "output"
        assert not factory.pin(number).state


def test_active_low_relay_is_driven_high() -> None:
    factory = MockFactory()
    driven = safe_state(OutputPins(relay=17, relay_active_high=False), factory)
    assert driven == [DrivenPin("relay", 17, high=True)]
    assert factory.pin(17).state


def test_one_failing_output_does_not_stop_the_others() -> None:
    factory = MockFactory()
    factory.pin(23, pin_class=BrokenPin)
    with pytest.raises(FirmwareError, match=r"green LED on GPIO23: line busy$"):
        safe_state(OutputPins(relay=17, green_led=23, red_led=24), factory)
    assert factory.pin(17).function == factory.pin(24).function == "output"


def test_safe_state_command_with_the_mock_factory(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text('[gpio]\npin_factory = "mock"\nrelay = 5\nrelay_active_high = false\n')
    done = qrgate("safe-state", "-c", str(config))
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        "safe state: relay GPIO5 off (high), green LED GPIO23 off (low), "
        "red LED GPIO24 off (low), buzzer GPIO25 off (low)\n"
    )


def test_safe_state_command_takes_the_factory_from_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text("[gpio]\nbuzzer = 12\n")
    done = qrgate("safe-state", "-c", str(config), env={"GPIOZERO_PIN_FACTORY": "mock"})
    assert done.returncode == 0, done.stderr
    assert "buzzer GPIO12 off (low)" in done.stdout


def test_safe_state_command_exits_78_on_a_bad_config(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text('[gpio]\npin_factory = "mock"\nrelay = 40\n')
    done = qrgate("safe-state", "-c", str(config))
    assert done.returncode == 78
    assert "gpio.relay = 40" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.skipif(not NO_GPIO, reason="this machine has GPIO chips")
def test_safe_state_command_without_gpio_fails_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text("")
    done = qrgate("safe-state", "-c", str(config))
    assert done.returncode == 1
    assert done.stderr.startswith("qrgate: no GPIO pin library works here")
    assert done.stderr.count("\n") == 1


def test_safe_state_command_loads_no_heavy_library(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text('[gpio]\npin_factory = "mock"\n')
    assert heavy_imports(["safe-state", "-c", str(config)]) == ["gpiozero"]
