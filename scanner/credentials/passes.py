"""Signed passes: compact JWS tokens (RFC 7515/7519) signed with EdDSA (Ed25519, RFC 8037)
or ES256, verified with PyJWT against the trusted keys of a JWKS file (RFC 7517).

The token's header picks the key by `kid`; the key fixes the algorithm. A header whose
`alg` is not configured (`none`, any HMAC, anything else) or does not match its key's
is a bad signature, whatever the rest says. Times are checked here against the gate's
clock (passed in), with `clock_skew_s` of tolerance, not against PyJWT's own clock.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import jwt

from scanner.config import PassAlgorithm
from scanner.credentials.cccd import MAX_TEXT_CHARS
from scanner.credentials.keys import PrivateKey, algorithm_of
from scanner.errors import ConfigError

log = logging.getLogger(__name__)

PassReason = Literal[
    "ok",
    "unknown_format",
    "unknown_key",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "wrong_site",
]
JWKS_KEY = "passes.jwks"
# The only keys a pass can be signed with, by (kty, crv).
KEY_ALGORITHMS: Final[dict[tuple[str, str], PassAlgorithm]] = {
    ("OKP", "Ed25519"): "EdDSA",
    ("EC", "P-256"): "ES256",
}
# PyJWT checks signature, structure and claim types; times are checked against our clock.
DECODE_OPTIONS: Final[jwt.types.Options] = {
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "require": ["sub", "exp"],
}


@dataclass(frozen=True, slots=True)
class TrustedKey:
    kid: str
    algorithm: PassAlgorithm
    jwk: jwt.PyJWK


@dataclass(frozen=True, slots=True)
class PassClaims:
    """The claims of a pass whose signature verified."""

    subject: str
    expires: float
    name: str | None = None
    jti: str | None = None
    sites: tuple[str, ...] | None = None  # None: valid at every site
    not_before: float | None = None
    issued_at: float | None = None


@dataclass(frozen=True, slots=True)
class PassCheck:
    """The verdict on a pass; claims are there whenever the signature verified."""

    reason: PassReason
    claims: PassClaims | None = None


class PassVerifier:
    """Verifies passes for one gate; keys are read once and kept (reload() re-reads them)."""

    def __init__(
        self, jwks: Path, algorithms: Sequence[PassAlgorithm], site: str, clock_skew_s: float
    ) -> None:
        self._jwks_path = jwks
        self._algorithms = tuple(algorithms)
        self._site = site
        self._skew = clock_skew_s
        self._decoder = jwt.PyJWT(options=DECODE_OPTIONS)
        self._keys = load_jwks(jwks, self._algorithms)

    @property
    def kids(self) -> list[str]:
        return sorted(self._keys)

    @property
    def source(self) -> Path:
        """The JWKS file the keys in use came from."""
        return self._jwks_path

    def reload(self, jwks: Path | None = None) -> None:
        """Re-read the JWKS file, or switch to `jwks`; on any error (ConfigError) the keys
        and the file in use stay as they were."""
        path = jwks or self._jwks_path
        self._keys = load_jwks(path, self._algorithms)
        self._jwks_path = path

    def verify(self, token: bytes, now: float) -> PassCheck:
        """Judge a token at wall-clock time `now`; never raises for any input."""
        header = unverified_header(token)
        if header is None:
            return PassCheck("unknown_format")
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in self._algorithms:
            return PassCheck("bad_signature")
        key = self._keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            return PassCheck("unknown_key")
        if key.algorithm != alg:
            return PassCheck("bad_signature")
        claims = self._verified_claims(token, key)
        if not isinstance(claims, PassClaims):
            return PassCheck(claims)
        return PassCheck(self._judge(claims, now), claims)

    def _verified_claims(self, token: bytes, key: TrustedKey) -> PassClaims | PassReason:
        try:
            decoded = self._decoder.decode_complete(token, key.jwk, algorithms=[key.algorithm])
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
            return "bad_signature"
        except jwt.PyJWTError:
            return "unknown_format"
        return parse_claims(decoded["payload"]) or "unknown_format"

    def _judge(self, claims: PassClaims, now: float) -> PassReason:
        if claims.expires <= now - self._skew:
            return "expired"
        if any(
            moment is not None and moment > now + self._skew
            for moment in (claims.not_before, claims.issued_at)
        ):
            return "not_yet_valid"
        if claims.sites is not None and self._site not in claims.sites:
            return "wrong_site"
        return "ok"


def unverified_header(token: bytes) -> dict[str, Any] | None:
    """The JOSE header of a compact JWS, for choosing the key; None if it is malformed."""
    segment = token.split(b".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, RecursionError):
        return None
    return header if isinstance(header, dict) else None


class InvalidClaimError(ValueError):
    """A claim of a verified pass has the wrong type or size."""


def parse_claims(payload: dict[str, Any]) -> PassClaims | None:
    """Typed claims; None when `sub` or `exp` is missing or any claim is malformed."""
    try:
        subject, expires = text_claim(payload, "sub"), time_claim(payload, "exp")
        if subject is None or expires is None:
            return None
        return PassClaims(
            subject,
            expires,
            name=text_claim(payload, "name"),
            jti=text_claim(payload, "jti"),
            sites=sites_claim(payload),
            not_before=time_claim(payload, "nbf"),
            issued_at=time_claim(payload, "iat"),
        )
    except InvalidClaimError:
        return None


def text_claim(payload: dict[str, Any], claim: str) -> str | None:
    value = payload.get(claim)
    if value is None or is_text(value):
        return value
    raise InvalidClaimError(claim)


def is_text(value: object) -> bool:
    """Text an issuer may sign: 1 to MAX_TEXT_CHARS printable characters (no control
    characters, no lone surrogates, which no UTF-8 encoder takes)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_TEXT_CHARS and value.isprintable()


def time_claim(payload: dict[str, Any], claim: str) -> float | None:
    """A NumericDate as float (None if absent); it must be a finite JSON number."""
    value = payload.get(claim)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidClaimError(claim)
    try:
        seconds = float(value)
    except OverflowError:
        raise InvalidClaimError(claim) from None
    if not math.isfinite(seconds):
        raise InvalidClaimError(claim)
    return seconds


def sites_claim(payload: dict[str, Any]) -> tuple[str, ...] | None:
    """The sites that accept the pass (`site`: a string or a list of strings)."""
    value = payload.get("site")
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(is_text(item) for item in items):
        raise InvalidClaimError("site")
    return tuple(items)


def load_jwks(path: Path, algorithms: Collection[PassAlgorithm]) -> dict[str, TrustedKey]:
    """The usable keys of a JWKS file by kid; ConfigError naming passes.jwks if it is bad.

    Keys for other algorithms or uses, and keys without a kid, are skipped with a log
    line; a private key, a duplicate kid or a set without any usable key is an error.
    """
    keys: dict[str, TrustedKey] = {}
    for index, jwk in enumerate(read_jwks(path), start=1):
        try:
            key = trusted_key(jwk, algorithms)
            if key is not None and key.kid in keys:
                raise ValueError(f"kid {key.kid!r} is used twice")
        except ValueError as error:
            raise ConfigError.single(JWKS_KEY, f"key #{index}: {error}", value=str(path)) from None
        if key is not None:
            keys[key.kid] = key
    if not keys:
        raise ConfigError.single(
            JWKS_KEY, f"no usable key for {', '.join(algorithms)}", value=str(path)
        )
    return keys


def read_jwks(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError.single(JWKS_KEY, "file not found", value=str(path)) from None
    except OSError as error:
        problem = f"cannot read: {error.strerror}"
        raise ConfigError.single(JWKS_KEY, problem, value=str(path)) from None
    except ValueError as error:
        raise ConfigError.single(JWKS_KEY, f"not valid JSON: {error}", value=str(path)) from None
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list) or not all(isinstance(key, dict) for key in keys):
        raise ConfigError.single(
            JWKS_KEY, 'not a JWK set: expected {"keys": [ ... ]}', value=str(path)
        )
    return keys


def trusted_key(jwk: dict[str, Any], algorithms: Collection[PassAlgorithm]) -> TrustedKey | None:
    """The key a JWK describes; None if this gate has no use for it; ValueError if bad."""
    kid, kty, crv, declared = (jwk.get(field) for field in ("kid", "kty", "crv", "alg"))
    if "d" in jwk:
        raise ValueError("holds a private key: a gate's key set must hold public keys only")
    algorithm = KEY_ALGORITHMS.get((str(kty), str(crv)))
    if algorithm is not None and declared not in (None, algorithm):
        raise ValueError(f"alg {declared!r} does not fit a {kty} {crv} key")
    unusable = skip_reason(kid, algorithm, jwk.get("use"), algorithms)
    if unusable or algorithm is None or not isinstance(kid, str):
        log.info("passes.jwks: key %r skipped: %s", kid, unusable)
        return None
    try:
        return TrustedKey(kid, algorithm, jwt.PyJWK(jwk, algorithm=algorithm))
    except jwt.PyJWTError as error:
        raise ValueError(f"kid {kid!r}: {error}") from None


def skip_reason(
    kid: object, algorithm: PassAlgorithm | None, use: object, algorithms: Collection[str]
) -> str | None:
    if algorithm is None:
        return "not an Ed25519 or P-256 public key"
    if algorithm not in algorithms:
        return f"{algorithm} is not in passes.algorithms"
    if use not in (None, "sig"):
        return f"use is {use!r}, not sig"
    if not isinstance(kid, str) or not kid:
        return "no kid: a pass could not name it"
    return None


def new_jti() -> str:
    """A random pass id: 96 bits, 16 characters, enough to never repeat."""
    return secrets.token_urlsafe(12)


def issue_pass(
    key: PrivateKey,
    kid: str,
    subject: str,
    *,
    now: float,
    valid_for_s: float,
    name: str | None = None,
    sites: Sequence[str] = (),
    jti: str | None = None,
) -> str:
    """A signed pass as a compact JWS (what goes into the QR code)."""
    if valid_for_s <= 0:
        raise ValueError("a pass must be valid for some time")
    claims: dict[str, Any] = {
        "sub": subject,
        "iat": int(now),
        "exp": int(now + valid_for_s),
        "jti": jti or new_jti(),
    }
    if name:
        claims["name"] = name
    if sites:
        claims["site"] = sites[0] if len(sites) == 1 else list(sites)
    # No "typ": it is optional (RFC 7519 5.1) and every byte makes the QR code denser.
    headers = {"kid": kid, "typ": None}
    return jwt.encode(claims, key, algorithm=algorithm_of(key), headers=headers)
