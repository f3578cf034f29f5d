"""The monitor's Prometheus metrics: one scrape point for the whole fleet.

Counters and the gates' figures are read from the live state when Prometheus scrapes
(`FleetCollector`), so they cannot drift from what the monitor shows; the lag of each
new event, from its `ts` to the commit that stored it, is observed as it is committed
(`Metrics.observe`, an observer of the subscriber). Names follow Prometheus' rules: base
units (seconds), `_total` for counters, one `qrgate_` prefix.
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.errors import MonitorError
from monitor.intake.ingest import EventRecord, Record
from monitor.intake.state import LiveState
from monitor.reporting.view import figure
from monitor.storage.records import GateRow

log = logging.getLogger(__name__)

GATE_STATES = ("online", "offline", "stopped", "unknown")
# From a live event (tens of ms) to a backlog drained after a day away.
LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)


class MetricsError(MonitorError):
    """The metrics endpoint cannot be served (bad address, port taken)."""


class FleetCollector(Collector):
    """Everything the live state knows, as metric families, computed at scrape time."""

    def __init__(self, state: LiveState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        snapshot = self.state.snapshot()
        counters = snapshot.counters
        yield counter(
            "qrgate_events_ingested", "Events stored for the first time.", counters.stored
        )
        yield counter(
            "qrgate_events_duplicate",
            "Events received again (redelivered, or already stored): not stored twice.",
            counters.duplicates,
        )
        yield counter(
            "qrgate_messages_rejected",
            "Messages set aside in the rejects table (invalid, or refused by the store).",
            counters.rejected,
        )
        yield gauge(
            "qrgate_monitor_broker_connected",
            "1 while the monitor is connected to the broker.",
            float(snapshot.connected),
        )
        yield gauge(
            "qrgate_monitor_store_ok",
            "1 while the store takes writes, 0 while the monitor retries.",
            float(snapshot.store_problem is None),
        )
        yield gates_by_state(snapshot.gates)
        yield from per_gate(snapshot.gates)


def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def gates_by_state(gates: Sequence[GateRow]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(
        "qrgate_gates", "Gates known to the monitor, by their last status.", labels=["state"]
    )
    tally = Tally(gate.state or "unknown" for gate in gates)
    for state in GATE_STATES:
        family.add_metric([state], tally[state])
    return family


@dataclass(frozen=True)
class PerGate:
    """A per-gate gauge: its name, help, and how to read it from a gate (None: absent)."""

    name: str
    documentation: str
    read: Callable[[GateRow], float | None]


def numeric(value: Any, scale: float = 1.0) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) * scale


def health_figure(name: str, scale: float = 1.0) -> Callable[[GateRow], float | None]:
    return lambda gate: numeric(figure(gate.health or {}, name), scale)


def seconds(ms: int | None) -> float | None:
    return None if not ms else ms / 1000


PER_GATE = (
    PerGate(
        "qrgate_gate_up",
        "1 while the gate's status is online (0: offline by its last will, or stopped).",
        lambda gate: None if gate.state is None else float(gate.state == "online"),
    ),
    PerGate(
        "qrgate_gate_missing_events",
        "Events not received: the highest seq seen minus the events stored.",
        lambda gate: float(gate.missing),
    ),
    PerGate("qrgate_gate_events_stored", "Events of this gate stored.", lambda g: float(g.events)),
    PerGate(
        "qrgate_gate_last_seq", "The highest seq received from this gate.", lambda g: g.last_seq
    ),
    PerGate(
        "qrgate_gate_last_event_timestamp_seconds",
        "The time (the gate's `ts`) of the latest event stored.",
        lambda gate: seconds(gate.last_event_ms),
    ),
    PerGate(
        "qrgate_gate_health_timestamp_seconds",
        "When the gate's latest health message arrived.",
        lambda gate: seconds(gate.health_received_ms),
    ),
    PerGate(
        "qrgate_gate_outbox_events",
        "Events waiting in the gate's outbox (from its latest health message).",
        health_figure("outbox"),
    ),
    PerGate(
        "qrgate_gate_camera_fps",
        "Frames per second the gate's camera delivers (latest health message).",
        health_figure("fps"),
    ),
    PerGate(
        "qrgate_gate_decode_seconds",
        "Time the gate takes to decode a frame (latest health message).",
        health_figure("decode", scale=0.001),
    ),
)


def per_gate(gates: Sequence[GateRow]) -> Iterator[GaugeMetricFamily]:
    for spec in PER_GATE:
        family = GaugeMetricFamily(spec.name, spec.documentation, labels=["site", "gate"])
        for gate in gates:
            value = spec.read(gate)
            if value is not None:
                family.add_metric([gate.site, gate.gate], value)
        yield family


class Metrics:
    """The registry the endpoint serves: the fleet collector and the lag histogram."""

    def __init__(self, state: LiveState, clock: Callable[[], float] = time.time) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(FleetCollector(state))
        self.lag = Histogram(
            "qrgate_event_lag_seconds",
            "From an event's `ts` (the gate's clock) to the commit that stored it.",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.clock = clock
        self._server: Any = None

    def observe(self, _records: Sequence[Record], new: Sequence[EventRecord]) -> None:
        """Subscriber observer: called right after a batch is committed."""
        now = self.clock()
        for record in new:
            self.lag.observe(max(now - record.ts_ms / 1000, 0.0))

    def serve(self, host: str, port: int) -> None:
        """Serve /metrics over HTTP on host:port (port 0: any free port)."""
        try:
            self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as error:
            raise MetricsError(f"cannot serve metrics on {host}:{port}: {error.strerror}") from None
        log.info("metrics on http://%s/metrics", address_text(host, self.port))

    @property
    def port(self) -> int:
        return int(self._server.server_port) if self._server else 0

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def parse_address(text: str) -> tuple[str, int]:
    """`PORT`, `HOST:PORT` or `[IPv6]:PORT`; the host is loopback unless given."""
    host, colon, port = text.rpartition(":")
    if not colon:
        host, port = "127.0.0.1", text
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise MetricsError(f"{text!r} is not PORT or HOST:PORT")
    return host, int(port)


def address_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
