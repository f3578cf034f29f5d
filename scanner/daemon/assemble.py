"""Build a whole gate from its configuration: the one place real parts are made.

The order matters: the store is opened first; the outputs come up next (relay driven
off) and are closed again if anything after them fails, so a half-built gate never leaves
the relay undefined. The camera comes last: it is the part most likely to fail on a badly
mounted device.

A store that cannot be opened (read-only filesystem, a file that is no database, a
damaged one) does not stop the gate: exiting would only have systemd restart it every few
seconds for ever, never connecting, and the centre would never learn why. The gate runs
in its fault state instead: every scan denied (`store_error`), no commands, and the
problem with what to do about it in its status, health and log.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from firmware.pins import make_pin_factory
from mqtt.clock import ClockTrust, kernel_clock_synced
from mqtt.errors import StoreError as OutboxStoreError
from mqtt.outbox import Outbox
from mqtt.publisher import Publisher
from scanner._version import __version__
from scanner.camera.pending import open_camera
from scanner.clock import Clock, SystemClock
from scanner.config import Config
from scanner.daemon.gate import Gate
from scanner.daemon.hardware import input_pins, open_inputs, open_outputs
from scanner.daemon.preflight import check_runnable
from scanner.daemon.remote import Remote, load_pushed_keys, pushed_jwks_path
from scanner.daemon.sdnotify import Notifier, Watchdog
from scanner.daemon.service import Daemon, Parts, health_figures
from scanner.daemon.storefault import StoreProblem, diagnose, truncation
from scanner.decision.policy import Policy
from scanner.mqttconfig import command_intake, gate_topics, open_outbox, publisher_settings
from scanner.state.store import Store, StoreError
from scanner.vision.decode import make_decoder
from scanner.vision.frameloop import FrameLoop

if TYPE_CHECKING:
    from gpiozero.pins import Factory

    from scanner.camera import FrameSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Options:
    """What a caller other than `qrgate run` changes: the demo, tests, benchmarks."""

    clock: Clock | None = None
    pin_factory: Factory | None = None  # else made from gpio.pin_factory
    source: FrameSource | None = None  # else opened from camera.source
    trust_kernel_clock: bool = True  # False where the kernel's sync flag means nothing


def build_daemon(config: Config, options: Options | None = None) -> Daemon:
    """The gate daemon, every part built and wired, nothing started yet."""
    parts = build_parts(config, options or Options())
    notifier = Notifier.from_environment()
    checks = {
        "frame loop": lambda: parts.loop.stats().healthy,
        "publisher": lambda: parts.publisher.alive,
        "decisions": parts.gate.not_stuck,
    }
    return Daemon(parts, notifier, Watchdog.from_environment(notifier, checks))


@dataclass(frozen=True)
class State:
    """The gate's database as opened: outbox and store, or stand-ins and the problem."""

    outbox: Outbox
    store: Store
    problem: StoreProblem | None = None


def open_state(config: Config) -> State:
    """The outbox and store in the database at store.path (created when missing), or,
    when it cannot be used, an outbox that records nothing, an empty store in memory and
    what is wrong."""
    try:
        return State(*open_database(config))
    except (OutboxStoreError, StoreError) as error:
        problem = diagnose(config.store.path, error)
    log.error("the store cannot be used: %s; every scan is denied until it is fixed", problem)
    gate = config.gate
    outbox = Outbox.unusable_store(gate.site, gate.id, gate.direction, problem.finding)
    return State(outbox, Store.in_memory(), problem)


def open_database(config: Config) -> tuple[Outbox, Store]:
    truncated = truncation(config.store.path)
    if truncated is not None:  # SQLite would open it, and trip on it later
        raise StoreError(f"store {config.store.path}: {truncated}") from truncated
    with contextlib.ExitStack() as undo:
        outbox = open_outbox(config)  # creates the state directory when missing
        undo.callback(outbox.close)
        store = Store.open(config.store.path)
        undo.callback(store.close)
        store.get_mode()  # a store damaged where it is read first fails here already
        undo.pop_all()
    return outbox, store


def build_parts(config: Config, options: Options) -> Parts:
    check_runnable(config)  # before the store, the pins or the camera are touched
    clock = options.clock or SystemClock()
    with contextlib.ExitStack() as undo:
        state = open_state(config)
        outbox, store = state.outbox, state.store
        undo.callback(outbox.close)
        undo.callback(store.close)
        policy = Policy.from_config(config, store, clock)
        factory = options.pin_factory or make_pin_factory(config.gpio.pin_factory)
        late = LateBound()
        outputs = open_outputs(config.gpio, factory, on_error=late.output_error)
        undo.callback(outputs.close)
        gate = Gate(policy, outbox, outputs, clock, clock_trust(clock, options), wake=late.wake)
        late.gate = gate
        restore_state(gate, config)
        if state.problem is not None:
            gate.fault("database", str(state.problem))
        # A camera missing now is tried again, then given up with an alert; the gate
        # runs meanwhile (see scanner.camera.pending).
        source = options.source or open_camera(
            config.camera, on_give_up=lambda alert: gate.fault("camera", alert)
        )
        undo.callback(source.close)
        loop = frame_loop(config, source, gate)
        publisher = make_publisher(config, gate, loop, state)
        late.publisher = publisher
        inputs = None
        if input_pins(config.gpio).any_fitted:
            inputs = open_inputs(config.gpio, factory, outputs, gate.on_input)
        undo.pop_all()
    closers = [outbox.close, store.close, gate.close]  # closed in reverse: the gate first
    return Parts(gate, loop, publisher, outbox, inputs, closers=closers)


def clock_trust(clock: Clock, options: Options) -> ClockTrust:
    synced = kernel_clock_synced if options.trust_kernel_clock else no_kernel_opinion
    return ClockTrust(wall=clock.now, monotonic=clock.monotonic, synced=synced)


def no_kernel_opinion() -> bool | None:
    return None


def restore_state(gate: Gate, config: Config) -> None:
    """Keys pushed by the centre and the persisted gate mode survive a restart."""
    load_pushed_keys(gate, pushed_jwks_path(config.store.path))
    if gate.policy.mode != "normal":
        log.warning("gate mode %s, as persisted before the restart", gate.policy.mode)
    gate.outputs.set_mode(gate.policy.mode)


def frame_loop(config: Config, source: FrameSource, gate: Gate) -> FrameLoop:
    camera = config.camera
    decoder = make_decoder(
        camera.decoder,
        live_share=camera.second_look_share,
        skip_unchanged=camera.skip_unchanged,
    )
    return FrameLoop(
        source,
        decoder,
        gate.on_codes,
        on_fault=lambda message: gate.fault("camera", message),
        stall_s=camera.stall_s,
    )


def make_publisher(config: Config, gate: Gate, loop: FrameLoop, state: State) -> Publisher:
    """The publisher, with the command intake unless the store is unusable (commands
    need it to remember which ones ran)."""
    remote = Remote(gate, state.store, pushed_jwks_path(config.store.path), state.outbox)
    intake = None if state.problem else command_intake(config, remote.handlers())
    problem = state.problem
    return Publisher(
        publisher_settings(config),
        gate_topics(config),
        state.outbox,
        lambda: health_figures(gate, loop),
        intake,
        version=__version__,
        fault=lambda: str(problem) if problem else state.outbox.unusable,
    )


class LateBound:
    """Callbacks wired before their target exists (outputs report to the gate, the gate
    wakes the publisher); calls before then are logged or dropped harmlessly."""

    def __init__(self) -> None:
        self.gate: Gate | None = None
        self.publisher: Publisher | None = None

    def output_error(self, message: str) -> None:
        if self.gate is None:
            log.error("outputs: %s", message)
        else:
            self.gate.fault("outputs", message)

    def wake(self) -> None:
        if self.publisher is not None:
            self.publisher.wake()
