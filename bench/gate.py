"""The gate against DESIGN.md's targets: scan to relay, and the daemon's CPU and memory.

    .venv/bin/python -m bench.gate [--grants 2000] [--decodes 300] [--seconds 20]

1. Scan to relay, on the gate `qrgate run` builds (scanner.daemon.assemble): the real Policy,
   Store and Outbox in one database file on disk (WAL, synchronous=FULL), gpiozero's
   MockFactory with pins that stamp each change, and the publisher connected to a private
   mosquitto, draining and checkpointing as on a gate. Every grant is a code not seen
   before (a new pass, badge or ID card, so the repeat window never suppresses one),
   handed to `Gate.on_codes` as the decode thread hands it; the latency ends when the
   relay pin is written. Between grants the gate is quiet, as between two workers: the
   pulse is ended and the publisher has delivered the event. The split times
   `policy.decide`, `outbox.append` and `outputs.granted()` up to the relay write; the
   rest is hashing, the clock and waking the publisher. Baselines in the same run: the
   same gate without the outbox append (what persisting costs), bare `outputs.granted()`,
   and a bare SQLite INSERT committed with synchronous=FULL in the same folder (the
   disk's floor under any durable append). Then frame to relay including the decode: a
   640x480 frame with the code through the live decoder, then the gate; baseline: a bare
   zxing-cpp read of the same frame.
2. The daemon: `qrgate run` as a subprocess at 30 fps on a camera of frames already in
   memory (as a Pi camera hands them over: the camera costs nothing of its own), mock
   pins, the private broker, commands disabled; with nobody in view (skipping unchanged
   frames, the default, and without) and with a code every second, that once more with
   commands enabled, as a gate has them by default. Beside each daemon
   runs the bare loop, the same frames at 30 fps into bare zxing-cpp, and both are read
   from /proc over the same windows: CPU of the decode thread (named by py-spy) and of
   the whole daemon against the bare loop's, each window's ratio, VmRSS and VmHWM against
   the target; then what `qrgate run` imports (its own `-X importtime` list) and what
   each package costs in resident memory.

Everything lives in a temporary folder on disk, removed at the end, on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import zxingcpp
from gpiozero.pins.mock import MockFactory
from msgspec.structs import replace

from bench.gate_daemon import daemon_tables
from bench.gate_io import StampedPin
from mqtt.outbox import Outbox
from scanner.camera import Frame
from scanner.clock import SystemClock
from scanner.config import Config, PolicySection
from scanner.credentials.keys import PrivateKey, load_private_key
from scanner.credentials.passes import issue_pass
from scanner.daemon.assemble import Options, build_parts, clock_trust
from scanner.daemon.gate import Gate
from scanner.daemon.sdnotify import Notifier
from scanner.daemon.service import Daemon, Parts
from scanner.decision.policy import Policy
from scanner.demo.scenario import FRAME_SIZE, SITE, Kit, background, build_kit, card_frame
from scanner.errors import QrgateError
from scanner.localbroker import Mosquitto
from scanner.state.store import AllowEntry, Store
from scanner.vision.decode import QR_FORMATS, Code, Decoder, make_decoder
from scanner.vision.images import Gray

KINDS = ("pass EdDSA", "badge", "cccd")
KID = "demo-2026"  # the scenario kit's signing key
DAY = 86_400.0
TARGET_MS = 1.0  # DESIGN.md: frame -> relay command, beyond decode, p99
QUIET_TIMEOUT_S = 5.0
# /tmp may be a tmpfs (Debian 13), where an fsync costs nothing: the store goes on disk.
DISK_TMP = "/var/tmp"
CORNERS = ((0, 0), (1, 0), (1, 1), (0, 1))
NO_IMAGE = np.zeros((FRAME_SIZE[1], FRAME_SIZE[0]), dtype=np.uint8)

Span = tuple[float, float]  # perf_counter at a call's start and end


@dataclass(frozen=True)
class Stats:
    p50: float
    p99: float
    max: float

    @classmethod
    def of(cls, seconds: list[float]) -> Stats:
        ms = np.asarray(seconds) * 1000
        return cls(*(float(value) for value in np.percentile(ms, [50, 99, 100])))

    def cells(self) -> str:
        return f"{self.p50:.3f} | {self.p99:.3f} | {self.max:.3f}"


@dataclass
class Grants:
    """One series of scans: `on_codes` to the relay write, and the calls inside it."""

    total: list[float] = field(default_factory=list)
    decide: list[Span] = field(default_factory=list)
    append: list[Span] = field(default_factory=list)
    granted: list[Span] = field(default_factory=list)
    relay_at: list[float] = field(default_factory=list)

    def split(self) -> list[list[float]]:
        """decide, outbox append, outputs (the call to the relay write), and the rest."""
        decide = [end - start for start, end in self.decide]
        append = [end - start for start, end in self.append] or [0.0] * len(self.total)
        outputs = [at - start for (start, _), at in zip(self.granted, self.relay_at, strict=True)]
        parts = zip(self.total, decide, append, outputs, strict=True)
        return [decide, append, outputs, [t - d - a - o for t, d, a, o in parts]]


@dataclass
class Lab:
    """The gate's parts, built as the daemon builds them, with stamped mock pins."""

    config: Config
    parts: Parts
    relay: StampedPin
    store: Store  # a second connection to the gate's store, for the decode-inclusive gate

    @property
    def gate(self) -> Gate:
        return self.parts.gate

    def gate_like(self, policy: Policy, outbox: Outbox) -> Gate:
        """Another gate on the same outputs and publisher, as `scanner.daemon.assemble` does."""
        clock = SystemClock()
        trust = clock_trust(clock, Options())
        outputs, wake = self.gate.outputs, self.parts.publisher.wake
        return Gate(policy, outbox, outputs, clock, trust, wake=wake)

    def quiet(self) -> None:
        """As between two workers: the pulse is over and the last event delivered."""
        self.gate.outputs.safe_state()
        deadline = time.monotonic() + QUIET_TIMEOUT_S
        while self.parts.outbox.depth().rows:
            if time.monotonic() > deadline:
                raise RuntimeError("the publisher did not deliver the events to the broker")
            time.sleep(0.0005)


# The gate under test


def gate_config(kit: Kit) -> Config:
    """The kit's gate with DESIGN.md's policy defaults, accepting all three kinds, each
    on its own (the kit pairs ID cards with health certificates, which are not accepted)."""
    policy = PolicySection(accept=["pass", "badge", "cccd"])
    dcc = replace(kit.config.dcc, pair_with=[])
    return replace(kit.config, policy=policy, dcc=dcc)


@contextlib.contextmanager
def open_lab(folder: Path, broker: Mosquitto, count: int) -> Iterator[tuple[Lab, PrivateKey]]:
    kit = build_kit(folder, time.time(), broker.port)
    config = gate_config(kit)
    allow_subjects(config, count)
    factory = MockFactory(pin_class=StampedPin)
    parts = build_parts(config, Options(pin_factory=factory))
    daemon = Daemon(parts, Notifier(None))
    store = Store.open(config.store.path)
    try:
        parts.publisher.start()
        relay = cast(StampedPin, factory.pin(config.gpio.relay))
        yield Lab(config, parts, relay, store), load_private_key(key_path(kit))
    finally:
        daemon.shutdown()
        store.close()


def key_path(kit: Kit) -> Path:
    return kit.folder / "keys" / f"{KID}.key.pem"


def badge(number: int) -> bytes:
    return f"B-{number:05d}".encode()


def card_number(number: int) -> str:
    return f"0010990{number:05d}"


def id_card(number: int) -> bytes:
    born, issued = "01011990", "15062021"
    fields = (card_number(number), "123456789", "Trần Văn Dũng", born, "Nam", "Lào Cai", issued)
    return "|".join(fields).encode()


def allow_subjects(config: Config, count: int) -> None:
    """Allowlist every badge and ID card the benchmark shows (two series of each)."""
    badges = [
        AllowEntry(badge(n).decode(), f"Worker {n}", frozenset({"badge"})) for n in range(count)
    ]
    cards = [AllowEntry(card_number(n), f"Card {n}", frozenset({"cccd"})) for n in range(count)]
    with Store.open(config.store.path) as store:
        store.allowlist.add_all(badges + cards)


def payloads(key: PrivateKey, kind: str, numbers: range) -> list[bytes]:
    """Codes of one kind, each one new to the gate."""
    if kind == "badge":
        return [badge(n) for n in numbers]
    if kind == "cccd":
        return [id_card(n) for n in numbers]
    now = time.time()
    return [
        issue_pass(
            key, KID, f"W-{n:05d}", now=now, valid_for_s=DAY, name="Nguyễn Văn An", sites=[SITE]
        ).encode()
        for n in numbers
    ]


# Scan to relay


@contextlib.contextmanager
def stopwatch(target: object, method: str, into: list[Span]) -> Iterator[None]:
    """Note the start and end of every call of `target.method` until the block ends."""
    original = getattr(target, method)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into.append((start, time.perf_counter()))

    setattr(target, method, timed)
    try:
        yield
    finally:
        delattr(target, method)  # the class's method shows through again


def scan_to_relay(lab: Lab, gate: Gate, codes: list[bytes], outbox: Outbox | None) -> Grants:
    """Hand each code to the gate as the decode thread does; time it up to the relay.
    `outbox` is the gate's, to time its appends (None for a gate that records nothing)."""
    grants = Grants()
    with contextlib.ExitStack() as watches:
        watches.enter_context(stopwatch(gate.policy, "decide", grants.decide))
        watches.enter_context(stopwatch(gate.outputs, "granted", grants.granted))
        if outbox is not None:
            watches.enter_context(stopwatch(outbox, "append", grants.append))
        for number, payload in enumerate(codes, start=1):
            lab.quiet()
            frame = Frame(NO_IMAGE, time.monotonic(), number)
            start = time.perf_counter()
            gate.on_codes(frame, [Code.of(payload, CORNERS, "zxing")])
            grants.relay_at.append(relay_written(lab, payload))
            grants.total.append(grants.relay_at[-1] - start)
    return grants


def relay_written(lab: Lab, payload: bytes) -> float:
    """When the relay pin went on for the scan just made (quiet() turned it off before)."""
    if not lab.relay.state:
        raise RuntimeError(f"not granted: {payload[:40]!r}")
    return lab.relay.changed_at[-1]


class Unrecorded:
    """An outbox that keeps nothing: the gate's path without persisting the event."""

    def append(self, type: str, **fields: object) -> None:
        return None


def unrecorded_gate(lab: Lab) -> Gate:
    return lab.gate_like(lab.gate.policy, cast(Outbox, Unrecorded()))


def bare_granted(lab: Lab, count: int) -> list[float]:
    """`outputs.granted()` alone, from the call to the relay write."""
    samples = []
    for _ in range(count):
        lab.gate.outputs.safe_state()
        start = time.perf_counter()
        lab.gate.outputs.granted()
        samples.append(lab.relay.changed_at[-1] - start)
    return samples


def bare_durable_insert(folder: Path, count: int) -> list[float]:
    """The disk's floor: one INSERT committed with WAL and synchronous=FULL, no more."""
    connection = sqlite3.connect(folder / "bare.db", isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
        payload = b"x" * 420  # the size of a scan event
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            connection.execute("INSERT INTO t (payload) VALUES (?)", (payload,))
            samples.append(time.perf_counter() - start)
        return samples
    finally:
        connection.close()


def scan_tables(lab: Lab, key: PrivateKey, folder: Path, count: int) -> list[str]:
    """Per kind: ours, the split, and the same path without the append."""
    rows = [
        f"**Scan to relay** ({count:,} grants per kind: `Gate.on_codes` to the relay pin, ms)",
        "",
        "| kind | p50 | p99 | max | without the append: p50 | p99 | max | ratio p99 | target p99 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    split = [
        "| kind | decide p50 / p99 | outbox append p50 / p99 | outputs p50 / p99 "
        "| rest p50 / p99 |",
        "|---|---|---|---|---|",
    ]
    for kind in KINDS:
        ours = scan_to_relay(lab, lab.gate, payloads(key, kind, range(count)), lab.parts.outbox)
        codes = payloads(key, kind, range(count, 2 * count))
        bare = scan_to_relay(lab, unrecorded_gate(lab), codes, None)
        mine, unrecorded = Stats.of(ours.total), Stats.of(bare.total)
        verdict = "met" if mine.p99 <= TARGET_MS else "NOT met"
        rows.append(
            f"| {kind} | {mine.cells()} | {unrecorded.cells()} | {mine.p99 / unrecorded.p99:.1f} "
            f"| ≤ {TARGET_MS:g} ms: {verdict} |"
        )
        cells = " | ".join(pair(Stats.of(part)) for part in ours.split())
        split.append(f"| {kind} | {cells} |")
    granted, disk = Stats.of(bare_granted(lab, count)), Stats.of(bare_durable_insert(folder, count))
    return [
        *rows,
        "",
        "**Where the time goes** (ms)",
        "",
        *split,
        "",
        "| baseline | p50 | p99 | max |",
        "|---|---|---|---|",
        f"| bare `outputs.granted()` to the relay write | {granted.cells()} |",
        f"| bare SQLite INSERT + commit, WAL, synchronous=FULL, same disk | {disk.cells()} |",
    ]


def pair(stats: Stats) -> str:
    return f"{stats.p50:.3f} / {stats.p99:.3f}"


# Frame to relay, decode included


def code_frame(payload: bytes) -> Gray:
    return card_frame(background(FRAME_SIZE), payload, tilt=4.0)


def repeating_gate(lab: Lab) -> Gate:
    """The lab's gate with the repeat window at 0, so the same frame is decided each time."""
    rules = replace(lab.config.policy, repeat_window_s=0.0)
    config = replace(lab.config, policy=rules)
    return lab.gate_like(Policy.from_config(config, lab.store, SystemClock()), lab.parts.outbox)


def frame_to_relay(lab: Lab, gate: Gate, image: Gray, count: int) -> tuple[list[float], ...]:
    camera = lab.config.camera
    decoder: Decoder = make_decoder(camera.decoder, live_share=camera.second_look_share)
    totals, decodes = [], []
    for number in range(1, count + 1):
        lab.quiet()
        start = time.perf_counter()
        codes = decoder.decode(image)
        decoded = time.perf_counter()
        gate.on_codes(Frame(image, time.monotonic(), number), codes)
        totals.append(relay_written(lab, codes[0].payload if codes else b"nothing read") - start)
        decodes.append(decoded - start)
    return totals, decodes


def bare_zxing(image: Gray, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        zxingcpp.read_barcodes(image, formats=QR_FORMATS)
        samples.append(time.perf_counter() - start)
    return samples


def decode_table(lab: Lab, key: PrivateKey, count: int) -> list[str]:
    rows = [
        f"**Frame to relay, decode included** ({count} frames per kind, 640x480, ms)",
        "",
        "| kind | decode p50 | total p50 | p99 | max | bare zxing-cpp read p50 | ratio p50 |",
        "|---|---|---|---|---|---|---|",
    ]
    gate = repeating_gate(lab)
    for kind in KINDS:
        image = code_frame(payloads(key, kind, range(1))[0])
        totals, decodes = frame_to_relay(lab, gate, image, count)
        ours, bare = Stats.of(totals), Stats.of(bare_zxing(image, count))
        rows.append(
            f"| {kind} | {Stats.of(decodes).p50:.3f} | {ours.cells()} | {bare.p50:.3f} "
            f"| {ours.p50 / bare.p50:.2f} |"
        )
    return rows


# The run


def environment(folder: Path) -> str:
    return (
        f"{cpu_model()}, {os.cpu_count()} cores; Python {sys.version.split()[0]}, "
        f"SQLite {sqlite3.sqlite_version}; store on {filesystem(folder)}"
    )


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return "unknown CPU"


def filesystem(folder: Path) -> str:
    """The type and device of the mount holding `folder` (the disk under the fsyncs)."""
    best = ("", "?", "?")
    for line in Path("/proc/mounts").read_text().splitlines():
        device, mount, kind, *_ = line.split()
        if folder.is_relative_to(mount) and len(mount) >= len(best[0]):
            best = (mount, kind, device)
    return f"{best[1]} ({best[2]})"


def stop_on_sigterm() -> None:
    """`kill` cleans up like Ctrl-C: the `with` blocks unwind and remove what they made."""

    def interrupt(_number: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def run(args: argparse.Namespace, emit: Callable[[str], None]) -> None:
    # A machine whose kernel clock is not synchronised makes the gate flag its timestamps,
    # and say so once per gate: true, and beside the point here.
    logging.getLogger("mqtt.clock").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="qrgate-bench-gate-", dir=DISK_TMP) as tmp:
        folder = Path(tmp)
        emit(f"# bench.gate\n\n{environment(folder)}\n")
        broker = Mosquitto(folder / "broker").start()
        try:
            with open_lab(folder / "lab", broker, 2 * args.grants) as (lab, key):
                emit("\n".join(scan_tables(lab, key, folder, args.grants)) + "\n")
                emit("\n".join(decode_table(lab, key, args.decodes)) + "\n")
                shown = payloads(key, "pass EdDSA", range(1))[0]
                jwks = lab.config.passes.jwks
            for table in daemon_tables(folder / "daemon", broker.port, jwks, shown, args.seconds):
                emit("\n".join(table) + "\n")
        finally:
            broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grants", type=int, default=2000, help="grants per kind")
    parser.add_argument("--decodes", type=int, default=300, help="decoded frames per kind")
    parser.add_argument("--seconds", type=float, default=20.0, help="CPU sampling per daemon")
    args = parser.parse_args()
    stop_on_sigterm()
    try:
        run(args, print)
    except KeyboardInterrupt:
        print("interrupted; processes stopped and temporary files removed", file=sys.stderr)
        sys.exit(130)
    except (QrgateError, RuntimeError) as error:  # no broker, a daemon that did not start
        sys.exit(f"bench.gate: {error}")


if __name__ == "__main__":
    main()
