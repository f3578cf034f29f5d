"""The event schema, version 1 (contract): one JSON object per message on `.../events`.

`Event` is the single source of truth: producers build it, consumers parse with it,
and `docs/events.schema.json` is generated from it (`python -m mqtt.events`).
Consumers accept unknown extra fields, so version 1 can grow compatibly.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

EVENT_VERSION = 1
EventType = Literal["scan", "exit_request", "door_forced", "door_held", "mode", "fault"]
Level = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Token = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Timestamp = Annotated[str, StringConstraints(pattern=r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")]

KeyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{43}$")]
Signature = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{86}$")]

SCAN_REQUIRES = ("result", "reason", "credential", "code_sha256")
# A health certificate's types, the only thing of it besides its country an event carries.
CertType = Literal["vaccination", "test", "recovery"]
CERT_TYPES: tuple[CertType, ...] = get_args(CertType)
MAX_SEQ = 2**63 - 1  # SQLite's largest integer
# The reasons gates give (scanner.decision.verdict.REASONS, kept equal by a test); consumers
# must accept others, since a newer gate may give new ones.
REASONS = (
    "ok",
    "expired",
    "not_yet_valid",
    "bad_signature",
    "unknown_key",
    "revoked",
    "not_allowed",
    "wrong_site",
    "unknown_format",
    "too_large",
    "passback",
    "lockdown",
    "not_accepted",
    "emergency",
    "store_full",
    "store_error",
    "recorded",
    "pair_mismatch",
    "pair_timeout",
    "wrong_key_usage",
    "schema_invalid",
    "type_not_accepted",
    "disease_not_accepted",
    "vaccine_not_accepted",
    "vaccination_incomplete",
    "vaccination_too_recent",
    "vaccination_too_old",
    "test_type_not_accepted",
    "test_positive",
    "test_in_future",
    "test_too_old",
    "recovery_not_valid",
)


class Event(BaseModel):
    """One gate event. Every field is always present in what a gate publishes (null
    where it does not apply); scans always carry result, reason, credential and hash."""

    model_config = ConfigDict(
        extra="allow",
        frozen=True,
        title="qrgate event",
        json_schema_extra={
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://qrgate.invalid/schemas/event-v1.json",
            "if": {"properties": {"type": {"const": "scan"}}},
            "then": {
                "properties": {name: {"not": {"type": "null"}} for name in SCAN_REQUIRES},
                "required": list(SCAN_REQUIRES),
            },
        },
    )

    v: Literal[1] = Field(description="Schema version")
    id: Annotated[
        str,
        StringConstraints(
            pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-"
            r"[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
        ),
    ] = Field(description="UUID4, unique per event: consumers deduplicate on it")
    seq: int = Field(
        ge=1, le=MAX_SEQ, description="Per gate, from 1, +1 per event, survives restarts"
    )
    ts: Timestamp = Field(description="Gate's wall clock, UTC, milliseconds")
    site: Level
    gate: Level
    direction: Literal["in", "out"]
    type: EventType
    result: Literal["granted", "denied"] | None = None
    reason: Token | None = Field(
        None, description="Decision reason (docs/credentials.md)", examples=list(REASONS)
    )
    credential: Token | None = Field(None, description="pass, badge, cccd, vnqr, dcc or unknown")
    subject: Annotated[str, StringConstraints(max_length=256)] | None = None
    name: Annotated[str, StringConstraints(max_length=256)] | None = None
    code_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")] | None = Field(
        None, description="SHA-256 of the scanned payload; the payload itself is never sent"
    )
    latency_ms: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="Frame capture to decision"
    )
    detail: Annotated[str, StringConstraints(max_length=512)] | None = Field(
        None, description="Human-readable detail of mode and fault events"
    )
    cert_type: CertType | None = Field(
        None,
        description="Health certificate (dcc, or a passage paired with one) only: its type;"
        " nothing else of it is sent",
    )
    cert_country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = Field(
        None,
        description="Health certificate (dcc, or a passage paired with one) only: issuing"
        " country, ISO 3166-1 alpha-2",
    )
    ts_trusted: bool = Field(
        True, description="False when the gate's clock was not synchronised or jumped"
    )
    kid: KeyId | None = Field(
        None, description="RFC 7638 thumbprint of the gate's Ed25519 event key (signed events)"
    )
    sig: Signature | None = Field(
        None,
        description="Ed25519 signature of the bytes before it, always the last member "
        "(docs/mqtt.md, Signed events); never part of what is signed",
    )

    @model_validator(mode="after")
    def _scan_is_complete(self) -> Event:
        missing = [name for name in SCAN_REQUIRES if getattr(self, name) is None]
        if self.type == "scan" and missing:
            raise ValueError(f"a scan event needs {', '.join(missing)}")
        return self

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON with every field but `sig`: what a gate publishes, or signs."""
        return json.dumps(
            self.model_dump(mode="json", exclude={"sig"}), ensure_ascii=False, separators=(",", ":")
        ).encode()


def format_ts(epoch_s: float) -> str:
    """Epoch seconds → the event's `ts` form, e.g. 2026-11-25T07:58:03.412Z."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_event(payload: bytes | str) -> Event:
    """Validate one message; pydantic.ValidationError (a ValueError) if it is no event."""
    return Event.model_validate_json(payload)


def event_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of version 1 events."""
    return Event.model_json_schema()


if __name__ == "__main__":
    json.dump(event_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
