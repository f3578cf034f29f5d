"""The decode chain of a health certificate, step by step: `HC1:` + Base45(zlib(COSE_Sign1
(CWT))). Each step is a pure function that gives its value or a `Reject` naming the step,
so a failing certificate says where it broke. Nothing here raises for any input.

Libraries: `base45` (RFC 9285, by its author) and `cbor2` (RFC 8949), whose decoder is
iterative, limits nesting (`max_depth`) and refuses duplicate map keys on request, so
hostile CBOR ends as a CBORDecodeError rather than a crash or an ambiguity.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import base45
import cbor2

from scanner.credentials.kinds import DCC_PREFIX

PREFIX: Final = DCC_PREFIX
# A real COSE message is under 2 KiB; inflating stops past this (zip bombs).
MAX_COSE_BYTES: Final = 32 * 1024
# The deepest real structure (claims / hcert / certificate / group / entry) is 5 levels.
CBOR_MAX_DEPTH: Final = 16
COSE_SIGN1_TAG, CWT_TAG = 18, 61
HEADER_ALG, HEADER_KID = 1, 4
CLAIM_ISS, CLAIM_EXP, CLAIM_IAT, CLAIM_HCERT = 1, 4, 6, -260
HCERT_DCC = 1
# Times beyond this are no real dates (year 3000): refused before any date arithmetic.
LATEST_TIME_S: Final = 32_503_680_000

# The reasons that say "not authentic", as the steps up to the time check give them.
AuthReason = Literal[
    "unknown_format",
    "too_large",
    "unknown_key",
    "bad_signature",
    "wrong_key_usage",
    "expired",
    "not_yet_valid",
]


@dataclass(frozen=True, slots=True)
class Reject:
    """Why the pipeline stopped: the decision's reason, the step, and a detail for people."""

    reason: AuthReason
    step: str
    detail: str


@dataclass(frozen=True, slots=True)
class CoseSign1:
    """A COSE_Sign1 message (RFC 9052 §4.2) with its alg and kid picked out: from the
    protected header when there, else from the unprotected one."""

    protected: bytes  # exactly as received: the signature covers these bytes
    alg: object
    kid: bytes | None
    payload: bytes
    signature: bytes

    def to_be_signed(self) -> bytes:
        """The Sig_structure: ["Signature1", protected, external_aad = h'', payload]."""
        return cbor2.dumps(["Signature1", self.protected, b"", self.payload])


@dataclass(frozen=True, slots=True)
class Claims:
    """The CWT claims a verifier uses; `content` is the certificate, not yet parsed."""

    issuer: str | None  # iss: the issuing country (optional in the hcert spec)
    expires: float  # exp, epoch seconds
    issued: float | None  # iat, epoch seconds
    content: object  # -260 / 1


def unprefix(payload: bytes) -> bytes | Reject:
    if not payload.startswith(PREFIX):
        return Reject("unknown_format", "unprefix", "the payload does not start with HC1:")
    return payload[len(PREFIX) :]


def base45_decode(text: bytes) -> bytes | Reject:
    try:
        return base45.b45decode(text)  # type: ignore[no-any-return]
    except ValueError:
        return Reject("unknown_format", "base45", "not Base45")


def inflate(data: bytes, limit: int = MAX_COSE_BYTES) -> bytes | Reject:
    """The zlib stream's content, refusing more than `limit` bytes before making them."""
    inflater = zlib.decompressobj()
    try:
        content = inflater.decompress(data, limit + 1)
    except zlib.error as error:
        return Reject("unknown_format", "inflate", f"not a zlib stream: {error}")
    if len(content) > limit:
        return Reject("too_large", "inflate", f"inflates to more than {limit} bytes")
    if not inflater.eof:
        return Reject("unknown_format", "inflate", "the zlib stream is cut short")
    return content


def load_cbor(data: bytes) -> object:
    """One CBOR item; CBORDecodeError for anything malformed, too deep or ambiguous."""
    return cbor2.loads(data, max_depth=CBOR_MAX_DEPTH, allow_duplicate_keys=False)


def cose_sign1(data: bytes) -> CoseSign1 | Reject:
    """COSE_Sign1, tagged 18 or untagged; a CWT tag 61 around it is fine."""
    try:
        message = untag(load_cbor(data))
    except cbor2.CBORError as error:
        return Reject("unknown_format", "cose", f"not CBOR: {error}")
    if not (isinstance(message, list | tuple) and len(message) == 4):
        return Reject("unknown_format", "cose", "not a COSE_Sign1 array of four")
    protected, unprotected, payload, signature = message
    if not all(isinstance(part, bytes) for part in (protected, payload, signature)):
        return Reject("unknown_format", "cose", "protected header, payload or signature not bytes")
    headers = protected_headers(protected)
    if headers is None or not isinstance(unprotected, Mapping):
        return Reject("unknown_format", "cose", "headers are not maps")
    alg = headers.get(HEADER_ALG, unprotected.get(HEADER_ALG))
    kid = headers[HEADER_KID] if HEADER_KID in headers else unprotected.get(HEADER_KID)
    return CoseSign1(protected, alg, kid if isinstance(kid, bytes) else None, payload, signature)


def untag(item: object) -> object:
    """Strip the tags allowed around a COSE_Sign1: 61 (CWT) outside, then 18."""
    for tag in (CWT_TAG, COSE_SIGN1_TAG):
        if isinstance(item, cbor2.CBORTag) and item.tag == tag:
            item = item.value
    return item


def protected_headers(protected: bytes) -> Mapping[object, object] | None:
    """The protected header map; empty bytes stand for an empty map (RFC 9052 §3)."""
    if not protected:
        return {}
    try:
        headers = load_cbor(protected)
    except cbor2.CBORError:
        return None
    return headers if isinstance(headers, Mapping) else None


def cwt_claims(payload: bytes) -> Claims | Reject:
    """The claims map: exp required, iat and iss optional, -260/1 the certificate."""
    try:
        claims = load_cbor(payload)
    except cbor2.CBORError as error:
        return Reject("unknown_format", "cwt", f"claims are not CBOR: {error}")
    if isinstance(claims, cbor2.CBORTag) and claims.tag == CWT_TAG:
        claims = claims.value
    if not isinstance(claims, Mapping):
        return Reject("unknown_format", "cwt", "claims are not a map")
    hcert = claims.get(CLAIM_HCERT)
    if not isinstance(hcert, Mapping) or HCERT_DCC not in hcert:
        return Reject("unknown_format", "cwt", "no health certificate (-260/1)")
    expires, issued = epoch(claims.get(CLAIM_EXP)), epoch(claims.get(CLAIM_IAT))
    issuer = claims.get(CLAIM_ISS)
    if expires is None or (CLAIM_IAT in claims and issued is None):
        return Reject("unknown_format", "cwt", "exp missing, or exp or iat not a time")
    if issuer is not None and not isinstance(issuer, str):
        return Reject("unknown_format", "cwt", "iss is not text")
    return Claims(issuer, expires, issued, hcert[HCERT_DCC])


def epoch(value: object) -> float | None:
    """A NumericDate (RFC 8392): seconds since the epoch, integer or float, in range."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return float(value) if 0 <= value <= LATEST_TIME_S else None


def decode_chain(payload: bytes) -> tuple[CoseSign1, Claims] | Reject:
    """unprefix -> base45 -> inflate -> COSE_Sign1 -> CWT claims."""
    text = unprefix(payload)
    if isinstance(text, Reject):
        return text
    compressed = base45_decode(text)
    if isinstance(compressed, Reject):
        return compressed
    cose = inflate(compressed)
    if isinstance(cose, Reject):
        return cose
    message = cose_sign1(cose)
    if isinstance(message, Reject):
        return message
    claims = cwt_claims(message.payload)
    if isinstance(claims, Reject):
        return claims
    return message, claims
