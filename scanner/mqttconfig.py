"""The config's [gate], [store], [mqtt] and [commands] sections, mapped onto the mqtt
package's plain settings (mqtt/ never imports the scanner). Problems found here, such as
an unreadable password file, are ConfigErrors naming the key (exit 78)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from mqtt.outbox import Outbox, OutboxLimits
from mqtt.settings import BrokerSettings, PublisherSettings, TlsSettings
from mqtt.signing import EventSigner
from mqtt.topics import GateTopics
from scanner.config import Config, require_file
from scanner.errors import ConfigError

if TYPE_CHECKING:
    from jwt import PyJWK

    from mqtt.commands import CommandIntake, Handler

MB = 1024 * 1024
EVENT_KEY_NAME = "event-key.pem"


def gate_topics(config: Config) -> GateTopics:
    return GateTopics(config.mqtt.topic_prefix, config.gate.site, config.gate.id)


def broker_settings(config: Config) -> BrokerSettings:
    mqtt = config.mqtt
    return BrokerSettings(
        host=mqtt.host,
        port=mqtt.port,
        client_id=config.client_id,
        protocol=mqtt.protocol,
        keepalive_s=mqtt.keepalive_s,
        connect_timeout_s=mqtt.connect_timeout_s,
        tls=tls_settings(config),
        username=mqtt.username,
        password=read_secret("mqtt.password_file", mqtt.password_file),
    )


def tls_settings(config: Config) -> TlsSettings | None:
    mqtt = config.mqtt
    if not mqtt.tls:
        return None
    return TlsSettings(
        ca_file=mqtt.ca_file and require_file("mqtt.ca_file", mqtt.ca_file),
        cert_file=mqtt.cert_file and require_file("mqtt.cert_file", mqtt.cert_file),
        key_file=mqtt.key_file and require_file("mqtt.key_file", mqtt.key_file),
    )


def read_secret(key: str, path: Path | None) -> str | None:
    """A secret file's content without its trailing newline."""
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as error:
        problem = f"cannot read the secret file: {error}"
        raise ConfigError.single(key, problem, value=str(path)) from None


def publisher_settings(config: Config) -> PublisherSettings:
    mqtt = config.mqtt
    return PublisherSettings(
        broker=broker_settings(config),
        heartbeat_s=mqtt.heartbeat_s,
        window=mqtt.inflight,
        retry_min_s=mqtt.retry_min_s,
        retry_max_s=mqtt.retry_max_s,
    )


def outbox_limits(config: Config) -> OutboxLimits:
    mqtt = config.mqtt
    return OutboxLimits(
        max_rows=mqtt.outbox_max_events,
        max_bytes=mqtt.outbox_max_mb * MB,
        max_refusals=mqtt.max_refusals,
        keep_acked_s=mqtt.keep_acked_days * 86_400,
    )


def open_outbox(config: Config) -> Outbox:
    """The gate's outbox, in the database at store.path, signing with the gate's event key
    (made there on first start)."""
    gate = config.gate
    signer = EventSigner.load_or_create(event_key_path(config.store.path))
    return Outbox(
        config.store.path, gate.site, gate.id, gate.direction, outbox_limits(config), signer=signer
    )


def event_key_path(store_path: Path) -> Path:
    """The gate's private event key: in the state directory, beside the store; it never
    leaves the gate (the centre enrolls its public half)."""
    return store_path.parent / EVENT_KEY_NAME


def command_keys(config: Config) -> dict[str, PyJWK] | None:
    """The keys trusted to sign commands, or None when commands are disabled; a
    ConfigError naming commands.jwks when they cannot be used."""
    if not config.commands.enabled:
        return None
    # The intake's module, and PyJWT, load only on gates that take commands.
    from mqtt.commands import CommandKeyError, load_command_keys

    try:
        return load_command_keys(require_file("commands.jwks", config.commands.jwks))
    except CommandKeyError as error:
        raise ConfigError.single("commands.jwks", str(error)) from None


def command_intake(config: Config, handlers: Mapping[str, Handler]) -> CommandIntake | None:
    """The command intake with the gate's handlers, or None when commands are disabled."""
    commands = config.commands
    keys = command_keys(config)
    if keys is None:
        return None
    from mqtt.commands import CommandIntake, CommandPolicy, ReplayGuard

    policy = CommandPolicy(
        algorithms=tuple(commands.algorithms),
        max_lifetime_s=commands.max_lifetime_s,
        clock_skew_s=commands.clock_skew_s,
    )
    return CommandIntake(
        gate_topics(config), keys, handlers, ReplayGuard(config.store.path), policy
    )
