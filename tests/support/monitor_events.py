"""Hand-built gate events, exactly as the v1 contract has gates publish them."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from monitor.intake.ingest import EventRecord, classify


def gate_event(
    seq: int,
    ts: str,
    *,
    site: str = "f1",
    gate: str = "in-1",
    direction: str = "in",
    subject: str | None = "A",
    result: str | None = "granted",
    kind: str = "scan",
    name: str | None = None,
    event_id: str | None = None,
    credential: str = "pass",
    cert: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """One event; `ts` may omit the seconds' fraction and the Z ("2026-03-02T08:00").
    `cert`: a health certificate's (type, country), as a `dcc` scan or a passage paired
    with one carries them."""
    scan = kind == "scan"
    return {
        "v": 1,
        "id": event_id or str(uuid.uuid4()),
        "seq": seq,
        "ts": full_ts(ts),
        "site": site,
        "gate": gate,
        "direction": direction,
        "type": kind,
        "result": result if scan else None,
        "reason": ("ok" if result == "granted" else "not_allowed") if scan else None,
        "credential": credential if scan else None,
        "subject": subject,
        "name": name if name is not None else (f"Worker {subject}" if subject else None),
        "code_sha256": hashlib.sha256(f"{subject}".encode()).hexdigest() if scan else None,
        "latency_ms": 12.5 if scan else None,
        "detail": None if scan else "door held open",
        "cert_type": cert[0] if cert else None,
        "cert_country": cert[1] if cert else None,
        "ts_trusted": True,
    }


def full_ts(ts: str) -> str:
    if len(ts) == 16:
        ts += ":00"
    if len(ts) == 19:
        ts += ".000"
    return ts if ts.endswith("Z") else ts + "Z"


def payload(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


def topic(event: dict[str, Any], prefix: str = "qrgate") -> str:
    return f"{prefix}/{event['site']}/{event['gate']}/events"


def record(event: dict[str, Any]) -> EventRecord:
    built = classify("qrgate", topic(event), payload(event), 0)
    assert isinstance(built, EventRecord), built
    return built
