"""Is a health certificate authentic, and is its content a certificate: the decode chain,
then signature, key usage, time and schema, in that order; the first step that fails
gives the reason. Health rules and revocation come after, in the decision.

- signature: the kid (protected header, else unprotected) picks the trust list's signers
  with that kid; none is `unknown_key`. Kids are not unique, so every one is tried; a
  signature that verifies with none of them (or an alg other than ES256/PS256, or a key
  of the wrong type) is `bad_signature`.
- key usage: a signer whose certificate names DCC types may sign only those
  (`wrong_key_usage`).
- time: `exp` is inclusive (valid at exactly `exp`), with `clock_skew_s` of tolerance,
  past it is `expired`; `iat` in the future beyond the skew is `not_yet_valid`.
- schema: a signed certificate whose content breaks the DCC schema is `schema_invalid`:
  genuinely signed, but not a certificate the rules can judge.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from scanner.credentials.dcc.certificate import (
    HealthCertificate,
    find_uvci,
    groups_present,
    parse_certificate,
)
from scanner.credentials.dcc.chain import AuthReason, Claims, CoseSign1, Reject, decode_chain
from scanner.credentials.dcc.cose import algorithm_name, verify_signature
from scanner.credentials.dcc.revocation import revocation_hashes
from scanner.credentials.dcc.trustlist import Signer, TrustList, load_trust_list
from scanner.credentials.health import CertType

DccReason = AuthReason | Literal["ok", "schema_invalid"]
_COUNTRY = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True, slots=True)
class Signed:
    """A certificate whose signature verified, with what the later steps need."""

    cose: CoseSign1
    claims: Claims
    signer: Signer
    certificate: HealthCertificate | None  # None: the content breaks the schema

    @property
    def types(self) -> frozenset[CertType]:
        return groups_present(self.claims.content)

    @property
    def cert_type(self) -> CertType | None:
        types = self.types
        return next(iter(types)) if len(types) == 1 else None

    @property
    def country(self) -> str | None:
        """The issuing country: `iss`, else the signer's; only a two-letter code."""
        for candidate in (self.claims.issuer, self.signer.country):
            if candidate is not None and _COUNTRY.fullmatch(candidate):
                return candidate
        return None

    @property
    def uvci(self) -> str | None:
        return find_uvci(self.claims.content)

    @property
    def algorithm(self) -> str:
        return algorithm_name(self.cose.alg)

    def revocation_hashes(self) -> tuple[str, ...]:
        return revocation_hashes(self.uvci, self.claims.issuer, self.cose.alg, self.cose.signature)


@dataclass(frozen=True, slots=True)
class DccCheck:
    """The verdict on a certificate's authenticity and schema; `signed` whenever the
    signature verified, `step` the step that failed."""

    reason: DccReason
    signed: Signed | None = None
    step: str | None = None


class DccVerifier:
    """Verifies health certificates against one trust list (reload() re-reads it)."""

    def __init__(self, trust_list: TrustList | Path, clock_skew_s: float) -> None:
        self._skew = clock_skew_s
        self.trust_list = (
            trust_list if isinstance(trust_list, TrustList) else load_trust_list(trust_list)
        )

    def reload(self, path: Path | None = None) -> None:
        """Re-read the trust list, or switch to `path`; on any error (ConfigError) the
        list in use stays."""
        self.trust_list = load_trust_list(path or self.trust_list.source)

    def verify(self, payload: bytes, now: float) -> DccCheck:
        """Judge a payload at wall-clock time `now`; never raises for any input."""
        decoded = decode_chain(payload)
        if isinstance(decoded, Reject):
            return DccCheck(decoded.reason, step=decoded.step)
        cose, claims = decoded
        signer = find_signer(self.trust_list, cose)
        if isinstance(signer, Reject):
            return DccCheck(signer.reason, step=signer.step)
        signed = Signed(cose, claims, signer, parse_certificate(claims.content))
        for step in (key_usage(signed), validity(claims, now, self._skew)):
            if step is not None:
                return DccCheck(step.reason, signed, step.step)
        if signed.certificate is None:
            return DccCheck("schema_invalid", signed, "schema")
        return DccCheck("ok", signed)


def find_signer(trust_list: TrustList, cose: CoseSign1) -> Signer | Reject:
    """The trusted signer whose key verifies the signature."""
    candidates = trust_list.signers(cose.kid)
    if not candidates:
        return Reject("unknown_key", "signature", "no signer with this kid in the trust list")
    message = cose.to_be_signed()
    for signer in candidates:
        if verify_signature(cose.alg, signer.key, message, cose.signature):
            return signer
    return Reject("bad_signature", "signature", "verifies with no signer of this kid")


def key_usage(signed: Signed) -> Reject | None:
    if signed.signer.may_sign(signed.types):
        return None
    return Reject("wrong_key_usage", "key usage", "the signer may not sign this type")


def validity(claims: Claims, now: float, skew: float) -> Reject | None:
    if now > claims.expires + skew:
        return Reject("expired", "time", "past exp")
    if claims.issued is not None and claims.issued > now + skew:
        return Reject("not_yet_valid", "time", "iat is in the future")
    return None
