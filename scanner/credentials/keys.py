"""Signing keys for passes: made here or anywhere, kept as a private PEM and a public JWKS.

The private key (PKCS#8 PEM, mode 0600) stays with whoever issues passes; gates get
only `jwks.json` (RFC 7517), where each key carries its `kid`, `alg` and `use: sig`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from scanner.config import PassAlgorithm
from scanner.errors import QrgateError

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
# A kid names a file too: no separators, no leading dot.
KID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
KID_RULE = "1 to 64 of A-Z a-z 0-9 _ . -, not starting with . _ or -"


class KeyFileError(QrgateError):
    """A key or key set cannot be made, read or written."""


def default_kid(now: float) -> str:
    """A date-based key id that sorts by age and does not collide on the same day."""
    return f"{datetime.fromtimestamp(now, tz=UTC):%Y%m%d}-{secrets.token_hex(2)}"


def check_kid(kid: str) -> str:
    if not KID.fullmatch(kid):
        raise KeyFileError(f"key id {kid!r}: expected {KID_RULE}")
    return kid


def generate_key(algorithm: PassAlgorithm) -> PrivateKey:
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def algorithm_of(key: PrivateKey | PublicKey) -> PassAlgorithm:
    """The signature algorithm a key is for: Ed25519 → EdDSA, P-256 → ES256."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    if isinstance(key.curve, ec.SECP256R1):
        return "ES256"
    raise KeyFileError(f"an EC key on {key.curve.name}: passes use Ed25519 or P-256 keys")


def public_jwk(key: PrivateKey, kid: str) -> dict[str, Any]:
    """The public half of `key` as a JWK with its kid, alg and use."""
    from jwt.algorithms import get_default_algorithms

    algorithm = algorithm_of(key)
    jwk = get_default_algorithms()[algorithm].to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": check_kid(kid), "alg": algorithm, "use": "sig"}


def load_private_key(path: Path) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as error:
        raise KeyFileError(f"{path}: cannot read: {error.strerror}") from error
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key: {error}") from error
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyFileError(f"{path}: a {type(key).__name__}; passes use Ed25519 or P-256 keys")
    algorithm_of(key)
    return key


def create_signing_key(out_dir: Path, kid: str, algorithm: PassAlgorithm) -> tuple[Path, Path]:
    """Write `out_dir/KID.key.pem` (never over an existing one) and add it to `jwks.json`.

    Returns both paths. The key set is checked before anything is written, so a broken
    `jwks.json` leaves no orphan private key behind.
    """
    key_path, jwks_path = out_dir / f"{check_kid(kid)}.key.pem", out_dir / "jwks.json"
    keys = read_key_list(jwks_path)
    key = generate_key(algorithm)
    write_private_key(key, key_path)
    jwk = public_jwk(key, kid)
    write_key_list(jwks_path, [*(old for old in keys if old.get("kid") != kid), jwk])
    return key_path, jwks_path


def write_private_key(key: PrivateKey, path: Path) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} exists: refusing to overwrite a private key") from None
    except OSError as error:
        raise KeyFileError(f"{path}: cannot create: {error.strerror}") from error
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)


def read_key_list(path: Path) -> list[dict[str, Any]]:
    """The keys of an existing JWKS file (none if it does not exist yet)."""
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as error:
        raise KeyFileError(f"{path}: not a readable JSON key set: {error}") from error
    keys = data.get("keys") if isinstance(data, dict) else None
    if not isinstance(keys, list) or not all(isinstance(key, dict) for key in keys):
        raise KeyFileError(f'{path}: not a JWK set (expected {{"keys": [ ... ]}})')
    return keys


def write_key_list(path: Path, keys: list[dict[str, Any]]) -> None:
    """Replace the JWKS file atomically: readers see the old set or the new, never half."""
    text = json.dumps({"keys": keys}, indent=2) + "\n"
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp.write(text)
        tmp.flush()
        os.fsync(tmp.fileno())
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)
