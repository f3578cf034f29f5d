"""Part 2 of bench.gate (run it as `python -m bench.gate`): `qrgate run` as a process.

The daemon runs on a replay camera at 30 fps with mock pins and the private broker; its
CPU comes from /proc/PID/stat and /proc/PID/task/*/stat, its memory from
/proc/PID/status, read from outside as `top` would, and so are the baseline processes
(bench.gate_baselines, and a bare `import numpy, zxingcpp`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
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
from PIL import Image

from scanner.camera.replay import CACHE_BYTES
from scanner.config import load_config
from scanner.demo.feed import EventFeed
from scanner.demo.scenario import FRAME_SIZE, background, card_frame
from scanner.mqttconfig import gate_topics

ROOT = Path(__file__).resolve().parent.parent
FPS = 30
NOBODY_FRAMES, HELD_FRAMES = 40, 8  # 1.6 s of camera: a pass held up for 0.27 s of it
REPEAT_S = 1.0  # shorter than the gap, so each showing is a new scan, granted and published
WARM_UP_S = 3.0  # about two turns of the replay: every frame read from its file, cached
READY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
CPU_TARGET_PERCENT = 25.0
RSS_TARGET_MB = 80.0
MB = 1e6
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
BARE_IMPORT = "import numpy, zxingcpp, sys; print('ready', flush=True); sys.stdin.read()"
# What `qrgate run` imports: the libraries in about the order it meets them, then ours.
DAEMON_IMPORTS = (
    "click",
    "pydantic",
    "scanner.config",
    "numpy",
    "zxingcpp",
    "PIL.Image",
    "pyzbar.pyzbar",
    "ssl",
    "paho.mqtt.client",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "jwt",
    "gpiozero",
    "gpiozero.pins.mock",
    "sqlite3",
    "scanner.daemon.assemble",
    "scanner.camera.replay",
    "scanner.cli.run_cmd",
)


# The camera's view and the daemon's config


def write_frames(folder: Path, shown: bytes | None) -> int:
    """640x480 frames with sensor noise: nobody, then `shown` held up; None: one frame."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(7)
    scene = background(FRAME_SIZE)
    frames = [scene]
    if shown is not None:
        held = card_frame(scene, shown, tilt=4.0)
        frames = [scene] * NOBODY_FRAMES + [held] * HELD_FRAMES
    for number, frame in enumerate(frames, start=1):
        noisy = np.clip(frame + rng.normal(0, 2.0, frame.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(folder / f"{number:04d}.png", compress_level=1)
    return len(frames)


def write_config(folder: Path, camera: Path, port: int, jwks: Path) -> Path:
    """A gate at DESIGN.md's defaults but for the camera, mock pins, broker and commands."""
    sections: dict[str, dict[str, object]] = {
        "camera": {"source": f"replay:{camera}", "fps": FPS, "replay_loop": True},
        "gpio": {"pin_factory": "mock"},
        "policy": {"accept": ["pass", "badge", "cccd"], "repeat_window_s": REPEAT_S},
        "passes": {"jwks": str(jwks)},
        "store": {"path": str(folder / "state" / "qrgate.db")},
        "mqtt": {"host": "127.0.0.1", "port": port},
        "commands": {"enabled": False},
    }
    folder.mkdir(parents=True)
    path = folder / "config.toml"
    path.write_text(
        "\n".join(
            f"[{name}]\n" + "".join(f"{key} = {json.dumps(value)}\n" for key, value in keys.items())
            for name, keys in sections.items()
        )
    )
    load_config(path)  # a mistake here is ours: say so now, not as the daemon's exit 78
    return path


# Reading a process from outside


def proc_stat_seconds(path: Path) -> float:
    """utime + stime of a process or thread, in seconds."""
    fields = path.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_seconds(pid: int) -> dict[int, float]:
    seconds = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            seconds[int(task.name)] = proc_stat_seconds(task / "stat")
    return seconds


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM in MB (10^6 bytes)."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            figures[key] = int(value.split()[0]) * 1024 / MB
    return figures


@dataclass(frozen=True)
class Usage:
    percent: float  # of one core, over the window
    threads: dict[int, float]  # percent of one core by thread id


def cpu_usage(pid: int, seconds: float) -> Usage:
    stat = Path(f"/proc/{pid}/stat")
    start, total, threads = time.monotonic(), proc_stat_seconds(stat), thread_seconds(pid)
    time.sleep(seconds)
    wall, total = time.monotonic() - start, proc_stat_seconds(stat) - total
    after = thread_seconds(pid)
    per_thread = {tid: 100 * (after[tid] - threads[tid]) / wall for tid in threads if tid in after}
    return Usage(100 * total / wall, per_thread)


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


# The daemon


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


@contextlib.contextmanager
def running_daemon(config: Path) -> Iterator[Running]:
    folder = config.parent
    address = folder / "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(address))
    log = folder / "daemon.log"
    # As systemd/qrgate.service runs it: glibc's malloc arenas capped.
    env = {**os.environ, "NOTIFY_SOCKET": str(address), "MALLOC_ARENA_MAX": "2"}
    env.pop("WATCHDOG_USEC", None)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "scanner", "run", "-c", str(config)],
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


@dataclass(frozen=True)
class DaemonRun:
    usage: Usage
    memory: dict[str, float]
    names: dict[int, str]
    events: int  # delivered to the broker within the window
    status: str


def measure_daemon(config: Path, seconds: float) -> DaemonRun:
    gate = load_config(config)[0]
    feed = EventFeed(gate.mqtt.port, gate_topics(gate).base)
    if not feed.start():
        raise RuntimeError("the benchmark's subscriber could not subscribe")
    try:
        with running_daemon(config) as daemon:
            time.sleep(WARM_UP_S)
            before = len(feed.snapshot())
            usage = cpu_usage(daemon.pid, seconds)
            events = len(feed.snapshot()) - before
            memory = memory_mb(daemon.pid)
            daemon.read_notifications()
            return DaemonRun(usage, memory, thread_names(daemon.pid), events, daemon.status)
    finally:
        feed.stop()


def settled_memory(config: Path) -> dict[str, float]:
    with running_daemon(config) as daemon:
        time.sleep(WARM_UP_S)
        return memory_mb(daemon.pid)


# Baselines


@contextlib.contextmanager
def helper(args: list[str]) -> Iterator[subprocess.Popen[str]]:
    """A helper process that prints `ready` once it is set up, then works until stopped."""
    process = subprocess.Popen(
        args,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
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


def bare_camera(camera: Path, seconds: float) -> tuple[float, dict[str, float]]:
    """CPU and memory of the floor: the same frames at 30 fps into bare zxing-cpp."""
    with helper(baseline("camera", str(camera))) as process:
        time.sleep(1.0)
        usage = cpu_usage(process.pid, seconds)
        return usage.percent, memory_mb(process.pid)


def bare_import() -> dict[str, float]:
    with helper([sys.executable, "-c", BARE_IMPORT]) as process:
        return memory_mb(process.pid)


def import_costs() -> list[tuple[str, float]]:
    args = baseline("imports", *DAEMON_IMPORTS)
    done = subprocess.run(args, capture_output=True, text=True, check=True, cwd=ROOT)
    return [(name, float(mb)) for name, mb in (line.split() for line in done.stdout.splitlines())]


# Tables


@dataclass(frozen=True)
class Baselines:
    camera_cpu: float  # the same frames at 30 fps into bare zxing-cpp
    camera_memory: dict[str, float]
    imported: dict[str, float]  # `import numpy, zxingcpp` and nothing else


def daemon_tables(
    folder: Path, port: int, jwks: Path, shown: bytes, seconds: float
) -> Iterator[list[str]]:
    camera, still = folder / "camera", folder / "still"
    frames = write_frames(camera, shown)
    write_frames(still, None)
    gate = measure_daemon(write_config(folder / "gate", camera, port, jwks), seconds)
    alone = settled_memory(write_config(folder / "one-frame", still, port, jwks))
    baselines = Baselines(*bare_camera(camera, seconds), bare_import())
    yield summary_table(gate, alone, baselines, frames, seconds)
    yield thread_table(gate)
    yield import_table(import_costs())


def row(measure: str, ours: float, baseline: str, floor: float, *, unit: str, target: float) -> str:
    met = "met" if ours <= target else "NOT met"
    return (
        f"| {measure} | {ours:.1f} {unit} | {baseline} {floor:.1f} {unit} | {ours / floor:.2f} "
        f"| ≤ {target:g} {unit}: {met} |"
    )


def memory_row(measure: str, ours: float, baseline: str, floor: float) -> str:
    return row(measure, ours, baseline, floor, unit="MB", target=RSS_TARGET_MB)


def summary_table(
    gate: DaemonRun, alone: dict[str, float], bare: Baselines, frames: int, seconds: float
) -> list[str]:
    imported, held = "`import numpy, zxingcpp`", "bare replay into zxing-cpp, same frames held"
    floor = bare.imported["VmRSS"]
    frame_bytes = FRAME_SIZE[0] * FRAME_SIZE[1]
    cached = min(frames, CACHE_BYTES // frame_bytes)
    cache = cached * frame_bytes / MB
    return [
        f"**`qrgate run` at {FPS} fps** (replay of {frames} frames 640x480 with a pass in "
        f"{HELD_FRAMES}, mock pins, private broker; {seconds:g} s after READY=1 and "
        f"{WARM_UP_S:g} s of warm-up)",
        "",
        "| measure | qrgate run | baseline | ratio | target |",
        "|---|---|---|---|---|",
        row("CPU, % of one core", gate.usage.percent, "bare replay into zxing-cpp",
            bare.camera_cpu, unit="%", target=CPU_TARGET_PERCENT),
        memory_row("resident memory, VmRSS", gate.memory["VmRSS"], imported, floor),
        memory_row("peak resident memory, VmHWM", gate.memory["VmHWM"], held,
                   bare.camera_memory["VmHWM"]),
        memory_row("VmHWM on a one-frame replay (no frame cache, as with a Pi camera)",
                   alone["VmHWM"], imported, floor),
        "",
        f"The replay camera keeps {cached} of its {frames} decoded frames ({cache:.1f} MB) and "
        "reads the others again each time round. The daemon runs with the environment of "
        "systemd/qrgate.service (MALLOC_ARENA_MAX=2). "
        f"In the window {gate.events} events reached the broker. The daemon's last "
        f"STATUS=: {gate.status}",
    ]  # fmt: skip


def thread_table(gate: DaemonRun) -> list[str]:
    rows = ["**CPU by thread** (% of one core)", "", "| thread | CPU |", "|---|---|"]
    for tid, percent in sorted(gate.usage.threads.items(), key=lambda item: -item[1]):
        name = gate.names.get(tid) or ("native, not Python" if gate.names else f"id {tid}")
        rows.append(f"| {name} | {percent:.1f} % |")
    if not gate.names:
        rows += ["", "(threads unnamed: py-spy is not installed, or was not let attach here)"]
    return rows


def import_table(costs: list[tuple[str, float]]) -> list[str]:
    rows = [
        "**Resident memory of the daemon's imports** (a fresh process importing them in "
        "turn; what two share counts where it is first imported)",
        "",
        "| import | VmRSS after | added |",
        "|---|---|---|",
    ]
    before = costs[0][1]
    for name, mb in costs:
        rows.append(f"| {name} | {mb:.1f} MB | {mb - before:+.1f} MB |")
        before = mb
    return rows
