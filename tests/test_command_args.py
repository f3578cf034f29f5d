"""Command arguments as the gates' handlers get them: each command's arguments checked and
written out in full (every field, defaults included, numbers as the field's type), and
bad ones refused with the argument's path and what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mqtt.commands import check_args
from mqtt.errors import CommandRejectedError

ENTRY_DEFAULTS = (
    '"kind": "badge", "kinds": null, "name": null, "birth_date": null, '
    '"valid_from": null, "valid_until": null'
)
JWK = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}

# The arguments of docs/mqtt.md's and `qrgate cmd --help`'s examples among others, and
# exactly what the handlers got for them when this was written (as JSON, so that 10 and
# 10.0 and the order of the fields count).
NORMALISED: list[tuple[str, Any, str]] = [
    ("open", None, '{"seconds": null}'),
    ("open", {}, '{"seconds": null}'),
    ("open", {"seconds": 10}, '{"seconds": 10.0}'),
    ("open", {"seconds": 2.5}, '{"seconds": 2.5}'),
    ("lockdown", None, "{}"),
    ("normal", {}, "{}"),
    ("emergency", None, "{}"),
    (
        "allowlist",
        {"add": ["W-1042", "W-1043"], "remove": ["W-17"]},
        '{"version": null, "entries": null, "add": ['
        f'{{"subject": "W-1042", {ENTRY_DEFAULTS}}}, {{"subject": "W-1043", {ENTRY_DEFAULTS}}}'
        '], "remove": ["W-17"]}',
    ),
    (
        "allowlist",
        {
            "add": [
                {
                    "subject": "001099012345",
                    "kinds": ["cccd", "vnqr"],
                    "name": "Trần Văn Dũng",
                    "birth_date": "1990-04-30",
                    "valid_from": 1767225600,
                    "valid_until": 1798761600,
                }
            ]
        },
        '{"version": null, "entries": null, "add": [{"subject": "001099012345", '
        '"kind": "badge", "kinds": ["cccd", "vnqr"], "name": "Trần Văn Dũng", '
        '"birth_date": "1990-04-30", "valid_from": 1767225600.0, "valid_until": 1798761600.0}'
        '], "remove": []}',
    ),
    (
        "allowlist",
        {"version": 12, "entries": ["W-1", {"subject": "W-2", "name": "Lê Thị B"}]},
        '{"version": 12, "entries": ['
        f'{{"subject": "W-1", {ENTRY_DEFAULTS}}}, '
        '{"subject": "W-2", "kind": "badge", "kinds": null, "name": "Lê Thị B", '
        '"birth_date": null, "valid_from": null, "valid_until": null}'
        '], "add": [], "remove": []}',
    ),
    (
        "allowlist",
        {"version": 3, "entries": []},
        '{"version": 3, "entries": [], "add": [], "remove": []}',
    ),
    (
        "allowlist",
        {"remove": ["W-17"]},
        '{"version": null, "entries": null, "add": [], "remove": ["W-17"]}',
    ),
    (
        "allowlist",
        {"add": [{"subject": "W-9", "kind": "cccd", "valid_until": 1.5}]},
        '{"version": null, "entries": null, "add": [{"subject": "W-9", "kind": "cccd", '
        '"kinds": null, "name": null, "birth_date": null, "valid_from": null, '
        '"valid_until": 1.5}], "remove": []}',
    ),
    (
        "revoke",
        {"jti": ["5f0c9a7e-pass"], "subjects": ["W-17"], "until": 1767312000},
        '{"jti": ["5f0c9a7e-pass"], "subjects": ["W-17"], "dcc": [], "until": 1767312000.0}',
    ),
    (
        "revoke",
        {"dcc": ["cwi/yt0rCV2KiGwY9PYvHw=="]},
        '{"jti": [], "subjects": [], "dcc": ["cwi/yt0rCV2KiGwY9PYvHw=="], "until": null}',
    ),
    (
        "keys",
        {"jwks": {"keys": [{**JWK, "kid": "k"}]}},
        json.dumps({"jwks": {"keys": [{**JWK, "kid": "k"}]}}),
    ),
    (
        "trustlist",
        {"trust_list": [{"rawData": "AAAA", "kid": "x"}]},
        '{"trust_list": [{"rawData": "AAAA", "kid": "x"}]}',
    ),
    (
        "trustlist",
        {"trust_list": {"certificates": [{"rawData": "AAAA"}]}},
        '{"trust_list": {"certificates": [{"rawData": "AAAA"}]}}',
    ),
    (
        "resend",
        {"ranges": [[6, 15], [40, 40]], "after": 52},
        '{"ranges": [[6, 15], [40, 40]], "after": 52}',
    ),
    ("resend", {"after": 0}, '{"ranges": [], "after": 0}'),
]


@pytest.mark.parametrize(("name", "given", "handed"), NORMALISED)
def test_handlers_get_every_argument_written_out(name: str, given: Any, handed: str) -> None:
    checked = check_args(name, given)
    assert json.dumps(checked, ensure_ascii=False) == handed
    assert checked == json.loads(handed)  # lists, not tuples: what JSON gives back


NAME_257 = "x" * 257
# Bad arguments and the reason's start: `bad_args: <where>: <what is wrong>`.
REFUSED: list[tuple[str, Any, str]] = [
    ("open", {"seconds": 0}, "seconds: must be > 0.0"),
    ("open", {"seconds": 3601}, "seconds: must be <= 3600.0"),
    ("open", {"seconds": "10"}, "seconds: must be a number or null, not a string"),
    ("open", {"door": "left"}, "door: unknown field"),
    ("open", ["left"], "must be an object, not a list"),
    ("lockdown", {"seconds": 5}, "seconds: unknown field"),
    # A trailing newline is no part of an id (`$` alone would let it through).
    ("allowlist", {"add": ["gate-1\n"]}, "add.0: must match ^[A-Za-z0-9_-]{1,64}\\Z"),
    ("allowlist", {"add": [{"subject": "gate-1\n"}]}, "add.0.subject: must match "),
    ("allowlist", {"remove": ["W-1\n"]}, "remove.0: must match "),
    ("revoke", {"subjects": ["W-1\n"]}, "subjects.0: must match "),
    ("revoke", {"dcc": ["0" * 32 + "\n"]}, "dcc.0: must match "),
    ("allowlist", {"add": [5]}, "add.0: must be a string or an object, not an integer"),
    ("allowlist", {"add": [{"kind": "badge"}]}, "add.0.subject: required"),
    (
        "allowlist",
        {"add": [{"subject": "W-1", "kind": "pass"}]},
        "add.0.kind: may not be 'pass': expected one of badge, cccd, vnqr",
    ),
    (
        "allowlist",
        {"version": 1, "entries": [{"subject": "W-1", "kinds": ["badge", "dcc"]}]},
        "entries.0.kinds.1: may not be 'dcc': expected one of badge, cccd, vnqr",
    ),
    (
        "allowlist",
        {"add": [{"subject": "W-1", "kinds": []}]},
        "add.0.kinds: must have at least 1 item",
    ),
    (
        "allowlist",
        {"add": [{"subject": "W-1", "name": NAME_257}]},
        "add.0.name: must have at most 256 characters",
    ),
    (
        "allowlist",
        {"add": [{"subject": "W-1", "valid_from": float("nan")}]},
        "add.0.valid_from: must be a finite number",
    ),
    (
        "allowlist",
        {"version": 1, "entries": [{"subject": "W-1", "valid_until": float("inf")}]},
        "entries.0.valid_until: must be a finite number",
    ),
    ("revoke", {"jti": ["p-1"], "until": float("-inf")}, "until: must be a finite number"),
    ("revoke", {"jti": [""]}, "jti.0: must have at least 1 character"),
    ("allowlist", {"version": 0, "entries": []}, "version: must be >= 1"),
    ("allowlist", {"entries": ["W-1"]}, "a snapshot needs its version"),
    ("allowlist", {}, "nothing to do: give entries, add or remove"),
    ("revoke", {}, "nothing to revoke: give jti, subjects or dcc"),
    ("keys", {}, "jwks: required"),
    ("keys", {"jwks": {"keys": []}}, 'jwks: a key set is {"keys": [...]} with at least one key'),
    ("trustlist", {"trust_list": []}, "trust_list: expected [...] or"),
    ("trustlist", {"trust_list": [{"kid": "x"}]}, "trust_list: every certificate needs rawData"),
    (
        "trustlist",
        {"trust_list": {"certificates": [1]}},
        "trust_list.*.0: must be an object, not an integer",
    ),
    ("resend", {"ranges": [[0, 3]]}, "ranges.0.0: must be >= 1"),
    ("resend", {"ranges": [[1, 2, 3]]}, "ranges.0: must have at most 2 items"),
    ("resend", {"ranges": [[1, 1]] * 1001}, "ranges: must have at most 1000 items"),
    ("resend", {"after": True}, "after: must be an integer or null, not a boolean"),
    # JSON can spell a lone surrogate (\ud800), which no UTF-8 text holds.
    ("open", "\ud800", "text with no UTF-8 form (a lone surrogate)"),
    ("allowlist", {"add": [{"subject": "W-1", "name": "\ud800"}]}, "text with no UTF-8 form"),
]


@pytest.mark.parametrize(("name", "given", "problem"), REFUSED)
def test_bad_arguments_are_refused_saying_where_and_why(
    name: str, given: Any, problem: str
) -> None:
    with pytest.raises(CommandRejectedError) as refused:
        check_args(name, given)
    assert refused.value.reason.startswith(f"bad_args: {problem}")


@pytest.mark.parametrize("birth_date", ["1990-02-30", "1990-W01-1", "19900101", "1990-01-01T00"])
def test_a_birth_date_is_a_day_that_exists_written_yyyy_mm_dd(birth_date: str) -> None:
    with pytest.raises(CommandRejectedError) as refused:
        check_args("allowlist", {"add": [{"subject": "W-1", "birth_date": birth_date}]})
    assert refused.value.reason == (
        "bad_args: add.0.birth_date: must be a day that exists, written YYYY-MM-DD"
    )
