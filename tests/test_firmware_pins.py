"""Choosing the pin factory: mock, the environment, and clear failures without GPIO."""

from __future__ import annotations

from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

from firmware.errors import FirmwareError, PinFactoryError
from firmware.pins import OutputPins, explain, make_pin_factory

NO_GPIO = not list(Path("/dev").glob("gpiochip*"))


def test_mock_is_gpiozeros_mock_factory() -> None:
    factory = make_pin_factory("mock")
    try:
        assert isinstance(factory, MockFactory)
    finally:
        factory.close()


def test_auto_honours_gpiozero_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "Mock")
    factory = make_pin_factory("auto")
    try:
        assert isinstance(factory, MockFactory)
    finally:
        factory.close()


def test_unknown_factory_in_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPIOZERO_PIN_FACTORY", "pigpio")
    with pytest.raises(PinFactoryError, match="GPIOZERO_PIN_FACTORY='pigpio' is not one of"):
        make_pin_factory("auto")


def test_auto_says_what_it_tried_and_why_each_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    monkeypatch.setattr(
        "firmware.pins.BACKENDS",
        {"lgpio": "no_such_lgpio_module:Factory", "rpigpio": "no_such_rpi_module:Factory"},
    )
    with pytest.raises(PinFactoryError) as caught:
        make_pin_factory("auto")
    message = str(caught.value)
    assert list(caught.value.attempts) == ["lgpio", "rpigpio"]
    assert "lgpio: No module named 'no_such_lgpio_module' (sudo apt install python3-lgpio)" in (
        message
    )
    assert "rpigpio: No module named 'no_such_rpi_module'" in message
    assert '"mock" pin factory' in message


def test_a_library_that_loads_but_fails_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    # gpiozero's native factory imports anywhere but needs a Pi: a real load-then-fail.
    monkeypatch.setattr("firmware.pins.BACKENDS", {"lgpio": "gpiozero.pins.native:NativeFactory"})
    monkeypatch.setattr("firmware.pins.gpio_chips", list)
    with pytest.raises(PinFactoryError) as caught:
        make_pin_factory("lgpio")
    assert str(caught.value).startswith("cannot use the lgpio pin factory: ")
    assert "Pi revision" in caught.value.attempts["lgpio"]


def test_gpio_chip_without_permission_points_at_the_gpio_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("firmware.pins.gpio_chips", lambda: ["/dev/gpiochip0"])
    monkeypatch.setattr("os.access", lambda path, mode: path != "/dev/gpiochip0")
    reason = explain("lgpio", RuntimeError("can not open gpiochip"))
    assert reason == (
        "can not open gpiochip (no read/write access to /dev/gpiochip0: add the user to group gpio)"
    )


def test_lgpio_in_a_read_only_folder_is_told_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("firmware.pins.gpio_chips", list)
    monkeypatch.setenv("LG_WD", str(tmp_path))
    monkeypatch.setattr("os.access", lambda path, mode: path != str(tmp_path))
    reason = explain("lgpio", OSError("fifo"))
    assert reason == f"fifo (lgpio needs a writable working directory; {tmp_path} is not)"


@pytest.mark.skipif(not NO_GPIO, reason="this machine has GPIO chips")
def test_auto_fails_clearly_on_a_machine_without_gpio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPIOZERO_PIN_FACTORY", raising=False)
    with pytest.raises(
        PinFactoryError, match=r"this machine has no /dev/gpiochip\*\); tried lgpio: "
    ):
        make_pin_factory("auto")


def test_pin_factory_errors_are_firmware_errors() -> None:
    assert issubclass(PinFactoryError, FirmwareError)
    with pytest.raises(FirmwareError, match="unknown pin factory 'gpiod'"):
        make_pin_factory("gpiod")  # type: ignore[arg-type]


def test_outputs_are_listed_relay_first_and_only_when_fitted() -> None:
    pins = OutputPins(relay=17, relay_active_high=False, red_led=24, buzzer=25)
    assert pins.fitted() == [("relay", 17), ("red", 24), ("buzzer", 25)]
    assert not pins.active_high("relay")
    assert pins.active_high("red")
