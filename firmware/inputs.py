"""The gate's inputs: exit button, door contact, fire alarm.

Each input is a contact to ground on a pin with its pull-up on. What an input means is
acted on here, at once, on the gate's outputs, so that opening for an exit or a fire
never waits for the application; the caller is then told through `report`:

- exit button pressed: one relay pulse, then `exit_request`. It works in every mode,
  lockdown included: software never locks people in.
- door opened while the gate was not released (no pulse within `door_grace_s`, no
  emergency): `door_forced`. Open longer than `door_held_s` while not released:
  `door_held` and the buzzer alarm, until it closes (`door_held` with active=False).
- fire alarm: emergency (relay held, both LEDs) while active, `fire_alarm` on each
  change; when it clears the gate returns to the commanded mode.

The state found at start counts too: a fire alarm already active opens the gate, and a
door already open starts its held timer.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, Protocol

from firmware.errors import FirmwareError
from firmware.pins import Contact, InputPins
from firmware.scheduler import REAL_TIME, Scheduler

if TYPE_CHECKING:
    from gpiozero.pins import Factory

log = logging.getLogger(__name__)

InputKind = Literal["exit_request", "door_forced", "door_held", "fire_alarm"]

# Contacts bounce for a few milliseconds; gpiozero filters edges closer than this.
BOUNCE_S = 0.02
# While the gate stands released (emergency) a long-open door is normal: look again later.
HELD_RECHECK_S = 1.0


@dataclass(frozen=True)
class InputEvent:
    """Something an input reported; `active` is False when a condition ends."""

    kind: InputKind
    active: bool = True


@dataclass(frozen=True)
class InputSnapshot:
    exit_pressed: bool
    door_open: bool
    door_held: bool
    fire_alarm: bool


class Gate(Protocol):
    """What the inputs need of the outputs (`firmware.outputs.Outputs` is one)."""

    def pulse_relay(self) -> None: ...

    def set_fire_alarm(self, active: bool) -> None: ...

    def set_door_alarm(self, active: bool) -> None: ...

    def released(self, grace_s: float = 0.0) -> bool: ...


class Inputs:
    """Watches the fitted inputs, acts on the gate and reports each event."""

    def __init__(
        self,
        pins: InputPins,
        factory: Factory,
        gate: Gate,
        report: Callable[[InputEvent], None],
        *,
        door_held_s: float = 30.0,
        door_grace_s: float = 1.0,
        scheduler: Scheduler = REAL_TIME,
    ) -> None:
        self._gate = gate
        self._report = report
        self._door_held_s = door_held_s
        self._door_grace_s = door_grace_s
        self._scheduler = scheduler
        self._lock = threading.RLock()
        self._closed = False
        self._door_opened_at: float | None = None
        self._door_held = False
        self._fire = False
        self._devices = open_inputs(pins, factory)
        self._timer = scheduler.start(self._refresh, "qrgate-inputs")
        self._watch()

    def __enter__(self) -> Inputs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def snapshot(self) -> InputSnapshot:
        with self._lock:
            return InputSnapshot(
                exit_pressed=not self._closed and self._active("exit_button"),
                door_open=self._door_opened_at is not None,
                door_held=self._door_held,
                fire_alarm=self._fire,
            )

    def close(self) -> None:
        """Stop watching; an alarm or emergency the inputs raised is lifted. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            held, fire = self._door_held, self._fire
        self._timer.stop()
        for name, (device, _contact) in self._devices.items():
            try:
                device.close()
            except Exception:  # release the other inputs and lift the alarms all the same
                log.exception("cannot release the %s input", name)
        if held:
            self._gate.set_door_alarm(False)
        if fire:
            self._gate.set_fire_alarm(False)

    def _watch(self) -> None:
        """Hook the callbacks, then take the state found at start as a change."""
        handlers: dict[str, Callable[[bool], None]] = {
            "exit_button": self._exit_button,
            "door_contact": self._door_contact,
            "fire_alarm": self._fire_alarm,
        }
        for name, (device, contact) in self._devices.items():
            # gpiozero's "activated" is the contact closing (pulled-up pin driven low).
            handler = guarded(handlers[name], name)
            closing_activates = contact.active_when == "closed"
            device.when_activated = partial(handler, closing_activates)
            device.when_deactivated = partial(handler, not closing_activates)
        if self._active("fire_alarm"):
            self._fire_alarm(True)
        if self._active("door_contact"):
            self._door_contact(True, seen_opening=False)

    def _active(self, name: str) -> bool:
        if name not in self._devices:
            return False
        device, contact = self._devices[name]
        return bool(device.is_active) == (contact.active_when == "closed")

    def _exit_button(self, pressed: bool) -> None:
        if not pressed or self._closed:
            return
        self._gate.pulse_relay()
        self._emit(InputEvent("exit_request"))

    def _door_contact(self, is_open: bool, seen_opening: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            events = self._door_opened(seen_opening) if is_open else self._door_closed()
        self._timer.wake()
        for event in events:
            self._emit(event)

    def _door_opened(self, seen_opening: bool) -> list[InputEvent]:
        self._door_opened_at = self._scheduler.now()
        forced = seen_opening and not self._gate.released(self._door_grace_s)
        return [InputEvent("door_forced")] if forced else []

    def _door_closed(self) -> list[InputEvent]:
        self._door_opened_at = None
        if not self._door_held:
            return []
        self._door_held = False
        self._gate.set_door_alarm(False)
        return [InputEvent("door_held", active=False)]

    def _fire_alarm(self, active: bool) -> None:
        with self._lock:
            if self._closed or active == self._fire:
                return
            self._fire = active
            self._gate.set_fire_alarm(active)
        self._emit(InputEvent("fire_alarm", active))

    def _refresh(self, now: float) -> float | None:
        """Raise door_held once the door has been open too long while not released."""
        with self._lock:
            opened_at = self._door_opened_at
            if self._closed or opened_at is None or self._door_held:
                return None
            due = opened_at + self._door_held_s
            if now < due:
                return due
            if self._gate.released():
                return now + HELD_RECHECK_S
            self._door_held = True
            self._gate.set_door_alarm(True)
        self._emit(InputEvent("door_held"))
        return None

    def _emit(self, event: InputEvent) -> None:
        log.info("input %s%s", event.kind, "" if event.active else " ended")
        try:
            self._report(event)
        except Exception:  # the gate already acted; a failing report must not undo that
            log.exception("reporting %s failed", event.kind)


def guarded(handler: Callable[[bool], None], name: str) -> Callable[[bool], None]:
    """The handler, with any exception logged: it runs on the pin library's thread."""

    def run(active: bool) -> None:
        try:
            handler(active)
        except Exception:  # an exception would end the pin library's callback thread
            log.exception("handling the %s input failed", name)

    return run


def open_inputs(pins: InputPins, factory: Factory) -> dict[str, tuple[Any, Contact]]:
    """A gpiozero input device per fitted contact, pull-up on; all or none."""
    from gpiozero import DigitalInputDevice

    fitted = {
        name: contact
        for name, contact in (
            ("exit_button", pins.exit_button),
            ("door_contact", pins.door_contact),
            ("fire_alarm", pins.fire_alarm),
        )
        if contact is not None
    }
    devices: dict[str, tuple[Any, Contact]] = {}
    for name, contact in fitted.items():
        try:
            device = DigitalInputDevice(
                contact.pin, pull_up=True, bounce_time=BOUNCE_S, pin_factory=factory
            )
        except Exception as error:
            for opened, _contact in devices.values():
                opened.close()
            raise FirmwareError(f"cannot read the {name} on GPIO{contact.pin}: {error}") from error
        devices[name] = (device, contact)
    return devices
