"""The v1 event schema: the published JSON Schema file is exactly the generated one,
and the model and the schema agree on what is an event."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mqtt.events import event_of, event_schema, parse_event, read_event

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "docs" / "events.schema.json"

SCAN: dict[str, Any] = {
    "v": 1,
    "id": "0b5e4c1e-8d4f-4c53-9b8e-2f1f3c7d9a10",
    "seq": 1042,
    "ts": "2026-11-25T07:58:03.412Z",
    "site": "factory-1",
    "gate": "gate-1",
    "direction": "in",
    "type": "scan",
    "result": "granted",
    "reason": "ok",
    "credential": "pass",
    "subject": "W-1042",
    "name": "Nguyễn Văn A",
    "code_sha256": "ab" * 32,
    "latency_ms": 14.2,
}


def test_schema_file_is_the_generated_schema() -> None:
    generated = json.dumps(event_schema(), indent=2) + "\n"
    assert SCHEMA_FILE.read_text() == generated, (
        "run: python -m mqtt.events > docs/events.schema.json"
    )


def test_design_example_is_valid_for_both() -> None:
    jsonschema.validate(SCAN, json.loads(SCHEMA_FILE.read_text()))
    event = parse_event(json.dumps(SCAN))
    assert event.ts_trusted is True
    assert json.loads(event.to_json())["name"] == "Nguyễn Văn A"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"reason": None}, "reason"),
        ({"code_sha256": None}, "code_sha256"),
        ({"seq": 0}, "seq"),
        ({"site": "a/b"}, "site"),
        ({"id": "not-a-uuid"}, "id"),
        ({"ts": "2026-11-25 07:58:03"}, "ts"),
        ({"ts": "٢٠٢٦-11-25T07:58:03.412Z"}, "ts"),  # Arabic-Indic digits
        ({"type": "teleport"}, "type"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"subject": "W" * 257}, "subject"),
        ({"cert_country": "vn"}, "cert_country"),
    ],
)
def test_model_and_schema_reject_the_same_events(change: dict[str, Any], field: str) -> None:
    bad = {**SCAN, **change}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, json.loads(SCHEMA_FILE.read_text()))
    with pytest.raises(ValueError, match=field):
        event_of(bad)
    with pytest.raises(ValueError, match=field):
        parse_event(json.dumps(bad))


@pytest.mark.parametrize("field", ["site", "gate", "id", "ts", "code_sha256", "cert_country"])
def test_a_final_newline_is_no_end_of_text(field: str) -> None:
    """Python's $ matches before a final newline; the patterns end at the text's end."""
    good = {**SCAN, "cert_country": "VN"}
    event_of(good)
    with pytest.raises(ValueError, match=field):
        event_of({**good, field: good[field] + "\n"})


def test_the_schema_speaks_ecma_262() -> None:
    """JSON Schema's patterns are ECMA-262, which has no \\Z: every one ends with $."""
    patterns = re.findall(r'"pattern": "(.*)"', SCHEMA_FILE.read_text())
    assert len(patterns) == 10
    assert all(pattern.startswith("^") and pattern.endswith("$") for pattern in patterns)


@pytest.mark.parametrize("latency", [float("nan"), float("inf"), -float("inf")])
def test_latency_is_a_finite_number(latency: float) -> None:
    with pytest.raises(ValueError, match="latency_ms"):
        event_of({**SCAN, "latency_ms": latency})


@pytest.mark.parametrize("number", [b"1e400", b"9" * 400])
def test_a_latency_json_cannot_hold_is_refused(number: bytes) -> None:
    payload = json.dumps({**SCAN, "latency_ms": 0}).encode().replace(b"0}", number + b"}")
    with pytest.raises(ValueError, match="latency_ms"):
        parse_event(payload)


def test_what_is_no_event_is_a_value_error_that_says_why() -> None:
    with pytest.raises(ValueError, match=r"^message: Invalid JSON"):
        parse_event(b"{not json")
    with pytest.raises(ValueError, match=r"^message: text with no UTF-8 form"):
        parse_event(json.dumps(SCAN, ensure_ascii=False).replace("W-1042", "W-\udcff"))
    with pytest.raises(ValueError, match=r"^message: expected a JSON object, got list"):
        parse_event(b"[]")
    with pytest.raises(ValueError, match=r"^seq: required$"):
        parse_event(json.dumps({name: value for name, value in SCAN.items() if name != "seq"}))


def test_unknown_fields_are_kept_for_compatible_growth() -> None:
    payload = json.dumps({**SCAN, "zone": "north", "far": 0}).replace('"far": 0', '"far": 1e400')
    event, extra = read_event(payload)
    assert extra == {"zone": "north", "far": float("inf")}
    assert event == parse_event(json.dumps(SCAN))


# What gates have always published and signed, byte for byte: the fields in their order,
# every one (null where unset) but `sig`, compact, UTF-8, floats as Python writes them.
HEAD = (
    b'{"v":1,"id":"0b5e4c1e-8d4f-4c53-9b8e-2f1f3c7d9a10","seq":1042,'
    b'"ts":"2026-11-25T07:58:03.412Z","site":"factory-1","gate":"gate-1","direction":"in",'
)
GRANTED = b'"type":"scan","result":"granted","reason":"ok","credential":"pass",'
NAME = b'"name":"Nguy\xe1\xbb\x85n V\xc4\x83n A",'
SHA = b'"code_sha256":"' + b"ab" * 32 + b'",'
TAIL = b'"ts_trusted":true,"kid":"' + b"A" * 43 + b'"}'
NO_CERT = b'"detail":null,"cert_type":null,"cert_country":null,'
PUBLISHED = [
    (
        {},
        HEAD
        + GRANTED
        + b'"subject":"W-1042",'
        + NAME
        + SHA
        + b'"latency_ms":14.2,'
        + NO_CERT
        + TAIL,
    ),
    (
        {"latency_ms": 12},
        HEAD
        + GRANTED
        + b'"subject":"W-1042",'
        + NAME
        + SHA
        + b'"latency_ms":12.0,'
        + NO_CERT
        + TAIL,
    ),
    (
        {"latency_ms": 1e-05, "name": 'Tr\u1ea7n "Th\u1ecb" \\ B\x1b\u2028/', "subject": "W-1"},
        HEAD
        + GRANTED
        + b'"subject":"W-1",'
        + b'"name":"Tr\xe1\xba\xa7n \\"Th\xe1\xbb\x8b\\" \\\\ B\\u001b\xe2\x80\xa8/",'
        + SHA
        + b'"latency_ms":1e-05,'
        + NO_CERT
        + TAIL,
    ),
    (
        {
            "type": "fault",
            "result": None,
            "reason": None,
            "credential": None,
            "code_sha256": None,
            "latency_ms": 1e16,
            "detail": "camera\nlost",
            "ts_trusted": False,
            "cert_type": "test",
            "cert_country": "VN",
            "sig": "B" * 86,
        },
        HEAD
        + b'"type":"fault","result":null,"reason":null,"credential":null,"subject":"W-1042",'
        + NAME
        + b'"code_sha256":null,"latency_ms":1e+16,'
        + b'"detail":"camera\\nlost","cert_type":"test","cert_country":"VN","ts_trusted":false,'
        + b'"kid":"'
        + b"A" * 43
        + b'"}',
    ),
]


@pytest.mark.parametrize(("change", "published"), PUBLISHED)
def test_the_published_bytes_do_not_change(change: dict[str, Any], published: bytes) -> None:
    event = parse_event(json.dumps({**SCAN, "kid": "A" * 43, **change}))
    assert event.to_json() == published


def test_a_value_outside_a_fixed_few_is_told_which_are_allowed() -> None:
    expected = "direction: may not be 'up': expected one of in, out"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        parse_event(json.dumps({**SCAN, "direction": "up"}))
