"""What each output should be doing at any moment: the pure half of the gate's outputs.

`OutputPlan` holds the decisions (the pattern playing, how long the relay is released
for, the mode, the alarms) and answers two questions for any time `now`: which levels
the outputs should have, and when that next changes. It touches no pins and reads no
clock, so every transition can be checked at exact times; `firmware.outputs` applies it.

The relay is on only while a decision holds it: a pulse that has not yet run out, or
emergency mode (commanded, or the fire alarm input). Waiting for the second code of a
pair moves only the green LED, between patterns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from firmware.patterns import (
    AWAITING_BLINK,
    DOOR_ALARM,
    EPSILON_S,
    MODE_DISPLAY,
    Indicators,
    Mode,
    Pattern,
)


@dataclass(frozen=True)
class Levels:
    """Every output at one moment: True is active (relay released, LED lit, buzzer sounding)."""

    relay: bool = False
    green: bool = False
    red: bool = False
    buzzer: bool = False


class OutputPlan:
    commanded_mode: Mode
    fire_alarm: bool
    _pattern: Pattern | None
    _pattern_start: float
    _relay_until: float
    _alarm_since: float | None
    _awaiting_since: float | None
    _awaiting_until: float

    def __init__(self, pulse_s: float) -> None:
        self.pulse_s = pulse_s
        self.clear()

    @property
    def mode(self) -> Mode:
        """The mode in force: emergency while the fire alarm is active, else as commanded."""
        return "emergency" if self.fire_alarm else self.commanded_mode

    @property
    def door_alarm(self) -> bool:
        return self._alarm_since is not None

    def play(self, pattern: Pattern, now: float) -> None:
        """Start `pattern`, replacing the one playing."""
        self._pattern = pattern
        self._pattern_start = now

    def pulse(self, now: float, seconds: float | None = None) -> None:
        """Release the relay from now for one pulse (or `seconds`); a pulse running is
        extended, not restarted."""
        self._relay_until = max(self._relay_until, now + (seconds or self.pulse_s))

    def set_mode(self, mode: Mode) -> None:
        self.commanded_mode = mode

    def set_fire_alarm(self, active: bool) -> None:
        self.fire_alarm = active

    def set_door_alarm(self, active: bool, now: float) -> None:
        if active != self.door_alarm:
            self._alarm_since = now if active else None

    def await_second(self, now: float, seconds: float, *, anew: bool) -> None:
        """Blink for the second code of a pair until `seconds` from now; `anew` starts
        the blink's rhythm again (a new first code), else it carries on."""
        if anew or not self.awaiting(now):
            self._awaiting_since = now
        self._awaiting_until = now + seconds

    def stop_awaiting(self) -> None:
        self._awaiting_since = None

    def awaiting(self, now: float) -> bool:
        return self._awaiting_since is not None and now < self._awaiting_until

    def clear(self) -> None:
        """Drop every decision: relay off, no pattern, no alarm, no wait, normal mode."""
        self.commanded_mode = "normal"
        self.fire_alarm = False
        self._pattern = None
        self._pattern_start = 0.0
        self._relay_until = -math.inf
        self._alarm_since = None
        self._awaiting_since = None
        self._awaiting_until = -math.inf

    def released(self, now: float, grace_s: float = 0.0) -> bool:
        """Whether the gate is released now or was within the last `grace_s` seconds."""
        return self.mode == "emergency" or now < self._relay_until + grace_s

    def pattern_at(self, now: float) -> Pattern | None:
        pattern = self._pattern
        if pattern is not None and now - self._pattern_start + EPSILON_S < pattern.duration_s:
            return pattern
        return None

    def levels_at(self, now: float) -> Levels:
        lights = self._indicators_at(now)
        buzzer = lights.buzzer
        if self._alarm_since is not None:
            buzzer = DOOR_ALARM.at(now - self._alarm_since)
        return Levels(self.released(now), lights.green, lights.red, buzzer)

    def next_change(self, now: float) -> float | None:
        """When `levels_at` next changes of its own accord, or None if it stays as it is."""
        moments = []
        if now < self._relay_until:
            moments.append(self._relay_until)
        pattern = self.pattern_at(now)
        edge = pattern.next_change(now - self._pattern_start) if pattern else None
        if edge is not None:
            moments.append(self._pattern_start + edge)
        if self._alarm_since is not None:
            moments.append(self._alarm_since + DOOR_ALARM.next_change(now - self._alarm_since))
        if self._awaiting_since is not None and self.awaiting(now):
            since = self._awaiting_since
            moments += [self._awaiting_until, since + AWAITING_BLINK.next_change(now - since)]
        return min(moments, default=None)

    def _indicators_at(self, now: float) -> Indicators:
        pattern = self.pattern_at(now)
        if pattern is not None:
            return pattern.at(now - self._pattern_start)
        if self._awaiting_since is not None and self.awaiting(now) and self.mode == "normal":
            return Indicators(green=AWAITING_BLINK.at(now - self._awaiting_since))
        return MODE_DISPLAY[self.mode]
