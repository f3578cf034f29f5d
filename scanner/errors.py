"""The one exception base of the scanner package and the errors the CLI maps to exit codes."""

from __future__ import annotations

from dataclasses import dataclass


class QrgateError(Exception):
    """Base of every error qrgate raises on purpose; the CLI prints it as one line."""

    exit_code = 1


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with the configuration: where, what was given, what is expected."""

    key: str
    message: str
    value: object = None
    has_value: bool = False

    def __str__(self) -> str:
        shown = f" = {self.value!r}" if self.has_value else ""
        return f"{self.key}{shown}: {self.message}"


class ConfigError(QrgateError):
    """The configuration cannot be used; carries every problem found, not just the first."""

    exit_code = 78  # EX_CONFIG, which systemd also knows not to restart in a loop for

    def __init__(self, problems: list[ConfigProblem], source: str = "config") -> None:
        self.problems = problems
        self.source = source
        super().__init__(self.render())

    @classmethod
    def single(cls, key: str, message: str, source: str = "config", **value: object) -> ConfigError:
        """One problem; pass `value=...` to show the offending value."""
        problem = ConfigProblem(key, message, value.get("value"), "value" in value)
        return cls([problem], source)

    def render(self) -> str:
        count = len(self.problems)
        head = f"{self.source}: {count} problem{'s' if count != 1 else ''}"
        return "\n".join([head, *(f"  {problem}" for problem in self.problems)])
