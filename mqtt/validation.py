"""msgspec's validation errors in the words of a reply: where, as a dotted path
(`ranges.0.0`, `add.0.birth_date`), and what is wrong (`must be >= 1`)."""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Callable

import msgspec
from msgspec import inspect

# A float bound that lets every finite number through, and neither NaN nor an infinity
# (msgspec takes both for a float unless it is bounded).
FINITE = msgspec.Meta(ge=-sys.float_info.max, le=sys.float_info.max)
FINITE_BOUNDS = {repr(-sys.float_info.max), repr(sys.float_info.max)}

STEP = re.compile(r"\.([^.\[`]+)|\[(\d+|\.\.\.)\]")  # `.field`, `[0]`, `[...]` (a dict's value)

TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "a boolean",
    "null": "null",
    "array": "a list",
    "object": "an object",
    "date": "a date (YYYY-MM-DD)",
}
SIZE_WORDS = {">=": "at least", "<=": "at most"}
NOT_A_CHOICE = "may not be "


def explained(error: msgspec.ValidationError, model: type) -> str:
    """`path: what is wrong`, or only what is wrong when it is the whole value; a value
    that is none of a fixed few is told which (msgspec's message does not say)."""
    path, message = located(str(error))
    if message.startswith(NOT_A_CHOICE):
        allowed = choices(model, path.split(".") if path else [])
        if allowed:
            message += f": expected one of {', '.join(map(str, allowed))}"
    return f"{path}: {message}" if path else message


def located(text: str) -> tuple[str, str]:
    """A msgspec error message as (dotted path, message in our words)."""
    message, at, where = text.rpartition(" - at ")
    if not at:
        message, where = text, ""
    steps = [name or index.replace("...", "*") for name, index in STEP.findall(where)]
    if where.startswith("`key` in "):
        return ".".join(steps), "every key must be a string"
    for pattern, words in WORDING:
        found = pattern.fullmatch(message)
        if found:
            field, message = words(found)
            steps += [field] if field else []
            break
    return ".".join(steps), message


def bound(found: re.Match[str]) -> tuple[str, str]:
    if found[2] in FINITE_BOUNDS:
        return "", "must be a finite number"
    return "", f"must be {found[1]} {found[2]}"


def pattern(found: re.Match[str]) -> tuple[str, str]:
    return "", f"must match {ast.literal_eval(found[1])}"


def size(unit: str) -> Callable[[re.Match[str]], tuple[str, str]]:
    def words(found: re.Match[str]) -> tuple[str, str]:
        count = int(found[2])
        return "", f"must have {SIZE_WORDS[found[1]]} {count} {unit}{'s' * (count != 1)}"

    return words


def of_field(words: str) -> Callable[[re.Match[str]], tuple[str, str]]:
    return lambda found: (found[1], words)


def types(found: re.Match[str]) -> tuple[str, str]:
    wanted = " or ".join(TYPE_WORDS.get(name, name) for name in found[1].split(" | "))
    return "", f"must be {wanted}, not {TYPE_WORDS.get(found[2], found[2])}"


# msgspec's wording of each failed check (msgspec/_core.c), and ours: a function of the
# match that returns the field to add to the path (or "") and the message.
WORDING: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[str, str]]], ...] = (
    (re.compile(r"Expected `(?:int|float)` (>=|>|<=|<) (\S+)"), bound),
    (re.compile(r"Expected `str` matching regex (.+)"), pattern),
    (re.compile(r"Expected `str` of length (>=|<=) (\d+)"), size("character")),
    (re.compile(r"Expected `(?:array|object)` of length (>=|<=) (\d+)"), size("item")),
    (re.compile(r"Expected `([^`]+)`, got `([^`]+)`"), types),
    (re.compile(r"Invalid enum value (.+)"), lambda found: ("", f"{NOT_A_CHOICE}{found[1]}")),
    (
        re.compile(r"Invalid RFC3339 encoded date"),
        lambda _: ("", "must be a day that exists, written YYYY-MM-DD"),
    ),
    (re.compile(r"Object contains unknown field `(.+)`"), of_field("unknown field")),
    (re.compile(r"Object missing required field `(.+)`"), of_field("required")),
)


def choices(model: type, steps: list[str]) -> tuple[object, ...]:
    """The values allowed where `steps` (a dotted path's parts) lead in `model`, when a
    Literal is what is there; () when it is not, or the path leads nowhere."""
    found: list[inspect.Type] = [inspect.type_info(model)]
    for step in steps:
        found = [inner for info in found for inner in step_into(info, step)]
    return tuple(
        value
        for info in found
        for part in alternatives(info)
        if isinstance(part, inspect.LiteralType)
        for value in part.values
    )


def step_into(info: inspect.Type, step: str) -> list[inspect.Type]:
    """What a field name or an item index leads to in a type (in each of a union's
    alternatives that has one)."""
    inner: list[inspect.Type] = []
    for part in alternatives(info):
        if isinstance(part, inspect.StructType):
            inner += [field.type for field in part.fields if field.encode_name == step]
        elif isinstance(part, inspect.ListType) and step.isdigit():
            inner.append(part.item_type)
        elif isinstance(part, inspect.DictType):
            inner.append(part.value_type)
    return inner


def alternatives(info: inspect.Type) -> list[inspect.Type]:
    """A type's alternatives, through unions and the metadata around them."""
    if isinstance(info, inspect.Metadata):
        return alternatives(info.type)
    if isinstance(info, inspect.UnionType):
        return [part for member in info.types for part in alternatives(member)]
    return [info]
