"""Configuration: defaults, the shipped config.toml, and errors that name the key."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from scanner.config import Config, find_config_path, load_config, parse_config
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
    for section, model in Config.model_fields.items():
        assert f"[{section}]" in text
        for key in model.annotation.model_fields:  # type: ignore[union-attr]
            assert re.search(rf"^#? ?{key} = ", text, re.MULTILINE), f"{section}.{key} missing"


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


@pytest.mark.parametrize("bad", ["", "a b", "a/b", "a+", "#", "x" * 65, "gate\u00e9", "a\0"])
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
    with pytest.raises(ValueError, match="frozen"):
        Config().gate.site = "x"  # type: ignore[misc]


def test_client_id_derives_from_site_and_gate() -> None:
    assert parse_config({"gate": {"site": "s1", "id": "g2"}}).client_id == "qrgate-s1-g2"
