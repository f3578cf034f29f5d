"""The gate's configuration: TOML validated into typed, frozen models.

Every section rejects unknown keys, so a typo is an error rather than a silent default.
All problems in a file are reported at once with their key path (see `load_config`).
Secrets are never inline: they come from files. A relative secret path is looked up in
`$CREDENTIALS_DIRECTORY` when it is set (systemd `LoadCredential=`), else in the config's
folder, like every other relative path.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from scanner.credentials.health import CertType
from scanner.errors import ConfigError, ConfigProblem

DEFAULT_PATHS = (Path("/etc/qrgate/config.toml"), Path("config.toml"))
CONFIG_ENV = "QRGATE_CONFIG"
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"

ID_RULE = "1 to 64 of A-Z a-z 0-9 _ -"
Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
BcmPin = Annotated[int, Field(ge=0, le=27, description="BCM GPIO number")]
Seconds = Annotated[float, Field(ge=0)]
CredentialKind = Literal["pass", "badge", "cccd", "vnqr", "dcc"]
# Kinds that name a person and prove nothing: record-only admission, pairing.
IdentityKind = Literal["badge", "cccd", "vnqr"]
ContactState = Literal["closed", "open"]
PassAlgorithm = Literal["EdDSA", "ES256"]

# Keys whose files hold secrets: relative paths resolve in $CREDENTIALS_DIRECTORY if set.
SECRET_KEYS = frozenset({"mqtt.password_file", "mqtt.key_file", "dcc.subject_key_file"})
# Inline secrets people try first; each gets a pointed message instead of "unknown key".
INLINE_SECRETS = {"mqtt.password": "mqtt.password_file", "mqtt.key": "mqtt.key_file"}


class Section(BaseModel):
    """Base of every config section: unknown keys and mutation are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class GateSection(Section):
    site: Ident = "factory-1"
    id: Ident = "gate-1"
    direction: Literal["in", "out"] = "in"


class CameraSection(Section):
    source: str = "auto"
    width: int = Field(640, ge=64, le=4608)
    height: int = Field(480, ge=64, le=3496)
    fps: float = Field(30, gt=0, le=120)
    decoder: Literal["auto", "zxing", "pyzbar"] = "auto"
    second_look_share: float = Field(0.1, ge=0, le=1)
    skip_unchanged: bool = True
    exposure: Literal["normal", "short"] = "normal"
    autofocus: bool = True
    capture_timeout_s: float = Field(2.0, gt=0, le=60)
    stall_s: float = Field(5.0, gt=0, le=600)
    replay_loop: bool = False

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value in ("auto", "picamera2"):
            return value
        kind, sep, rest = value.partition(":")
        if sep and kind in ("v4l2", "replay") and rest:
            return value
        raise ValueError("expected auto, picamera2, v4l2:/dev/videoN or replay:PATH")


class GpioSection(Section):
    pin_factory: Literal["auto", "lgpio", "rpigpio", "mock"] = "auto"
    relay: BcmPin = 17
    relay_active_high: bool = True
    relay_pulse_ms: int = Field(800, ge=50, le=60_000)
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
    door_held_s: float = Field(30.0, gt=0, le=3600)
    door_grace_s: float = Field(1.0, ge=0, le=60)

    @model_validator(mode="after")
    def _pins_distinct(self) -> GpioSection:
        used: dict[int, str] = {}
        for name in PIN_KEYS:
            pin = getattr(self, name)
            if pin is None:
                continue
            if pin in used:
                raise ValueError(f"pin {pin} is used by both {used[pin]} and {name}")
            used[pin] = name
        return self


PIN_KEYS = ("relay", "green_led", "red_led", "buzzer", "exit_button", "door_contact", "fire_alarm")


class PolicySection(Section):
    accept: list[CredentialKind] = Field(
        default_factory=lambda: list[CredentialKind](["pass", "badge"]), min_length=1
    )
    record_only: list[IdentityKind] = Field(default_factory=list)
    repeat_window_s: Seconds = 5.0
    anti_passback_s: Seconds = 0.0
    max_payload_bytes: int = Field(2048, ge=16, le=65_536)
    clock_skew_s: float = Field(60.0, ge=0, le=3600)


class PassesSection(Section):
    jwks: Path = Path("/etc/qrgate/jwks.json")
    algorithms: list[PassAlgorithm] = Field(
        default_factory=lambda: list[PassAlgorithm](["EdDSA", "ES256"]), min_length=1
    )


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
Days = Annotated[int, Field(ge=0, le=3650)]
Hours = Annotated[float, Field(ge=0, le=8760)]


class DccSection(Section):
    """Health certificates (EU DCC): whom to trust, and the health rules, as limits."""

    trust_list: Path = Path("/etc/qrgate/dcc-trust-list.json")
    trust_list_max_age_h: float = Field(24.0, gt=0, le=8760)
    subject_key_file: Path | None = None
    accept_types: list[CertType] = Field(
        default_factory=lambda: list[CertType](get_args(CertType)),
        min_length=1,
    )
    vaccines: list[Annotated[str, StringConstraints(min_length=1, max_length=80)]] = Field(
        default_factory=lambda: list(EU_AUTHORISED_VACCINES)
    )
    vaccination_min_days: Days = 14
    booster_min_days: Days = 0
    vaccination_max_days: Days = 0
    test_naat_max_h: Hours = 72.0
    test_rat_max_h: Hours = 24.0
    pair_with: list[IdentityKind] = Field(default_factory=list)
    pair_window_s: float = Field(20.0, gt=0, le=600)


class StoreSection(Section):
    path: Path = Path("/var/lib/qrgate/qrgate.db")


class MqttSection(Section):
    host: str = Field("localhost", min_length=1)
    port: int = Field(1883, ge=1, le=65_535)
    topic_prefix: str = "qrgate"
    protocol: Literal["v5", "v311"] = "v5"
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    username: str | None = None
    password_file: Path | None = None
    client_id: str | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)
    heartbeat_s: float = Field(30.0, ge=1, le=3600)
    connect_timeout_s: float = Field(10.0, gt=0, le=120)
    inflight: int = Field(64, ge=2, le=1000)
    retry_min_s: float = Field(1.0, gt=0, le=3600)
    retry_max_s: float = Field(60.0, gt=0, le=3600)
    outbox_max_events: int = Field(500_000, ge=100, le=100_000_000)
    outbox_max_mb: int = Field(256, ge=1, le=1_000_000)
    max_refusals: int = Field(5, ge=1, le=1000)
    keep_acked_days: float = Field(7.0, ge=0, le=366)

    @field_validator("topic_prefix")
    @classmethod
    def _clean_prefix(cls, value: str) -> str:
        segments = value.split("/")
        if not value or any(not segment for segment in segments):
            raise ValueError("expected topic levels separated by single '/', none empty")
        if any(ch in value for ch in "+#") or any(
            ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value
        ):
            raise ValueError("must not contain '+', '#' or control characters")
        return value

    @model_validator(mode="after")
    def _client_cert_pairs(self) -> MqttSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (TLS client certificate)")
        if (self.cert_file or self.ca_file) and not self.tls:
            raise ValueError("ca_file/cert_file are set but tls = false")
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file needs username")
        if self.retry_min_s > self.retry_max_s:
            raise ValueError("retry_min_s is larger than retry_max_s")
        return self


class CommandsSection(Section):
    enabled: bool = True
    jwks: Path = Path("/etc/qrgate/command-keys.json")
    algorithms: list[PassAlgorithm] = Field(
        default_factory=lambda: list[PassAlgorithm](["EdDSA", "ES256"]), min_length=1
    )
    max_lifetime_s: float = Field(300.0, gt=0, le=86_400)
    clock_skew_s: float = Field(30.0, ge=0, le=3600)


class LogSection(Section):
    level: Literal["debug", "info", "warning", "error"] = "info"


class Config(Section):
    gate: GateSection = GateSection()
    camera: CameraSection = CameraSection()
    gpio: GpioSection = GpioSection()
    policy: PolicySection = PolicySection()
    passes: PassesSection = PassesSection()
    dcc: DccSection = DccSection()
    store: StoreSection = StoreSection()
    mqtt: MqttSection = MqttSection()
    commands: CommandsSection = CommandsSection()
    log: LogSection = LogSection()

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
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        problems += [describe_error(detail) for detail in error.errors()]
        raise ConfigError(problems, source) from None
    config = resolve_paths(config, base_dir or Path.cwd())
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


def describe_error(detail: ErrorDetails) -> ConfigProblem:
    """Turn one pydantic error into key path, given value and what was expected."""
    key = ".".join(str(part) for part in detail["loc"]) or "config"
    kind = detail["type"]
    value = detail.get("input")
    if kind == "extra_forbidden":
        return ConfigProblem(key, "unknown key", value, has_value=True)
    if kind == "missing":
        return ConfigProblem(key, "required key is missing")
    message = EXPECTED.get(kind) or detail["msg"].removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        message = f"expected {ID_RULE}"
    return ConfigProblem(key, message, value, has_value=not isinstance(value, dict))


EXPECTED = {
    "int_type": "expected an integer",
    "int_parsing": "expected an integer",
    "int_from_float": "expected an integer, not a fraction",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string",
    "list_type": "expected a list",
    "model_type": "expected a table (a [section])",
    "path_type": "expected a file path (a string)",
}


def resolve_paths(config: Config, base_dir: Path) -> Config:
    """Anchor relative file paths: secrets in $CREDENTIALS_DIRECTORY, the rest at base_dir."""
    credentials = os.environ.get(CREDENTIALS_ENV)

    def anchor(key: str, path: Path | None) -> Path | None:
        if path is None or path.is_absolute():
            return path
        if key in SECRET_KEYS and credentials:
            return Path(credentials) / path
        return base_dir / path

    mqtt = config.mqtt.model_copy(
        update={
            name: anchor(f"mqtt.{name}", getattr(config.mqtt, name))
            for name in ("ca_file", "cert_file", "key_file", "password_file")
        }
    )
    return config.model_copy(
        update={
            "mqtt": mqtt,
            "passes": config.passes.model_copy(
                update={"jwks": anchor("passes.jwks", config.passes.jwks)}
            ),
            "dcc": config.dcc.model_copy(
                update={
                    "trust_list": anchor("dcc.trust_list", config.dcc.trust_list),
                    "subject_key_file": anchor("dcc.subject_key_file", config.dcc.subject_key_file),
                }
            ),
            "store": config.store.model_copy(
                update={"path": anchor("store.path", config.store.path)}
            ),
            "commands": config.commands.model_copy(
                update={"jwks": anchor("commands.jwks", config.commands.jwks)}
            ),
        }
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
        if path is not None and not path.is_file():
            problems.append(ConfigProblem(key, "secret file not found", str(path), has_value=True))
    return problems


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
    if not path.is_file():
        raise ConfigError.single(key, "file not found", value=str(path))
    return path
