"""Configuration: defaults, the shipped config.toml, and errors that name the key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import msgspec
import pytest

from scanner.config import (
    Config,
    GpioSection,
    MqttSection,
    find_config_path,
    load_config,
    parse_config,
)
from scanner.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "config.toml"


def problems_of(data: dict[str, object], **kwargs: object) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, **kwargs)  # type: ignore[arg-type]
    return {problem.key: str(problem) for problem in caught.value.problems}


def test_shipped_config_is_exactly_the_defaults() -> None:
    shipped = tomllib.loads(SHIPPED.read_text())
    assert parse_config(shipped, base_dir=ROOT) == parse_config({}, base_dir=ROOT)


def test_shipped_config_shows_every_key() -> None:
    text = SHIPPED.read_text()
    for section in msgspec.structs.fields(Config):
        assert f"[{section.name}]" in text
        for key in msgspec.structs.fields(section.type):
            assert re.search(rf"^#? ?{key.name} = ", text, re.MULTILINE), (section.name, key.name)


def test_unknown_key_is_named() -> None:
    found = problems_of({"gpio": {"realy": 17}})
    assert list(found) == ["gpio.realy"]
    assert "unknown key" in found["gpio.realy"]


def test_wrong_type_names_key_value_and_expectation() -> None:
    found = problems_of({"gpio": {"relay": "seventeen"}})
    assert found["gpio.relay"] == "gpio.relay = 'seventeen': expected an integer"


def test_every_problem_is_reported_at_once() -> None:
    found = problems_of(
        {
            "gpio": {"realy": 17, "relay": "seventeen"},
            "gate": {"site": "a/b"},
            "camera": {"fps": 0, "source": "usb"},
        }
    )
    assert set(found) == {"gpio.realy", "gpio.relay", "gate.site", "camera.fps", "camera.source"}


@pytest.mark.parametrize(
    "bad", ["", "a b", "a/b", "a+", "#", "x" * 65, "gate\u00e9", "a\0", "gate-1\n", "\ngate-1"]
)
def test_topic_ids_are_restricted(bad: str) -> None:
    assert "gate.id" in problems_of({"gate": {"id": bad}})


def test_topic_ids_accept_the_documented_alphabet() -> None:
    config = parse_config({"gate": {"site": "Factory_1-A", "id": "x" * 64}})
    assert config.gate.site == "Factory_1-A"


@pytest.mark.parametrize("prefix", ["", "/a", "a/", "a//b", "a/+", "a/#", "a\tb"])
def test_topic_prefix_cannot_change_the_topic_shape(prefix: str) -> None:
    assert "mqtt.topic_prefix" in problems_of({"mqtt": {"topic_prefix": prefix}})


def test_pins_cannot_be_shared() -> None:
    found = problems_of({"gpio": {"relay": 23}})
    assert "pin 23 is used by both relay and green_led" in found["gpio"]


def test_inline_secret_is_refused_with_where_it_belongs() -> None:
    found = problems_of({"mqtt": {"username": "u", "password": "hunter2"}})
    assert "mqtt.password_file" in found["mqtt.password"]
    assert "hunter2" not in " ".join(found.values())


def test_missing_secret_file_is_a_config_error(tmp_path: Path) -> None:
    found = problems_of({"mqtt": {"username": "u", "password_file": "nope"}}, base_dir=tmp_path)
    assert "secret file not found" in found["mqtt.password_file"]


def test_a_secret_file_the_system_will_not_look_at_is_a_config_error(tmp_path: Path) -> None:
    # A name longer than the file system takes: Path.is_file raises rather than answers.
    key_file = tmp_path / ("k" * 300)
    found = problems_of({"dcc": {"subject_key_file": str(key_file)}})
    assert found["dcc.subject_key_file"].endswith(
        "secret file cannot be looked at: File name too long"
    )


def test_relative_secret_comes_from_credentials_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("s3cret")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    config = parse_config(
        {"mqtt": {"username": "u", "password_file": "mqtt-password"}}, base_dir=tmp_path / "etc"
    )
    assert config.mqtt.password_file == creds / "mqtt-password"


def test_relative_paths_anchor_at_the_config_folder(tmp_path: Path) -> None:
    config = parse_config(
        {"store": {"path": "state/q.db"}, "passes": {"jwks": "k.json"}}, base_dir=tmp_path
    )
    assert config.store.path == tmp_path / "state/q.db"
    assert config.passes.jwks == tmp_path / "k.json"


def test_lookup_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, from_env, local = tmp_path / "a.toml", tmp_path / "b.toml", tmp_path / "config.toml"
    for path in (explicit, from_env, local):
        path.write_text("")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        "scanner.config.DEFAULT_PATHS", (tmp_path / "etc.toml", Path("config.toml"))
    )
    monkeypatch.setenv("QRGATE_CONFIG", str(from_env))
    assert find_config_path(explicit) == explicit
    assert find_config_path() == from_env
    monkeypatch.delenv("QRGATE_CONFIG")
    assert find_config_path() == Path("config.toml")
    (tmp_path / "etc.toml").write_text("")
    assert find_config_path() == tmp_path / "etc.toml"


def test_no_file_means_built_in_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("QRGATE_CONFIG", raising=False)
    monkeypatch.setattr("scanner.config.DEFAULT_PATHS", (tmp_path / "none.toml",))
    assert load_config() == (Config(), None)


def test_broken_toml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[gate]\nsite = \n")
    with pytest.raises(ConfigError, match=r"line 2"):
        load_config(path)


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError, match="immutable"):
        Config().gate.site = "x"  # type: ignore[misc]


def test_client_id_derives_from_site_and_gate() -> None:
    assert parse_config({"gate": {"site": "s1", "id": "g2"}}).client_id == "qrgate-s1-g2"


def test_every_problem_of_every_section_is_named_with_its_reason() -> None:
    found = problems_of(
        {
            "gate": {"id": "gate-1\n", "direction": "up"},
            "camera": {"width": 32, "fps": "fast", "source": "usb"},
            "gpio": {"relay": 28, "relay_active_high": 2},
            "policy": {"accept": ["pass", "qr"], "record_only": "badge"},
            "mqtt": {"host": "", "port": 5.5, "ca_file": 7, "topic_prefix": "a//b"},
            "dcc": {"accept_types": [], "vaccines": ["x" * 81]},
            "log": "debug",
            "cameras": {},
        }
    )
    assert found == {
        "gate.id": "gate.id = 'gate-1\\n': expected 1 to 64 of A-Z a-z 0-9 _ -",
        "gate.direction": "gate.direction = 'up': expected one of: in, out",
        "camera.width": "camera.width = 32: must be >= 64",
        "camera.fps": "camera.fps = 'fast': expected a number",
        "camera.source": (
            "camera.source = 'usb': expected auto, picamera2, v4l2:/dev/videoN or replay:PATH"
        ),
        "gpio.relay": "gpio.relay = 28: must be <= 27",
        "gpio.relay_active_high": "gpio.relay_active_high = 2: expected true or false",
        "policy.accept.1": (
            "policy.accept.1 = 'qr': expected one of: pass, badge, cccd, vnqr, dcc"
        ),
        "policy.record_only": "policy.record_only = 'badge': expected a list",
        "mqtt.host": "mqtt.host = '': must not be empty",
        "mqtt.port": "mqtt.port = 5.5: expected an integer, not a fraction",
        "mqtt.ca_file": "mqtt.ca_file = 7: expected a file path (a string)",
        "mqtt.topic_prefix": (
            "mqtt.topic_prefix = 'a//b': expected topic levels separated by single '/', none empty"
        ),
        "dcc.accept_types": "dcc.accept_types = []: must not be empty",
        "dcc.vaccines.0": f"dcc.vaccines.0 = '{'x' * 81}': must be at most 80 characters",
        "log": "log = 'debug': expected a table (a [section])",
        "cameras": "cameras = {}: unknown key",
    }


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("camera", "fps", "fast", "expected a number"),
        ("camera", "fps", True, "expected a number"),
        ("camera", "width", 640.5, "expected an integer, not a fraction"),
        ("camera", "width", "640.5", "expected an integer, not a fraction"),
        ("camera", "width", "wide", "expected an integer"),
        ("camera", "width", "32", "must be >= 64"),
        ("camera", "width", True, "expected an integer"),
        ("camera", "autofocus", 2, "expected true or false"),
        ("camera", "autofocus", "yes", "expected true or false"),
        ("mqtt", "username", 5, "expected a string"),
        ("mqtt", "keepalive_s", float("nan"), "expected an integer"),
        ("camera", "fps", float("nan"), "must be > 0"),
        ("camera", "fps", float("inf"), "must be <= 120"),
    ],
)
def test_values_of_the_wrong_kind_are_refused(
    section: str, key: str, value: object, expected: str
) -> None:
    found = problems_of({section: {key: value}})
    assert found == {f"{section}.{key}": f"{section}.{key} = {value!r}: {expected}"}


@pytest.mark.parametrize(
    ("section", "key", "written", "read"),
    [
        ("camera", "fps", "30", 30.0),
        ("camera", "width", 640.0, 640),
        ("camera", "width", "640", 640),
        ("camera", "autofocus", 0, False),
        ("camera", "autofocus", "true", True),
        ("gpio", "relay_pulse_ms", 900.0, 900),
    ],
)
def test_values_the_config_always_took_are_still_taken(
    section: str, key: str, written: object, read: object
) -> None:
    # Configs on gates were read by pydantic's lax mode before: an update must not refuse
    # a file that worked.
    config = parse_config({section: {key: written}})
    taken = getattr(getattr(config, section), key)
    assert (taken, type(taken)) == (read, type(read))


def test_an_integer_is_a_number() -> None:
    config = parse_config(tomllib.loads("[camera]\nfps = 20\nstall_s = 3"))
    assert (config.camera.fps, config.camera.stall_s) == (20.0, 3.0)
    assert isinstance(config.camera.fps, float)


def test_a_rule_across_keys_waits_for_the_keys_to_be_right() -> None:
    found = problems_of({"gpio": {"relay": 23, "relay_pulse_ms": 10}})
    assert list(found) == ["gpio.relay_pulse_ms"]


def test_rules_hold_for_tables_built_in_code() -> None:
    with pytest.raises(ValueError, match="pin 23 is used by both relay and green_led"):
        GpioSection(relay=23)
    with pytest.raises(ValueError, match="password_file needs username"):
        msgspec.structs.replace(MqttSection(), password_file=Path("p"))
    with pytest.raises(ValueError, match="expected topic levels"):
        MqttSection(topic_prefix="a/")
