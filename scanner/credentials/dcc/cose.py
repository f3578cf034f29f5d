"""The two signature algorithms of health certificates (hcert spec §3.3.1), verified with
`cryptography` over the COSE Sig_structure:

- ES256 (COSE alg -7): ECDSA on P-256 with SHA-256, the signature raw r‖s (64 bytes);
- PS256 (COSE alg -37): RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt
  (RFC 8230), on RSA keys of 2048 bits or more. Vietnam signs PS256.

The key decides: an EC key verifies only ES256, an RSA key only PS256, so an alg taken
from the unprotected header cannot turn one into the other. Anything else (HMAC, `none`,
other curves) verifies nothing.
"""

from __future__ import annotations

from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.hashes import SHA256

ES256: Final = -7
PS256: Final = -37
ALGORITHMS: Final = {ES256: "ES256", PS256: "PS256"}
P256_COORDINATE_BYTES = 32
PSS_SALT_BYTES = 32
MIN_RSA_BITS = 2048
PSS: Final = padding.PSS(mgf=padding.MGF1(SHA256()), salt_length=PSS_SALT_BYTES)


def verify_signature(
    alg: object, key: CertificatePublicKeyTypes, message: bytes, signature: bytes
) -> bool:
    """True when `signature` is `key`'s signature of `message` under COSE `alg`."""
    try:
        if alg == ES256 and is_p256(key) and len(signature) == 2 * P256_COORDINATE_BYTES:
            assert isinstance(key, ec.EllipticCurvePublicKey)
            key.verify(raw_to_der(signature), message, ec.ECDSA(SHA256()))
            return True
        if alg == PS256 and isinstance(key, rsa.RSAPublicKey) and key.key_size >= MIN_RSA_BITS:
            key.verify(signature, message, PSS, SHA256())
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def algorithm_name(alg: object) -> str:
    """A COSE alg as people name it: ES256, PS256, else as given."""
    return ALGORITHMS.get(alg, repr(alg)) if isinstance(alg, int) else repr(alg)


def is_p256(key: CertificatePublicKeyTypes) -> bool:
    return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)


def raw_to_der(signature: bytes) -> bytes:
    """COSE's r‖s to the DER form `cryptography` verifies."""
    half = len(signature) // 2
    return encode_dss_signature(
        int.from_bytes(signature[:half], "big"), int.from_bytes(signature[half:], "big")
    )


def der_to_raw(signature: bytes) -> bytes:
    """The DER form `cryptography` signs to COSE's r‖s (for issuing test certificates)."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    r, s = decode_dss_signature(signature)
    return r.to_bytes(P256_COORDINATE_BYTES, "big") + s.to_bytes(P256_COORDINATE_BYTES, "big")
