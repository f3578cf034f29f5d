"""How the demo shows the gate: the mock pins as LEDs and relay, what the camera sees,
and the events as the centre receives them. A live panel on a terminal; plain lines,
one per change, in a pipe or a log."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from gpiozero.pins import Factory

    from firmware.pins import OutputPins
    from scanner.demo.scenario import Step

EVENT_ROWS = 12


@dataclass(frozen=True)
class Lamps:
    """The outputs as the pins show them (true = active, whatever the polarity)."""

    green: bool
    red: bool
    buzzer: bool
    relay: bool

    def words(self) -> str:
        lit = [name for name in ("green", "red", "buzzer") if getattr(self, name)]
        relay = "relay OPEN" if self.relay else "relay closed"
        return " ".join([*(f"{name} ON" for name in lit), relay])


class PinBoard:
    """Reads the mock pins the gate drives: what a technician's multimeter would see."""

    def __init__(self, factory: Factory, pins: OutputPins) -> None:
        self._factory = factory
        self._pins = pins

    def lamps(self) -> Lamps:
        pins = self._pins
        relay = self._level(pins.relay) == pins.relay_active_high
        return Lamps(self._on(pins.green_led), self._on(pins.red_led), self._on(pins.buzzer), relay)

    def _on(self, number: int | None) -> bool:
        return number is not None and self._level(number)

    def _level(self, number: int) -> bool:
        return bool(self._factory.pin(number).state)


@dataclass(frozen=True)
class Frame:
    """One look at the demo, what both renderings are made from."""

    lamps: Lamps
    showing: Step | None
    events: list[dict[str, Any]]
    figures: dict[str, Any]


class LiveView:
    """The panel drawn in place on a terminal."""

    def __init__(self, title: str) -> None:
        self._title = title

    def render(self, frame: Frame) -> RenderableType:
        return Group(
            Text(self._title, style="bold"),
            Text(""),
            lamp_line(frame.lamps, frame.figures.get("mode", "normal")),
            Text(figures_line(frame.figures), style="dim"),
            Text(""),
            Text.assemble(
                ("camera sees: ", "dim"), frame.showing.label if frame.showing else "nobody"
            ),
            Text(""),
            events_table(frame.events[-EVENT_ROWS:]),
        )


def lamp_line(lamps: Lamps, mode: str) -> Text:
    def lamp(name: str, on: bool, colour: str) -> tuple[str, str]:
        return (f" ● {name} " if on else f" ○ {name} ", f"bold {colour}" if on else "dim")

    return Text.assemble(
        lamp("green", lamps.green, "green"),
        lamp("red", lamps.red, "red"),
        (" ♪ buzzer " if lamps.buzzer else " · buzzer ", "bold yellow" if lamps.buzzer else "dim"),
        (
            "  ▮ relay OPEN " if lamps.relay else "  ▯ relay closed ",
            "bold reverse green" if lamps.relay else "dim",
        ),
        (f"   mode {mode}", "bold red" if mode != "normal" else "dim"),
    )


def figures_line(figures: dict[str, Any]) -> str:
    return (
        f"camera {figures.get('fps', 0):.0f} fps · decode {figures.get('decode_ms', 0):.1f} ms"
        f" · outbox {figures.get('outbox', 0)} waiting · broker {figures.get('broker', '-')}"
    )


def events_table(events: list[dict[str, Any]]) -> Table:
    table = Table(title="events received by the centre", title_justify="left", expand=False)
    for header in ("seq", "time", "result", "reason", "credential", "subject", "name"):
        table.add_column(header)
    for event in events:
        style = "green" if event["result"] == "granted" else "red"
        table.add_row(
            str(event["seq"]),
            event["ts"][11:23],
            Text(event["result"] or "-", style),
            *(str(event[key] or "-") for key in ("reason", "credential", "subject", "name")),
        )
    return table


class PlainView:
    """One line per change, each stamped with the seconds since the demo started."""

    def __init__(self, write: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self._write = write
        self._clock = clock
        self._start = clock()
        self._last: Frame | None = None

    def show(self, frame: Frame) -> None:
        last, self._last = self._last, frame
        if last is None or frame.showing is not last.showing:
            self._say(f"camera sees: {frame.showing.label if frame.showing else 'nobody'}")
        if last is None or frame.lamps != last.lamps:
            self._say(f"pins: {frame.lamps.words()}")
        for event in frame.events[len(last.events) if last else 0 :]:
            self._say("centre: " + event_words(event))

    def _say(self, text: str) -> None:
        self._write(f"[{self._clock() - self._start:5.1f}s] {text}")


def event_words(event: dict[str, Any]) -> str:
    keys = ("subject", "name", "cert_type", "cert_country")
    who = " ".join(str(event[key]) for key in keys if event.get(key))
    return (
        f"seq {event['seq']} {event['type']} {event['result']} {event['reason']} "
        f"{event['credential']} {who}"
    ).rstrip()
