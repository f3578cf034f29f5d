"""The health-certificate verifier step by step, on certificates made here by throwaway
signers, and hostile input: always a reason, never an exception."""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import base45
import cbor2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.credentials.dcc import chain, issue
from scanner.credentials.dcc.chain import Reject
from scanner.credentials.dcc.revocation import normalise_hash, revocation_hashes
from scanner.credentials.dcc.trustlist import load_trust_list
from scanner.credentials.dcc.verifier import DccVerifier
from scanner.errors import ConfigError
from tests.support import dcc as data
from tests.support.dcc import DAY, NOW

ES = data.signer("VN", "ES256")
PS = data.signer("VN", "PS256")
OTHER = data.signer("VN", "ES256")
SKEW = 60.0
B45_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


@pytest.fixture(scope="module")
def verifier(tmp_path_factory: pytest.TempPathFactory) -> DccVerifier:
    folder = tmp_path_factory.mktemp("trust")
    return DccVerifier(data.write_trust_list(folder / "trust.json", ES, PS), SKEW)


def reason(verifier: DccVerifier, payload: bytes, now: float = NOW) -> str:
    return verifier.verify(payload, now).reason


def wrap(message: object) -> bytes:
    """A COSE structure (or anything) as the QR text: HC1: + Base45(zlib(CBOR))."""
    encoded: bytes = base45.b45encode(zlib.compress(cbor2.dumps(message)))
    return b"HC1:" + encoded


def signed_message(
    by: issue.ThrowawaySigner,
    claims: object,
    *,
    protected: dict[int, Any] | None = None,
    unprotected: dict[int, Any] | None = None,
    tag: int | None = 18,
) -> bytes:
    header = cbor2.dumps(protected if protected is not None else {1: by.alg, 4: by.kid})
    payload = cbor2.dumps(claims)
    signature = by.sign(cbor2.dumps(["Signature1", header, b"", payload]))
    message: object = [header, unprotected or {}, payload, signature]
    return wrap(cbor2.CBORTag(tag, message) if tag is not None else message)


USUAL = object()  # the usual certificate content


def claims(content: object = USUAL, override: dict[int, Any] | None = None) -> dict[int, Any]:
    entry = issue.vaccination_entry("VN", data.day(-30), 2, 2)
    base = {
        1: "VN",
        6: int(NOW - DAY),
        4: int(NOW + 365 * DAY),
        -260: {1: issue.content("A", "B", "1990", "v", entry) if content is USUAL else content},
    }
    base.update(override or {})
    return base


# --- The steps ---------------------------------------------------------------------------


def test_es256_and_ps256_verify(verifier: DccVerifier) -> None:
    for signer in (ES, PS):
        check = verifier.verify(data.vaccination(signer), NOW)
        assert (check.reason, check.step) == ("ok", None)
        assert check.signed is not None
        assert check.signed.algorithm == ("ES256" if signer is ES else "PS256")
        assert check.signed.country == "VN"


@pytest.mark.parametrize(
    ("payload", "step"),
    [
        (b"HC2:NCF", "unprefix"),
        (b"NCFOXN%TS3DH", "unprefix"),
        (b"HC1:", "inflate"),
        (b"HC1:ABC~", "base45"),
        (b"HC1:A", "base45"),
        (b"HC1:" + base45.b45encode(b"not zlib at all"), "inflate"),
        (b"HC1:" + base45.b45encode(zlib.compress(b"x" * 100)[:-6]), "inflate"),
        (b"HC1:" + base45.b45encode(zlib.compress(b"\xff\xff")), "cose"),
        (wrap([b"", {}, b""]), "cose"),
        (wrap(cbor2.CBORTag(99, [b"", {}, b"", b""])), "cose"),
        (wrap([b"\xa1\x01", {}, b"", b""]), "cose"),
        (wrap(["text", {}, b"", b""]), "cose"),
        (wrap([b"", {}, cbor2.dumps([1, 2]), b""]), "cwt"),
        (wrap([b"", {}, cbor2.dumps({4: 1}), b""]), "cwt"),
    ],
)
def test_each_break_in_the_chain_is_unknown_format_named_by_its_step(
    verifier: DccVerifier, payload: bytes, step: str
) -> None:
    check = verifier.verify(payload, NOW)
    assert (check.reason, check.step) == ("unknown_format", step)


def test_a_zip_bomb_stops_at_the_cap_as_too_large(verifier: DccVerifier) -> None:
    bomb = b"HC1:" + base45.b45encode(zlib.compress(b"\0" * 1_000_000, 9))
    assert len(bomb) < 2048  # fits policy.max_payload_bytes: only the cap stops it
    assert verifier.verify(bomb, NOW) == verifier.verify(bomb, NOW)
    assert (reason(verifier, bomb), verifier.verify(bomb, NOW).step) == ("too_large", "inflate")
    assert isinstance(chain.inflate(zlib.compress(b"\0" * 1_000_000)), Reject)


def test_cose_sign1_may_be_untagged_or_inside_a_cwt_tag(verifier: DccVerifier) -> None:
    assert reason(verifier, signed_message(ES, claims(), tag=None)) == "ok"
    header = cbor2.dumps({1: ES.alg, 4: ES.kid})
    payload = cbor2.dumps(claims())
    signature = ES.sign(cbor2.dumps(["Signature1", header, b"", payload]))
    inner = cbor2.CBORTag(18, [header, {}, payload, signature])
    assert reason(verifier, wrap(cbor2.CBORTag(61, inner))) == "ok"


def test_kid_and_alg_come_from_the_protected_header_first(verifier: DccVerifier) -> None:
    unprotected_only = signed_message(ES, claims(), protected={}, unprotected={1: -7, 4: ES.kid})
    assert reason(verifier, unprotected_only) == "ok"
    right_then_wrong = signed_message(ES, claims(), unprotected={4: b"wrong"})
    assert reason(verifier, right_then_wrong) == "ok"
    wrong_then_right = signed_message(
        ES, claims(), protected={1: -7, 4: b"wrong"}, unprotected={4: ES.kid}
    )
    assert reason(verifier, wrong_then_right) == "unknown_key"
    assert reason(verifier, signed_message(ES, claims(), protected={1: -7})) == "unknown_key"


def test_an_unknown_signer_and_a_forged_signature(verifier: DccVerifier) -> None:
    assert reason(verifier, data.vaccination(OTHER)) == "unknown_key"
    forged = signed_message(OTHER, claims(), protected={1: -7, 4: ES.kid})
    assert reason(verifier, forged) == "bad_signature"


def test_every_signer_of_a_kid_is_tried(tmp_path: Path) -> None:
    twin = data.signer("VN", "ES256")
    entries = [twin.trust_list_entry(), ES.trust_list_entry()]
    entries[0]["kid"] = entries[1]["kid"]  # two signers, one kid
    (tmp_path / "t.json").write_text(json.dumps(entries))
    verifier = DccVerifier(tmp_path / "t.json", SKEW)
    assert len(verifier.trust_list.signers(ES.kid)) == 2
    assert reason(verifier, data.vaccination(ES)) == "ok"
    assert reason(verifier, signed_message(twin, claims(), protected={1: -7, 4: ES.kid})) == "ok"


@pytest.mark.parametrize(
    "protected",
    [
        {1: 5, 4: ES.kid},  # HMAC 256/256
        {1: 4, 4: ES.kid},  # HMAC 256/64
        {4: ES.kid},  # no alg at all
        {1: 0, 4: ES.kid},
        {1: "none", 4: ES.kid},
        {1: -37, 4: ES.kid},  # PS256 claimed for an EC key: a key of the wrong type
        {1: -35, 4: ES.kid},  # ES384
    ],
)
def test_other_algorithms_and_wrong_key_types_are_bad_signatures(
    verifier: DccVerifier, protected: dict[int, Any]
) -> None:
    header = cbor2.dumps(protected)
    payload = cbor2.dumps(claims())
    to_sign = cbor2.dumps(["Signature1", header, b"", payload])
    for signature in (ES.sign(to_sign), b"", b"\0" * 64, PS.sign(to_sign)):
        assert reason(verifier, wrap(cbor2.CBORTag(18, [header, {}, payload, signature]))) == (
            "bad_signature"
        )


def test_an_es256_kid_pointing_at_an_rsa_key_is_a_bad_signature(tmp_path: Path) -> None:
    entries = [PS.trust_list_entry()]
    entries[0]["kid"] = base64.b64encode(ES.kid).decode()
    (tmp_path / "t.json").write_text(json.dumps(entries))
    assert reason(DccVerifier(tmp_path / "t.json", SKEW), data.vaccination(ES)) == "bad_signature"


def test_key_usage_limits_a_signer_to_its_types(tmp_path: Path) -> None:
    tests_only = data.signer("VN", "ES256", types=frozenset({"test"}))
    verifier = DccVerifier(data.write_trust_list(tmp_path / "t.json", tests_only), SKEW)
    assert reason(verifier, data.covid_test(tests_only)) == "ok"
    assert reason(verifier, data.vaccination(tests_only)) == "wrong_key_usage"
    assert reason(verifier, data.recovery(tests_only)) == "wrong_key_usage"
    assert load_trust_list(tmp_path / "t.json").signers(tests_only.kid)[0].types == {"test"}


def test_time_exp_is_inclusive_with_the_skew_and_iat_may_not_be_ahead(
    verifier: DccVerifier,
) -> None:
    payload = signed_message(ES, claims(override={4: int(NOW), 6: int(NOW - DAY)}))
    assert reason(verifier, payload, NOW) == "ok"
    assert reason(verifier, payload, NOW + SKEW) == "ok"
    assert reason(verifier, payload, NOW + SKEW + 0.001) == "expired"
    early = signed_message(ES, claims(override={6: int(NOW + SKEW + 1)}))
    assert reason(verifier, early, NOW) == "not_yet_valid"
    assert reason(verifier, signed_message(ES, claims(override={6: int(NOW + SKEW)})), NOW) == "ok"


@pytest.mark.parametrize(
    "override",
    [
        {4: None},
        {4: "tomorrow"},
        {4: 2**200},
        {4: cbor2.CBORTag(2, b"\x01" * 300)},  # a bignum exp
        {6: -1},
        {6: float("nan")},
        {4: True},
        {1: 7},
        {-260: {2: {}}},
        {-260: "certificate"},
    ],
)
def test_claims_of_the_wrong_shape_are_unknown_format(
    verifier: DccVerifier, override: dict[int, Any]
) -> None:
    base = claims()
    for key, value in override.items():
        if value is None:
            del base[key]
        else:
            base[key] = value
    assert verifier.verify(signed_message(ES, base), NOW).step == "cwt"


@pytest.mark.parametrize(
    "content",
    [
        {"ver": "1.3.0", "nam": {}, "dob": "1990"},  # no group at all (DGC1)
        b"\xff\xffnot a map",  # CBO1
        "text",
        {"nam": {"fnt": "A"}, "dob": "1990", "v": []},
        {"nam": {"fnt": "a lower case"}, "dob": "1990", "v": [{}]},
    ],
)
def test_signed_content_that_breaks_the_schema_is_schema_invalid(
    verifier: DccVerifier, content: object
) -> None:
    check = verifier.verify(signed_message(ES, claims(content)), NOW)
    assert (check.reason, check.step) == ("schema_invalid", "schema")


def test_revocation_hashes_are_the_eu_ones() -> None:
    uvci, signature = "URN:UVCI:01:VN:ABC", bytes(range(64))
    hashes = revocation_hashes(uvci, "VN", -7, signature)
    import hashlib

    def sha(raw: bytes) -> str:
        return hashlib.sha256(raw).digest()[:16].hex()

    assert hashes == (sha(uvci.encode()), sha(b"VN" + uvci.encode()), sha(signature[:32]))
    assert revocation_hashes(None, "VN", -37, signature) == (sha(signature),)
    as_listed = base64.b64encode(bytes.fromhex(hashes[0])).decode()
    assert normalise_hash(as_listed) == normalise_hash(hashes[0].upper()) == hashes[0]
    assert normalise_hash(hashlib.sha256(uvci.encode()).hexdigest()) == hashes[0]
    assert normalise_hash("not a hash") is None
    assert normalise_hash(base64.b64encode(b"short").decode()) is None


def test_trust_list_forms(tmp_path: Path) -> None:
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"certificates": [ES.trust_list_entry()]}))
    no_kid = tmp_path / "no-kid.json"
    no_kid.write_text(json.dumps([{"rawData": ES.trust_list_entry()["rawData"]}]))
    csca = tmp_path / "csca.json"
    csca.write_text(json.dumps([{**ES.trust_list_entry(), "certificateType": "CSCA"}]))
    folder = tmp_path / "folder"
    issue.save_signer(PS, folder / "ps")
    (folder / "es.der").write_bytes(ES.der)
    (folder / "ps.pem").write_bytes((folder / "ps" / issue.CERT_NAME).read_bytes())
    assert load_trust_list(wrapped).signers(ES.kid)
    assert load_trust_list(no_kid).signers(ES.kid)  # kid computed from the certificate
    assert len(load_trust_list(csca)) == 0  # not a document signer
    both = load_trust_list(folder)
    assert (len(both), both.countries) == (2, ["VN"])
    for bad in ("{", '{"certificates": 3}', '[{"kid": "x"}]', '[{"rawData": "%%%"}]'):
        (tmp_path / "bad.json").write_text(bad)
        with pytest.raises(ConfigError, match=r"dcc\.trust_list"):
            load_trust_list(tmp_path / "bad.json")
    with pytest.raises(ConfigError, match="file not found"):
        load_trust_list(tmp_path / "missing.json")


# --- Hostile input -----------------------------------------------------------------------

AUTHENTICITY = {"unknown_format", "too_large", "unknown_key", "bad_signature"}
VALID = data.vaccination(ES)


def never_raises(verifier: DccVerifier) -> Callable[[bytes], str]:
    def judged(payload: bytes) -> str:
        return verifier.verify(payload, NOW).reason

    return judged


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(index=st.integers(min_value=4), char=st.sampled_from(B45_ALPHABET))
def test_a_tampered_payload_is_never_accepted(verifier: DccVerifier, index: int, char: str) -> None:
    position = 4 + index % (len(VALID) - 4)
    tampered = VALID[:position] + char.encode() + VALID[position + 1 :]
    if tampered != VALID:
        assert never_raises(verifier)(tampered) in AUTHENTICITY


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(length=st.integers(min_value=0))
def test_truncated_base45_is_never_accepted(verifier: DccVerifier, length: int) -> None:
    cut = VALID[: 4 + length % (len(VALID) - 4)]
    assert never_raises(verifier)(cut) in AUTHENTICITY


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=st.binary(max_size=600))
def test_any_bytes_after_the_prefix(verifier: DccVerifier, raw: bytes) -> None:
    for payload in (b"HC1:" + raw, b"HC1:" + base45.b45encode(raw), wrap_raw(raw)):
        assert never_raises(verifier)(payload) in AUTHENTICITY


def wrap_raw(raw: bytes) -> bytes:
    encoded: bytes = base45.b45encode(zlib.compress(raw))
    return b"HC1:" + encoded


CBOR_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**300), max_value=2**300)
    | st.floats()
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.integers(-300, 10) | st.text(max_size=3), inner, max_size=4)
        | st.builds(cbor2.CBORTag, st.sampled_from([0, 1, 2, 4, 18, 28, 29, 61, 258]), inner)
    ),
    max_leaves=25,
)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(message=CBOR_VALUES, payload=CBOR_VALUES, content=CBOR_VALUES)
def test_any_cbor_in_any_place(
    verifier: DccVerifier, message: object, payload: object, content: object
) -> None:
    judged = never_raises(verifier)
    assert judged(wrap(message)) in AUTHENTICITY
    assert judged(wrap([b"", {}, cbor2.dumps(payload), b"sig"])) in AUTHENTICITY
    # Signed, so the content reaches the schema step, unless its CBOR is malformed (a
    # semantic tag holding the wrong type): never a certificate, never an exception.
    assert judged(signed_message(ES, claims(content))) in {"schema_invalid", "unknown_format"}


def test_deep_nesting_and_huge_integers(verifier: DccVerifier) -> None:
    deep = b"\x81" * 30_000 + b"\x00"  # arrays in arrays, 30,000 deep (under the cap)
    assert reason(verifier, wrap_raw(deep)) == "unknown_format"
    assert reason(verifier, wrap([b"", {}, deep, b""])) == "unknown_format"
    nested: object = 0
    for _ in range(30):
        nested = [nested]
    too_deep = verifier.verify(signed_message(ES, claims(nested)), NOW)
    assert (too_deep.reason, too_deep.step) == ("unknown_format", "cwt")  # deeper than 16
    huge = {"nam": {"fnt": "A"}, "dob": "1990", "v": [{"dn": 2**4000, "sd": 2**4000}]}
    assert reason(verifier, signed_message(ES, claims(huge))) == "schema_invalid"
    assert reason(verifier, signed_message(ES, claims(override={4: 2**4000}))) == "unknown_format"
