"""The `qrgate` command: exit codes, check-config, logging, start-up cost."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from scanner.cli import cli, run
from scanner.logs import JournalFormatter, configure_logging
from tests.support.cli import heavy_imports, qrgate


def test_check_config_passes_on_the_shipped_config() -> None:
    done = qrgate("check-config", "-c", "config.toml")
    assert done.returncode == 0, done.stderr
    assert 'site = "factory-1"' in done.stdout
    assert done.stdout.startswith("# effective configuration from config.toml")


def test_typo_exits_78_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[gpio]\nrealy = 17\n")
    done = qrgate("check-config", "-c", str(bad))
    assert done.returncode == 78
    assert "gpio.realy" in done.stderr
    assert "Traceback" not in done.stderr


def test_two_errors_both_reported_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[gpio]\nrealy = 17\nrelay = "seventeen"\n')
    done = qrgate("check-config", "-c", str(bad))
    assert done.returncode == 78
    assert "gpio.realy = 17: unknown key" in done.stderr
    assert "gpio.relay = 'seventeen': expected an integer" in done.stderr
    assert "2 problems" in done.stderr
    assert "Traceback" not in done.stderr


def test_config_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "env.toml"
    path.write_text('[gate]\nid = "from-env"\n')
    done = qrgate("check-config", env={"QRGATE_CONFIG": str(path)})
    assert done.returncode == 0, done.stderr
    assert 'id = "from-env"' in done.stdout


def test_secret_contents_never_printed(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("hunter2")
    path = tmp_path / "c.toml"
    path.write_text('[mqtt]\nusername = "gate"\npassword_file = "pw"\n')
    done = qrgate("check-config", "-c", str(path))
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout + done.stderr
    assert "password_file" in done.stdout
    assert "secret: file path only" in done.stdout


def test_usage_error_exits_2() -> None:
    assert run(["no-such-command"]) == 2
    assert run(["check-config", "--no-such-option"]) == 2


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "check-config" in result.output


def test_version() -> None:
    done = qrgate("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("qrgate, version ")


def test_light_commands_do_not_load_heavy_libraries() -> None:
    assert heavy_imports(["--help"]) == []


@pytest.mark.usefixtures("restore_logging")
def test_plain_log_lines_off_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging("warning", stream)
    logging.getLogger("scanner.test").info("hidden")
    logging.getLogger("scanner.test").warning("shown")
    assert stream.getvalue().endswith("WARNING scanner.test: shown\n")
    assert "hidden" not in stream.getvalue()


@pytest.mark.parametrize(("level", "prefix"), [(logging.ERROR, "<3>"), (logging.INFO, "<6>")])
def test_journal_lines_carry_priority(level: int, prefix: str) -> None:
    record = logging.LogRecord("scanner.x", level, __file__, 1, "a\nb", None, None)
    assert JournalFormatter("%(name)s: %(message)s").format(record) == (
        f"{prefix}scanner.x: a\n{prefix}b"
    )
