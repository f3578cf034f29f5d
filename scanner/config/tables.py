"""Convert TOML tables into msgspec Structs, every problem named by its key path.

msgspec stops at the first error it meets; a technician fixing a config file wants all of
them at once. So each key is converted on its own against its field's annotated type
(bounds and patterns included), each table then builds its Struct, whose `__post_init__`
checks the rules beyond one key's type, and every failure becomes a `ConfigProblem` in
words: "expected an integer", "must be >= 64", "expected one of: in, out".

Conversion is msgspec's lax mode, which takes what the config took when pydantic read it
(so no file that worked stops working): `800.0` or `"800"` where a whole number goes, `"30"`
for a number, `1`, `0`, `"true"` or `"false"` for a switch; never `true` for a number, a
fraction for a whole number, or a number for a text.
"""

from __future__ import annotations

import functools
import math
import operator
import re
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import msgspec
from msgspec import inspect

from scanner.errors import ConfigProblem

# A rule on one key's converted value: what is wrong with it, or None.
KeyRule = Callable[[Any], str | None]


class RuleError(ValueError):
    """A table's rule is broken: `message` says how (shown after the key of a one-key rule)."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.message = message


class Table(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A config table: unknown keys and mutation are errors, and its rules hold whenever
    one is built (from TOML, by hand, or by `msgspec.structs.replace`).

    Subclasses repeat `kw_only=True` (msgspec applies it per class); `key_rules` and
    `rule_across_keys` hold what a type cannot say."""

    key_rules: ClassVar[Mapping[str, KeyRule]] = {}

    def __post_init__(self) -> None:
        for key, rule in self.key_rules.items():
            message = rule(getattr(self, key))
            if message is not None:
                raise RuleError(message, key)
        message = self.rule_across_keys()
        if message is not None:
            raise RuleError(message)

    def rule_across_keys(self) -> str | None:
        """What is wrong between this table's keys, or None."""
        return None


T = TypeVar("T", bound=Table)


def convert_table(
    cls: type[T], data: object, where: str = ""
) -> tuple[T | None, list[ConfigProblem]]:
    """`data` as a `cls`, or None and every problem found in it, keys prefixed by `where`."""
    if not isinstance(data, Mapping):
        problem = ConfigProblem(where or "config", "expected a table (a [section])", data, True)
        return None, [problem]
    fields = table_fields(cls)
    values: dict[str, Any] = {}
    problems = [
        ConfigProblem(key_path(where, name), "required key is missing")
        for name, field in fields.items()
        if field.required and name not in data
    ]
    for key, value in data.items():
        path = key_path(where, key)
        if key not in fields:
            problems.append(ConfigProblem(path, "unknown key", value, has_value=True))
            continue
        values[key], found = convert_key(fields[key].type, cls.key_rules.get(key), value, path)
        problems += found
    if problems:
        return None, problems
    try:
        return cls(**values), []
    except RuleError as broken:  # across keys: each key's own rule was checked above
        return None, [ConfigProblem(where or "config", broken.message)]


@functools.cache
def table_fields(cls: type[Table]) -> dict[str, msgspec.structs.FieldInfo]:
    """A table's fields by name, looked up once: msgspec resolves the annotations anew on
    every call, compiling each one."""
    return {field.name: field for field in msgspec.structs.fields(cls)}


def convert_key(
    kind: object, rule: KeyRule | None, value: object, path: str
) -> tuple[Any, list[ConfigProblem]]:
    """One key converted to its field's `kind` and its own rule checked, or its problems."""
    if isinstance(kind, type) and issubclass(kind, Table):
        return convert_table(kind, value, path)
    converted, problems = convert_value(kind, value, path)
    message = None if problems or rule is None else rule(converted)
    if message is not None:
        problems = [ConfigProblem(path, message, value, has_value=True)]
    return converted, problems


def convert_value(kind: object, value: object, path: str) -> tuple[Any, list[ConfigProblem]]:
    try:
        return msgspec.convert(value, kind, strict=False, dec_hook=from_toml), []
    except msgspec.ValidationError as error:
        return None, describe(kind, value, path, str(error))


def from_toml(kind: type, value: object) -> object:
    """The types msgspec does not convert to by itself: a path is a string in TOML."""
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise TypeError(f"Expected `{kind.__name__}`, got `{type(value).__name__}`")


def key_path(where: str, key: object) -> str:
    return f"{where}.{key}" if where else str(key)


def describe(kind: object, value: object, path: str, fallback: str) -> list[ConfigProblem]:
    """The problems of a value msgspec refused as `kind`: each bad item of a list on its
    own, anything else as one problem (in msgspec's words where ours have none)."""
    info, rule = plain(inspect.type_info(kind))
    if isinstance(info, inspect.ListType) and isinstance(value, list):
        message = length_problem(info, len(value), "items")
        item_kind = list_item_kind(kind)
        if message is None and item_kind is not None:
            items = [convert_value(item_kind, item, f"{path}.{i}") for i, item in enumerate(value)]
            problems = [problem for _, found in items for problem in found]
            if problems:
                return problems
    if isinstance(info, inspect.LiteralType):
        message = "expected one of: " + ", ".join(str(choice) for choice in choices(kind))
    else:
        message = expectation(info, value, rule) or fallback
    return [ConfigProblem(path, message, value, has_value=not isinstance(value, dict))]


def plain(info: inspect.Type) -> tuple[inspect.Type, str | None]:
    """The type behind `X | None` (TOML has no null, so X is meant) and behind metadata,
    with the metadata's description (the rule a pattern stands for)."""
    if isinstance(info, inspect.UnionType):
        meant = [part for part in info.types if not isinstance(part, inspect.NoneType)]
        if len(meant) == 1:
            return plain(meant[0])
    if isinstance(info, inspect.Metadata):
        schema = info.extra_json_schema or {}
        return plain(info.type)[0], schema.get("description")
    return info, None


def choices(kind: object) -> tuple[object, ...]:
    """The values of the Literal in `kind`, in the order they were declared."""
    if typing.get_origin(kind) is typing.Literal:
        return typing.get_args(kind)
    return next((found for part in typing.get_args(kind) if (found := choices(part))), ())


def list_item_kind(kind: object) -> object | None:
    while typing.get_origin(kind) is typing.Annotated:
        kind = typing.get_args(kind)[0]
    if typing.get_origin(kind) is not list:
        return None
    item: object = typing.get_args(kind)[0]
    return item


def expectation(info: inspect.Type, value: object, rule: str | None) -> str | None:
    """What was expected instead of `value`, in words, or None if we have no words."""
    if isinstance(info, inspect.BoolType):
        return "expected true or false"
    if isinstance(info, inspect.IntType):
        return integer_problem(info, value)
    if isinstance(info, inspect.FloatType):
        return number_problem(info, value)
    if isinstance(info, inspect.StrType):
        return string_problem(info, value, rule)
    if isinstance(info, inspect.ListType):
        return (
            length_problem(info, len(value), "items")
            if isinstance(value, list)
            else "expected a list"
        )
    is_path = isinstance(info, inspect.CustomType) and info.cls is Path
    return "expected a file path (a string)" if is_path else None


def integer_problem(info: inspect.IntType, value: object) -> str | None:
    whole = loosely(value, int)
    if whole is not None:
        return bound_problem(info, whole)
    number = loosely(value, float)
    if number is not None and math.isfinite(number):
        return "expected an integer, not a fraction"
    return "expected an integer"


def number_problem(info: inspect.FloatType, value: object) -> str | None:
    number = loosely(value, float)
    return "expected a number" if number is None else bound_problem(info, number)


def loosely(value: object, kind: type[float]) -> float | None:
    """`value` as the plain `kind` (no bounds), as the lax conversion reads it, or None."""
    try:
        number: float = msgspec.convert(value, kind, strict=False)
    except msgspec.ValidationError:
        return None
    return number


def string_problem(info: inspect.StrType, value: object, rule: str | None) -> str | None:
    if not isinstance(value, str):
        return "expected a string"
    message = length_problem(info, len(value), "characters")
    if message is None and info.pattern is not None and not re.search(info.pattern, value):
        message = f"expected {rule}" if rule else f"must match {info.pattern}"
    return message


BOUNDS = (
    ("ge", operator.ge, ">="),
    ("gt", operator.gt, ">"),
    ("le", operator.le, "<="),
    ("lt", operator.lt, "<"),
)


def bound_problem(info: inspect.IntType | inspect.FloatType, value: float) -> str | None:
    for name, holds, sign in BOUNDS:
        limit = getattr(info, name)
        if limit is not None and not holds(value, limit):  # NaN holds no bound
            return f"must be {sign} {limit}"
    return None


def length_problem(info: inspect.StrType | inspect.ListType, length: int, unit: str) -> str | None:
    if info.min_length == 1 and length == 0:
        return "must not be empty"
    if info.min_length is not None and length < info.min_length:
        return f"needs at least {info.min_length} {unit}"
    if info.max_length is not None and length > info.max_length:
        return f"must be at most {info.max_length} {unit}"
    return None
