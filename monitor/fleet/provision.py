"""Provisioning a fleet of gates: broker accounts, ACL entries, gate config, site bridges.

Everything lives in one folder (the fleet folder) that `qrgate fleet` keeps; re-running a
command changes nothing that is already right, so a script may provision a thousand
gates, and run again, without a second thought:

    sites/SITE/passwd         the site broker's password_file: one line per gate
    sites/SITE/acl            the site broker's acl_file: each gate kept to its own topics
    sites/SITE/broker.conf    the site broker's settings (include it from mosquitto.conf)
    sites/SITE/bridge.conf    the site broker's bridge to the centre (holds its password)
    sites/SITE/bridge-password
    gates/SITE/GATE/mqtt-password   the gate's password: copy it to the gate
    gates/SITE/GATE/qrgate.toml     the gate's [gate] and [mqtt] sections
    central/passwd, central/acl, central/broker.conf   the central broker's files

`*.local` files (`sites/SITE/acl.local`, `central/acl.local`, `central/passwd.local`)
are the operator's own entries: copied first, never changed. `central/acl.local` is
created once with the centre's roles (monitor, centre, Home Assistant).

A gate's user name is `SITE/GATE`, a bridge's `bridge.SITE` (no site or gate name holds
a `.`, so the two never meet). A site broker replaces a client's id with its user name,
so a gate cannot take over another gate's session.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import os
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from monitor.errors import MonitorError
from mqtt.errors import TopicError
from mqtt.settings import BrokerUrl
from mqtt.topics import check_level, check_prefix

# mosquitto_passwd's default since mosquitto 2.0: PBKDF2-HMAC-SHA512, 12-byte salt.
HASH_ID = "7"
HASH_ITERATIONS = 101
SALT_BYTES = 12
PASSWORD_BYTES = 24  # 32 characters of URL-safe base64
HA_DISCOVERY = "homeassistant"
PUBLISHED = ("events", "status", "health", "reply")  # what a gate publishes


class FleetError(MonitorError):
    """A fleet request that cannot be carried out (bad name, bad URL, bad CSV)."""


# ---- passwords, as mosquitto_passwd writes them -----------------------------------------


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`$7$101$SALT$HASH`: the password-file format of mosquitto_passwd (sha512-pbkdf2)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, HASH_ITERATIONS)
    encode = base64.b64encode
    return f"${HASH_ID}${HASH_ITERATIONS}${encode(salt).decode()}${encode(digest).decode()}"


def password_matches(hashed: str, password: str) -> bool:
    """Whether a `$7$` password-file hash is of `password` (False for other formats)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[1] != HASH_ID or not parts[2].isdigit():
        return False
    try:
        salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    except ValueError:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(digest, expected)


def new_password() -> str:
    return secrets.token_urlsafe(PASSWORD_BYTES)


# ---- accounts and their ACL entries -------------------------------------------------------


@dataclass(frozen=True)
class GateAccount:
    """A gate's login on its site broker and the topics it may use there."""

    prefix: str
    site: str
    gate: str

    def __post_init__(self) -> None:
        checked(self.prefix, self.site, self.gate)

    @property
    def username(self) -> str:
        return f"{self.site}/{self.gate}"

    def acl(self) -> list[str]:
        base = f"{self.prefix}/{self.site}/{self.gate}"
        return [
            f"# gate {self.site}/{self.gate}",
            f"user {self.username}",
            *(f"topic write {base}/{stream}" for stream in PUBLISHED),
            f"topic read {base}/cmd/+",
            f"topic read {self.prefix}/{self.site}/cmd/+",
        ]


@dataclass(frozen=True)
class BridgeAccount:
    """A site broker's login on the central broker: that site's topics and no others."""

    prefix: str
    site: str

    def __post_init__(self) -> None:
        checked(self.prefix, self.site)

    @property
    def username(self) -> str:
        return f"bridge.{self.site}"

    @property
    def notification_topic(self) -> str:
        return f"{self.prefix}/{self.site}/bridge/state"

    def acl(self) -> list[str]:
        site = f"{self.prefix}/{self.site}"
        return [
            f"# bridge of site {self.site}",
            f"user {self.username}",
            *(f"topic write {site}/+/{stream}" for stream in PUBLISHED),
            f"topic write {self.notification_topic}",
            f"topic read {site}/+/cmd/+",
            f"topic read {site}/cmd/+",
        ]


def central_roles(prefix: str, ha_base: str) -> list[str]:
    """The centre's own users: monitors, `qrgate cmd`, Home Assistant (acl.local)."""
    check_prefix(prefix)
    gates = f"{prefix}/+/+"
    return [
        "# The centre's own users. Edit freely: qrgate fleet never changes this file.",
        "# Monitors (each with its own --client-id), and Home Assistant discovery.",
        "user monitor",
        *(f"topic read {gates}/{stream}" for stream in ("events", "status", "health")),
        f"topic read {prefix}/+/bridge/state",
        f"topic write {gates}/cmd/+",
        f"topic write {HA_DISCOVERY}/#",
        f"topic read {HA_DISCOVERY}/status",
        f"topic write {ha_base}/status",
        f"topic write {ha_base}/+/+/scan",
        f"topic read {ha_base}/+/+/set/+",
        "",
        "# qrgate cmd: signed commands to gates and sites, and their replies",
        "user centre",
        f"topic write {gates}/cmd/+",
        f"topic write {prefix}/+/cmd/+",
        f"topic read {gates}/reply",
        "",
        "# Home Assistant: discovery, gate status and health, the monitor's scan feed;",
        "# it alone may write its command topics, which only the monitor reads.",
        f"user {HA_DISCOVERY}",
        f"topic read {HA_DISCOVERY}/#",
        f"topic write {HA_DISCOVERY}/status",
        f"topic read {gates}/status",
        f"topic read {gates}/health",
        f"topic read {ha_base}/#",
        f"topic write {ha_base}/+/+/set/+",
    ]


def checked(prefix: str, *levels: str) -> None:
    try:
        check_prefix(prefix)
        for level in levels:
            check_level("site or gate", level)
    except TopicError as error:
        raise FleetError(str(error)) from None


# ---- broker configuration -------------------------------------------------------------------

BROKER_CONF = """\
# qrgate {role} broker: only known users, each kept to its own topics (acl_file).
per_listener_settings false
allow_anonymous false
password_file {passwd}
acl_file {acl}
{identity}# QoS 1 messages for a client (a monitor, the bridge to the centre) that is away wait
# here, up to these limits; beyond them the broker drops them (they show as gaps).
max_queued_messages 1000000
max_queued_bytes 536870912
# Queues and sessions survive a restart; saved every 5 s (a crash loses at most that).
persistence true
autosave_interval 5
"""

BRIDGE_CONF = """\
# Site {site} -> the centre: events, status, health and replies out, commands in, QoS 1.
connection qrgate-{site}
address {host}:{port}
bridge_protocol_version mqttv311
remote_clientid {user}
remote_username {user}
remote_password {password}
bridge_cafile {cafile}
bridge_insecure false
# A persistent session at both ends: while the link is down, messages wait here (up to
# max_queued_messages) and commands wait at the centre; nothing is unsubscribed.
cleansession false
local_cleansession false
bridge_attempt_unsubscribe false
try_private true
start_type automatic
restart_timeout 1 10
keepalive_interval 30
notifications true
notification_topic {notification_topic}
topic {prefix}/{site}/+/events out 1
topic {prefix}/{site}/+/status out 1
topic {prefix}/{site}/+/health out 1
topic {prefix}/{site}/+/reply out 1
topic {prefix}/{site}/cmd/+ in 1
topic {prefix}/{site}/+/cmd/+ in 1
"""


# On a site broker a gate's client id is its user name: no gate can take over another's
# session. Not at the centre, where one monitor may hold two connections (its events and
# Home Assistant) under one user, and a bridge's reach is its ACL.
GATE_IDENTITY = """\
# A client's id is its user name: no gate takes over another gate's session.
use_username_as_clientid true
"""


def broker_conf(role: Literal["site", "central"], passwd: Path | str, acl: Path | str) -> str:
    identity = GATE_IDENTITY if role == "site" else ""
    return BROKER_CONF.format(role=role, passwd=passwd, acl=acl, identity=identity)


class Endpoint(BrokerUrl):
    """A broker URL (mqtt://HOST[:1883] or mqtts://HOST[:8883]), refused as a FleetError."""

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        try:
            named = BrokerUrl.parse(url)
        except ValueError as error:
            raise FleetError(str(error)) from None
        return cls(named.host, named.port, named.tls)


def bridge_conf(account: BridgeAccount, centre: Endpoint, password: str, cafile: Path | str) -> str:
    """The bridge section of a site broker's config (TLS to the centre, always)."""
    if not centre.tls:
        raise FleetError("the bridge to the centre crosses networks: use an mqtts:// URL")
    host = f"[{centre.host}]" if ":" in centre.host else centre.host
    return BRIDGE_CONF.format(
        site=account.site,
        host=host,
        port=centre.port,
        user=account.username,
        password=password,
        cafile=cafile,
        notification_topic=account.notification_topic,
        prefix=account.prefix,
    )


@dataclass(frozen=True)
class GateSettings:
    """What goes into a gate's config besides its account."""

    broker: Endpoint
    ca_file: str | None = None
    password_file: str = "/etc/qrgate/mqtt-password"  # noqa: S105 - a path, not a password


def gate_config(account: GateAccount, settings: GateSettings) -> str:
    """The gate's [gate] and [mqtt] sections (TOML)."""
    broker = settings.broker
    lines = [
        "[gate]",
        f'site = "{account.site}"',
        f'id = "{account.gate}"',
        "",
        "[mqtt]",
        f"host = {toml_string(broker.host)}",
        f"port = {broker.port}",
        f"topic_prefix = {toml_string(account.prefix)}",
        f"tls = {'true' if broker.tls else 'false'}",
    ]
    if broker.tls and settings.ca_file:
        lines.append(f"ca_file = {toml_string(settings.ca_file)}")
    lines += [
        f'username = "{account.username}"',
        f"password_file = {toml_string(settings.password_file)}",
        f'client_id = "{account.username}"',
    ]
    return "\n".join(lines) + "\n"


def toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


# ---- the fleet folder ---------------------------------------------------------------------


@dataclass(frozen=True)
class Provisioned:
    """What `fleet add` made (or found) for one gate."""

    account: GateAccount
    password: str
    passwd_line: str
    config: str
    created: bool


class Fleet:
    """The fleet folder: per-gate secrets are the truth, the brokers' files follow."""

    def __init__(
        self,
        folder: Path,
        prefix: str = "qrgate",
        ha_base: str | None = None,
        broker_dir: Path | None = None,
    ) -> None:
        """`broker_dir`: where a broker will find its passwd and acl (broker.conf names
        them); None: right here, in the fleet folder."""
        checked(prefix)
        self.folder = folder
        self.prefix = prefix
        self.ha_base = ha_base or f"{prefix}-ha"
        self.broker_dir = broker_dir

    def broker_conf(self, role: Literal["site", "central"], folder: Path) -> str:
        where = self.broker_dir or folder.resolve()
        return broker_conf(role, where / "passwd", where / "acl")

    # -- gates --

    def add_gate(self, site: str, gate: str, settings: GateSettings) -> Provisioned:
        """Create the gate's account (or keep the one it has) and refresh its site's files."""
        return self.add_gates([(site, gate, settings)])[0]

    def add_gates(self, rows: Iterable[tuple[str, str, GateSettings]]) -> list[Provisioned]:
        """Many gates: each site's broker files are written once, not once per gate."""
        made = [self._write_gate(site, gate, settings) for site, gate, settings in rows]
        lines = {site: self.refresh_site(site) for site in sorted({p.account.site for p in made})}
        return [replace(p, passwd_line=lines[p.account.site][p.account.username]) for p in made]

    def _write_gate(self, site: str, gate: str, settings: GateSettings) -> Provisioned:
        account = GateAccount(self.prefix, site, gate)
        folder = self.gate_folder(site, gate)
        secret = folder / "mqtt-password"
        created = not secret.exists()
        password = new_password() if created else read_secret(secret)
        config = gate_config(account, settings)
        write_private(secret, password + "\n")
        write_text(folder / "qrgate.toml", config)
        return Provisioned(account, password, "", config, created)

    def retire_gate(self, site: str, gate: str) -> bool:
        """Remove the gate's account; False if it had none."""
        GateAccount(self.prefix, site, gate)
        folder = self.gate_folder(site, gate)
        if not folder.exists():
            return False
        for name in ("mqtt-password", "qrgate.toml"):
            (folder / name).unlink(missing_ok=True)
        folder.rmdir()
        self.refresh_site(site)
        return True

    def gates(self, site: str) -> list[tuple[GateAccount, str]]:
        """The site's gates and their passwords, in name order."""
        root = self.folder / "gates" / site
        if not root.is_dir():
            return []
        return [
            (GateAccount(self.prefix, site, path.name), read_secret(path / "mqtt-password"))
            for path in sorted(root.iterdir())
            if (path / "mqtt-password").is_file()
        ]

    def gate_folder(self, site: str, gate: str) -> Path:
        return self.folder / "gates" / site / gate

    def site_folder(self, site: str) -> Path:
        return self.folder / "sites" / site

    def refresh_site(self, site: str) -> dict[str, str]:
        """Rewrite the site broker's passwd and acl from the gates; the passwd lines by user."""
        checked(self.prefix, site)
        folder = self.site_folder(site)
        lines = write_accounts(folder, self.gates(site), local(folder / "acl.local"))
        write_text(folder / "broker.conf", self.broker_conf("site", folder))
        return lines

    # -- bridges --

    def add_bridge(self, site: str, centre: Endpoint, cafile: str) -> Path:
        """The site's bridge account at the centre and its bridge config; the config's path."""
        account = BridgeAccount(self.prefix, site)
        folder = self.site_folder(site)
        secret = folder / "bridge-password"
        password = read_secret(secret) if secret.exists() else new_password()
        write_private(secret, password + "\n")
        conf = folder / "bridge.conf"
        write_private(conf, bridge_conf(account, centre, password, cafile))
        self.refresh_site(site)
        self.refresh_central()
        return conf

    def refresh_central(self) -> None:
        folder = self.folder / "central"
        roles = folder / "acl.local"
        if not roles.exists():
            write_text(roles, joined(central_roles(self.prefix, self.ha_base)))
        write_accounts(folder, self.bridges(), local(roles) + "\n")
        write_text(folder / "broker.conf", self.broker_conf("central", folder))

    def bridges(self) -> list[tuple[BridgeAccount, str]]:
        root = self.folder / "sites"
        if not root.is_dir():
            return []
        return [
            (BridgeAccount(self.prefix, path.name), read_secret(path / "bridge-password"))
            for path in sorted(root.iterdir())
            if (path / "bridge-password").is_file()
        ]


def write_accounts(
    folder: Path, accounts: Sequence[tuple[GateAccount | BridgeAccount, str]], acl_head: str
) -> dict[str, str]:
    """A broker's passwd and acl in `folder` for these accounts (and passwords), after
    the operator's own entries; the passwd lines by user."""
    lines = keep_or_hash(folder / "passwd", [(a.username, p) for a, p in accounts])
    write_private(folder / "passwd", local(folder / "passwd.local") + joined(lines.values()))
    acl = [line for account, _ in accounts for line in [*account.acl(), ""]]
    write_text(folder / "acl", acl_head + joined(acl))
    return lines


def keep_or_hash(passwd: Path, accounts: list[tuple[str, str]]) -> dict[str, str]:
    """A password-file line per user: the existing one while it still matches its
    password (so that re-running changes nothing), else a fresh hash."""
    existing = dict(parse_passwd(passwd.read_text(encoding="utf-8"))) if passwd.exists() else {}
    lines = {}
    for user, password in accounts:
        hashed = existing.get(user)
        if hashed is None or not password_matches(hashed, password):
            hashed = hash_password(password)
        lines[user] = f"{user}:{hashed}"
    return lines


def parse_passwd(text: str) -> Iterator[tuple[str, str]]:
    for line in text.splitlines():
        user, colon, hashed = line.partition(":")
        if colon and not line.startswith("#"):
            yield user, hashed


def read_gate_csv(text: str) -> Iterator[tuple[int, str, str, str | None]]:
    """Rows of `site,gate[,broker]` (a header row naming them is allowed): (line, ...)."""
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and [c.lower() for c in cells[:2]] == ["site", "gate"]:
            continue
        if len(cells) not in (2, 3):
            raise FleetError(f"line {number}: expected site,gate[,broker], got {len(cells)} cells")
        yield number, cells[0], cells[1], (cells[2] or None) if len(cells) == 3 else None


def read_secret(path: Path) -> str:
    secret = path.read_text(encoding="utf-8").strip()
    if not secret:
        raise FleetError(f"{path} is empty: delete it to make a new password")
    return secret


def local(path: Path) -> str:
    """An operator's own entries, kept first and unchanged."""
    return path.read_text(encoding="utf-8").rstrip("\n") + "\n" if path.exists() else ""


def joined(lines: Iterable[str]) -> str:
    text = "\n".join(lines).rstrip("\n")
    return text + "\n" if text else ""


def write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Write only when different (re-running leaves files, and their times, alone);
    through a temporary file, so a broker never reads half a file."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


def write_private(path: Path, text: str) -> None:
    write_text(path, text, 0o600)
