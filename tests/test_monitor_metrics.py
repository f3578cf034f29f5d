"""`qrgate monitor --metrics`: a real monitor ingesting from a real mosquitto, scraped over
loopback; and the docs' alert rules, which must name only metrics the monitor serves."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitor.intake.state import LiveState
from monitor.integrations.metrics import Metrics, MetricsError, parse_address
from tests.support.broker import Mosquitto, free_port
from tests.support.cli import ROOT
from tests.support.gate import wait_until
from tests.support.monitor_events import gate_event, payload, topic
from tests.support.probe import Probe

ALERTS = ROOT / "docs" / "prometheus-alerts.yml"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@pytest.fixture
def monitor_with_metrics(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[int]:
    """`qrgate monitor --quiet --metrics 127.0.0.1:PORT`, as deployed; yields PORT."""
    port = free_port()
    log = tmp_path / "monitor.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "scanner", "monitor", "--quiet",
                "--broker", mosquitto.url, "--db", f"sqlite:///{tmp_path / 'm.db'}",
                "--client-id", "metrics-test", "--metrics", f"127.0.0.1:{port}",
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        assert wait_until(lambda: "subscribed to" in log.read_text(), 20), log.read_text()
        yield port
    finally:
        process.terminate()
        process.wait(10)


def iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def test_the_endpoint_counts_what_a_real_monitor_ingests(
    mosquitto: Mosquitto, monitor_with_metrics: int
) -> None:
    port = monitor_with_metrics
    gate = Probe(mosquitto.port)
    try:
        ts = iso(time.time() - 2)  # scanned two seconds ago
        events = [gate_event(seq, ts, site="f1", gate="in-1") for seq in (1, 2, 4)]
        for event in [*events, events[1]]:  # the second one twice
            gate.publish(topic(event), payload(event))
        gate.publish("qrgate/f1/in-1/events", b"{not json")
        gate.publish("qrgate/f1/in-1/status", b'{"state": "online"}', retain=True)
        gate.publish("qrgate/f1/out-1/status", b'{"state": "offline"}', retain=True)
        health = {"camera_fps": 29.5, "decode_ms": 3.2, "outbox": {"rows": 7, "bytes": 900}}
        gate.publish("qrgate/f1/in-1/health", json.dumps(health).encode(), retain=True)
    finally:
        gate.close()

    def settled() -> bool:
        samples = scrape(port)
        return value(samples, "qrgate_events_duplicate_total") == 1 and (
            value(samples, "qrgate_gate_outbox_events", site="f1", gate="in-1") is not None
        )

    assert wait_until(settled, 15)
    samples = scrape(port)
    assert value(samples, "qrgate_events_ingested_total") == 3
    assert value(samples, "qrgate_messages_rejected_total") == 1
    assert value(samples, "qrgate_monitor_broker_connected") == 1
    assert value(samples, "qrgate_monitor_store_ok") == 1
    assert value(samples, "qrgate_gates", state="online") == 1
    assert value(samples, "qrgate_gates", state="offline") == 1
    assert value(samples, "qrgate_gate_up", site="f1", gate="in-1") == 1
    assert value(samples, "qrgate_gate_up", site="f1", gate="out-1") == 0
    assert value(samples, "qrgate_gate_missing_events", site="f1", gate="in-1") == 1  # seq 3
    assert value(samples, "qrgate_gate_outbox_events", site="f1", gate="in-1") == 7
    assert value(samples, "qrgate_gate_camera_fps", site="f1", gate="in-1") == 29.5
    assert value(samples, "qrgate_gate_decode_seconds", site="f1", gate="in-1") == 0.0032
    assert value(samples, "qrgate_event_lag_seconds_count") == 3  # new events only
    assert value(samples, "qrgate_event_lag_seconds_bucket", le="1.0") == 0
    assert value(samples, "qrgate_event_lag_seconds_bucket", le="10.0") == 3


def served_names() -> set[str]:
    """Every sample name the monitor's registry can serve."""
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    names = set()
    for family in Metrics(LiveState()).registry.collect():
        names.add(family.name)
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ()))
    return names


def test_the_alert_rules_use_only_metrics_the_monitor_serves() -> None:
    rules = yaml.safe_load(ALERTS.read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(expressions) >= 10
    used = {name for expr in expressions for name in re.findall(r"\bqrgate_\w+", expr)}
    assert used - served_names() == set()
    assert "qrgate_event_lag_seconds_bucket" in used


def test_promtool_accepts_the_alert_rules() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (Debian package: prometheus)")
    done = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9464", ("127.0.0.1", 9464)),
        ("0.0.0.0:9464", ("0.0.0.0", 9464)),
        ("[::1]:9464", ("::1", 9464)),
        (":9464", ("127.0.0.1", 9464)),
    ],
)
def test_metrics_address_is_loopback_unless_a_host_is_given(
    text: str, expected: tuple[str, int]
) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "host", "host:port", "1:99999"])
def test_a_bad_metrics_address_is_named(text: str) -> None:
    with pytest.raises(MetricsError, match="is not PORT or HOST:PORT"):
        parse_address(text)


def test_a_port_in_use_is_a_clear_error() -> None:
    first = Metrics(LiveState())
    first.serve("127.0.0.1", 0)
    try:
        with pytest.raises(MetricsError, match=r"cannot serve metrics on 127\.0\.0\.1"):
            Metrics(LiveState()).serve("127.0.0.1", first.port)
    finally:
        first.close()


def test_an_observer_that_fails_stops_neither_the_store_nor_the_others(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    from monitor.intake.subscriber import Broker, Settings, Subscriber
    from monitor.storage.store import Store

    seen: list[int] = []

    def broken(_records: object, _new: list[object]) -> None:
        raise RuntimeError("an observer's own bug")

    def counting(_records: object, new: list[object]) -> None:
        seen.append(len(new))

    settings = Settings(Broker("127.0.0.1", mosquitto.port), client_id="observed")
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    subscriber = Subscriber(settings, store, LiveState(), observers=[broken, counting])
    subscriber.start()
    gate = Probe(mosquitto.port)
    try:
        assert subscriber.subscribed.wait(10)
        for seq in (1, 2):
            event = gate_event(seq, "2026-03-02T08:00", site="f1", gate="in-1")
            gate.publish(topic(event), payload(event))
            assert wait_until(lambda n=seq: sum(seen) == n, 10)
        assert subscriber.alive
        assert store.count_events() == 2
    finally:
        gate.close()
        subscriber.stop()
        store.close()
