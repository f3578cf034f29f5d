"""What a scanned payload is: a signed pass, a badge id, a chip ID card (CCCD), a personal
QR code (PC-COVID / VNeID), a health certificate (EU DCC), or unknown.

The shapes cannot be confused, so classification needs no guessing:

- pass: a compact JWS, three base64url segments joined by two dots (the signature
  segment may be empty, so that an unsigned `alg: none` token is still judged as a pass
  and denied for its signature rather than slipping through as something else);
- badge: 1 to 64 of `A-Z a-z 0-9 _ -` (no dot, no pipe);
- dcc: starts with `HC1:` (an EU Digital COVID Certificate: a colon is in no other shape);
- vnqr: the personal QR's six `|`-joined fields, by their shape: an ISO date or its mask
  third, `0` or `1` fourth, digits fifth, an EXT that is empty or `<`-separated last;
- cccd: any other payload that contains `|` (the chip ID card's QR joins seven fields
  with it).

Classification looks only at the bytes; whether a pass verifies or a card parses is
decided afterwards, strictly, by the kind's own module.
"""

from __future__ import annotations

import re
from typing import Literal

from scanner.credentials.badge import BADGE_ID
from scanner.credentials.vnqr import looks_like_personal_qr

Credential = Literal["pass", "badge", "cccd", "vnqr", "dcc", "unknown"]

DCC_PREFIX = b"HC1:"
_BADGE_BYTES = re.compile(BADGE_ID.pattern.encode())
_COMPACT_JWS = re.compile(rb"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def classify(payload: bytes) -> Credential:
    """The kind of credential a payload has the shape of."""
    if payload.startswith(DCC_PREFIX):
        return "dcc"
    if _COMPACT_JWS.fullmatch(payload):
        return "pass"
    if _BADGE_BYTES.fullmatch(payload):
        return "badge"
    if b"|" in payload:
        return "vnqr" if looks_like_personal_qr(payload) else "cccd"
    return "unknown"
