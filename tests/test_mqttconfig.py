"""The config mapped onto the mqtt package's settings, and `qrgate outbox`."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqtt.settings import TlsSettings
from scanner.cli import run
from scanner.config import parse_config
from scanner.errors import ConfigError
from scanner.mqttconfig import broker_settings, open_outbox, outbox_limits, publisher_settings
from tests.support.gate import scans


def test_defaults_map_onto_the_publisher_settings() -> None:
    config = parse_config({"gate": {"site": "s1", "id": "g2"}})
    settings = publisher_settings(config)
    assert settings.broker.client_id == "qrgate-s1-g2"
    assert (settings.broker.protocol, settings.broker.tls, settings.window) == ("v5", None, 64)
    assert outbox_limits(config).max_bytes == 256 * 1024 * 1024


def test_password_is_read_from_its_file_without_the_newline(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cret\n")
    config = parse_config({"mqtt": {"username": "gate", "password_file": "pw"}}, base_dir=tmp_path)
    broker = broker_settings(config)
    assert broker.password == "s3cret"
    assert "s3cret" not in repr(broker)


def test_tls_files_must_exist(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("")
    config = parse_config({"mqtt": {"tls": True, "ca_file": "ca.crt"}}, base_dir=tmp_path)
    assert broker_settings(config).tls == TlsSettings(ca_file=tmp_path / "ca.crt")
    config = parse_config(
        {"mqtt": {"tls": True, "cert_file": "gate.crt", "key_file": "ca.crt"}}, base_dir=tmp_path
    )
    with pytest.raises(ConfigError, match=r"mqtt\.cert_file"):
        broker_settings(config)


@pytest.mark.parametrize(
    ("mqtt", "key"),
    [
        ({"inflight": 1}, "mqtt.inflight"),
        ({"retry_min_s": 10, "retry_max_s": 5}, "mqtt"),
        ({"outbox_max_events": 0}, "mqtt.outbox_max_events"),
        ({"max_refusals": 0}, "mqtt.max_refusals"),
    ],
)
def test_bad_publisher_values_name_their_key(mqtt: dict[str, int], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"mqtt": mqtt})
    assert [problem.key for problem in caught.value.problems] == [key]


def test_qrgate_outbox_shows_lists_and_retries_parked_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = tmp_path / "gate.toml"
    config_file.write_text(f'[store]\npath = "{tmp_path / "q.db"}"\n[mqtt]\nmax_refusals = 1\n')
    box = open_outbox(
        parse_config({"store": {"path": str(tmp_path / "q.db")}, "mqtt": {"max_refusals": 1}})
    )
    scans(box, 3)
    box.ack([box.pending()[-1].entry])  # kept for mqtt.keep_acked_days, no longer waiting
    box.refuse(box.pending()[0].entry, "Packet too large", singled_out=True)
    assert run(["outbox", "status", "-c", str(config_file)]) == 0
    shown = capsys.readouterr().out
    assert "waiting: 2 events" in shown
    assert "kept:    1 events acknowledged, kept for a resend" in shown
    assert run(["outbox", "parked", "-c", str(config_file)]) == 0
    assert "seq 1  factory-1/gate-1" in capsys.readouterr().out
    assert run(["outbox", "retry", "-c", str(config_file)]) == 0
    assert capsys.readouterr().out == "1 parked event(s) will be sent again\n"
    assert box.depth().parked == 0


def test_qrgate_outbox_creates_no_database_where_the_gate_never_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = tmp_path / "gate.toml"
    config_file.write_text(f'[store]\npath = "{tmp_path / "none" / "q.db"}"\n')
    assert run(["outbox", "status", "-c", str(config_file)]) == 1
    assert "no outbox at" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_qrgate_outbox_says_so_when_the_system_will_not_look_at_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A name longer than the file system takes: Path.is_file raises rather than answers.
    db = tmp_path / ("q" * 300)
    config_file = tmp_path / "gate.toml"
    config_file.write_text(f'[store]\npath = "{db}"\n')
    assert run(["outbox", "status", "-c", str(config_file)]) == 1
    assert capsys.readouterr().err == (
        f"qrgate: store.path {db}: file cannot be looked at: File name too long\n"
    )


def test_qrgate_outbox_status_reads_without_leaving_files_behind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Run as root beside a stopped gate, it must not leave root-owned -wal/-shm files."""
    db = tmp_path / "q.db"
    config_file = tmp_path / "gate.toml"
    config_file.write_text(f'[store]\npath = "{db}"\n')
    box = open_outbox(parse_config({"store": {"path": str(db)}}))
    scans(box, 1)
    box.close()
    before = sorted(path.name for path in tmp_path.iterdir())
    assert run(["outbox", "status", "-c", str(config_file)]) == 0
    assert run(["outbox", "parked", "-c", str(config_file)]) == 0
    assert "waiting: 1 events" in capsys.readouterr().out
    assert sorted(path.name for path in tmp_path.iterdir()) == before
