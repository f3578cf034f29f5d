"""A gate's MQTT side for tests: an outbox, events to put in it, a fast publisher."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mqtt.commands import CommandIntake
from mqtt.outbox import Outbox, OutboxLimits
from mqtt.publisher import Publisher
from mqtt.settings import BrokerSettings, PublisherSettings, TlsSettings
from mqtt.topics import GateTopics
from tests.support.broker import Mosquitto

SITE, GATE = "factory-1", "gate-1"
TOPICS = GateTopics("qrgate", SITE, GATE)


def new_outbox(path: Path, gate: str = GATE, **limits: int) -> Outbox:
    return Outbox(path, SITE, gate, "in", OutboxLimits(**limits))


def scans(outbox: Outbox, count: int, ts: float | None = None, trusted: bool = True) -> list[int]:
    """Append `count` granted scans; their seqs."""
    return [
        outbox.append(
            "scan",
            ts=time.time() if ts is None else ts,
            ts_trusted=trusted,
            result="granted",
            reason="ok",
            credential="badge",
            subject=f"W-{n}",
            code_sha256=f"{n:064x}",
            latency_ms=1.5,
        ).seq
        for n in range(count)
    ]


def broker_settings(broker: Mosquitto | int, **overrides: Any) -> BrokerSettings:
    """Settings for a private broker (or a bare port) that notice a dead link quickly."""
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": broker if isinstance(broker, int) else broker.port,
        "client_id": f"qrgate-{SITE}-{GATE}",
        "keepalive_s": 5,
        "connect_timeout_s": 3.0,
    }
    return BrokerSettings(**{**base, **overrides})


def publisher_for(
    broker: Mosquitto | int,
    outbox: Outbox,
    *,
    commands: CommandIntake | None = None,
    health: Callable[[], Mapping[str, Any]] = dict,
    tls: TlsSettings | None = None,
    window: int = 64,
    heartbeat_s: float = 0.5,
    release_parked_after_s: float = 60.0,
    **broker_overrides: Any,
) -> Publisher:
    """A publisher that retries quickly, so that faults heal within a test's patience."""
    settings = PublisherSettings(
        broker=broker_settings(broker, tls=tls, **broker_overrides),
        heartbeat_s=heartbeat_s,
        window=window,
        retry_min_s=0.05,
        retry_max_s=0.3,
        release_parked_after_s=release_parked_after_s,
    )
    return Publisher(settings, TOPICS, outbox, health, commands, version="9.9.9")


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def start(running: list[Publisher], publisher: Publisher) -> Publisher:
    """Start a publisher that the `running` fixture stops after the test."""
    running.append(publisher)
    publisher.start()
    return publisher
