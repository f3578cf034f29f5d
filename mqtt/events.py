"""The event schema, version 1 (contract): one JSON object per message on `.../events`.

`Event` is the single source of truth: producers build it, consumers parse with it,
and `docs/events.schema.json` is generated from it (`python -m mqtt.events`).
Consumers accept unknown extra fields, so version 1 can grow compatibly.
"""

from __future__ import annotations

import json
import math
import sys
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

from mqtt.errors import InvalidEventError
from mqtt.validation import explained

EVENT_VERSION = 1
EventType = Literal["scan", "exit_request", "door_forced", "door_held", "mode", "fault"]
# Patterns end in \Z, not $: msgspec matches them with re.search, where $ also matches before
# a final newline ("gate-1\n"). `event_schema` writes them with $, as JSON Schema reads them.
# Digits are [0-9], not \d, which in Python also matches other scripts' digits.
Level = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{1,64}\Z")]
Token = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_]{0,31}\Z")]
Timestamp = Annotated[
    str, Meta(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z\Z")
]
Uuid4 = Annotated[
    str, Meta(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z")
]
Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}\Z")]
Country = Annotated[str, Meta(pattern=r"^[A-Z]{2}\Z")]
KeyId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{43}\Z")]
Signature = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{86}\Z")]
Name = Annotated[str, Meta(max_length=256)]

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


# `Event(...)` checks only what `__post_init__` does, none of the fields' constraints: build
# one with `event_of`, read one with `parse_event`, which check them all.
class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One gate event. Every field is always present in what a gate publishes (null
    where it does not apply); scans always carry result, reason, credential and hash."""

    v: Annotated[Literal[1], Meta(description="Schema version")]
    id: Annotated[Uuid4, Meta(description="UUID4, unique per event: consumers deduplicate on it")]
    seq: Annotated[
        int,
        Meta(ge=1, le=MAX_SEQ, description="Per gate, from 1, +1 per event, survives restarts"),
    ]
    ts: Annotated[Timestamp, Meta(description="Gate's wall clock, UTC, milliseconds")]
    site: Level
    gate: Level
    direction: Literal["in", "out"]
    type: EventType
    result: Literal["granted", "denied"] | None = None
    reason: Annotated[
        Token | None,
        Meta(description="Decision reason (docs/credentials.md)", examples=list(REASONS)),
    ] = None
    credential: Annotated[
        Token | None, Meta(description="pass, badge, cccd, vnqr, dcc or unknown")
    ] = None
    subject: Name | None = None
    name: Name | None = None
    code_sha256: Annotated[
        Sha256 | None,
        Meta(description="SHA-256 of the scanned payload; the payload itself is never sent"),
    ] = None
    latency_ms: Annotated[
        Annotated[float, Meta(ge=0)] | None, Meta(description="Frame capture to decision")
    ] = None
    detail: Annotated[
        Annotated[str, Meta(max_length=512)] | None,
        Meta(description="Human-readable detail of mode and fault events"),
    ] = None
    cert_type: Annotated[
        CertType | None,
        Meta(
            description="Health certificate (dcc, or a passage paired with one) only: its"
            " type; nothing else of it is sent"
        ),
    ] = None
    cert_country: Annotated[
        Country | None,
        Meta(
            description="Health certificate (dcc, or a passage paired with one) only: issuing"
            " country, ISO 3166-1 alpha-2"
        ),
    ] = None
    ts_trusted: Annotated[
        bool, Meta(description="False when the gate's clock was not synchronised or jumped")
    ] = True
    kid: Annotated[
        KeyId | None,
        Meta(description="RFC 7638 thumbprint of the gate's Ed25519 event key (signed events)"),
    ] = None
    sig: Annotated[
        Signature | None,
        Meta(
            description="Ed25519 signature of the bytes before it, always the last member "
            "(docs/mqtt.md, Signed events); never part of what is signed"
        ),
    ] = None

    def __post_init__(self) -> None:
        # msgspec has no allow_inf_nan: `ge=0` refuses NaN, nothing refuses infinity.
        if self.latency_ms is not None and not math.isfinite(self.latency_ms):
            raise ValueError("latency_ms: must be a finite number")
        if self.type == "scan":
            missing = [name for name in SCAN_REQUIRES if getattr(self, name) is None]
            if missing:
                raise ValueError(f"a scan event needs {', '.join(missing)}")

    def as_dict(self) -> dict[str, Any]:
        """Every field by name, in declaration order (its values are JSON's already)."""
        return msgspec.structs.asdict(self)

    def to_json(self) -> bytes:
        """Compact UTF-8 JSON with every field but `sig`: what a gate publishes, or signs."""
        fields = self.as_dict()
        del fields["sig"]
        # The json module, not msgspec.json: these are the bytes gates have always signed,
        # and msgspec writes some floats differently (1e16 where json writes 1e+16).
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()


EVENT_FIELDS = frozenset(Event.__struct_fields__)
# Untyped numbers as Python reads them: 1e400 in a field v1 does not know is kept (as
# infinity), as it always was, rather than refusing the whole event.
_JSON = msgspec.json.Decoder(float_hook=float)


def format_ts(epoch_s: float) -> str:
    """Epoch seconds → the event's `ts` form, e.g. 2026-11-25T07:58:03.412Z."""
    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def event_of(fields: dict[str, Any]) -> Event:
    """An event of these values, every constraint checked; InvalidEventError (a ValueError)
    naming the first bad field if they make no valid event."""
    for name, value in fields.items():
        if isinstance(value, str) and not utf8(value):
            raise InvalidEventError(f"{name}: text with no UTF-8 form (a lone surrogate)")
    return converted(fields)


def converted(fields: dict[str, Any]) -> Event:
    """msgspec's check of every field's constraints, its error named by field."""
    try:
        return msgspec.convert(fields, Event)
    except msgspec.ValidationError as error:
        raise InvalidEventError(explained(error, Event)) from None


def utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def parse_event(payload: bytes | str) -> Event:
    """Validate one message; InvalidEventError (a ValueError) if it is no event."""
    return read_event(payload)[0]


def read_event(payload: bytes | str) -> tuple[Event, dict[str, Any]]:
    """One message as an event and the fields v1 does not know (decoded once); raises
    InvalidEventError (a ValueError) naming the first bad field ("message" for the whole)
    if it is no event."""
    try:
        body = _JSON.decode(payload)
    except msgspec.DecodeError as error:
        detail = str(error).removeprefix("JSON is malformed: ")
        raise InvalidEventError(f"message: Invalid JSON: {detail}") from None
    except UnicodeEncodeError:  # a str read from bytes that were no UTF-8
        raise InvalidEventError("message: text with no UTF-8 form (a lone surrogate)") from None
    if not isinstance(body, dict):
        raise InvalidEventError(f"message: expected a JSON object, got {type(body).__name__}")
    event = converted(body)  # JSON's text always has a UTF-8 form: msgspec checks it
    if body.keys() <= EVENT_FIELDS:
        return event, {}
    return event, {name: value for name, value in body.items() if name not in EVENT_FIELDS}


def event_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of version 1 events."""
    body = msgspec.json.schema(Event)["$defs"]["Event"]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://qrgate.invalid/schemas/event-v1.json",
        "title": "qrgate event",
        "description": body["description"],
        "type": "object",
        "properties": {name: ecma_patterns(schema) for name, schema in body["properties"].items()},
        "required": body["required"],
        "additionalProperties": True,
        "if": {"properties": {"type": {"const": "scan"}}},
        "then": {
            "properties": {name: {"not": {"type": "null"}} for name in SCAN_REQUIRES},
            "required": list(SCAN_REQUIRES),
        },
    }


def ecma_patterns(schema: Any) -> Any:
    """A schema with each pattern's Python end of text (\\Z) written as ECMA-262's ($),
    the one JSON Schema validators read: there, $ never matches before a final newline."""
    if isinstance(schema, list):
        return [ecma_patterns(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    written = {key: ecma_patterns(value) for key, value in schema.items()}
    pattern = written.get("pattern")
    if isinstance(pattern, str) and pattern.endswith("\\Z"):
        written["pattern"] = pattern.removesuffix("\\Z") + "$"
    return written


if __name__ == "__main__":
    json.dump(event_schema(), sys.stdout, indent=2)
    sys.stdout.write("\n")
