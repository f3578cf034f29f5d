"""Command arguments as the gates' handlers get them: each command's arguments checked and
written out in full (every field, defaults included, numbers as the field's type), and
bad ones refused with the argument's path and what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mqtt.commands import check_args

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
