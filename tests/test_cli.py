"""The `qrgate` command: exit codes, check-config, logging, start-up cost."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from click.testing import CliRunner

from scanner.cli import run
from scanner.cli.daemon import Invocation, daemon_invocation
from scanner.cli.group import cli
from scanner.logs import JournalFormatter, configure_logging
from tests.support.cli import heavy_imports, qrgate

# Badges only and no commands: a config `qrgate run` takes without any key file.
RUNNABLE = '[policy]\naccept = ["badge"]\n\n[commands]\nenabled = false\n'


def test_check_config_on_the_shipped_config_names_the_files_to_install() -> None:
    done = qrgate("check-config", "-c", "config.toml")
    assert done.stdout.startswith("# effective configuration from config.toml")
    assert 'site = "factory-1"' in done.stdout
    if Path("/etc/qrgate/jwks.json").is_file():
        pytest.skip("this machine has a gate's key sets installed")
    assert done.returncode == 78  # as qrgate run: the key sets are not installed here
    assert "passes.jwks = '/etc/qrgate/jwks.json': file not found" in done.stderr
    assert "commands.jwks = '/etc/qrgate/command-keys.json': file not found" in done.stderr


def test_check_config_refuses_what_run_refuses_with_the_same_code(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text(
        f'{RUNNABLE}\n[gpio]\npin_factory = "mock"\n'.replace(
            "enabled = false", 'enabled = true\njwks = "missing-keys.json"'
        )
    )
    checked = qrgate("check-config", "-c", config)
    ran = qrgate("run", "-c", config)
    assert (checked.returncode, ran.returncode) == (78, 78)
    for done in (checked, ran):
        assert f"commands.jwks = '{tmp_path}/missing-keys.json': file not found" in done.stderr
        assert "Traceback" not in done.stderr


def test_check_config_only_warns_of_a_file_run_does_not_need(tmp_path: Path) -> None:
    config = tmp_path / "gate.toml"
    config.write_text(RUNNABLE)  # passes.jwks is missing, but no pass is accepted
    done = qrgate("check-config", "-c", config)
    assert done.returncode == 0, done.stderr
    assert "warning: passes.jwks: /etc/qrgate/jwks.json does not exist" in done.stderr


def test_check_config_warns_of_a_file_the_system_will_not_look_at(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A name longer than the file system takes: Path.is_file raises rather than answers.
    jwks = tmp_path / ("k" * 300)
    config = tmp_path / "gate.toml"
    config.write_text(f'{RUNNABLE}\n[passes]\njwks = "{jwks}"\n')
    for syntax_only in ([], ["--syntax-only"]):
        assert run(["check-config", *syntax_only, "-c", str(config)]) == 0
        warned = capsys.readouterr().err
        assert f"warning: passes.jwks: {jwks} file cannot be looked at: File name too long" in (
            warned
        )


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
    path.write_text('[gate]\nid = "from-env"\n' + RUNNABLE)
    done = qrgate("check-config", env={"QRGATE_CONFIG": str(path)})
    assert done.returncode == 0, done.stderr
    assert 'id = "from-env"' in done.stdout


def test_secret_contents_never_printed(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("hunter2")
    path = tmp_path / "c.toml"
    path.write_text('[mqtt]\nusername = "gate"\npassword_file = "pw"\n' + RUNNABLE)
    done = qrgate("check-config", "-c", str(path))
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout + done.stderr
    assert "password_file" in done.stdout
    assert "secret: file path only" in done.stdout


def test_usage_error_exits_2() -> None:
    assert run(["no-such-command"]) == 2
    assert run(["check-config", "--no-such-option"]) == 2


def click_parse(argv: list[str]) -> Invocation:
    """What the click group makes of `qrgate ARGV` for the run command."""
    at = argv.index("run")
    group = cli.make_context("qrgate", argv[: at + 1])
    command = cli.get_command(group, "run")
    assert command is not None
    parsed = command.make_context("run", argv[at + 1 :], parent=group)
    return Invocation(parsed.params["config_path"], group.params["log_level"])


@pytest.mark.parametrize(
    "argv",
    [
        ["run"],
        ["run", "-c", "gate.toml"],
        ["run", "--config", "gate.toml"],
        ["run", "--config=gate.toml"],
        ["run", "-c", ""],
        ["--log-level", "DEBUG", "run"],
        ["--log-level=warning", "run", "-c", "gate.toml"],
    ],
)
def test_the_daemon_forms_mean_what_click_makes_of_them(argv: list[str]) -> None:
    assert daemon_invocation(argv) == click_parse(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--help"],
        ["run", "-c"],
        ["run", "-c", "-x"],
        ["run", "-c", "a", "-c", "b"],
        ["run", "-cgate.toml"],
        ["run", "extra"],
        ["run", "--log-level", "debug"],
        ["--log-level", "loud", "run"],
        ["--log-level", "\u212aebug", "run"],
        ["--version", "run"],
        ["check-config"],
        [],
    ],
)
def test_any_other_form_is_left_to_click(argv: list[str]) -> None:
    assert daemon_invocation(argv) is None


def test_a_config_click_would_refuse_is_left_to_click(tmp_path: Path) -> None:
    assert daemon_invocation(["run", "-c", str(tmp_path)]) is None  # a folder
    done = qrgate("run", "-c", tmp_path)
    assert done.returncode == 2
    assert "is a directory" in done.stderr


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


def test_check_config_syntax_only_leaves_the_files_for_later() -> None:
    done = qrgate("check-config", "--syntax-only", "-c", "config.toml")
    assert done.returncode == 0, done.stderr
    assert "warning: commands.jwks: /etc/qrgate/command-keys.json does not exist" in done.stderr
