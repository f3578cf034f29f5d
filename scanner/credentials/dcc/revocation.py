"""The hashes by which the EU revocation lists name a certificate: the first 128 bits of
the SHA-256 of

- UCI: the certificate's UVCI (`ci`), as written;
- COUNTRYCODEUCI: the issuing country (the CWT's `iss`) followed by the UVCI;
- SIGNATURE: the COSE signature, for ES256 only its first half (r), since s can be
  changed without invalidating the signature.

Lists carry them in base64; the gate stores and compares them as 32 hex digits.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re

from scanner.credentials.dcc.cose import ES256

HASH_BYTES = 16
_HEX = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{64}")


def truncated_sha256(data: bytes) -> str:
    return hashlib.sha256(data).digest()[:HASH_BYTES].hex()


def revocation_hashes(
    uvci: str | None, country: str | None, alg: object, signature: bytes
) -> tuple[str, ...]:
    """Every hash naming this certificate, in hex: UCI, COUNTRYCODEUCI, SIGNATURE."""
    signed = signature[: len(signature) // 2] if alg == ES256 else signature
    hashes = [truncated_sha256(signed)]
    if uvci is not None:
        hashes.insert(0, truncated_sha256(uvci.encode()))
        if country is not None:
            hashes.insert(1, truncated_sha256((country + uvci).encode()))
    return tuple(hashes)


def normalise_hash(text: str) -> str | None:
    """A revocation hash as given (base64 of 16 bytes as the EU lists carry it, or hex of
    16 or 32 bytes) in the stored form, 32 lowercase hex digits; None if it is neither."""
    if _HEX.fullmatch(text):
        return text[: 2 * HASH_BYTES].lower()
    try:
        raw = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == HASH_BYTES else None
