"""What a check found: a status, the finding in words, and the fix."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["PASS", "WARN", "FAIL"]


@dataclass(frozen=True, slots=True)
class Finding:
    status: Status
    text: str
    fix: str | None = None  # what to do, in plain words; for WARN and FAIL


def passed(text: str) -> Finding:
    return Finding("PASS", text)


def warning(text: str, fix: str | None = None) -> Finding:
    return Finding("WARN", text, fix)


def failure(text: str, fix: str) -> Finding:
    return Finding("FAIL", text, fix)


@dataclass(frozen=True, slots=True)
class Result:
    check: str
    finding: Finding


def counted(count: int, word: str) -> str:
    """`3 keys`, `1 key`."""
    return f"{count} {word}{'' if count == 1 else 's'}"
