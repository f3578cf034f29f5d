"""The trust list: the document signer certificates (DSCs) a gate accepts health
certificates from, loaded once and indexed by kid (`[dcc] trust_list`).

Three forms are read:

- the EU gateway's trust-list JSON: an array of `{kid, country, certificateType,
  rawData, ...}`, `rawData` the base64 DER certificate, `kid` base64 (entries whose
  certificateType is given and is not DSC are not signers, and are skipped);
- the same array wrapped as `{"certificates": [...]}`;
- a folder of PEM or DER certificates (`*.pem`, `*.crt`, `*.cer`, `*.der`), or one such file.

A missing kid is computed as the hcert spec does: the first 8 bytes of the SHA-256 of the
DER certificate. Kids are not unique across a list, so each kid maps to every signer that
has it. A signer whose extended key usage names DCC types may sign only those types.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from scanner.config import file_problem
from scanner.credentials.health import CertType
from scanner.errors import ConfigError

log = logging.getLogger(__name__)

TRUST_LIST_KEY = "dcc.trust_list"
PUSHED_NAME = "pushed-dcc-trust-list.json"
KID_BYTES = 8
CERTIFICATE_SUFFIXES: Final = frozenset({".pem", ".crt", ".cer", ".der"})
# Extended key usage OIDs of the hcert spec, in both forms issuers use.
_USAGE_NUMBERS: Final[tuple[tuple[str, CertType], ...]] = (
    ("1", "test"),
    ("2", "vaccination"),
    ("3", "recovery"),
)
USAGE_OIDS: Final[dict[str, CertType]] = {
    f"{root}.{number}": kind
    for root in ("1.3.6.1.4.1.1847.2021.1", "1.3.6.1.4.1.0.1847.2021.1")
    for number, kind in _USAGE_NUMBERS
}


@dataclass(frozen=True, slots=True)
class Signer:
    """One document signer certificate of the trust list."""

    kid: bytes
    country: str | None  # from the list's entry, else the certificate's subject C=
    key: CertificatePublicKeyTypes
    types: frozenset[CertType] | None  # None: no DCC usage named, so every type
    subject: str
    not_after: float  # epoch seconds

    def may_sign(self, types: Iterable[CertType]) -> bool:
        return self.types is None or set(types) <= self.types


class TrustList:
    """Signers indexed by kid, with where they came from and how old that is."""

    def __init__(self, signers: Iterable[Signer], source: Path, modified: float) -> None:
        index: defaultdict[bytes, list[Signer]] = defaultdict(list)
        for signer in signers:
            index[signer.kid].append(signer)
        self._by_kid = {kid: tuple(found) for kid, found in index.items()}
        self.source = source
        self.modified = modified  # epoch seconds: the newest file's modification time

    def signers(self, kid: bytes | None) -> tuple[Signer, ...]:
        return self._by_kid.get(kid, ()) if kid is not None else ()

    def __len__(self) -> int:
        return sum(len(found) for found in self._by_kid.values())

    @property
    def countries(self) -> list[str]:
        return sorted({s.country for found in self._by_kid.values() for s in found if s.country})

    def age_s(self, now: float | None = None) -> float:
        return max(0.0, (time.time() if now is None else now) - self.modified)


def load_trust_list(path: Path, key: str = TRUST_LIST_KEY) -> TrustList:
    """Read a trust list in any of the three forms; ConfigError naming `key` when it
    cannot be read or holds no usable signer."""
    try:
        files = certificate_files(path) if path.is_dir() else [path]
        signers = list(read_signers(path, files))
        modified = max(file.stat().st_mtime for file in files) if files else 0.0
    except FileNotFoundError:
        raise ConfigError.single(key, "file not found", value=str(path)) from None
    except (OSError, ValueError) as error:
        raise ConfigError.single(key, str(error), value=str(path)) from None
    if not signers:
        # Not fatal: every certificate is then unknown_key, and doctor says why.
        log.warning("trust list %s holds no usable signer certificate", path)
    return TrustList(signers, path, modified)


def pushed_trust_list_path(store_path: Path) -> Path:
    """Where a trust list pushed by the centre lives: beside the store, in the state
    directory (the configuration directory is read-only to the service)."""
    return store_path.parent / PUSHED_NAME


def trust_list_in_use(configured: Path, store_path: Path) -> TrustList:
    """The pushed trust list when there is a usable one (it replaces `[dcc] trust_list`
    until removed), else the configured one (ConfigError if that cannot be read)."""
    pushed = pushed_trust_list_path(store_path)
    if file_problem(pushed) is None:
        try:
            return load_trust_list(pushed)
        except ConfigError as error:
            log.error("ignoring the pushed trust list %s: %s", pushed, error.problems[0].message)
    return load_trust_list(configured)


def certificate_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in CERTIFICATE_SUFFIXES)


def read_signers(path: Path, files: list[Path]) -> Iterator[Signer]:
    if not path.is_dir() and path.suffix.lower() == ".json":
        yield from signers_from_json(json.loads(path.read_text(encoding="utf-8")))
        return
    for file in files:
        for der in certificates_in(file.read_bytes()):
            signer = usable_signer(der, None, None, str(file))
            if signer is not None:
                yield signer


def certificates_in(data: bytes) -> list[bytes]:
    """The DER certificates of a PEM file (any number) or a DER file (one)."""
    if b"-----BEGIN" not in data:
        return [data]
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        return [cert.public_bytes(Encoding.DER) for cert in x509.load_pem_x509_certificates(data)]
    except ValueError as error:
        raise ValueError(f"unreadable PEM: {error}") from None


def signers_from_json(document: object) -> Iterator[Signer]:
    """The signers of the gateway's array, bare or as {"certificates": [...]}."""
    entries = document.get("certificates") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise ValueError('expected an array of certificates, or {"certificates": [...]}')
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("rawData"), str):
            raise ValueError(f"entry {number}: expected an object with rawData")
        if entry.get("certificateType", "DSC") != "DSC":
            continue
        der = b64(entry["rawData"], f"entry {number}: rawData")
        kid = entry.get("kid")
        kid = b64(kid, f"entry {number}: kid") if isinstance(kid, str) else None
        country = entry.get("country")
        country = country if isinstance(country, str) else None
        signer = usable_signer(der, kid, country, f"entry {number}")
        if signer is not None:
            yield signer


def b64(text: str, what: str) -> bytes:
    try:
        standard = text.replace("-", "+").replace("_", "/")  # base64url is seen too
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not base64") from None


def usable_signer(der: bytes, kid: bytes | None, country: str | None, where: str) -> Signer | None:
    """The signer of a DER certificate, or None (logged) when the certificate is unusable:
    one bad entry of a list of hundreds must not take the others with it."""
    try:
        return signer_from_der(der, kid, country)
    except ValueError as error:
        log.warning("trust list %s: skipped, not a usable certificate: %s", where, error)
        return None


def signer_from_der(der: bytes, kid: bytes | None = None, country: str | None = None) -> Signer:
    certificate = x509.load_der_x509_certificate(der)
    return Signer(
        kid=kid if kid is not None else compute_kid(der),
        country=country or subject_country(certificate),
        key=certificate.public_key(),
        types=usage_types(certificate),
        subject=certificate.subject.rfc4514_string(),
        not_after=certificate.not_valid_after_utc.timestamp(),
    )


def compute_kid(der: bytes) -> bytes:
    return hashlib.sha256(der).digest()[:KID_BYTES]


def subject_country(certificate: x509.Certificate) -> str | None:
    names = certificate.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) else None


def usage_types(certificate: x509.Certificate) -> frozenset[CertType] | None:
    """The DCC types the signer's extended key usage names; None when it names none.

    An extended key usage that cannot be parsed (some issuers wrote an empty one) names
    none, so it restricts nothing.
    """
    try:
        usage = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        return None
    dotted = (oid.dotted_string for oid in usage)
    types = frozenset(USAGE_OIDS[oid] for oid in dotted if oid in USAGE_OIDS)
    return types or None
