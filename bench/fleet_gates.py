"""Many simulated gates in one process, for bench.fleet: each with its own outbox (SQLite,
synchronous=FULL), its own Ed25519 event key, its own Publisher and MQTT connection, and
the gate's command intake (so that the centre can ask it to resend).

    python -m bench.fleet_gates SETTINGS.json

SETTINGS (written by bench.fleet): folder, broker port, first gate number, how many,
events per second for this process, seconds, the command key set. The process makes its
gates, writes their public keys to `keys-FIRST.json`, connects every publisher, prints
`ready`, waits for `go` on stdin, appends events at its rate to gates picked at random
(a shift change: everyone at once, no gate in order), waits until every outbox is
drained, prints one JSON line of figures, then keeps answering commands until stdin
closes.
"""

from __future__ import annotations

import hashlib
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mqtt.commands import CommandIntake, ReplayGuard, load_command_keys
from mqtt.outbox import Outbox
from mqtt.publisher import Publisher
from mqtt.settings import BrokerSettings, PublisherSettings
from mqtt.signing import EventSigner, public_text
from mqtt.topics import GateTopics

GATES_PER_SITE = 100
NAMES = ("Nguyễn Văn An", "Trần Thị Bích", "Lê Văn Cường", "Phạm Thị Dung", "Hoàng Văn Em")


def gate_name(number: int) -> tuple[str, str]:
    return f"zone-{number // GATES_PER_SITE:02d}", f"gate-{number:04d}"


@dataclass
class SimulatedGate:
    site: str
    gate: str
    outbox: Outbox
    publisher: Publisher
    signer: EventSigner


def make_gate(folder: Path, number: int, port: int, keys: Path) -> SimulatedGate:
    site, gate = gate_name(number)
    home = folder / site / gate
    home.mkdir(parents=True, exist_ok=True)
    signer = EventSigner.load_or_create(home / "event-key.pem")
    outbox = Outbox(home / "qrgate.db", site, gate, "in", signer=signer)
    topics = GateTopics("qrgate", site, gate)
    intake = CommandIntake(
        topics, load_command_keys(keys), gate_handlers(outbox), ReplayGuard(home / "qrgate.db")
    )
    settings = PublisherSettings(
        broker=BrokerSettings(host="127.0.0.1", port=port, client_id=f"{site}/{gate}"),
        heartbeat_s=60.0,
    )
    publisher = Publisher(settings, topics, outbox, commands=intake, version="bench")
    return SimulatedGate(site, gate, outbox, publisher, signer)


def gate_handlers(outbox: Outbox) -> dict[str, Any]:
    """The commands a simulated gate takes: none yet."""
    del outbox
    return {}


def append_scan(gate: SimulatedGate, rng: random.Random) -> None:
    worker = rng.randrange(100_000)
    granted = rng.random() < 0.97
    gate.outbox.append(
        "scan",
        ts=time.time(),
        result="granted" if granted else "denied",
        reason="ok" if granted else "not_allowed",
        credential="badge" if worker % 3 else "pass",
        subject=f"W-{worker:06d}",
        name=NAMES[worker % len(NAMES)],
        code_sha256=hashlib.sha256(str(worker).encode()).hexdigest(),
        latency_ms=round(rng.uniform(5, 30), 1),
    )
    gate.publisher.wake()


def burst(gates: list[SimulatedGate], rate: float, seconds: float) -> dict[str, Any]:
    """Append `rate` events a second for `seconds` to gates picked at random."""
    rng = random.Random(gates[0].gate)
    count = round(rate * seconds)
    took: list[float] = []
    started = time.monotonic()
    for number in range(count):
        due = started + number / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        before = time.perf_counter()
        append_scan(rng.choice(gates), rng)
        took.append((time.perf_counter() - before) * 1000)
    elapsed = time.monotonic() - started
    ordered = sorted(took)
    return {
        "appended": count,
        "append_s": round(elapsed, 2),
        "append_ms_p50": round(statistics.median(ordered), 2),
        "append_ms_p99": round(ordered[int(0.99 * (len(ordered) - 1))], 2),
        "behind_s": round(max(0.0, elapsed - seconds), 2),
    }


def drained(gates: list[SimulatedGate], timeout_s: float) -> float:
    """Seconds until no outbox holds an event waiting (or the timeout)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if all(gate.outbox.depth().rows == 0 for gate in gates):
            break
        time.sleep(0.1)
    return round(time.monotonic() - started, 2)


def main() -> None:
    settings = json.loads(Path(sys.argv[1]).read_text())
    folder, port = Path(settings["folder"]), int(settings["port"])
    first, count = int(settings["first"]), int(settings["count"])
    keys = Path(settings["command_keys"])
    gates = [make_gate(folder, number, port, keys) for number in range(first, first + count)]
    publics = [{"site": g.site, "gate": g.gate, "key": public_text(g.signer.public)} for g in gates]
    (folder / f"keys-{first}.json").write_text(json.dumps(publics))
    for gate in gates:
        gate.publisher.start()
    while not all(gate.publisher.connected for gate in gates):
        time.sleep(0.05)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    figures = burst(gates, float(settings["rate"]), float(settings["seconds"]))
    figures["drained_s"] = drained(gates, 300.0)
    print(json.dumps(figures), flush=True)
    sys.stdin.read()  # until bench.fleet is done with us
    for gate in gates:
        gate.publisher.stop(timeout_s=2.0)
        gate.outbox.close()


if __name__ == "__main__":
    main()
