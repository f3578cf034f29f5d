"""Gates made of the real gate code, many to a process: each with its own outbox
(keeping acknowledged events for resending), its own Ed25519 event key, its own
Publisher and MQTT connection, and the command intake with the gate's `resend` handler.
For the centre's tests (several monitors, replay) and bench.fleet."""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from monitor.intake.enrollment import EnrolledKey
from mqtt.commands import CommandIntake, ReplayGuard, public_keys
from mqtt.outbox import Outbox, OutboxLimits
from mqtt.publisher import Publisher
from mqtt.resend import resend_handler
from mqtt.settings import BrokerSettings, PublisherSettings
from mqtt.signing import EventSigner, public_text
from mqtt.topics import GateTopics
from tests.support.tokens import IssuerKey

KEEP_ACKED_S = 7 * 86_400.0
NAMES = ("Nguyễn Văn An", "Trần Thị Bích", "Lê Văn Cường", "Phạm Thị Dung", "Hoàng Văn Em")


@dataclass
class SimulatedGate:
    site: str
    gate: str
    outbox: Outbox
    publisher: Publisher
    signer: EventSigner

    def scan(self, rng: random.Random) -> int:
        """One scan, as a gate records it (committed, signed), and the publisher woken;
        its seq."""
        worker = rng.randrange(100_000)
        granted = rng.random() < 0.97
        event = self.outbox.append(
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
        self.publisher.wake()
        return event.seq

    def enrolled(self) -> EnrolledKey:
        return EnrolledKey.make(self.site, self.gate, public_text(self.signer.public), 0)

    def close(self) -> None:
        self.publisher.stop(timeout_s=3.0)
        self.outbox.close()


def make_gate(
    folder: Path, site: str, gate: str, port: int, command_keys: dict[str, Any], **options: Any
) -> SimulatedGate:
    """One gate under `folder/site/gate`; `options` go to PublisherSettings."""
    home = folder / site / gate
    home.mkdir(parents=True, exist_ok=True)
    signer = EventSigner.load_or_create(home / "event-key.pem")
    database = home / "qrgate.db"
    limits = OutboxLimits(keep_acked_s=KEEP_ACKED_S, reserve_bytes=0)
    outbox = Outbox(database, site, gate, "in", limits, signer=signer)
    topics = GateTopics("qrgate", site, gate)
    handlers = {"resend": resend_handler(outbox)}
    intake = CommandIntake(topics, public_keys(command_keys), handlers, ReplayGuard(database))
    broker = BrokerSettings(host="127.0.0.1", port=port, client_id=f"{site}/{gate}")
    settings = PublisherSettings(broker=broker, **options)
    publisher = Publisher(settings, topics, outbox, commands=intake, version="test")
    return SimulatedGate(site, gate, outbox, publisher, signer)


def connected(gates: list[SimulatedGate], timeout_s: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not all(gate.publisher.connected for gate in gates):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def drained(gates: list[SimulatedGate], timeout_s: float = 60.0) -> bool:
    """Until no outbox holds an event waiting for the broker."""
    deadline = time.monotonic() + timeout_s
    while any(gate.outbox.depth().rows for gate in gates):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def centre_key(folder: Path, kid: str = "centre-1") -> tuple[Path, dict[str, Any]]:
    """The centre's command key as `qrgate report gaps --resend` reads it (PEM), and the
    key set the gates trust."""
    key = IssuerKey.ed25519(kid)
    pem = folder / f"{kid}.key.pem"
    pem.write_bytes(
        key.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pem, {"keys": [key.jwk()]}
