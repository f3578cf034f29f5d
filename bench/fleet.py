"""A shift change across a province: thousands of gates publishing at once into two
monitors that share the events, one PostgreSQL, and one monitor killed in the middle.

    .venv/bin/python -m bench.fleet [--gates 2000] [--rate 1000] [--seconds 60]
                                    [--processes 4] [--monitors 2]

The gates are real gate code: `--processes` processes (bench.fleet_gates) each run their
share of the gates, every gate with its own outbox (SQLite, synchronous=FULL, on
/dev/shm: a real gate has a card of its own, here two thousand share one disk), its own
Ed25519 event key (every event signed, every key enrolled at the centre), its own
Publisher and MQTT connection. Each process appends its share of `--rate` events a
second to gates picked at random, for `--seconds`.

The centre is a private mosquitto (max_queued_messages 0, as docs/monitor.md asks), a
private PostgreSQL (fsync on), and `--monitors` processes of `qrgate monitor --shared
fleet` (clean sessions, the default for a shared group). Halfway through, the last
monitor is killed (SIGKILL): what the broker had handed it and it had not committed is
gone from the broker (its session ended with it), while the gates were told it was
delivered.

Figures:
- ingest: events stored per second (the store's count, sampled each second) during the
  burst, and the events published, stored, and missing once everything settled;
- lag: from the event's `ts` (the gate's clock, when it was appended) to its INSERT at
  the centre (a column `inserted_ms` that this benchmark adds to its own store, default
  clock_timestamp()), p50 / p99 / max;
- baseline, same run: a bare paho subscriber on the same broker, subscribed to every
  event (QoS 1, not shared), that only parses each event's `ts`: its count and lag;
- CPU per part over the burst (percent of one core), to see where the limit is.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.figures import p50_p99_max, percentile, ratio
from bench.monitor import table
from bench.proc import cpu_seconds, stat_fields
from monitor.intake.enrollment import EnrolledKey
from monitor.intake.ingest import epoch_ms
from monitor.storage.store import Store
from tests.support.broker import Mosquitto
from tests.support.cli import QRGATE, ROOT
from tests.support.postgres import Postgres
from tests.support.simgates import centre_key

INSERTED = (
    "ALTER TABLE events ADD COLUMN inserted_ms BIGINT"
    " DEFAULT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"
)
SETTLE_S = 5.0  # the store's count unchanged this long: everything that will come, came


# ---- the baseline: a bare subscriber -------------------------------------------------------


@dataclass
class BareSubscriber:
    """Every event, QoS 1, acknowledged by paho as it arrives; notes arrival minus `ts`."""

    port: int
    arrivals: list[tuple[float, float]] = field(default_factory=list)  # (when, lag) in ms
    subscribed: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-bare", protocol=paho.MQTTv5
        )
        self.client.on_connect = lambda c, *_: c.subscribe("qrgate/+/+/events", qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self.subscribed.wait(10)

    def _on_message(self, _c: Any, _u: Any, message: paho.MQTTMessage) -> None:
        arrived = time.time() * 1000
        self.arrivals.append((arrived, arrived - epoch_ms(json.loads(message.payload)["ts"])))

    def lags(self, before_ms: float) -> list[float]:
        """Lags of what arrived before `before_ms` (live, not sent again on request)."""
        return [lag for when, lag in self.arrivals if when < before_ms]

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# ---- processes -------------------------------------------------------------------------


def used_seconds(pid: int) -> float:
    """User and system CPU of a process so far (0 once it is gone)."""
    try:
        return cpu_seconds(Path(f"/proc/{pid}/stat"))
    except OSError:
        return 0.0


def postgres_pids(postmaster: int) -> list[int]:
    found = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int(stat_fields(entry / "stat")[1])
            except OSError:
                continue
            if parent == postmaster:
                found.append(int(entry.name))
    return found


@dataclass
class Parts:
    """The processes whose CPU is counted, by part."""

    pids: dict[str, list[int]] = field(default_factory=dict)
    start: dict[str, float] = field(default_factory=dict)
    final: dict[int, float] = field(default_factory=dict)  # of processes since killed

    def add(self, part: str, pid: int) -> None:
        self.pids.setdefault(part, []).append(pid)

    def mark(self) -> None:
        self.start = {part: self.used(part) for part in self.pids}

    def kill(self, process: subprocess.Popen[Any]) -> None:
        self.final[process.pid] = used_seconds(process.pid)
        process.send_signal(signal.SIGKILL)

    def used(self, part: str) -> float:
        return sum(self.final.get(pid) or used_seconds(pid) for pid in self.pids[part])

    def shares(self, seconds: float) -> list[tuple[str, str]]:
        return [
            (part, f"{(self.used(part) - self.start[part]) / seconds * 100:.0f}")
            for part in self.pids
        ]


def start_gates(args: argparse.Namespace, folder: Path, port: int) -> list[subprocess.Popen[str]]:
    started = []
    per = -(-args.gates // args.processes)
    for first in range(0, args.gates, per):
        count = min(per, args.gates - first)
        settings = folder / f"gates-{first}.json"
        settings.write_text(
            json.dumps(
                {
                    "folder": str(folder),
                    "port": port,
                    "first": first,
                    "count": count,
                    "rate": args.rate * count / args.gates,
                    "seconds": args.seconds,
                    "command_keys": str(folder / "command-keys.json"),
                }
            )
        )
        started.append(
            subprocess.Popen(
                [sys.executable, "-m", "bench.fleet_gates", str(settings)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
        )
    for process in started:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready", "a gate process did not start"
    return started


def enroll_all(url: str, folder: Path) -> int:
    store = Store(url, create=False)
    count = 0
    for listing in sorted(folder.glob("keys-*.json")):
        for entry in json.loads(listing.read_text()):
            store.enroll(EnrolledKey.make(entry["site"], entry["gate"], entry["key"], 0))
            count += 1
    store.close()
    return count


def start_monitor(
    broker: Mosquitto, url: str, number: int, folder: Path
) -> subprocess.Popen[bytes]:
    log = folder / f"monitor-{number}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*QRGATE, "monitor", "--broker", broker.url, "--db", url, "--shared", "fleet",
             "--client-id", f"central-{number}", "--quiet"],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while "subscribed to" not in log.read_text(errors="replace"):
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    return process


# ---- the store -------------------------------------------------------------------------


class StoreCount:
    """Samples the store's count of events once a second, in a thread of its own."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.connection = psycopg.connect(url, autocommit=True)
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        row = self.connection.execute("SELECT COUNT(*) FROM events").fetchone()
        assert row is not None
        return int(row[0])

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.samples.append((time.monotonic(), self.now()))

    def start(self) -> StoreCount:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def settled(self, timeout_s: float) -> int:
        """The count once it has not moved for SETTLE_S."""
        last, since = self.now(), time.monotonic()
        deadline = since + timeout_s
        while time.monotonic() < deadline:
            time.sleep(0.5)
            count = self.now()
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() - since >= SETTLE_S:
                break
        return last

    def rates(self, start: float, end: float) -> list[float]:
        """Events stored in each second of [start, end]."""
        inside = [(t, n) for t, n in self.samples if start <= t <= end]
        return [(b[1] - a[1]) / (b[0] - a[0]) for a, b in itertools.pairwise(inside)]


def lags(connection: Any, before_ms: float) -> list[float]:
    """Insert time minus event time, for the events stored before `before_ms` (the ones
    that came live, not those the gates sent again)."""
    rows = connection.execute(
        "SELECT inserted_ms - ts_ms FROM events WHERE inserted_ms < %s", (before_ms,)
    ).fetchall()
    return [float(row[0]) for row in rows]


# ---- the run ---------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one run measured."""

    figures: list[dict[str, Any]]  # one per gate process
    go: float
    burst_end: float
    stored: int
    cpu: list[tuple[str, str]]
    asked_ms: float = 0.0  # when the resend was asked for (wall clock, ms)
    resend_s: float = 0.0
    resend_code: int = 0
    complete: int = 0  # events stored after the resend
    answers: dict[str, int] = field(default_factory=dict)  # the gates' answers, counted

    @property
    def published(self) -> int:
        return sum(f["appended"] for f in self.figures)


def run(args: argparse.Namespace, workdir: Path, gatedir: Path) -> None:
    postgres = Postgres(durable=True).start()
    broker = Mosquitto(workdir / "broker", ["max_queued_messages 0"]).start()
    processes: list[subprocess.Popen[Any]] = []
    try:
        url = postgres.create_database("fleet")
        Store(url).close()
        counter = StoreCount(url)
        counter.connection.execute(INSERTED)
        command_key, command_keys = centre_key(workdir)
        (gatedir / "command-keys.json").write_text(json.dumps(command_keys))
        started = time.monotonic()
        gates = start_gates(args, gatedir, broker.port)
        processes += gates
        took = time.monotonic() - started
        enrolled = enroll_all(url, gatedir)
        print(f"({args.gates} gates in {len(gates)} processes connected in {took:.0f} s; "
              f"{enrolled} keys enrolled)")  # fmt: skip
        bare = BareSubscriber(broker.port)
        bare.start()
        monitors = [start_monitor(broker, url, n, workdir) for n in range(1, args.monitors + 1)]
        processes += monitors
        parts = count_parts(gates, monitors, broker, postgres)
        outcome = burst(args, gates, monitors, parts, counter.start())
        outcome = resend(outcome, broker, url, command_key, counter)
        report(args, outcome, counter, bare)
        bare.stop()
    finally:
        stop_all(processes)
        broker.kill()
        postgres.stop()


def count_parts(
    gates: list[subprocess.Popen[str]],
    monitors: list[subprocess.Popen[bytes]],
    broker: Mosquitto,
    postgres: Postgres,
) -> Parts:
    parts = Parts()
    for gate in gates:
        parts.add("gates", gate.pid)
    assert broker.process is not None
    assert postgres.process is not None
    parts.add("mosquitto", broker.process.pid)
    for monitor in monitors:
        parts.add("monitors", monitor.pid)
    for pid in postgres_pids(postgres.process.pid):
        parts.add("postgresql", pid)
    parts.add("bench (bare subscriber)", os.getpid())
    return parts


def burst(
    args: argparse.Namespace,
    gates: list[subprocess.Popen[str]],
    monitors: list[subprocess.Popen[bytes]],
    parts: Parts,
    counter: StoreCount,
) -> Outcome:
    """Start the gates' burst, kill a monitor halfway, wait for the store to settle."""
    parts.mark()
    go = time.monotonic()
    for process in gates:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    time.sleep(args.seconds * 0.5)
    if len(monitors) > 1:
        parts.kill(monitors[-1])
    figures = [json.loads(p.stdout.readline()) for p in gates if p.stdout is not None]
    cpu = parts.shares(time.monotonic() - go)
    stored = counter.settled(300)
    counter.stop()
    return Outcome(figures, go, go + max(f["append_s"] for f in figures), stored, cpu)


def resend(
    outcome: Outcome, broker: Mosquitto, url: str, command_key: Path, counter: StoreCount
) -> Outcome:
    """`qrgate report gaps --resend --wait`: how long until the store is complete."""
    asked_ms = time.time() * 1000
    started = time.monotonic()
    done = subprocess.run(
        [*QRGATE, "report", "gaps", "--db", url, "--format", "json", "--resend",
         "--broker", broker.url, "--command-key", str(command_key), "--command-kid", "centre-1",
         "--timeout", "60", "--wait", "300"],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    took = time.monotonic() - started
    complete = counter.now()
    answers = Counter(
        answer(line) for line in done.stderr.splitlines() if line.startswith("resend ")
    )
    return dataclasses.replace(
        outcome,
        asked_ms=asked_ms,
        resend_s=took,
        resend_code=done.returncode,
        complete=complete,
        answers=dict(answers),
    )


def answer(line: str) -> str:
    """A gate's answer in a line of `report gaps --resend`: ok, no reply, rejected..."""
    outcome = line.rsplit(": ", 1)[1]
    return outcome.split(" (")[0].split(":")[0]


def stop_all(processes: list[subprocess.Popen[Any]]) -> None:
    for process in processes:
        if process.poll() is None:
            if process.stdin is not None:
                process.stdin.close()
            process.terminate()
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def report(
    args: argparse.Namespace, outcome: Outcome, counter: StoreCount, bare: BareSubscriber
) -> None:
    rates = counter.rates(outcome.go, outcome.burst_end)
    burst_s = outcome.burst_end - outcome.go
    ours = lags(counter.connection, outcome.asked_ms)
    theirs = bare.lags(outcome.asked_ms)
    bare_rate, rate = len(theirs) / burst_s, statistics.mean(rates) if rates else 0.0
    bare_lag, lag = percentile(theirs, 0.5), percentile(ours, 0.5)
    rows = [
        ("bare paho subscriber (baseline)", f"{len(theirs)}", f"{bare_rate:,.0f}", "",
         *p50_p99_max(theirs), "", ""),
        (f"{args.monitors} monitors -> PostgreSQL", f"{outcome.stored}",
         f"{rate:,.0f}" if rates else "-",
         f"{min(rates):,.0f}-{max(rates):,.0f}" if rates else "-", *p50_p99_max(ours),
         ratio(rate, bare_rate) if rates else "-", ratio(lag, bare_lag) if ours else "-"),
    ]  # fmt: skip
    table(
        f"A shift change: {args.gates} gates, {args.rate:g} events/s for {args.seconds:g} s "
        f"({outcome.published} events published); a monitor killed at {args.seconds / 2:g} s",
        rows,
        ("consumer", "events", "events/s", "each second", "lag p50 ms", "p99 ms", "max ms",
         "events/s vs bare", "lag p50 vs bare"),
    )  # fmt: skip
    figures = outcome.figures
    print(
        f"gates: append p50 {statistics.median(f['append_ms_p50'] for f in figures):.2f} ms, "
        f"p99 {max(f['append_ms_p99'] for f in figures):.2f} ms; behind schedule "
        f"{max(f['behind_s'] for f in figures):.1f} s; outboxes drained "
        f"{max(f['drained_s'] for f in figures):.1f} s after the burst; "
        f"{sum(f['refused'] for f in figures)} scans the outbox could not record in time"
    )
    missing = outcome.published - outcome.stored
    print(f"stored {outcome.stored} of {outcome.published}: {missing} missing after the kill")
    said = ", ".join(f"{count} {what}" for what, count in sorted(outcome.answers.items()))
    print(
        f"qrgate report gaps --resend --wait: exit {outcome.resend_code} after "
        f"{outcome.resend_s:.1f} s (gates' answers: {said}); stored {outcome.complete} of "
        f"{outcome.published}"
    )
    table("CPU over the burst (% of one core)", outcome.cpu, ("part", "CPU %"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gates", type=int, default=2000)
    parser.add_argument("--rate", type=float, default=1000.0, help="events a second, all gates")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--processes", type=int, default=4, help="processes running the gates")
    parser.add_argument("--monitors", type=int, default=2)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="qrgate-bench-fleet-"))
    gatedir = Path(tempfile.mkdtemp(prefix="qrgate-bench-fleet-gates-", dir="/dev/shm"))
    try:
        run(args, workdir, gatedir)
    finally:
        shutil.rmtree(gatedir, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
