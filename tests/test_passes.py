"""Signed passes: verification of tokens from independent issuers, forgeries, times,
sites, the JWKS file, and issuing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.credentials.keys import public_jwk
from scanner.credentials.passes import PassVerifier, issue_pass, unverified_header
from scanner.errors import ConfigError
from tests.support.tokens import IssuerKey, b64url, hand_jws, hmac_signer, pyjwt_token, write_jwks

NOW = 1_800_000_000.0
SKEW = 60.0
SITE = "factory-1"
ED = IssuerKey.ed25519("ed-1")
ES = IssuerKey.p256("es-1")


def claims(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"sub": "W-1042", "exp": int(NOW) + 3600, "iat": int(NOW) - 10}
    return {**base, **extra}


@pytest.fixture
def jwks(tmp_path: Path) -> Path:
    return write_jwks(tmp_path / "jwks.json", ED, ES)


@pytest.fixture
def verifier(jwks: Path) -> PassVerifier:
    return PassVerifier(jwks, ["EdDSA", "ES256"], SITE, SKEW)


def reason(verifier: PassVerifier, token: str, now: float = NOW) -> str:
    return verifier.verify(token.encode(), now).reason


@pytest.mark.parametrize("key", [ED, ES], ids=["EdDSA", "ES256"])
def test_pyjwt_passes_verify(verifier: PassVerifier, key: IssuerKey) -> None:
    token = pyjwt_token(key, claims(name="Nguyễn Văn An", jti="p-1", site=SITE))
    check = verifier.verify(token.encode(), NOW)
    assert check.reason == "ok"
    assert check.claims is not None
    assert (check.claims.subject, check.claims.name, check.claims.jti) == (
        "W-1042",
        "Nguyễn Văn An",
        "p-1",
    )


@pytest.mark.parametrize("key", [ED, ES], ids=["EdDSA", "ES256"])
def test_hand_built_passes_verify(verifier: PassVerifier, key: IssuerKey) -> None:
    token = hand_jws({"alg": key.alg, "kid": key.kid}, claims(), key.sign)
    assert reason(verifier, token) == "ok"


def test_alg_none_is_a_bad_signature(verifier: PassVerifier) -> None:
    assert reason(verifier, hand_jws({"alg": "none", "kid": "ed-1"}, claims(), None)) == (
        "bad_signature"
    )
    assert reason(verifier, hand_jws({"alg": "none"}, claims(), None)) == "bad_signature"


@pytest.mark.parametrize("secret", ["pem", "raw x", "jwk json"])
def test_hs256_with_the_public_key_as_secret_is_a_bad_signature(
    verifier: PassVerifier, secret: str
) -> None:
    material = {
        "pem": ES.public_pem(),
        "raw x": ED.jwk()["x"].encode(),
        "jwk json": json.dumps(ES.jwk()).encode(),
    }[secret]
    for kid in ("ed-1", "es-1"):
        token = hand_jws({"alg": "HS256", "kid": kid}, claims(), hmac_signer(material))
        assert reason(verifier, token) == "bad_signature"


def test_an_algorithm_that_does_not_fit_the_key_is_refused(verifier: PassVerifier) -> None:
    # ES256 header naming the Ed25519 key (signed by the EC key), and the reverse.
    assert reason(verifier, hand_jws({"alg": "ES256", "kid": "ed-1"}, claims(), ES.sign)) == (
        "bad_signature"
    )
    assert reason(verifier, hand_jws({"alg": "EdDSA", "kid": "es-1"}, claims(), ED.sign)) == (
        "bad_signature"
    )


def test_only_configured_algorithms(jwks: Path) -> None:
    only_eddsa = PassVerifier(jwks, ["EdDSA"], SITE, SKEW)
    assert reason(only_eddsa, pyjwt_token(ES, claims())) == "bad_signature"
    assert reason(only_eddsa, pyjwt_token(ED, claims())) == "ok"


def test_tampered_payload_and_signature(verifier: PassVerifier) -> None:
    header, _, signature = pyjwt_token(ED, claims()).split(".")
    forged = f"{header}.{b64url(json.dumps(claims(sub='BOSS')).encode())}.{signature}"
    assert reason(verifier, forged) == "bad_signature"
    token = pyjwt_token(ES, claims())
    flipped = token[:-5] + ("A" if token[-5] != "A" else "B") + token[-4:]
    assert reason(verifier, flipped) == "bad_signature"


def test_keys_the_gate_does_not_know(verifier: PassVerifier) -> None:
    stranger = IssuerKey.ed25519("stranger")
    assert reason(verifier, pyjwt_token(stranger, claims())) == "unknown_key"
    impostor = IssuerKey.ed25519("ed-1")  # a known kid, someone else's key
    assert reason(verifier, pyjwt_token(impostor, claims())) == "bad_signature"
    assert reason(verifier, hand_jws({"alg": "EdDSA"}, claims(), ED.sign)) == "unknown_key"
    assert reason(verifier, hand_jws({"alg": "EdDSA", "kid": 1}, claims(), ED.sign)) == (
        "unknown_key"
    )


def test_expiry_at_the_skew_boundary(verifier: PassVerifier) -> None:
    exp = int(NOW)
    token = pyjwt_token(ED, claims(exp=exp, iat=exp - 100))
    assert reason(verifier, token, now=exp + SKEW - 0.001) == "ok"
    assert reason(verifier, token, now=exp + SKEW) == "expired"


def test_not_before_and_issued_in_the_future(verifier: PassVerifier) -> None:
    assert reason(verifier, pyjwt_token(ED, claims(nbf=NOW + SKEW))) == "ok"
    assert reason(verifier, pyjwt_token(ED, claims(nbf=NOW + SKEW + 1))) == "not_yet_valid"
    assert reason(verifier, pyjwt_token(ED, claims(iat=NOW + SKEW + 1))) == "not_yet_valid"


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        (SITE, "ok"),
        ([SITE, "factory-2"], "ok"),
        ("factory-2", "wrong_site"),
        (["factory-2"], "wrong_site"),
        ([], "wrong_site"),
        (7, "unknown_format"),
        ([SITE, 7], "unknown_format"),
    ],
)
def test_site_claim(verifier: PassVerifier, site: object, expected: str) -> None:
    assert reason(verifier, pyjwt_token(ED, claims(site=site))) == expected


@pytest.mark.parametrize(
    "bad",
    [
        {"sub": None},
        {"exp": None},
        {"sub": 1042},
        {"sub": ""},
        {"sub": "x" * 257},
        {"exp": "tomorrow"},
        {"exp": True},
        {"exp": 10**400},
        {"nbf": [1]},
        {"jti": 5},
        {"name": {"first": "An"}},
        {"aud": "some-other-service"},
    ],
)
def test_malformed_claims_are_unknown_format(verifier: PassVerifier, bad: dict[str, Any]) -> None:
    body = {key: value for key, value in {**claims(), **bad}.items() if value is not None}
    assert reason(verifier, hand_jws({"alg": "EdDSA", "kid": "ed-1"}, body, ED.sign)) == (
        "unknown_format"
    )


@pytest.mark.parametrize(
    "token",
    [
        "bm90IGpzb24.eyJzdWIiOiJ4In0.c2ln",  # header is not JSON
        "WzFd.eyJzdWIiOiJ4In0.c2ln",  # header is a JSON list
        "e.eyJzdWIiOiJ4In0.c2ln",  # not base64
    ],
)
def test_malformed_headers_are_unknown_format(verifier: PassVerifier, token: str) -> None:
    assert reason(verifier, token) == "unknown_format"


def test_non_finite_times_are_unknown_format(verifier: PassVerifier) -> None:
    body = json.dumps(claims()).replace(str(int(NOW) + 3600), "Infinity").encode()
    assert reason(verifier, hand_jws({"alg": "EdDSA", "kid": "ed-1"}, body, ED.sign)) == (
        "unknown_format"
    )


def test_detached_payload_headers_are_refused(verifier: PassVerifier) -> None:
    header = {"alg": "EdDSA", "kid": "ed-1", "b64": False, "crit": ["b64"]}
    assert reason(verifier, hand_jws(header, claims(), ED.sign)) == "unknown_format"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
CLAIM_NAMES = st.sampled_from(["sub", "exp", "nbf", "iat", "jti", "name", "site", "aud", "x"])


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=st.dictionaries(CLAIM_NAMES, JSON_VALUES),
    header=st.dictionaries(st.text(max_size=4), JSON_VALUES),
)
def test_any_signed_claims_get_a_reason(
    verifier: PassVerifier, body: dict[str, Any], header: dict[str, Any]
) -> None:
    token = hand_jws({**header, "alg": "EdDSA", "kid": "ed-1"}, body, ED.sign)
    assert verifier.verify(token.encode(), NOW).reason in {
        "ok",
        "unknown_format",
        "expired",
        "not_yet_valid",
        "wrong_site",
        "bad_signature",
    }


def test_missing_jwks_names_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"passes\.jwks.*file not found"):
        PassVerifier(tmp_path / "nope.json", ["EdDSA"], SITE, SKEW)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "not a JWK set"),
        ('{"keys": {}}', "not a JWK set"),
        ('{"keys": [1]}', "not a JWK set"),
        ('{"keys": []}', "no usable key"),
        (json.dumps({"keys": [{**ED.jwk(), "d": "secret"}]}), "private key"),
        (json.dumps({"keys": [ED.jwk(), ED.jwk()]}), "used twice"),
        (json.dumps({"keys": [{**ED.jwk(), "alg": "ES256"}]}), "does not fit"),
        (json.dumps({"keys": [{**ED.jwk(), "x": "short"}]}), "ed-1"),
        (json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}), "no usable key"),
    ],
)
def test_bad_jwks_is_a_config_error(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as caught:
        PassVerifier(path, ["EdDSA", "ES256"], SITE, SKEW)
    assert caught.value.problems[0].key == "passes.jwks"


def test_keys_the_gate_cannot_use_are_skipped(tmp_path: Path) -> None:
    others = [
        {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "rsa"},
        {**IssuerKey.ed25519("enc").jwk(), "use": "enc"},
        {k: v for k, v in IssuerKey.ed25519().jwk().items() if k != "kid"},
    ]
    path = write_jwks(tmp_path / "jwks.json", ED, ES, extra=others)
    assert PassVerifier(path, ["EdDSA", "ES256"], SITE, SKEW).kids == ["ed-1", "es-1"]
    assert PassVerifier(path, ["ES256"], SITE, SKEW).kids == ["es-1"]


def test_reload_picks_up_a_new_key_and_survives_a_broken_file(
    verifier: PassVerifier, jwks: Path
) -> None:
    new = IssuerKey.ed25519("ed-2")
    assert reason(verifier, pyjwt_token(new, claims())) == "unknown_key"
    write_jwks(jwks, ED, ES, new)
    verifier.reload()
    assert reason(verifier, pyjwt_token(new, claims())) == "ok"
    jwks.write_text("{ broken")
    with pytest.raises(ConfigError):
        verifier.reload()
    assert reason(verifier, pyjwt_token(new, claims())) == "ok"


@pytest.mark.parametrize("key", [ED, ES], ids=["EdDSA", "ES256"])
def test_issued_passes_verify_with_pyjwt_alone(key: IssuerKey) -> None:
    token = issue_pass(
        key.private, key.kid, "W-7", now=NOW, valid_for_s=600, name="An", sites=["a", "b"]
    )
    jwk = jwt.PyJWK(public_jwk(key.private, key.kid))
    decoded = jwt.decode(
        token, jwk, algorithms=[key.alg], options={"verify_exp": False, "verify_iat": False}
    )
    assert decoded["sub"] == "W-7"
    assert decoded["exp"] - decoded["iat"] == 600
    assert decoded["site"] == ["a", "b"]
    assert len(decoded["jti"]) == 16
    assert unverified_header(token.encode()) == {"alg": key.alg, "kid": key.kid}


def test_a_pass_cannot_be_issued_for_no_time() -> None:
    with pytest.raises(ValueError, match="valid"):
        issue_pass(ED.private, "ed-1", "W-7", now=NOW, valid_for_s=0)
