"""Which gates' events the monitor can authenticate: their enrolled public keys.

A gate is enrolled once one of its public event keys is in the store (`qrgate gates
enroll`). From then on each of its events must carry a signature (docs/mqtt.md, Signed
events) that verifies with the key its `kid` names, or it is set aside with the reason.
A gate may have several keys enrolled: a replaced SD card makes a new one, and events
signed with the old key may still be on their way.

Events of a gate not enrolled cannot be authenticated. They are stored as such (`kid`
NULL), and the monitor says so per gate in its log, its live view and with each report;
with `required` (`qrgate monitor --enrolled-only`) they are set aside instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ed25519

from mqtt.events import Event
from mqtt.signing import Signed, key_id, parse_public, verify

log = logging.getLogger(__name__)

GateKey = tuple[str, str]  # (site, gate)


@dataclass(frozen=True)
class EnrolledKey:
    """One public key of one gate, as the store keeps it."""

    site: str
    gate: str
    kid: str
    public: str  # base64url of the 32 raw bytes, as `qrgate event-key` shows it
    enrolled_ms: int

    @classmethod
    def make(cls, site: str, gate: str, public: str, enrolled_ms: int) -> EnrolledKey:
        """From the text a gate shows; ValueError when it is no Ed25519 public key."""
        key = parse_public(public)
        return cls(site, gate, key_id(key), public.strip(), enrolled_ms)


@dataclass(frozen=True)
class Enrollment:
    """The enrolled keys of every gate, by gate and key id; immutable, swapped whole."""

    keys: dict[GateKey, dict[str, ed25519.Ed25519PublicKey]] = field(default_factory=dict)
    required: bool = False

    @classmethod
    def of(cls, enrolled: Iterable[EnrolledKey], required: bool = False) -> Enrollment:
        """From the store's rows; a row that holds no key (edited by hand) enrolls its gate
        with no usable key, so that gate's events are set aside rather than trusted."""
        keys: dict[GateKey, dict[str, ed25519.Ed25519PublicKey]] = {}
        for item in enrolled:
            gate_keys = keys.setdefault((item.site, item.gate), {})
            try:
                gate_keys[item.kid] = parse_public(item.public)
            except ValueError as error:
                log.error(
                    "enrolled key %s of %s/%s is unusable: %s",
                    item.kid,
                    item.site,
                    item.gate,
                    error,
                )
        return cls(keys, required)

    @property
    def gates(self) -> frozenset[GateKey]:
        return frozenset(self.keys)

    def enrolled(self, site: str, gate: str) -> bool:
        return (site, gate) in self.keys

    def authenticate(self, site: str, gate: str, event: Event, signed: Signed | None) -> str | None:
        """The kid the event's signature verifies with; None when the gate is not enrolled.
        ValueError (the reason to set it aside) when it does not verify."""
        keys = self.keys.get((site, gate))
        if keys is None:
            if self.required:
                raise ValueError(f"gate {site}/{gate} is not enrolled (--enrolled-only)")
            return None
        if signed is None:
            raise ValueError(f"unsigned event from {site}/{gate}, an enrolled gate")
        key = keys.get(event.kid or "")
        if key is None:
            raise ValueError(f"signed with key {event.kid}, not enrolled for {site}/{gate}")
        if not verify(key, signed):
            raise ValueError(f"signature does not verify with {site}/{gate}'s key {event.kid}")
        return event.kid
