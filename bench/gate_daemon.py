"""Part 2 of bench.gate (run it as `python -m bench.gate`): `qrgate run` as a process.

The camera is a stack of frames in memory (`replay:STACK.npy`), which costs nothing of
its own per frame, as a Pi camera hands its frames over: what the daemon spends is the
gate's. Two views at 30 fps: nobody in view (the scene, with fresh sensor noise in every
frame), and a code every second (a pass held up for 8 of every 30 frames, moving a little
as a hand does). Each daemon runs beside the bare loop on the same frames
(bench.gate_baselines camera: bare zxing-cpp at 30 fps), and both are read from /proc
over the same windows (CPU time of each process and of the daemon's threads, VmRSS and
VmHWM), so that the load others put on the machine falls on both alike. Ratios are given
over the whole run and as the range over its windows. The daemon runs in the environment
systemd/qrgate.service gives the service (glibc's malloc settings among it).
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.proc import MB, cpu_seconds, memory_mb
from scanner.config import load_config, parse_config
from scanner.demo.feed import EventFeed
from scanner.demo.scenario import FRAME_SIZE, background, card_frame
from scanner.mqttconfig import gate_topics
from tests.support.gateproc import write_config as write_toml

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "qrgate.service"
FPS = 30
DISTINCT_FRAMES = 8  # frames the camera holds, each with its own sensor noise
CYCLE_FRAMES, HELD_FRAMES = 30, 8  # a code every second, held up for 0.27 s of it
REPEAT_S = 0.5  # shorter than the gap, so each showing is a new scan, granted and published
WARM_UP_S = 3.0
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
DECODE_TARGET = 1.3  # the decode thread with nobody in view, against the bare loop
DAEMON_TARGET = 2.0  # the whole daemon with nobody in view, against the bare loop
RSS_TARGET_MB = 72.0
LIBRARIES_ON_FIRST_NEED = ("PIL.Image", "pyzbar.pyzbar")  # the second look's
COMMAND_INTAKE = "mqtt.commands"  # loaded with commands enabled
WITH_COMMANDS = "commands enabled (the default)"
OURS = ("scanner", "mqtt", "firmware")


# The camera's view and the daemon's config


def write_stack(path: Path, shown: bytes | None) -> None:
    """640x480 frames with sensor noise: nobody, or a code every second. Eight distinct
    frames either way, about what a Pi camera's buffers hold, played in a set order."""
    rng = np.random.default_rng(7)
    scene = background(FRAME_SIZE)
    if shown is None:
        views, order = [scene] * DISTINCT_FRAMES, list(range(DISTINCT_FRAMES))
    else:
        half = DISTINCT_FRAMES // 2
        # The hand holding the code is never still: the card turns a little every frame.
        held = [card_frame(scene, shown, tilt=3.0 + 0.5 * n) for n in range(half)]
        views = [scene] * half + held
        nobody = CYCLE_FRAMES - HELD_FRAMES
        order = [n % half for n in range(nobody)] + [half + n % half for n in range(HELD_FRAMES)]
    frames = [np.clip(view + rng.normal(0, 2.0, view.shape), 0, 255) for view in views]
    np.savez(path, frames=np.stack(frames).astype(np.uint8), order=np.array(order))


def write_config(
    folder: Path, stack: Path, port: int, jwks: Path, skip: bool, *, commands: bool = False
) -> Path:
    """A gate at DESIGN.md's defaults but for the camera, mock pins and broker; commands
    enabled (the default) with the pass keys as the centre's, or off."""
    sections: dict[str, dict[str, object]] = {
        "camera": {
            "source": f"replay:{stack}",
            "fps": FPS,
            "replay_loop": True,
            "skip_unchanged": skip,
        },
        "gpio": {"pin_factory": "mock"},
        "policy": {"accept": ["pass", "badge", "cccd"], "repeat_window_s": REPEAT_S},
        "passes": {"jwks": str(jwks)},
        "store": {"path": str(folder / "state" / "qrgate.db")},
        "mqtt": {"host": "127.0.0.1", "port": port},
        "commands": {"enabled": True, "jwks": str(jwks)} if commands else {"enabled": False},
    }
    folder.mkdir(parents=True)
    # Validated here: a mistake in it is ours, said now, not as the daemon's exit 78.
    return write_toml(parse_config(sections), folder / "config.toml")


# Reading a process from outside


def task_seconds(task: Path) -> float:
    """CPU time of a thread in seconds: the scheduler's count in nanoseconds where the
    kernel keeps one (a thread using 1 % of a core adds only one 10 ms tick a second to
    utime + stime), else utime + stime."""
    with contextlib.suppress(OSError):
        return int((task / "schedstat").read_text().split()[0]) / 1e9
    return cpu_seconds(task / "stat")


def thread_seconds(pid: int) -> dict[int, float]:
    seconds = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            seconds[int(task.name)] = task_seconds(task)
    return seconds


def unit_environment(unit: Path = UNIT) -> dict[str, str]:
    """The variables systemd/qrgate.service sets for the daemon (its Environment= lines),
    so that the benchmark's daemon runs as the service does (glibc's malloc settings)."""
    variables = {}
    for line in unit.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "Environment":
            for assignment in shlex.split(value):
                name, _, setting = assignment.partition("=")
                variables[name] = setting
    return variables


def service_environment() -> dict[str, str]:
    """Ours, with the unit's variables: for the daemon, and for its baselines alike."""
    return {**os.environ, **unit_environment()}


@dataclass(frozen=True)
class Reading:
    """CPU seconds used so far by each thread of the daemon and of the bare loop."""

    at: float
    daemon: dict[int, float]
    bare: dict[int, float]

    @classmethod
    def take(cls, daemon: int, bare: int) -> Reading:
        return cls(time.monotonic(), thread_seconds(daemon), thread_seconds(bare))


def percents(start: dict[int, float], end: dict[int, float], wall: float) -> dict[int, float]:
    """Percent of one core per thread alive at both readings."""
    return {tid: 100 * (end[tid] - seconds) / wall for tid, seconds in start.items() if tid in end}


@dataclass(frozen=True)
class Window:
    """Percent of one core over one window: the daemon, each of its threads, the bare loop."""

    daemon: float
    threads: dict[int, float]
    bare: float

    @classmethod
    def between(cls, start: Reading, end: Reading) -> Window:
        wall = end.at - start.at
        threads = percents(start.daemon, end.daemon, wall)
        bare = sum(percents(start.bare, end.bare, wall).values())
        return cls(sum(threads.values()), threads, bare)


def thread_names(pid: int) -> dict[int, str]:
    """Python thread names by native id, from `py-spy dump` when it is installed."""
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        return {}
    dump = subprocess.run(
        [spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=20, check=False
    )
    found = re.findall(r'^Thread (\d+) \([^)]*\): "(.*)"$', dump.stdout, flags=re.MULTILINE)
    return {int(tid): name for tid, name in found}


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# The daemon and the bare loop


@dataclass
class Running:
    """`qrgate run` in a process of its own, talking to our notify socket."""

    process: subprocess.Popen[bytes]
    notify: socket.socket
    log: Path
    status: str = ""
    ready: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self.ready:
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
                raise RuntimeError(f"qrgate run did not get ready:\n{tail}")
            self.read_notifications(timeout=0.2)

    def read_notifications(self, timeout: float = 0.0) -> None:
        """Take the datagrams waiting, after waiting up to `timeout` for the first."""
        self.notify.settimeout(timeout)
        with contextlib.suppress(TimeoutError, BlockingIOError):
            while True:
                for line in self.notify.recv(4096).decode().splitlines():
                    self.ready = self.ready or line == "READY=1"
                    if line.startswith("STATUS="):
                        self.status = line.removeprefix("STATUS=")
                self.notify.setblocking(False)

    def imported(self) -> list[str]:
        """The modules imported so far, in the order their imports finished."""
        text = self.log.read_text(errors="replace")
        return re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)$", text, flags=re.MULTILINE)


@contextlib.contextmanager
def running_daemon(config: Path) -> Iterator[Running]:
    folder = config.parent
    address = folder / "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(address))
    log = folder / "daemon.log"
    # In the environment systemd/qrgate.service gives it (its -c wins over QRGATE_CONFIG).
    env = {**service_environment(), "NOTIFY_SOCKET": str(address)}
    env.pop("WATCHDOG_USEC", None)
    with log.open("wb") as output:
        process = subprocess.Popen(
            # -X importtime lists every import in the log; it costs nothing once started.
            [sys.executable, "-X", "importtime", "-m", "scanner", "run", "-c", str(config)],
            stdout=output,
            stderr=output,
            env=env,
            start_new_session=True,  # Ctrl-C reaches us only; we stop it in order
        )
    try:
        daemon = Running(process, notify, log)
        daemon.wait_ready()
        yield daemon
    finally:
        stop(process)
        notify.close()


@contextlib.contextmanager
def helper(args: list[str]) -> Iterator[subprocess.Popen[str]]:
    """A helper process that prints `ready` once it is set up, then works until stopped."""
    process = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=service_environment(),
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError(f"{args[-1]!r} failed to start")
        yield process
    finally:
        stop(process)


def baseline(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.gate_baselines", *args]


@dataclass(frozen=True)
class Run:
    """One view: the daemon and the bare loop measured side by side."""

    label: str
    windows: list[Window]
    decode_tid: int | None  # the daemon's decode thread, when py-spy could name it
    names: dict[int, str]
    memory: dict[str, float]
    bare_memory: dict[str, float]
    events: int  # delivered to the broker within the windows
    status: str
    at_ready: list[str]  # modules imported when READY=1 came
    at_end: list[str]

    def percent(self, part: str) -> tuple[float, float]:
        """Mean percent of one core over the windows: ours (`decode` or `daemon`), bare."""
        ours = [self.ours(window, part) for window in self.windows]
        return sum(ours) / len(ours), sum(w.bare for w in self.windows) / len(self.windows)

    def ratios(self, part: str) -> list[float]:
        return [self.ours(window, part) / window.bare for window in self.windows if window.bare]

    def by_thread(self) -> dict[str, float]:
        """Mean percent of one core by thread name (threads without one summed)."""
        shares: dict[str, float] = {}
        for window in self.windows:
            for tid, percent in window.threads.items():
                name = self.names.get(tid) or ("native, not Python" if self.names else "unnamed")
                shares[name] = shares.get(name, 0.0) + percent / len(self.windows)
        return shares

    def ours(self, window: Window, part: str) -> float:
        if part == "daemon":
            return window.daemon
        return (
            window.threads.get(self.decode_tid, float("nan")) if self.decode_tid else float("nan")
        )


def measure(label: str, config: Path, stack: Path, seconds: float, rounds: int) -> Run:
    gate = load_config(config)[0]
    feed = EventFeed(gate.mqtt.port, gate_topics(gate).base)
    if not feed.start():
        raise RuntimeError("the benchmark's subscriber could not subscribe")
    try:
        with running_daemon(config) as daemon, helper(baseline("camera", str(stack))) as bare:
            at_ready = daemon.imported()
            time.sleep(WARM_UP_S)
            names = thread_names(daemon.pid)
            before = len(feed.snapshot())
            readings = [Reading.take(daemon.pid, bare.pid)]
            for _ in range(rounds):
                time.sleep(seconds / rounds)
                readings.append(Reading.take(daemon.pid, bare.pid))
            events = len(feed.snapshot()) - before
            windows = [Window.between(a, b) for a, b in itertools.pairwise(readings)]
            daemon.read_notifications()
            decode = next((tid for tid, name in names.items() if name == "decode"), None)
            return Run(
                label,
                windows,
                decode,
                names,
                memory_mb(daemon.pid),
                memory_mb(bare.pid),
                events,
                daemon.status,
                at_ready,
                daemon.imported(),
            )
    finally:
        feed.stop()


def import_costs(groups: list[tuple[str, list[str]]]) -> list[tuple[str, int, float]]:
    """Per group: its label, how many of its modules imported, VmRSS after it (MB)."""
    args = baseline("imports", *(f"{label}={','.join(names)}" for label, names in groups))
    done = subprocess.run(
        args, capture_output=True, text=True, check=True, cwd=ROOT, env=service_environment()
    )
    lines = (line.split("\t") for line in done.stdout.splitlines())
    return [(label, int(count), float(mb)) for label, count, mb in lines]


def config_weight(config: Path) -> float:
    done = subprocess.run(
        baseline("config", str(config)), capture_output=True, text=True, check=True, cwd=ROOT
    )
    return float(done.stdout.split()[0])


# Tables


def daemon_tables(
    folder: Path, port: int, jwks: Path, shown: bytes, seconds: float, *, rounds: int = 4
) -> Iterator[list[str]]:
    folder.mkdir(parents=True)
    nobody, busy = folder / "nobody.npz", folder / "busy.npz"
    write_stack(nobody, None)
    write_stack(busy, shown)
    views = [
        ("nobody in view", nobody, True, False),
        ("nobody in view, skip_unchanged = false", nobody, False, False),
        ("a code every second", busy, True, False),
        (f"a code every second, {WITH_COMMANDS}", busy, True, True),
    ]
    runs = []
    for number, (label, stack, skip, commands) in enumerate(views):
        config = write_config(folder / f"gate-{number}", stack, port, jwks, skip, commands=commands)
        runs.append(measure(label, config, stack, seconds, rounds))
    yield cpu_table(runs, seconds, rounds)
    yield memory_table(runs)
    yield thread_table(runs)
    yield import_table(runs[2], config_weight(folder / "gate-0" / "config.toml"))


def span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}" if values else "n/a"


def verdict(ratio: float, target: float | None) -> str:
    if target is None:
        return ""
    return f"≤ {target:g}x: {'met' if ratio <= target else 'NOT met'}"


def cpu_table(runs: list[Run], seconds: float, rounds: int) -> list[str]:
    rows = [
        f"**`qrgate run` at {FPS} fps: CPU** (camera: {DISTINCT_FRAMES} frames in memory, "
        f"each with its own sensor noise, played as nobody in view or as a {CYCLE_FRAMES}-frame "
        f"second with a pass held up in {HELD_FRAMES}; mock pins, private broker; "
        f"{seconds:g} s in {rounds} windows after "
        f"READY=1 and {WARM_UP_S:g} s of warm-up; the bare loop runs alongside on the same "
        "frames)",
        "",
        "| view | part | qrgate run, % of a core | bare loop | ratio | ratio by window | target |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        idle = run.label.startswith("nobody")
        for part, name, target in (
            ("decode", "decode thread", DECODE_TARGET),
            ("daemon", "whole daemon", DAEMON_TARGET),
        ):
            ours, bare = run.percent(part)
            ratio = ours / bare if bare else float("nan")
            rows.append(
                f"| {run.label} | {name} | {ours:.2f} % | {bare:.2f} % | {ratio:.2f} "
                f"| {span(run.ratios(part))} | {verdict(ratio, target if idle else None)} |"
            )
    busy = runs[-1]
    rows += [
        "",
        f"With a code every second, {busy.events} events reached the broker in the windows. "
        f"The daemon's last STATUS=: {busy.status}",
    ]
    if any(run.decode_tid is None for run in runs):
        rows += ["", "(decode thread unnamed: py-spy is not installed, or was not let attach)"]
    return rows


def memory_table(runs: list[Run]) -> list[str]:
    frames_mb = DISTINCT_FRAMES * FRAME_SIZE[0] * FRAME_SIZE[1] / MB
    environment = " ".join(f"{name}={value}" for name, value in unit_environment().items())
    rows = [
        f"**`qrgate run` at 30 fps: memory** (MB; in the environment {UNIT.name} gives the "
        f"service: {environment})",
        "",
        "| view | VmRSS | of it RssAnon | RssFile | VmHWM | bare loop VmHWM | ratio | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        hwm, memory = run.memory["VmHWM"], run.memory
        met = "met" if hwm <= RSS_TARGET_MB else "NOT met"
        rows.append(
            f"| {run.label} | {memory['VmRSS']:.1f} | {memory['RssAnon']:.1f} "
            f"| {memory['RssFile']:.1f} | {hwm:.1f} | {run.bare_memory['VmHWM']:.1f} "
            f"| {hwm / run.bare_memory['VmHWM']:.2f} | VmHWM ≤ {RSS_TARGET_MB:g}: {met} |"
        )
    return [
        *rows,
        "",
        f"Both processes hold the camera's {DISTINCT_FRAMES} frames ({frames_mb:.1f} MB); a Pi "
        "camera's buffers hold about as much. RssFile counts the pages of libraries and "
        "other files the daemon maps, which the kernel may drop under memory pressure and "
        "read again; RssAnon is the daemon's own data.",
    ]


def thread_table(runs: list[Run]) -> list[str]:
    shares = [run.by_thread() for run in runs]
    names = sorted(
        {name for share in shares for name in share},
        key=lambda name: max(share.get(name, 0.0) for share in shares),
        reverse=True,
    )
    rows = [
        "**CPU by thread** (% of one core, over the windows)",
        "",
        f"| thread | {' | '.join(run.label for run in runs)} |",
        "|---" * (len(runs) + 1) + "|",
    ]
    for name in names:
        cells = " | ".join(f"{share[name]:.2f} %" if name in share else "-" for share in shares)
        rows.append(f"| {name} | {cells} |")
    return rows


def groups_of(modules: list[str]) -> list[tuple[str, list[str]]]:
    """Modules by top-level package, in the order each package was first imported; the
    standard library is left to whichever package pulls it in, ours come last."""
    groups: dict[str, list[str]] = {}
    for module in modules:
        top = module.partition(".")[0]
        if top in sys.stdlib_module_names or top.startswith("_") or top in ("site", "encodings"):
            continue
        groups.setdefault(top, []).append(module)
    ours = [name for top in OURS for name in groups.pop(top, [])]
    return [*groups.items(), ("qrgate's own modules", ours)]


def importable(packages: set[str]) -> list[str]:
    """The packages that exist here, sorted: `-X importtime` lists failed attempts too
    (msvcrt, nt and _winapi, tried by libraries that would run on Windows)."""
    return sorted(name for name in packages if importlib.util.find_spec(name) is not None)


def import_table(run: Run, config_mb: float) -> list[str]:
    at_ready = set(run.at_ready)
    later = importable({name.partition(".")[0] for name in run.at_end if name not in at_ready})
    groups = groups_of(run.at_end)
    lazy = [(f"{name} (second look, on first need)", [name]) for name in LIBRARIES_ON_FIRST_NEED]
    lazy.append((f"{COMMAND_INTAKE} (with commands enabled)", [COMMAND_INTAKE]))
    costs = import_costs(groups + lazy)
    stdlib = importable(
        {name.partition(".")[0] for name in run.at_end} & set(sys.stdlib_module_names)
    )
    rows = [
        "**What `qrgate run` imports** (the daemon's own `-X importtime` list, by package, "
        "in order; VmRSS of a fresh process importing each package in turn, the standard "
        "library counted with the package that pulls it in)",
        "",
        "| package | modules | VmRSS after | added |",
        "|---|---|---|---|",
    ]
    before = costs[0][2]
    for label, count, mb in costs[1:]:
        if count:
            rows.append(f"| {label} | {count} | {mb:.1f} MB | {mb - before:+.1f} MB |")
        before = mb
    return [
        *rows,
        "",
        f"Standard library packages imported: {', '.join(stdlib)}.",
        "Imported after READY=1 (with a code every second): "
        f"{', '.join(later) if later else 'nothing'}.",
        f"The validated config itself holds {config_mb * 1000:.0f} kB; the config, the event "
        "schema and the command arguments are msgspec Structs (pydantic, which they used to "
        "be, added about 10 MB).",
    ]
