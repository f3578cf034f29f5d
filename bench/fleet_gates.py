"""Many simulated gates in one process, for bench.fleet: the real gate code
(tests.support.simgates), each gate with its own outbox (SQLite, synchronous=FULL), its
own Ed25519 event key, its own Publisher and MQTT connection, and the command intake
with the gate's `resend` handler.

    python -m bench.fleet_gates SETTINGS.json

SETTINGS (written by bench.fleet): folder, broker port, first gate number, how many,
events per second for this process, seconds, the command key set. The process makes its
gates, writes their public keys to `keys-FIRST.json`, connects every publisher, prints
`ready`, waits for `go` on stdin, appends events at its rate to gates picked at random
(a shift change: everyone at once, no gate in order), waits until every outbox is
drained, prints one JSON line of figures, then keeps answering commands (resend) until
stdin closes.
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.figures import percentile
from mqtt.errors import MqttError
from mqtt.signing import public_text
from tests.support.simgates import SimulatedGate, connected, drained, make_gate

GATES_PER_SITE = 100


def gate_name(number: int) -> tuple[str, str]:
    return f"zone-{number // GATES_PER_SITE:02d}", f"gate-{number:04d}"


def burst(gates: list[SimulatedGate], rate: float, seconds: float) -> dict[str, Any]:
    """Append `rate` events a second for `seconds` to gates picked at random."""
    rng = random.Random(gates[0].gate)
    count = round(rate * seconds)
    took: list[float] = []
    refused = 0
    started = time.monotonic()
    for number in range(count):
        delay = started + number / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        before = time.perf_counter()
        try:
            rng.choice(gates).scan(rng)
        except MqttError:  # the outbox could not record it: a gate would deny the scan
            refused += 1
        took.append((time.perf_counter() - before) * 1000)
    elapsed = time.monotonic() - started
    return {
        "appended": count - refused,
        "refused": refused,
        "append_s": round(elapsed, 2),
        "append_ms_p50": round(statistics.median(took), 2),
        "append_ms_p99": round(percentile(took, 0.99), 2),
        "behind_s": round(max(0.0, elapsed - seconds), 2),
    }


def drained_after(gates: list[SimulatedGate], timeout_s: float) -> float:
    """Seconds until no outbox holds an event waiting (or the timeout)."""
    started = time.monotonic()
    drained(gates, timeout_s)
    return round(time.monotonic() - started, 2)


def main() -> None:
    settings = json.loads(Path(sys.argv[1]).read_text())
    folder, port = Path(settings["folder"]), int(settings["port"])
    first, count = int(settings["first"]), int(settings["count"])
    keys = json.loads(Path(settings["command_keys"]).read_text())
    gates = [
        make_gate(folder, *gate_name(number), port, keys, heartbeat_s=60.0)
        for number in range(first, first + count)
    ]
    publics = [{"site": g.site, "gate": g.gate, "key": public_text(g.signer.public)} for g in gates]
    (folder / f"keys-{first}.json").write_text(json.dumps(publics))
    for gate in gates:
        gate.publisher.start()
    if not connected(gates, 300.0):
        raise SystemExit("not every gate could connect")
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    figures = burst(gates, float(settings["rate"]), float(settings["seconds"]))
    figures["drained_s"] = drained_after(gates, 300.0)
    print(json.dumps(figures), flush=True)
    sys.stdin.read()  # until bench.fleet is done with us: the gates answer commands meanwhile
    for gate in gates:
        gate.close()


if __name__ == "__main__":
    main()
