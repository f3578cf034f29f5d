"""Test health certificates, signed by a throwaway signer (`qrgate dcc issue`): for the
demo, the tests, and a centre that wants to try its gates.

Everything made here is marked as test data where a verifier or a person looks: the
signer certificate's subject (`O=qrgate test data`, `CN=qrgate TEST signer`), the
certificate's issuer field (`is`) and its UVCI (`URN:UVCI:01:CC:QRGATETEST...`). A gate
trusts such a signer only when its trust list holds it, which no real list does.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import base45
import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID, ObjectIdentifier

from scanner.credentials.dcc import chain
from scanner.credentials.dcc.cose import ES256, PS256, PSS, der_to_raw
from scanner.credentials.dcc.rules import COVID_19, NAAT, NOT_DETECTED, RAPID_ANTIGEN
from scanner.credentials.dcc.trustlist import USAGE_OIDS, compute_kid
from scanner.credentials.health import CertType
from scanner.credentials.person import icao_name

SignerAlg = Literal["ES256", "PS256"]
TEST_ORGANISATION: Final = "qrgate test data"
TEST_SIGNER_NAME: Final = "qrgate TEST signer"
TEST_ISSUER: Final = "qrgate test data, not a real certificate"
TEST_UVCI_MARK: Final = "QRGATETEST"
SCHEMA_VERSION: Final = "1.3.0"
KEY_NAME, CERT_NAME, TRUST_LIST_NAME = "signer.key.pem", "signer.crt.pem", "trust-list.json"
SIGNER_VALID_DAYS = 730
RSA_BITS = 2048
ZLIB_LEVEL = 9
TEST_TYPE_CODES: Final = {"naat": NAAT, "rat": RAPID_ANTIGEN}
RESULT_CODES: Final = {"negative": NOT_DETECTED, "positive": "260373001"}  # SNOMED CT
TypeKey = Literal["v", "t", "r"]


@dataclass(frozen=True)
class ThrowawaySigner:
    """A throwaway document signer: its key, its self-signed certificate, its kid."""

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    certificate: x509.Certificate
    country: str

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def kid(self) -> bytes:
        return compute_kid(self.der)

    @property
    def alg(self) -> int:
        return ES256 if isinstance(self.key, ec.EllipticCurvePrivateKey) else PS256

    def trust_list_entry(self) -> dict[str, str]:
        """This signer as an entry of the EU gateway's trust-list JSON."""
        return {
            "kid": base64.b64encode(self.kid).decode(),
            "country": self.country,
            "certificateType": "DSC",
            "rawData": base64.b64encode(self.der).decode(),
        }

    def sign(self, message: bytes) -> bytes:
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return der_to_raw(self.key.sign(message, ec.ECDSA(hashes.SHA256())))
        return self.key.sign(message, PSS, hashes.SHA256())


def new_signer(
    country: str,
    alg: SignerAlg = "ES256",
    *,
    now: float,
    types: frozenset[CertType] | None = None,
) -> ThrowawaySigner:
    """A new throwaway signer for `country`; `types` puts DCC key usage OIDs in it."""
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = (
        ec.generate_private_key(ec.SECP256R1())
        if alg == "ES256"
        else rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    )
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, TEST_ORGANISATION),
            x509.NameAttribute(NameOID.COMMON_NAME, TEST_SIGNER_NAME),
        ]
    )
    start = dt.datetime.fromtimestamp(now, tz=dt.UTC) - dt.timedelta(days=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=SIGNER_VALID_DAYS))
    )
    if types:
        oids = [
            ObjectIdentifier(oid)
            for oid, kind in USAGE_OIDS.items()
            if kind in types and not oid.startswith("1.3.6.1.4.1.0.")
        ]
        builder = builder.add_extension(x509.ExtendedKeyUsage(oids), critical=False)
    return ThrowawaySigner(key, builder.sign(key, hashes.SHA256()), country)


def save_signer(signer: ThrowawaySigner, folder: Path) -> None:
    """Key (mode 0600), certificate and a one-entry trust list, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    key_pem = signer.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key_path = folder / KEY_NAME
    key_path.touch(mode=0o600, exist_ok=True)
    key_path.chmod(0o600)
    key_path.write_bytes(key_pem)
    cert_pem = signer.certificate.public_bytes(serialization.Encoding.PEM)
    (folder / CERT_NAME).write_bytes(cert_pem)
    trust = json.dumps([signer.trust_list_entry()], indent=2)
    (folder / TRUST_LIST_NAME).write_text(trust + "\n", encoding="utf-8")


def load_signer(folder: Path) -> ThrowawaySigner:
    """A signer saved by `save_signer`; ValueError or OSError when it is not there."""
    key = serialization.load_pem_private_key((folder / KEY_NAME).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{folder / KEY_NAME}: not an EC or RSA key")
    certificate = x509.load_pem_x509_certificate((folder / CERT_NAME).read_bytes())
    names = certificate.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    return ThrowawaySigner(key, certificate, str(names[0].value) if names else "XX")


def issue_certificate(
    signer: ThrowawaySigner,
    content: Mapping[str, Any],
    *,
    issued_at: float,
    expires_at: float,
    issuer: str | None = None,
    kid: bytes | None = None,
) -> str:
    """The QR text `HC1:...` of a certificate with `content` (the -260/1 map), signed."""
    claims = {
        chain.CLAIM_ISS: issuer or signer.country,
        chain.CLAIM_IAT: int(issued_at),
        chain.CLAIM_EXP: int(expires_at),
        chain.CLAIM_HCERT: {chain.HCERT_DCC: dict(content)},
    }
    protected = cbor2.dumps({chain.HEADER_ALG: signer.alg, chain.HEADER_KID: kid or signer.kid})
    payload = cbor2.dumps(claims)
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    message = cbor2.CBORTag(chain.COSE_SIGN1_TAG, [protected, {}, payload, signer.sign(to_sign)])
    compressed = zlib.compress(cbor2.dumps(message), ZLIB_LEVEL)
    encoded: bytes = base45.b45encode(compressed)
    return chain.PREFIX.decode() + encoded.decode()


def content(
    family: str, given: str, birth: str, group: TypeKey, entry: Mapping[str, Any]
) -> dict[str, Any]:
    """A certificate's -260/1 map: holder, and one entry in its group."""
    return {
        "ver": SCHEMA_VERSION,
        "nam": {
            "fn": family,
            "fnt": icao_name(family),
            "gn": given,
            "gnt": icao_name(given),
        },
        "dob": birth,
        group: [dict(entry)],
    }


def vaccination_entry(
    country: str, on: dt.date, dose: int, doses: int, product: str = "EU/1/20/1528"
) -> dict[str, Any]:
    return {
        "tg": COVID_19,
        "vp": "J07BX03",
        "mp": product,
        "ma": "ORG-100030215",
        "dn": dose,
        "sd": doses,
        "dt": on.isoformat(),
        **entry_tail(country),
    }


def covid_test_entry(
    country: str, sampled: dt.datetime, kind: str = "rat", result: str = "negative"
) -> dict[str, Any]:
    return {
        "tg": COVID_19,
        "tt": TEST_TYPE_CODES[kind],
        "sc": sampled.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tr": RESULT_CODES[result],
        "tc": "qrgate test centre",
        **entry_tail(country),
    }


def recovery_entry(country: str, first_positive: dt.date, valid_days: int = 180) -> dict[str, Any]:
    valid_from = first_positive + dt.timedelta(days=11)
    return {
        "tg": COVID_19,
        "fr": first_positive.isoformat(),
        "df": valid_from.isoformat(),
        "du": (first_positive + dt.timedelta(days=valid_days)).isoformat(),
        **entry_tail(country),
    }


def entry_tail(country: str) -> dict[str, str]:
    return {"co": country, "is": TEST_ISSUER, "ci": make_uvci(country)}


def make_uvci(country: str) -> str:
    return f"URN:UVCI:01:{country}:{TEST_UVCI_MARK}{secrets.token_hex(8).upper()}"
