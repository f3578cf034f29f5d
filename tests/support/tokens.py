"""Signing keys and tokens made without qrgate's own code: a gate must accept what any
standard issuer makes, and refuse what an attacker can make.

`pyjwt_token` uses PyJWT directly; `hand_jws` builds a compact JWS from `json`, `base64`
and `cryptography` alone (or any signing function, such as HMAC for forgeries).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

Signer = Callable[[bytes], bytes]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class IssuerKey:
    """A signing key with its kid and algorithm, as an outside issuer would hold it."""

    kid: str
    alg: str
    private: ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey

    @classmethod
    def ed25519(cls, kid: str = "ed-1") -> IssuerKey:
        return cls(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())

    @classmethod
    def p256(cls, kid: str = "es-1") -> IssuerKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        """The public JWK, built by hand from the key's numbers (RFC 8037, RFC 7518)."""
        public = self.private.public_key()
        if isinstance(public, ed25519.Ed25519PublicKey):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw), "kid": self.kid}
        numbers = public.public_numbers()
        return {
            "kty": "EC",
            "crv": "P-256",
            "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big")),
            "kid": self.kid,
        }

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, message: bytes) -> bytes:
        """A raw JWS signature: Ed25519's 64 bytes, or ES256's r || s (not DER)."""
        if isinstance(self.private, ed25519.Ed25519PrivateKey):
            return self.private.sign(message)
        r, s = decode_dss_signature(self.private.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def write_jwks(path: Path, *keys: IssuerKey, extra: list[dict[str, Any]] | None = None) -> Path:
    path.write_text(json.dumps({"keys": [key.jwk() for key in keys] + (extra or [])}))
    return path


def pyjwt_token(key: IssuerKey, claims: dict[str, Any], **headers: Any) -> str:
    return jwt.encode(claims, key.private, algorithm=key.alg, headers={"kid": key.kid, **headers})


def hand_jws(header: dict[str, Any], claims: dict[str, Any] | bytes, sign: Signer | None) -> str:
    """header.payload.signature; `sign` None leaves the signature empty (alg none)."""
    body = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(body)}"
    signature = sign(signing_input.encode()) if sign else b""
    return f"{signing_input}.{b64url(signature)}"


def hmac_signer(secret: bytes) -> Signer:
    """HS256 with `secret`: the classic forgery uses a public key's bytes as the secret."""
    return lambda message: hmac.new(secret, message, hashlib.sha256).digest()
