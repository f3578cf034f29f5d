"""The gate's outputs: turnstile relay, green and red LEDs, buzzer.

`Outputs` turns decisions into pin levels. Every call returns at once: it records the
decision in an `OutputPlan`, writes the pins that change now (so a granted scan has
released the relay by the time `granted()` returns) and lets a timer thread play the
rest of the pattern and end the pulse. One lock guards plan and pins, so calls are safe
from any thread.

Failing safe is the point of this module:
- the relay starts off (`initial_value=False`, whatever its polarity) and is written
  first when it goes on and first when it goes off;
- it is on only while a pulse runs or emergency mode holds it (see `OutputPlan`);
- an exception while writing the pins drops the decision that was playing, forces every
  output off and is reported through `on_error`; the timer keeps serving later calls;
- `close()` ends a pulse in progress, is idempotent, safe from any thread, and runs at
  interpreter exit if the owner forgot it. It releases the devices but leaves their pins
  driven inactive: a closed gpiozero device turns its pin into an input, which lgpio
  leaves floating, and a floating relay input is decided by noise.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from firmware.errors import FirmwareError
from firmware.patterns import (
    DENIED,
    FAULT,
    GRANTED,
    MODES,
    SECOND_CODE,
    UNREADABLE,
    Mode,
    Pattern,
)
from firmware.pins import ROLE_NAMES, OutputPins, passed_over
from firmware.plan import Levels, OutputPlan
from firmware.safe import safe_state
from firmware.scheduler import REAL_TIME, Scheduler

if TYPE_CHECKING:
    from gpiozero.pins import Factory

log = logging.getLogger(__name__)

MAX_OPEN_S = 3600.0  # the longest a remote opening may hold the relay

ROLES = ("relay", "green", "red", "buzzer")


@dataclass(frozen=True)
class OutputSnapshot:
    """What the outputs are doing now: levels as written to the pins, and why."""

    relay: bool
    green: bool
    red: bool
    buzzer: bool
    mode: Mode
    pattern: str | None
    fire_alarm: bool
    door_alarm: bool
    awaiting: bool = False  # blinking for the second code of a pair


class Outputs:
    """Relay, LEDs and buzzer, driven by decisions that never block the caller."""

    def __init__(
        self,
        pins: OutputPins,
        factory: Factory,
        pulse_s: float,
        *,
        scheduler: Scheduler = REAL_TIME,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        if pulse_s <= 0:
            raise FirmwareError(f"relay pulse must be longer than 0 s, not {pulse_s}")
        self._lock = threading.RLock()
        self._plan = OutputPlan(pulse_s)
        self._scheduler = scheduler
        self._on_error = on_error
        self._reporting = threading.local()
        self._closed = False
        self._pins = pins
        self._factory = factory
        self._devices = open_devices(pins, factory)
        self._written = dict.fromkeys(self._devices, False)
        self._timer = scheduler.start(self._refresh, "qrgate-outputs")
        atexit.register(self.close)

    def __enter__(self) -> Outputs:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def granted(self) -> None:
        """Green, one short beep, and a relay pulse (a pulse running is extended)."""
        self._change(lambda now: self._play(GRANTED, now, pulse=True))

    def denied(self) -> None:
        """Red and three short beeps; a pulse running for an earlier grant carries on."""
        self._change(lambda now: self._play(DENIED, now))

    def unreadable(self) -> None:
        """A code was seen but not understood: LEDs alternate, one long beep."""
        self._change(lambda now: self._play(UNREADABLE, now))

    def fault(self) -> None:
        """Something is wrong with the gate: red flashes and two long beeps."""
        self._change(lambda now: self._play(FAULT, now))

    def awaiting(self, seconds: float | None, *, prompt: bool = False) -> None:
        """Blink "show the second code" for `seconds` from now (None: stop blinking);
        `prompt`: a first code was just taken, so two quick beeps ask for the second."""

        def update(now: float) -> None:
            if not seconds:
                self._plan.stop_awaiting()
                return
            self._plan.await_second(now, seconds, anew=prompt)
            if prompt:
                self._play(SECOND_CODE, now)

        self._change(update)

    def pulse_relay(self, seconds: float | None = None) -> None:
        """Release the relay for one pulse, or for `seconds`, without feedback (remote open,
        exit button). Always timed: the relay goes off again by itself."""
        if seconds is not None and not 0 < seconds <= MAX_OPEN_S:
            raise FirmwareError(f"an opening lasts 0 to {MAX_OPEN_S:.0f} s, not {seconds}")
        self._change(lambda now: self._plan.pulse(now, seconds))

    def set_mode(self, mode: Mode) -> None:
        """normal; lockdown (red steady); emergency (relay held released, both LEDs)."""
        if mode not in MODES:
            raise FirmwareError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
        log.info("mode %s", mode)
        self._change(lambda _now: self._plan.set_mode(mode))

    def set_fire_alarm(self, active: bool) -> None:
        """Emergency while the fire alarm is active; the commanded mode again once it clears."""
        log.warning("fire alarm %s", "active: gate held open" if active else "cleared")
        self._change(lambda _now: self._plan.set_fire_alarm(active))

    def set_door_alarm(self, active: bool) -> None:
        """Sound the door-held alarm on the buzzer, or stop it."""
        self._change(lambda now: self._plan.set_door_alarm(active, now))

    @property
    def mode(self) -> Mode:
        with self._lock:
            return self._plan.mode

    def released(self, grace_s: float = 0.0) -> bool:
        """Whether the relay is released now (pulse or emergency) or was within `grace_s`."""
        with self._lock:
            return self._plan.released(self._scheduler.now(), grace_s)

    def snapshot(self) -> OutputSnapshot:
        with self._lock:
            pattern = self._plan.pattern_at(self._scheduler.now())
            return OutputSnapshot(
                **{role: self._written.get(role, False) for role in ROLES},
                mode=self._plan.mode,
                pattern=pattern.name if pattern else None,
                fire_alarm=self._plan.fire_alarm,
                door_alarm=self._plan.door_alarm,
                awaiting=self._plan.awaiting(self._scheduler.now()),
            )

    def safe_state(self) -> None:
        """Everything inactive now: pulse ended, pattern and alarm stopped, normal mode."""
        with self._lock:
            if self._closed:
                return
            self._plan.clear()
            self._force_inactive()
        self._timer.wake()

    def close(self) -> None:
        """Relay and indicators off and held off, timer stopped, devices released; idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._plan.clear()
            self._force_inactive()
        self._timer.stop()
        with self._lock:
            close_devices(self._devices)
            self._hold_inactive()
        atexit.unregister(self.close)

    @property
    def closed(self) -> bool:
        return self._closed

    def _play(self, pattern: Pattern, now: float, pulse: bool = False) -> None:
        log.debug("feedback %s", pattern.name)
        self._plan.play(pattern, now)
        if pulse:
            self._plan.pulse(now)

    def _change(self, update: Callable[[float], object]) -> None:
        """Record a decision, write what changes now, and let the timer take it from there."""
        with self._lock:
            if self._closed:
                return
            update(self._scheduler.now())
        self._refresh(self._scheduler.now())
        self._timer.wake()

    def _refresh(self, now: float) -> float | None:
        """Bring the pins to the plan's levels for `now`; the next moment they change."""
        with self._lock:
            if self._closed:
                return None
            try:
                self._apply(self._plan.levels_at(now))
                return self._plan.next_change(now)
            except Exception as error:  # noqa: BLE001 - any failure must end with the relay off
                message = self._fail_safe(error)
        self._report(message)
        return None

    def _apply(self, levels: Levels) -> None:
        for role, device in self._devices.items():
            wanted = getattr(levels, role)
            if wanted != self._written[role]:
                device.value = wanted
                self._written[role] = wanted

    def _fail_safe(self, error: Exception) -> str:
        log.error("writing the outputs failed; relay forced off", exc_info=error)
        self._plan.clear()
        self._force_inactive()
        return f"writing the outputs failed ({error}); relay forced off, decision dropped"

    def _force_inactive(self) -> None:
        """Write every output off, even those believed off; one failing does not stop the rest."""
        for role, device in self._devices.items():
            try:
                device.off()
            except Exception:  # the next output must still be tried
                log.exception("cannot turn the %s off", ROLE_NAMES[role])
            self._written[role] = False

    def _hold_inactive(self) -> None:
        """Drive the released pins inactive again: a closed device leaves its pin floating."""
        try:
            safe_state(self._pins, self._factory)
        except FirmwareError:
            log.exception("cannot hold the outputs inactive after closing")

    def _report(self, message: str) -> None:
        # A callback that calls back in (say, fault()) on pins that keep failing would
        # report again from inside itself: once per thread is enough.
        if self._on_error is None or getattr(self._reporting, "active", False):
            return
        self._reporting.active = True
        try:
            self._on_error(message)
        except Exception:  # a broken callback must not stop the timer
            log.exception("on_error callback failed")
        finally:
            self._reporting.active = False


def open_devices(pins: OutputPins, factory: Factory) -> dict[str, Any]:
    """The gpiozero devices, in write order, each starting inactive; all or none."""
    from gpiozero import LED, Buzzer, OutputDevice

    kinds = {"relay": OutputDevice, "green": LED, "red": LED, "buzzer": Buzzer}
    devices: dict[str, Any] = {}
    for role, pin in pins.fitted():
        try:
            devices[role] = kinds[role](
                pin, active_high=pins.active_high(role), initial_value=False, pin_factory=factory
            )
        except Exception as error:
            close_devices(devices)
            raise FirmwareError(
                f"cannot drive the {ROLE_NAMES[role]} on GPIO{pin}: {error}{passed_over(factory)}"
            ) from error
    return devices


def close_devices(devices: dict[str, Any]) -> None:
    for role, device in devices.items():
        try:
            device.close()
        except Exception:  # release the other pins all the same
            log.exception("cannot release the %s", ROLE_NAMES[role])
