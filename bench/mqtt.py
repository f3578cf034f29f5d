"""Outbox and publisher: append latency, backlog drain rate, memory with a large backlog.

    .venv/bin/python -m bench.mqtt [--events 20000] [--backlog 100000]

Each figure has a baseline measured in the same run: a bare SQLite INSERT committed with
the same durability (append), the same append without signing the event (signing), a
bare paho QoS 1 publish loop to the same kind of broker (drain), and the same process
before it drains (memory). Events are signed, as a gate signs them. Brokers are private mosquitto
instances on loopback; databases live in a temporary folder on the disk under /tmp,
except the memory run's backlog, which is filled on /dev/shm to save time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.proc import memory_mb
from mqtt.outbox import Outbox, OutboxLimits
from mqtt.publisher import Publisher
from mqtt.settings import BrokerSettings, PublisherSettings
from mqtt.signing import EventSigner
from mqtt.topics import GateTopics
from tests.support.broker import Mosquitto, free_port

TOPICS = GateTopics("qrgate", "factory-1", "gate-1")
LIMITS = OutboxLimits(max_rows=10_000_000, max_bytes=10**10)
SHA = "9f" * 32


def new_outbox(path: Path, signed: bool = True) -> Outbox:
    """A gate's outbox; signed with a key of its own, as every gate's is."""
    signer = EventSigner.load_or_create(path.with_suffix(".key.pem")) if signed else None
    return Outbox(path, "factory-1", "gate-1", "in", LIMITS, signer=signer)


def append_scan(box: Outbox, n: int) -> None:
    box.append(
        "scan",
        ts=time.time(),
        result="granted",
        reason="ok",
        credential="pass",
        subject=f"W-{n:05d}",
        name="Nguyễn Văn A",
        code_sha256=SHA,
        latency_ms=3.2,
    )


def append_and_wake(box: Outbox, publisher: Publisher) -> Callable[[int], None]:
    """The action timed per scan: append it to the outbox, then wake the publisher."""

    def record(n: int) -> None:
        append_scan(box, n)
        publisher.wake()

    return record


def percentiles(samples_ms: list[float]) -> tuple[float, float, float]:
    ordered = sorted(samples_ms)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99)], ordered[-1]


def timed(action: Callable[[int], object], count: int) -> list[float]:
    samples = []
    for n in range(count):
        start = time.perf_counter()
        action(n)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


# --- append ------------------------------------------------------------------------------


def bench_append(folder: Path, count: int) -> dict[str, tuple[float, float, float]]:
    """Appends while the broker is down: the publisher spools (and checkpoints), as in
    fault 1, against a bare INSERT committed with the same durability."""
    box = new_outbox(folder / "append.db")
    publisher = publisher_for(free_port(), box)  # nothing listens there
    publisher.start()
    try:
        ours = timed(append_and_wake(box, publisher), count)
    finally:
        publisher.stop()
    payload = box.pending(limit=1)[0].payload
    bare = sqlite3.connect(folder / "bare.db", isolation_level=None)
    bare.execute("PRAGMA journal_mode = WAL")
    bare.execute("PRAGMA synchronous = FULL")
    bare.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB)")
    baseline = timed(
        lambda _: bare.execute("INSERT INTO t (payload) VALUES (?)", (payload,)), count
    )
    return {"ours": percentiles(ours), "bare": percentiles(baseline)}


def bench_signing(folder: Path, count: int) -> dict[str, tuple[float, float, float]]:
    """Signed and unsigned appends, interleaved so that both see the same disk, and the
    signature alone (Ed25519 over one event's bytes)."""
    signed, unsigned = new_outbox(folder / "signed.db"), new_outbox(folder / "plain.db", False)
    with_sig: list[float] = []
    without: list[float] = []
    for n in range(count):
        for box, samples in ((signed, with_sig), (unsigned, without)):
            start = time.perf_counter()
            append_scan(box, n)
            samples.append((time.perf_counter() - start) * 1000)
    assert signed.signer is not None
    body = unsigned.pending(limit=1)[0].payload
    sign = signed.signer.sign
    alone = timed(lambda _: sign(body), count)
    signed.close()
    unsigned.close()
    return {
        "signed": percentiles(with_sig),
        "unsigned": percentiles(without),
        "sign": percentiles(alone),
    }


def bench_append_while_draining(folder: Path, broker: Mosquitto, count: int) -> tuple[float, ...]:
    """Appends while the publisher sends each one at once."""
    box = new_outbox(folder / "busy.db")
    publisher = publisher_for(broker.port, box)
    publisher.start()
    try:
        samples = timed(append_and_wake(box, publisher), count)
        wait_until_empty(box, timeout_s=60)
    finally:
        publisher.stop()
    return percentiles(samples)


# --- drain -------------------------------------------------------------------------------


def publisher_for(port: int, box: Outbox) -> Publisher:
    settings = PublisherSettings(
        BrokerSettings("127.0.0.1", port, "bench-gate", keepalive_s=30),
        heartbeat_s=30.0,
        window=64,
        retry_min_s=0.05,
        retry_max_s=0.5,
    )
    return Publisher(settings, TOPICS, box, version="bench")


def wait_until_empty(box: Outbox, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while box.depth().rows:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the outbox did not drain within {timeout_s} s")
        time.sleep(0.005)


def fill(box: Outbox, count: int) -> None:
    for n in range(count):
        append_scan(box, n)


def bench_drain(folder: Path, broker: Mosquitto, count: int) -> tuple[float, float]:
    box = new_outbox(folder / "drain.db")
    fill(box, count)
    payloads = [row.payload for row in box.pending(limit=count)]
    publisher = publisher_for(broker.port, box)
    start = time.perf_counter()
    publisher.start()
    wait_until_empty(box, timeout_s=300)
    ours = count / (time.perf_counter() - start)
    publisher.stop()
    return ours, bare_paho_rate(broker, payloads)


def bare_paho_rate(broker: Mosquitto, payloads: list[bytes]) -> float:
    """The floor: paho's own loop, QoS 1, every PUBACK awaited, nothing stored."""
    done = threading.Event()
    acked = [0]

    def on_publish(*_: Any) -> None:
        acked[0] += 1
        if acked[0] == len(payloads):
            done.set()

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=paho.MQTTv5)
    client.on_publish = on_publish
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    start = time.perf_counter()
    for payload in payloads:
        client.publish(TOPICS.events, payload, qos=1)
    if not done.wait(300):
        raise RuntimeError("the bare paho loop did not finish")
    rate = len(payloads) / (time.perf_counter() - start)
    client.disconnect()
    client.loop_stop()
    return rate


# --- memory ------------------------------------------------------------------------------


def rss_mb() -> float:
    """VmRSS of this process, in MB (10^6 bytes)."""
    return memory_mb("self", ("VmRSS",))["VmRSS"]


def peak_rss_mb() -> float:
    """VmHWM of this process, the peak of its VmRSS, in MB (10^6 bytes) as well."""
    return memory_mb("self", ("VmHWM",))["VmHWM"]


def memory_child(db: str, port: str, mode: str) -> None:
    """Run in a fresh process: the RSS of draining (or of loading) the whole backlog."""
    box = new_outbox(Path(db))
    rows = box.depth().rows
    idle = rss_mb()
    start = time.perf_counter()
    if mode == "drain":
        publisher = publisher_for(int(port), box)
        publisher.start()
        wait_until_empty(box, timeout_s=600)
        publisher.stop()
    else:
        loaded = box.pending(limit=rows)
        assert len(loaded) == rows
    result = {"idle": idle, "peak": peak_rss_mb(), "rows": rows, "s": time.perf_counter() - start}
    print(json.dumps(result))


def bench_memory(broker: Mosquitto, count: int) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        db = Path(shm) / "backlog.db"
        box = new_outbox(db)
        fill(box, count)
        box.close()
        results = {}
        for mode in ("load", "drain"):
            copy = Path(shm) / f"{mode}.db"
            shutil.copy(db, copy)
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.mqtt",
                    "--child",
                    str(copy),
                    str(broker.port),
                    mode,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        return results


# --- report ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="backlog to drain")
    parser.add_argument("--appends", type=int, default=2_000, help="appends to time")
    parser.add_argument("--backlog", type=int, default=100_000, help="backlog for memory")
    parser.add_argument("--child", nargs=3, metavar=("DB", "PORT", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        memory_child(*args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        broker = Mosquitto(folder / "broker").start()
        try:
            report(folder, broker, args)
        finally:
            broker.kill()


def report(folder: Path, broker: Mosquitto, args: argparse.Namespace) -> None:
    print(
        f"# bench.mqtt: {platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, SQLite {sqlite3.sqlite_version}, {mosquitto_version()}"
    )
    print("| measure | qrgate | baseline | ratio | target |")
    print("|---|---|---|---|---|")
    appends = bench_append(folder, args.appends)
    (p50, p99, worst), (b50, b99, _) = appends["ours"], appends["bare"]
    print(
        f"| outbox append, median ({args.appends:,}, synchronous=FULL, broker down) | {p50:.2f} ms "
        f"| bare INSERT+commit {b50:.2f} ms | {p50 / b50:.2f} | |"
    )
    print(
        f"| outbox append, p99 (max {worst:.2f} ms) | {p99:.2f} ms | bare {b99:.2f} ms "
        f"| {p99 / b99:.2f} | ≤ 5 ms |"
    )
    signing = bench_signing(folder, args.appends)
    (s50, s99, _), (u50, u99, _) = signing["signed"], signing["unsigned"]
    print(
        f"| outbox append, median, signed (Ed25519) vs not | {s50:.2f} ms | unsigned {u50:.2f} ms "
        f"| {s50 / u50:.2f} | |"
    )
    print(
        f"| outbox append, p99, signed vs not | {s99:.2f} ms | unsigned {u99:.2f} ms "
        f"| {s99 / u99:.2f} | ≤ 5 ms |"
    )
    sign50, sign99, _ = signing["sign"]
    print(
        f"| signing one event alone, median (p99) | {sign50 * 1000:.0f} µs "
        f"({sign99 * 1000:.0f} µs) | unsigned append {u50:.2f} ms | {sign50 / u50:.3f} | |"
    )
    busy = bench_append_while_draining(folder, broker, args.appends)
    print(
        f"| outbox append, p99 while the publisher drains | {busy[1]:.2f} ms "
        f"| broker down {p99:.2f} ms | {busy[1] / p99:.2f} | ≤ 5 ms |"
    )
    ours, bare = bench_drain(folder, broker, args.events)
    print(
        f"| drain {args.events:,} queued events, QoS 1 | {ours:,.0f} events/s "
        f"| bare paho loop {bare:,.0f}/s | {ours / bare:.2f} | ≥ 2,000/s |"
    )
    memory = bench_memory(broker, args.backlog)
    drain, load = memory["drain"], memory["load"]
    print(
        f"| RSS draining a {drain['rows']:,}-event backlog (peak) | {drain['peak']:.1f} MB "
        f"| same process idle {drain['idle']:.1f} MB | {drain['peak'] / drain['idle']:.2f} | flat |"
    )
    ratio = load["peak"] / load["idle"]
    print(
        f"| RSS loading that whole backlog at once (what the window avoids) | "
        f"{load['peak']:.1f} MB | idle {load['idle']:.1f} MB | {ratio:.2f} | |"
    )
    print(f"| drain of that backlog | {drain['rows'] / drain['s']:,.0f} events/s | | | |")


def mosquitto_version() -> str:
    done = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, check=False)
    return (done.stdout or done.stderr).splitlines()[0]


if __name__ == "__main__":
    main()
