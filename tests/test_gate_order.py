"""The gate's order for a scan: the event committed, then the outputs, then the publisher."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from firmware.outputs import Outputs
from firmware.pins import OutputPins
from mqtt.clock import ClockTrust
from mqtt.outbox import Outbox
from scanner.clock import ManualClock
from scanner.config import PolicySection
from scanner.daemon.gate import Gate
from scanner.decision.policy import Policy
from scanner.state.store import AllowEntry, Store

RELAY, RED = 17, 24


def test_the_publisher_is_woken_after_the_event_is_committed_and_the_outputs_moved(
    tmp_path: Path, mock_factory: Any
) -> None:
    store = Store.in_memory()
    store.allowlist.add(AllowEntry("C-0007", kinds=frozenset({"badge"})))
    clock = ManualClock()
    policy = Policy(PolicySection(accept=["badge"]), store, clock, None)
    outbox = Outbox(tmp_path / "qrgate.db", "factory-1", "gate-1", "in")
    trust = ClockTrust(wall=clock.now, monotonic=clock.monotonic, synced=lambda: True)
    woken: list[tuple[int, bool, bool]] = []

    def wake() -> None:
        relay, red = (mock_factory.pin(pin).state for pin in (RELAY, RED))
        woken.append((outbox.depth().rows, bool(relay), bool(red)))

    with Outputs(OutputPins(relay=RELAY, red_led=RED), mock_factory, pulse_s=5.0) as outputs:
        gate = Gate(policy, outbox, outputs, clock, trust, wake=wake)
        granted = gate.scan(b"C-0007")
        denied = gate.scan(b"V-9999")

    assert granted is not None
    assert granted.reason == "ok"
    assert denied is not None
    assert denied.reason == "not_allowed"
    # The relay released for the grant, the red LED lit for the denial, each event on disk.
    assert woken == [(1, True, False), (2, True, True)]
    outbox.close()
    store.close()
