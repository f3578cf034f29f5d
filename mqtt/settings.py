"""Plain settings the mqtt package is built from (the scanner maps its config onto them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}

# The largest packet a gate takes from its broker: the largest command (4 MiB, an allowlist
# snapshot of ~50,000 entries) with room for its topic and properties. Sent as Maximum
# Packet Size in CONNECT, so that an MQTT v5 broker drops anything larger instead of
# sending it (the gate never holds it in memory).
MAX_PACKET_BYTES = 4 * 1024 * 1024 + 64 * 1024


@dataclass(frozen=True)
class BrokerUrl:
    """A broker as the command line names it: `mqtt://HOST[:PORT]`, or `mqtts://` for TLS."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerUrl:
        """ValueError saying what is wrong with anything but scheme, host and port."""
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(f"{url!r} is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
        if parts.path not in ("", "/") or parts.query or parts.fragment or "@" in parts.netloc:
            raise ValueError(f"{url!r}: only scheme, host and port belong in the broker URL")
        try:
            port = parts.port
        except ValueError:
            port = 0
        if port == 0:  # out of range, or 0: no broker listens there
            raise ValueError(f"{url!r}: bad port")
        return cls(parts.hostname, port or DEFAULT_PORTS[parts.scheme], parts.scheme == "mqtts")


@dataclass(frozen=True)
class TlsSettings:
    """TLS to the broker: `ca_file` None trusts the system's CAs; cert and key go together."""

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is and how to log in."""

    host: str = "localhost"
    port: int = 1883
    client_id: str = ""
    protocol: Literal["v5", "v311"] = "v5"
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0
    tls: TlsSettings | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    max_packet_bytes: int = MAX_PACKET_BYTES

    @property
    def address(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"


@dataclass(frozen=True)
class PublisherSettings:
    """How the publisher drains the outbox.

    `window`: events in flight at once (further capped by the broker's Receive Maximum);
    `retry_min_s`..`retry_max_s`: the backoff between connection attempts and after a
    refused publish, doubling per failure; `release_parked_after_s`: how long a
    connection must stay up before events parked after lost connections are sent again.
    """

    broker: BrokerSettings
    heartbeat_s: float = 30.0
    window: int = 64
    retry_min_s: float = 1.0
    retry_max_s: float = 60.0
    release_parked_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(
                "window must be at least 2 to tell a refused event from a refusing broker"
            )
        if not 0 < self.retry_min_s <= self.retry_max_s:
            raise ValueError("need 0 < retry_min_s <= retry_max_s")
