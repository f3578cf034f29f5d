"""What the help and the docs say of the commands, kept in step with the code: the
README's command table names every command `qrgate --help` lists, down to each
sub-command, and nothing that does not exist; every `qrgate cmd` example, in its help and
in docs/mqtt.md, parses into arguments the gates' own command models take, and the help's
examples use every command and argument the gates accept."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

from mqtt.commands import ARGUMENTS, Entry, check_args
from mqtt.topics import COMMANDS
from scanner.cli.cmd_cmd import EXAMPLES, cmd, parse_arguments
from scanner.cli.group import cli
from scanner.credentials.keys import create_signing_key
from tests.support import dcc

ROOT = Path(__file__).resolve().parent.parent

# --- The README's command table ---------------------------------------------------------


def command_paths(group: click.Group, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    """Every command and sub-command of `group`, as words after `qrgate`."""
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None
        yield (*path, name)
        if isinstance(command, click.Group):
            yield from command_paths(command, (*path, name))


def table_spans(markdown: str, heading: str) -> list[list[set[str]]]:
    """The code spans of the first column of the table under `heading`, each as its words,
    each word as its alternatives (`add\\|remove` is {add, remove})."""
    section = markdown.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    cells = [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| `")]
    spans = [span for cell in cells for span in re.findall(r"`([^`]+)`", cell)]
    return [[set(word.split("\\|")) for word in span.split()] for span in spans]


def names(span: list[set[str]], path: tuple[str, ...]) -> bool:
    words = ("qrgate", *path)
    return len(span) >= len(words) and all(w in alts for w, alts in zip(words, span, strict=False))


def test_the_readme_names_every_command_there_is() -> None:
    spans = table_spans((ROOT / "README.md").read_text(encoding="utf-8"), "## Commands")
    paths = list(command_paths(cli, ()))
    assert {"event-key", "gates", "fleet", "dashboard", "dcc", "outbox", "allow"} <= {
        path[0] for path in paths
    }
    unnamed = [" ".join(path) for path in paths if not any(names(s, path) for s in spans)]
    assert unnamed == [], "commands missing from README.md's command table"
    stale = [span for span in spans if not any(names(span, path[:1]) for path in paths)]
    assert stale == [], "README.md names commands that do not exist"


def test_the_readme_names_every_command_the_gates_take() -> None:
    spans = table_spans((ROOT / "README.md").read_text(encoding="utf-8"), "## Commands")
    sent = next(span for span in spans if names(span, ("cmd",)))
    assert sent[2] == set(COMMANDS) == set(ARGUMENTS)


# --- `qrgate cmd` examples ----------------------------------------------------------------


def help_examples() -> list[str]:
    """The help's examples, its "..." shorthand written out as the help says."""
    shorthand = re.search(r'"\.\.\." is (--key [^)]+)\)', EXAMPLES)
    assert shorthand is not None
    lines = [line.strip() for line in EXAMPLES.splitlines()]
    return [line.replace("...", shorthand[1]) for line in lines if line.startswith("qrgate cmd ")]


def docs_examples() -> list[str]:
    text = (ROOT / "docs" / "mqtt.md").read_text(encoding="utf-8")
    section = text.split("### Sending commands: `qrgate cmd`", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("qrgate cmd ")]


@pytest.fixture
def example_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The files the examples name with @FILE, as the centre would have them."""
    _, jwks = create_signing_key(tmp_path, "factory-1-2026", "EdDSA")
    for name in ("jwks.json", "passes-jwks.json"):
        (tmp_path / name).write_text(jwks.read_text())
    dcc.write_trust_list(tmp_path / "dsc-list.json", dcc.signer("VN"), dcc.signer("DE"))
    (tmp_path / "allowlist.json").write_text('["W-1", {"subject": "W-2", "name": "Lê Thị B"}]')
    monkeypatch.chdir(tmp_path)


def parsed(line: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """An example as `qrgate cmd` reads it: the command, its arguments as given, and as
    the gate's own model takes them (bad arguments raise)."""
    words = shlex.split(line)
    assert words[:2] == ["qrgate", "cmd"], line
    with cmd.make_context("cmd", words[2:]) as context:
        name, given = context.params["name"], parse_arguments(context.params["arguments"])
        assert context.params["key_path"] is not None
    return name, given, check_args(name, given)


@pytest.mark.usefixtures("example_files")
@pytest.mark.parametrize("source", [help_examples, docs_examples])
def test_every_example_parses_into_arguments_the_gates_take(source: Any) -> None:
    examples = source()
    assert len(examples) >= 10
    for line in examples:
        parsed(line)


def used_arguments(name: str, given: dict[str, Any]) -> Iterator[str]:
    """`command.argument` for each argument given, `allowlist.entry.field` for each field
    of an allowlist entry written out."""
    for key, value in given.items():
        yield f"{name}.{key}"
        if name == "allowlist" and key in ("add", "entries") and isinstance(value, list):
            yield from (
                f"allowlist.entry.{field}" for e in value if isinstance(e, dict) for field in e
            )


@pytest.mark.usefixtures("example_files")
def test_the_help_shows_every_command_and_argument() -> None:
    examples = [parsed(line) for line in help_examples()]
    assert {name for name, _, _ in examples} == set(ARGUMENTS) == set(COMMANDS)
    shown = {used for name, given, _ in examples for used in used_arguments(name, given)}
    wanted = {
        f"{name}.{field}" for name, model in ARGUMENTS.items() for field in model.__struct_fields__
    }
    wanted |= {f"allowlist.entry.{field}" for field in Entry.__struct_fields__}
    assert sorted(wanted - shown) == []
    assert sorted(shown - wanted) == []


def test_the_help_shows_its_examples_as_written() -> None:
    shown = cmd.get_help(click.Context(cmd, info_name="cmd")).splitlines()
    written = [line for line in EXAMPLES.splitlines() if line.lstrip().startswith("qrgate cmd ")]
    assert [line for line in shown if line.lstrip().startswith("qrgate cmd ")] == [
        "  " + line for line in written
    ]
