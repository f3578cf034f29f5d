"""Signed events: each gate signs its events with an Ed25519 key of its own.

The signed form (contract, version 1), on bytes, so that no consumer has to rebuild
JSON the way the gate wrote it:

- `B` is the event as the gate made it: one JSON object in UTF-8, ending with `}`,
  carrying `kid`, the RFC 7638 thumbprint of the gate's public key.
- The gate publishes `P = B[:-1] + b',"sig":"' + base64url(Ed25519(B)) + b'"}'`: the
  signature (64 bytes, 86 base64url characters without padding) as the last member.
- A verifier takes the last 96 bytes of `P`, checks that they are `,"sig":"`, 86
  base64url characters and `"}`, rebuilds `B` as `P[:-96] + b'}'` and verifies the
  signature over `B` with the gate's enrolled key. The event is then read from `B`.

The gate signs once, when the event enters its outbox, and keeps `P` there: every
resend (after a reconnect, a broker restart) carries the same bytes, and a broker or a
bridge passes a payload on untouched, so the signature holds end to end.

The private key stays in the gate's state directory (PKCS#8 PEM, mode 0600); only its
public half (`x`, base64url of the 32 raw bytes) is shown for enrollment at the centre.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from mqtt.errors import EventKeyError

SIG_START = b',"sig":"'
SIG_CHARS = 86  # base64url of 64 bytes, unpadded
SIG_END = b'"}'
SIG_SUFFIX = len(SIG_START) + SIG_CHARS + len(SIG_END)  # 96
BASE64URL = re.compile(rb"[A-Za-z0-9_-]+")
PUBLIC_KEY_CHARS = 43  # base64url of 32 bytes, unpadded


@dataclass(frozen=True)
class Signed:
    """A signed payload taken apart: the bytes that were signed and the signature."""

    body: bytes
    signature: bytes


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str | bytes) -> bytes:
    raw = text.encode("ascii") if isinstance(text, str) else text
    return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))


def attach(body: bytes, signature: bytes) -> bytes:
    """`B` with its signature as the last member: what the gate publishes."""
    if not body.endswith(b"}") or len(signature) != 64:
        raise ValueError("a signed event is a JSON object and a 64-byte signature")
    return body[:-1] + SIG_START + b64url(signature).encode("ascii") + SIG_END


def detach(payload: bytes) -> Signed | None:
    """The signed bytes and the signature of a signed payload; None if it carries none."""
    if len(payload) <= SIG_SUFFIX or not payload.endswith(SIG_END):
        return None
    suffix = payload[-SIG_SUFFIX:]
    encoded = suffix[len(SIG_START) : -len(SIG_END)]
    if not suffix.startswith(SIG_START) or not BASE64URL.fullmatch(encoded):
        return None
    try:
        signature = from_b64url(encoded)
    except (binascii.Error, ValueError):
        return None
    return Signed(payload[:-SIG_SUFFIX] + b"}", signature)


def key_id(public: ed25519.Ed25519PublicKey) -> str:
    """RFC 7638 JWK thumbprint: base64url(SHA-256 of the key's canonical JWK)."""
    canonical = json.dumps(
        {"crv": "Ed25519", "kty": "OKP", "x": public_text(public)}, separators=(",", ":")
    )
    return b64url(hashlib.sha256(canonical.encode("ascii")).digest())


def public_text(public: ed25519.Ed25519PublicKey) -> str:
    """The public key as enrolled at the centre: base64url of its 32 raw bytes (JWK `x`)."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return b64url(raw)


def parse_public(text: str) -> ed25519.Ed25519PublicKey:
    """A public key from its enrolled text; ValueError if it is none."""
    text = text.strip()
    if len(text) != PUBLIC_KEY_CHARS or not BASE64URL.fullmatch(text.encode("ascii", "replace")):
        raise ValueError(
            f"not an event public key: expected {PUBLIC_KEY_CHARS} base64url characters"
            " (as `qrgate event-key` prints it)"
        )
    return ed25519.Ed25519PublicKey.from_public_bytes(from_b64url(text))


def verify(public: ed25519.Ed25519PublicKey, signed: Signed) -> bool:
    try:
        public.verify(signed.signature, signed.body)
    except InvalidSignature:
        return False
    return True


class EventSigner:
    """A gate's event key: signs each event's bytes once, as it enters the outbox."""

    def __init__(self, private: ed25519.Ed25519PrivateKey) -> None:
        self._private = private
        self.public = private.public_key()
        self.kid = key_id(self.public)

    def sign(self, body: bytes) -> bytes:
        return attach(body, self._private.sign(body))

    @classmethod
    def load(cls, path: Path) -> EventSigner:
        try:
            data = path.read_bytes()
        except PermissionError:
            raise EventKeyError(
                f"cannot read the event signing key {path}: permission denied (it belongs to"
                " the gate's service user: run this as that user, or with sudo)"
            ) from None
        except OSError as error:
            raise EventKeyError(f"cannot read the event signing key {path}: {error}") from None
        try:
            private = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:
            raise EventKeyError(
                f"the event signing key {path} is damaged ({error}): move it away to make a"
                " new one, then enroll the new public key at the monitor"
            ) from None
        if not isinstance(private, ed25519.Ed25519PrivateKey):
            raise EventKeyError(f"{path} is not an Ed25519 private key")
        return cls(private)

    @classmethod
    def load_or_create(cls, path: Path) -> EventSigner:
        """The key at `path`, made there first if there is none (mode 0600)."""
        try:
            present = path.exists()
        except OSError as error:  # a folder not to be entered, a name too long
            raise EventKeyError(f"cannot look for the event signing key {path}: {error}") from None
        if not present:
            create_key(path)
        return cls.load(path)


def create_key(path: Path) -> bool:
    """Write a new private key to `path` unless one is there; True if this call made it.

    Written to a temporary file, synced, then linked into place: a crash leaves either
    no key or a whole one, and of two processes racing, one key wins for both. Made by
    root (an installer, a technician with sudo), the key belongs to the owner of its
    folder, the service's user, before it is linked: the service never meets a key it
    cannot read.
    """
    private = ed25519.Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            if os.geteuid() == 0:
                folder = path.parent.stat()
                os.fchown(handle.fileno(), folder.st_uid, folder.st_gid)
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        finally:
            temporary.unlink()
    except OSError as error:
        raise EventKeyError(f"cannot write the event signing key {path}: {error}") from None
    return True
