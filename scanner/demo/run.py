"""Run the demo: a real gate daemon with a replayed camera, mock pins and a private
broker, all in a temporary folder; then check what the centre received against what
each card should have caused, and say so.

The daemon is the same one `qrgate run` builds (scanner.daemon.assemble), with two parts
swapped: gpiozero's MockFactory for the pins, and the demo's frames for the camera.
"""

from __future__ import annotations

import itertools
import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gpiozero.pins.mock import MockFactory
from rich.console import Console
from rich.live import Live

from mqtt.events import parse_event
from scanner.daemon.assemble import Options, build_daemon
from scanner.daemon.hardware import output_pins
from scanner.daemon.service import Daemon
from scanner.demo.feed import EventFeed
from scanner.demo.scenario import SITE, Kit, build_kit
from scanner.demo.view import Frame, LiveView, PinBoard, PlainView, event_words
from scanner.localbroker import BrokerError, Mosquitto, free_port, mosquitto_binary
from scanner.mqttconfig import gate_topics, open_outbox

log = logging.getLogger(__name__)

TICK_S = 0.1
SETTLE_S = 1.2  # after the last card: the last pulse and pattern end
DEADLINE_S = 25.0  # the scenario takes about 16 s; this bounds a broken run


@dataclass
class Outcome:
    """What the demo saw: the events in seq order, and what the pins did."""

    events: list[dict[str, Any]]
    relay_openings: int
    relay_off: bool
    delivered: bool  # events came back from the broker (else: read from the outbox)


def run_demo(console: Console, *, forever: bool = False, broker: bool = True) -> int:
    """Run the scenario (or loop it until Ctrl-C); 0 when the gate did what it should."""
    with tempfile.TemporaryDirectory(prefix="qrgate-demo-") as tmp:
        folder = Path(tmp)
        with private_broker(folder / "broker", console, broker) as mosquitto:
            port = mosquitto.port if mosquitto else free_port()
            kit = build_kit(folder / "gate", time.time(), port, loop=forever)
            factory = MockFactory()
            daemon = build_daemon(
                kit.config, Options(pin_factory=factory, trust_kernel_clock=False)
            )
            feed = start_feed(port, kit) if mosquitto else None
            title = f"qrgate demo · gate {SITE}/{kit.config.gate.id} (in) · mock pins · " + (
                f"private broker on 127.0.0.1:{port}" if mosquitto else "no broker"
            )
            driver = Driver(
                daemon, kit, factory, feed=feed, console=console, title=title, forever=forever
            )
            driver.start()
            daemon.run()
            driver.join()
            outcome = observe(kit, factory, feed)
            if feed is not None:
                feed.stop()
        return report(console, kit, outcome, forever)


@contextmanager
def private_broker(folder: Path, console: Console, wanted: bool) -> Iterator[Mosquitto | None]:
    """A mosquitto of the demo's own, or None (said why) when there is none."""
    broker = None
    if not wanted:
        console.print("running without a broker: events wait in the gate's outbox")
    elif mosquitto_binary() is None:
        console.print(
            "mosquitto is not installed, so no events are delivered: they wait in "
            "the gate's outbox. Install it with: apt install mosquitto"
        )
    else:
        broker = Mosquitto(folder)
        try:
            broker.start()
        except BrokerError as error:
            console.print(f"the private broker did not start ({error}); events stay in the outbox")
            broker = None
    with quiet_unreachable_broker(broker is None):
        try:
            yield broker
        finally:
            if broker is not None:
                broker.stop()


@contextmanager
def quiet_unreachable_broker(quiet: bool) -> Iterator[None]:
    """Without a broker the publisher's connection warnings are expected: hush them."""
    logger = logging.getLogger("mqtt")
    level = logger.level
    if quiet:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def start_feed(port: int, kit: Kit) -> EventFeed:
    feed = EventFeed(port, gate_topics(kit.config).base)
    if not feed.start():
        log.warning("the demo's subscriber could not subscribe")
    return feed


class Driver(threading.Thread):
    """Draws the gate as it runs and stops the daemon once the scenario is played out."""

    def __init__(
        self,
        daemon: Daemon,
        kit: Kit,
        factory: MockFactory,
        *,
        feed: EventFeed | None,
        console: Console,
        title: str,
        forever: bool,
    ) -> None:
        super().__init__(name="demo-view", daemon=True)
        self._daemon = daemon
        self._kit = kit
        self._board = PinBoard(factory, output_pins(kit.config.gpio))
        self._feed = feed
        self._console = console
        self._title = title
        self._forever = forever
        self._done_since: float | None = None

    def run(self) -> None:
        try:
            self._draw()
        finally:
            self._daemon.stop()

    def _draw(self) -> None:
        live = self._console.is_terminal
        plain = PlainView(self._console.print)
        if not live:
            self._console.print(self._title)
        panel = LiveView(self._title)
        started = time.monotonic()
        with Live(console=self._console, auto_refresh=False) if live else nullcontext() as screen:
            while not self._finished(started):
                frame = self._look()
                if screen is not None:
                    screen.update(panel.render(frame), refresh=True)
                else:
                    plain.show(frame)
                time.sleep(TICK_S)

    def _finished(self, started: float) -> bool:
        if self._daemon.stopping:
            return True
        if self._forever:
            return False
        if time.monotonic() - started > DEADLINE_S:
            log.error("the scenario did not finish within %.0f s", DEADLINE_S)
            return True
        if self._done_since is None and self._played_out():
            self._done_since = time.monotonic()
        return self._done_since is not None and time.monotonic() - self._done_since > SETTLE_S

    def _played_out(self) -> bool:
        parts = self._daemon.parts
        if not parts.loop.stats().ended:
            return False
        expected = len(self._kit.expected)
        if self._feed is not None:
            return len(self._feed.snapshot()) >= expected
        return parts.outbox.depth().rows >= expected

    def _look(self) -> Frame:
        parts = self._daemon.parts
        stats = parts.loop.stats()
        events = self._feed.snapshot() if self._feed else []
        figures = {
            "mode": parts.gate.policy.mode,
            "fps": stats.fps,
            "decode_ms": stats.decode_ms,
            "outbox": parts.outbox.depth().rows,
            "broker": "connected" if parts.publisher.connected else "not connected",
        }
        return Frame(self._board.lamps(), self._kit.step_at(stats.frames_captured), events, figures)


def observe(kit: Kit, factory: MockFactory, feed: EventFeed | None) -> Outcome:
    relay = factory.pin(kit.config.gpio.relay)
    levels = [bool(change.state) for change in relay.states]
    openings = sum(1 for before, after in itertools.pairwise(levels) if after and not before)
    if feed is not None:
        events = unique_by_seq(feed.snapshot())
        delivered = True
    else:
        events = outbox_events(kit)
        delivered = False
    return Outcome(events, openings, not levels[-1], delivered)


def outbox_events(kit: Kit) -> list[dict[str, Any]]:
    """The events still waiting in the gate's outbox (the daemon has closed its own)."""
    outbox = open_outbox(kit.config)
    try:
        return [parse_event(row.payload).as_dict() for row in outbox.pending(limit=10_000)]
    finally:
        outbox.close()


def unique_by_seq(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """QoS 1 may deliver an event twice: keep one per seq, in seq order."""
    return sorted({event["seq"]: event for event in events}.values(), key=lambda e: e["seq"])


def report(console: Console, kit: Kit, outcome: Outcome, forever: bool) -> int:
    """Print the summary; 0 when every card had the expected outcome."""
    console.print()
    console.print("[bold]Summary[/bold]")
    if forever:
        console.print(
            f"  {len(outcome.events)} events; relay opened {outcome.relay_openings} "
            f"times, {'off' if outcome.relay_off else 'ON'} at the end"
        )
        return 0 if outcome.relay_off else 1
    checks = [*step_checks(kit, outcome.events), stream_check(outcome), relay_check(outcome)]
    for ok, text in checks:
        console.print(f"  {'[green]✓[/green]' if ok else '[red]✗[/red]'} {text}")
    passed = all(ok for ok, _ in checks)
    console.print("The gate did what it should." if passed else "[red]Something went wrong.[/red]")
    return 0 if passed else 1


def step_checks(kit: Kit, events: list[dict[str, Any]]) -> Iterator[tuple[bool, str]]:
    scans = iter(event for event in events if event["type"] == "scan")
    for step in kit.steps:
        if step.expect is None:
            yield True, f"{step.label}: {step.quiet}"
            continue
        event = next(scans, None)
        if event is None:
            yield False, f"{step.label}: expected {' '.join(step.expect)}, no event"
            continue
        got = (event["result"], event["reason"])
        yield got == step.expect, f"{step.label}: {event_words(event)}"
    extra = list(scans)
    if extra:
        yield False, f"{len(extra)} unexpected scan events"


def stream_check(outcome: Outcome) -> tuple[bool, str]:
    seqs = [event["seq"] for event in outcome.events]
    gap_free = seqs == list(range(1, len(seqs) + 1))
    where = "received by the centre" if outcome.delivered else "waiting in the outbox"
    return gap_free, f"{len(seqs)} events {where}, seq 1 to {len(seqs)} without a gap"


def relay_check(outcome: Outcome) -> tuple[bool, str]:
    state = "off" if outcome.relay_off else "still ON"
    return outcome.relay_off, f"relay opened {outcome.relay_openings} times, {state} at the end"
