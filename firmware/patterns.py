"""What the worker sees and hears: the feedback patterns and mode displays, as data.

Each pattern gives the green LED, the red LED and the buzzer a track: the intervals,
in seconds from the pattern's start, during which that output is on. The patterns are
told apart by light and by sound alone, so a technician can name them without a screen:

| pattern    | lights                                  | sound                      |
|------------|-----------------------------------------|----------------------------|
| granted    | green, 1.5 s                            | one short beep             |
| denied     | red, 1.5 s                              | three short beeps          |
| unreadable | green and red alternating, 3 times      | one long beep              |
| fault      | red flashing fast, 5 times              | two long beeps             |
| second code| green blinking once a second, until the | two quick beeps when the   |
|            | second code or the timeout (then denied)| first code is taken        |

Modes show steadily between patterns: normal dark, lockdown red, emergency both LEDs.
While a first code of a pair waits for its partner, normal mode blinks green instead.
A door held open sounds the buzzer in a slow on/off rhythm until it is closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Mode = Literal["normal", "lockdown", "emergency"]
MODES: tuple[Mode, ...] = ("normal", "lockdown", "emergency")

Track = tuple[tuple[float, float], ...]

# Boundaries this close count as reached: `now - start` can miss `start + b` by a float ulp.
EPSILON_S = 1e-6


def steady(seconds: float) -> Track:
    """On from the start for `seconds`."""
    return ((0.0, seconds),)


def flashes(count: int, on_s: float, off_s: float, start_s: float = 0.0) -> Track:
    """`count` times on for `on_s` then off for `off_s`, beginning at `start_s`."""
    period = on_s + off_s
    return tuple((start_s + i * period, start_s + i * period + on_s) for i in range(count))


@dataclass(frozen=True)
class Indicators:
    """The state of the LEDs and the buzzer at one moment."""

    green: bool = False
    red: bool = False
    buzzer: bool = False


@dataclass(frozen=True)
class Pattern:
    """A one-shot feedback pattern; outputs without a track stay off while it plays."""

    name: str
    green: Track = ()
    red: Track = ()
    buzzer: Track = ()

    @property
    def tracks(self) -> tuple[Track, Track, Track]:
        return (self.green, self.red, self.buzzer)

    @property
    def duration_s(self) -> float:
        return max(end for track in self.tracks for _, end in track)

    def at(self, elapsed_s: float) -> Indicators:
        """What the pattern shows `elapsed_s` after it started."""
        green, red, buzzer = (is_on(track, elapsed_s) for track in self.tracks)
        return Indicators(green, red, buzzer)

    def next_change(self, elapsed_s: float) -> float | None:
        """The first moment after `elapsed_s` at which any output changes, or None."""
        later = [
            edge
            for track in self.tracks
            for interval in track
            for edge in interval
            if edge > elapsed_s + EPSILON_S
        ]
        return min(later, default=None)


def is_on(track: Track, elapsed_s: float) -> bool:
    moment = elapsed_s + EPSILON_S
    return any(start <= moment < end for start, end in track)


@dataclass(frozen=True)
class Beat:
    """A rhythm repeated until stopped: on for `on_s`, off for `off_s`."""

    on_s: float
    off_s: float

    def at(self, elapsed_s: float) -> bool:
        return (elapsed_s + EPSILON_S) % (self.on_s + self.off_s) < self.on_s

    def next_change(self, elapsed_s: float) -> float:
        period = self.on_s + self.off_s
        cycle_start = (elapsed_s + EPSILON_S) // period * period
        return cycle_start + (self.on_s if self.at(elapsed_s) else period)


GRANTED = Pattern("granted", green=steady(1.5), buzzer=steady(0.12))
DENIED = Pattern("denied", red=steady(1.5), buzzer=flashes(3, on_s=0.1, off_s=0.1))
UNREADABLE = Pattern(
    "unreadable",
    green=flashes(3, on_s=0.2, off_s=0.2),
    red=flashes(3, on_s=0.2, off_s=0.2, start_s=0.2),
    buzzer=steady(0.5),
)
FAULT = Pattern("fault", red=flashes(5, on_s=0.1, off_s=0.1), buzzer=flashes(2, 0.4, 0.2))
# "Show the second code": the prompt when the first code of a pair is taken, then the
# blink until the second comes or the wait ends (which then plays DENIED).
SECOND_CODE = Pattern("second code", green=steady(0.25), buzzer=flashes(2, on_s=0.06, off_s=0.08))
AWAITING_BLINK = Beat(on_s=0.25, off_s=0.75)

MODE_DISPLAY: dict[Mode, Indicators] = {
    "normal": Indicators(),
    "lockdown": Indicators(red=True),
    "emergency": Indicators(green=True, red=True),
}

DOOR_ALARM = Beat(on_s=0.5, off_s=0.5)
