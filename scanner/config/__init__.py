"""The gate's configuration: TOML validated into typed, frozen msgspec Structs.

Every section rejects unknown keys, so a typo is an error rather than a silent default.
All problems in a file are reported at once with their key path (see `load_config` and
`scanner.config.tables`). Values are read as they always were (`800.0` or `"800"` for a
whole number, `1` or `"true"` for a switch), never a fraction for a whole number or
`true` for a number.
Secrets are never inline: they come from files. A relative secret path is looked up in
`$CREDENTIALS_DIRECTORY` when it is set (systemd `LoadCredential=`), else in the config's
folder, like every other relative path.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

import msgspec
from msgspec import Meta, field

from scanner.config.tables import KeyRule, Table, convert_table
from scanner.credentials.health import CertType
from scanner.errors import ConfigError, ConfigProblem

DEFAULT_PATHS = (Path("/etc/qrgate/config.toml"), Path("config.toml"))
CONFIG_ENV = "QRGATE_CONFIG"
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"

ID_RULE = "1 to 64 of A-Z a-z 0-9 _ -"
# msgspec matches with re.search, where `$` also matches before a final newline: \A and \Z
# hold the whole string.
Ident = Annotated[str, Meta(pattern=r"\A[A-Za-z0-9_-]{1,64}\Z", description=ID_RULE)]
BcmPin = Annotated[int, Meta(ge=0, le=27)]  # a BCM GPIO number
Seconds = Annotated[float, Meta(ge=0)]
CredentialKind = Literal["pass", "badge", "cccd", "vnqr", "dcc"]
# Kinds that name a person and prove nothing: record-only admission, pairing.
IdentityKind = Literal["badge", "cccd", "vnqr"]
ContactState = Literal["closed", "open"]
PassAlgorithm = Literal["EdDSA", "ES256"]
Algorithms = Annotated[list[PassAlgorithm], Meta(min_length=1)]

# Keys whose files hold secrets: relative paths resolve in $CREDENTIALS_DIRECTORY if set.
SECRET_KEYS = frozenset({"mqtt.password_file", "mqtt.key_file", "dcc.subject_key_file"})
# Inline secrets people try first; each gets a pointed message instead of "unknown key".
INLINE_SECRETS = {"mqtt.password": "mqtt.password_file", "mqtt.key": "mqtt.key_file"}
NOT_FOUND = "file not found"  # what `file_problem` says of a path where nothing is


def both_algorithms() -> list[PassAlgorithm]:
    return ["EdDSA", "ES256"]


class GateSection(Table, frozen=True, kw_only=True):
    site: Ident = "factory-1"
    id: Ident = "gate-1"
    direction: Literal["in", "out"] = "in"


def source_problem(value: str) -> str | None:
    if value in ("auto", "picamera2"):
        return None
    kind, sep, rest = value.partition(":")
    if sep and kind in ("v4l2", "replay") and rest:
        return None
    return "expected auto, picamera2, v4l2:/dev/videoN or replay:PATH"


class CameraSection(Table, frozen=True, kw_only=True):
    key_rules: ClassVar[Mapping[str, KeyRule]] = {"source": source_problem}

    source: str = "auto"
    width: Annotated[int, Meta(ge=64, le=4608)] = 640
    height: Annotated[int, Meta(ge=64, le=3496)] = 480
    fps: Annotated[float, Meta(gt=0, le=120)] = 30.0
    decoder: Literal["auto", "zxing", "pyzbar"] = "auto"
    second_look_share: Annotated[float, Meta(ge=0, le=1)] = 0.1
    skip_unchanged: bool = True
    exposure: Literal["normal", "short"] = "normal"
    autofocus: bool = True
    capture_timeout_s: Annotated[float, Meta(gt=0, le=60)] = 2.0
    stall_s: Annotated[float, Meta(gt=0, le=600)] = 5.0
    replay_loop: bool = False


PIN_KEYS = ("relay", "green_led", "red_led", "buzzer", "exit_button", "door_contact", "fire_alarm")


class GpioSection(Table, frozen=True, kw_only=True):
    pin_factory: Literal["auto", "lgpio", "rpigpio", "mock"] = "auto"
    relay: BcmPin = 17
    relay_active_high: bool = True
    relay_pulse_ms: Annotated[int, Meta(ge=50, le=60_000)] = 800
    green_led: BcmPin | None = 23
    red_led: BcmPin | None = 24
    buzzer: BcmPin | None = 25
    exit_button: BcmPin | None = None
    door_contact: BcmPin | None = None
    fire_alarm: BcmPin | None = None
    # Which contact state means "active": pressed, door open, alarm on.
    exit_button_active: ContactState = "closed"
    door_contact_active: ContactState = "open"
    fire_alarm_active: ContactState = "closed"
    door_held_s: Annotated[float, Meta(gt=0, le=3600)] = 30.0
    door_grace_s: Annotated[float, Meta(ge=0, le=60)] = 1.0

    def rule_across_keys(self) -> str | None:
        used: dict[int, str] = {}
        for name in PIN_KEYS:
            pin = getattr(self, name)
            if pin is None:
                continue
            if pin in used:
                return f"pin {pin} is used by both {used[pin]} and {name}"
            used[pin] = name
        return None


class PolicySection(Table, frozen=True, kw_only=True):
    accept: Annotated[list[CredentialKind], Meta(min_length=1)] = field(
        default_factory=lambda: list[CredentialKind](["pass", "badge"])
    )
    record_only: list[IdentityKind] = field(default_factory=list)
    repeat_window_s: Seconds = 5.0
    anti_passback_s: Seconds = 0.0
    max_payload_bytes: Annotated[int, Meta(ge=16, le=65_536)] = 2048
    clock_skew_s: Annotated[float, Meta(ge=0, le=3600)] = 60.0


class PassesSection(Table, frozen=True, kw_only=True):
    jwks: Path = Path("/etc/qrgate/jwks.json")
    algorithms: Algorithms = field(default_factory=both_algorithms)


# The vaccines with an EU marketing authorisation (the `EU/1/...` codes of the EU value
# set vaccine-medicinal-product, 2022-11-30): Comirnaty, Spikevax, Vaxzevria, Jcovden,
# Nuvaxovid, COVID-19 Vaccine Valneva, VidPrevtyn Beta, Bimervax.
EU_AUTHORISED_VACCINES = (
    "EU/1/20/1528",
    "EU/1/20/1507",
    "EU/1/21/1529",
    "EU/1/20/1525",
    "EU/1/21/1618",
    "EU/1/21/1624",
    "EU/1/21/1580",
    "EU/1/22/1709",
)
Days = Annotated[int, Meta(ge=0, le=3650)]
Hours = Annotated[float, Meta(ge=0, le=8760)]
VaccineCode = Annotated[str, Meta(min_length=1, max_length=80)]


class DccSection(Table, frozen=True, kw_only=True):
    """Health certificates (EU DCC): whom to trust, and the health rules, as limits."""

    trust_list: Path = Path("/etc/qrgate/dcc-trust-list.json")
    trust_list_max_age_h: Annotated[float, Meta(gt=0, le=8760)] = 24.0
    subject_key_file: Path | None = None
    accept_types: Annotated[list[CertType], Meta(min_length=1)] = field(
        default_factory=lambda: list[CertType](get_args(CertType))
    )
    vaccines: list[VaccineCode] = field(default_factory=lambda: list(EU_AUTHORISED_VACCINES))
    vaccination_min_days: Days = 14
    booster_min_days: Days = 0
    vaccination_max_days: Days = 0
    test_naat_max_h: Hours = 72.0
    test_rat_max_h: Hours = 24.0
    pair_with: list[IdentityKind] = field(default_factory=list)
    pair_window_s: Annotated[float, Meta(gt=0, le=600)] = 20.0


class StoreSection(Table, frozen=True, kw_only=True):
    path: Path = Path("/var/lib/qrgate/qrgate.db")


def topic_prefix_problem(value: str) -> str | None:
    if not value or any(not segment for segment in value.split("/")):
        return "expected topic levels separated by single '/', none empty"
    if any(ch in value for ch in "+#") or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return "must not contain '+', '#' or control characters"
    return None


class MqttSection(Table, frozen=True, kw_only=True):
    key_rules: ClassVar[Mapping[str, KeyRule]] = {"topic_prefix": topic_prefix_problem}

    host: Annotated[str, Meta(min_length=1)] = "localhost"
    port: Annotated[int, Meta(ge=1, le=65_535)] = 1883
    topic_prefix: str = "qrgate"
    protocol: Literal["v5", "v311"] = "v5"
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    client_id: str | None = None
    keepalive_s: Annotated[int, Meta(ge=5, le=3600)] = 30
    heartbeat_s: Annotated[float, Meta(ge=1, le=3600)] = 30.0
    connect_timeout_s: Annotated[float, Meta(gt=0, le=120)] = 10.0
    inflight: Annotated[int, Meta(ge=2, le=1000)] = 64
    retry_min_s: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    retry_max_s: Annotated[float, Meta(gt=0, le=3600)] = 60.0
    outbox_max_events: Annotated[int, Meta(ge=100, le=100_000_000)] = 500_000
    outbox_max_mb: Annotated[int, Meta(ge=1, le=1_000_000)] = 256
    max_refusals: Annotated[int, Meta(ge=1, le=1000)] = 5
    keep_acked_days: Annotated[float, Meta(ge=0, le=366)] = 7.0

    def rule_across_keys(self) -> str | None:
        if (self.cert_file is None) != (self.key_file is None):
            return "cert_file and key_file go together (TLS client certificate)"
        if (self.cert_file or self.ca_file) and not self.tls:
            return "ca_file/cert_file are set but tls = false"
        if self.password_file is not None and self.username is None:
            return "password_file needs username"
        if self.retry_min_s > self.retry_max_s:
            return "retry_min_s is larger than retry_max_s"
        return None


class CommandsSection(Table, frozen=True, kw_only=True):
    enabled: bool = True
    jwks: Path = Path("/etc/qrgate/command-keys.json")
    algorithms: Algorithms = field(default_factory=both_algorithms)
    max_lifetime_s: Annotated[float, Meta(gt=0, le=86_400)] = 300.0
    clock_skew_s: Annotated[float, Meta(ge=0, le=3600)] = 30.0


class LogSection(Table, frozen=True, kw_only=True):
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(Table, frozen=True, kw_only=True):
    gate: GateSection = field(default_factory=GateSection)
    camera: CameraSection = field(default_factory=CameraSection)
    gpio: GpioSection = field(default_factory=GpioSection)
    policy: PolicySection = field(default_factory=PolicySection)
    passes: PassesSection = field(default_factory=PassesSection)
    dcc: DccSection = field(default_factory=DccSection)
    store: StoreSection = field(default_factory=StoreSection)
    mqtt: MqttSection = field(default_factory=MqttSection)
    commands: CommandsSection = field(default_factory=CommandsSection)
    log: LogSection = field(default_factory=LogSection)

    @property
    def client_id(self) -> str:
        """The MQTT client id: configured, else derived from site and gate (stable, unique)."""
        return self.mqtt.client_id or f"qrgate-{self.gate.site}-{self.gate.id}"


def find_config_path(explicit: Path | None = None) -> Path | None:
    """The config file to use: -c, else $QRGATE_CONFIG, else the first default that exists.

    None means no file: the built-in defaults apply.
    """
    if explicit is not None:
        return explicit
    from_env = os.environ.get(CONFIG_ENV)
    if from_env:
        return Path(from_env)
    return next((path for path in DEFAULT_PATHS if path.is_file()), None)


def load_config(path: Path | None = None) -> tuple[Config, Path | None]:
    """Find, read and validate the configuration; raise ConfigError listing every problem."""
    found = find_config_path(path)
    if found is None:
        return Config(), None
    return parse_config(read_toml(found), base_dir=found.parent, source=str(found)), found


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError.single("config", "file not found", str(path)) from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError.single("config", f"cannot read: {error}", str(path)) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError.single("config", f"not valid TOML: {error}", str(path)) from None


def parse_config(
    data: Mapping[str, Any], base_dir: Path | None = None, source: str = "config"
) -> Config:
    """Validate a config mapping; relative paths resolve against `base_dir`."""
    data, problems = split_inline_secrets(data)
    converted, found = convert_table(Config, data)
    problems += found
    if converted is None:
        raise ConfigError(problems, source)
    config = resolve_paths(converted, base_dir or Path.cwd())
    problems += kind_problems(config) + missing_secret_problems(config)
    if problems:
        raise ConfigError(problems, source)
    return config


def split_inline_secrets(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[ConfigProblem]]:
    """Take out inline secrets, each reported with where it belongs instead."""
    cleaned = dict(data)
    problems = []
    for key, file_key in INLINE_SECRETS.items():
        section, _, name = key.partition(".")
        table = cleaned.get(section)
        if isinstance(table, dict) and name in table:
            cleaned[section] = {k: v for k, v in table.items() if k != name}
            problems.append(
                ConfigProblem(
                    key, f"secrets are not accepted inline; put it in a file and set {file_key}"
                )
            )
    return cleaned, problems


def resolve_paths(config: Config, base_dir: Path) -> Config:
    """Anchor relative file paths: secrets in $CREDENTIALS_DIRECTORY, the rest at base_dir."""
    credentials = os.environ.get(CREDENTIALS_ENV)

    def anchor(key: str, path: Path | None) -> Path | None:
        if path is None or path.is_absolute():
            return path
        if key in SECRET_KEYS and credentials:
            return Path(credentials) / path
        return base_dir / path

    replace = msgspec.structs.replace
    mqtt = replace(
        config.mqtt,
        **{
            name: anchor(f"mqtt.{name}", getattr(config.mqtt, name))
            for name in ("ca_file", "cert_file", "key_file", "password_file")
        },
    )
    dcc = replace(
        config.dcc,
        trust_list=anchor("dcc.trust_list", config.dcc.trust_list),
        subject_key_file=anchor("dcc.subject_key_file", config.dcc.subject_key_file),
    )
    return replace(
        config,
        mqtt=mqtt,
        passes=replace(config.passes, jwks=anchor("passes.jwks", config.passes.jwks)),
        dcc=dcc,
        store=replace(config.store, path=anchor("store.path", config.store.path)),
        commands=replace(config.commands, jwks=anchor("commands.jwks", config.commands.jwks)),
    )


def kind_problems(config: Config) -> list[ConfigProblem]:
    """Kinds named for record-only admission or pairing must be accepted, and pairing
    needs health certificates accepted."""
    accepted = set(config.policy.accept)
    problems = []
    for key, kinds in (
        ("policy.record_only", config.policy.record_only),
        ("dcc.pair_with", config.dcc.pair_with),
    ):
        missing = [kind for kind in kinds if kind not in accepted]
        if missing:
            message = f"{', '.join(missing)} not in policy.accept"
            problems.append(ConfigProblem(key, message, kinds, has_value=True))
    if config.dcc.pair_with and "dcc" not in accepted:
        message, kinds = "pairing needs dcc in policy.accept", config.dcc.pair_with
        problems.append(ConfigProblem("dcc.pair_with", message, kinds, has_value=True))
    return problems


def missing_secret_problems(config: Config) -> list[ConfigProblem]:
    """Secret files are opt-in, so a configured one that is missing is a config error now."""
    problems = []
    for key in sorted(SECRET_KEYS):
        section, _, name = key.partition(".")
        path = getattr(getattr(config, section), name)
        problem = None if path is None else file_problem(path)
        if problem is not None:
            problems.append(ConfigProblem(key, f"secret {problem}", str(path), has_value=True))
    return problems


def file_problem(path: Path) -> str | None:
    """Why `path` is no file to read, or None. The system may refuse to look (a folder
    the user may not enter, a name too long), which Path.is_file raises: said, not raised."""
    try:
        return None if path.is_file() else NOT_FOUND
    except OSError as error:
        return f"file cannot be looked at: {error.strerror or error}"


def referenced_files(config: Config) -> dict[str, Path]:
    """Files the gate will open at run time, by key, for checks that warn early."""
    files = {"passes.jwks": config.passes.jwks}
    if config.commands.enabled:
        files["commands.jwks"] = config.commands.jwks
    for name in ("ca_file", "cert_file", "key_file", "password_file"):
        path = getattr(config.mqtt, name)
        if path is not None:
            files[f"mqtt.{name}"] = path
    return files


def require_file(key: str, path: Path) -> Path:
    """The file behind `key`, or a ConfigError naming the key (exit 78)."""
    problem = file_problem(path)
    if problem is not None:
        raise ConfigError.single(key, problem, value=str(path))
    return path
