"""pydantic's validation errors in a profile's own words: the field as the YAML has it,
and what to give instead.

pydantic's location names more than any file holds: each member of a union it tried
(``literal['host','off']``, ``BuildUser``, ``function-after[...]``) and ``[key]`` for a
mapping's key; and its messages speak of Python ("Input should be a valid dictionary or
instance of BuildUser", ``<class 'pathlib.Path'>``). Someone editing YAML needs the key
they wrote and what it accepts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic_core import ErrorDetails

from orchestrator.profiles.values import ACCEPTED

FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]*")  # every field of the models is spelt so
KEY = "[key]"  # pydantic's word for a mapping's key, where the key itself is wrong

# What each kind of pydantic error asks for, as someone writing YAML would put it.
_WANTED = {
    "int_type": "give a whole number",
    "int_parsing": "give a whole number",
    "int_from_float": "give a whole number",
    "float_type": "give a number",
    "float_parsing": "give a number",
    "bool_type": "give true or false",
    "bool_parsing": "give true or false",
    "string_type": "give a string",
    "path_type": "give a path",
    "dict_type": "give a mapping",
    "model_type": "give a mapping",
    "model_attributes_type": "give a mapping",
    "tuple_type": "give a list",
    "list_type": "give a list",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "give at least {}"),
    "greater_than": ("gt", "give more than {}"),
    "less_than_equal": ("le", "give at most {}"),
    "less_than": ("lt", "give less than {}"),
}
_OWN_WORDS = ("value_error", "missing", "extra_forbidden")  # never replaced by ACCEPTED


@dataclass(frozen=True)
class Located:
    """Where an error is, as the user wrote it."""

    field: tuple[int | str, ...]  # the keys and indexes down to it; a missing key's name too
    member: tuple[int, str] | None  # a union member's tag and how deep in `field` it came
    key: bool  # the mapping's key is wrong, not its value


@dataclass(frozen=True)
class Problem:
    """The one error a line reports, and how many others there are."""

    error: ErrorDetails
    field: tuple[int | str, ...]
    wanted: str
    more: int


def locate(data: object, loc: tuple[int | str, ...]) -> Located:
    """Tell pydantic's tags from the user's keys: a key is in the data, or is a field's
    name (a missing one is not in the data); a tag is neither."""
    field: list[int | str] = []
    member: tuple[int, str] | None = None
    key = False
    for part in loc:
        if isinstance(data, list):
            data = dict(enumerate(data))
        if isinstance(data, Mapping) and part in data:
            data = data[part]
            field.append(part)
        elif part == KEY:
            key = True
        elif isinstance(part, str) and not FIELD_NAME.fullmatch(part):
            member = member or (len(field), part)
        else:
            field.append(part)
            data = None
    return Located(tuple(field), member, key)


def first_problem(errors: list[ErrorDetails], data: object) -> Problem:
    """The first error, with a union's members taken as one: the member a mapping was
    meant for when there is one (its own field is named), else what the union accepts."""
    located = [locate(data, error["loc"]) for error in errors]
    groups = len({_group(index, where) for index, where in enumerate(located)})
    first = located[0]
    union = [i for i, where in enumerate(located) if _group(i, where) == _group(0, first)]
    if first.member is None or len({located[i].member for i in union}) == 1:
        return Problem(errors[0], first.field, _wanted(errors[0], first), groups - 1)
    depth = first.member[0]
    base = first.field[:depth]
    inside = [i for i in union if len(located[i].field) > depth]
    if isinstance(errors[0]["input"], Mapping) and inside:
        tag = located[inside[0]].member
        chosen = [i for i in union if located[i].member == tag]
        error, where = errors[inside[0]], located[inside[0]]
        return Problem(error, where.field, _wanted(error, where), groups + len(chosen) - 2)
    wanted = ACCEPTED.get(_dotted(base)) or " or ".join(
        dict.fromkeys(_wanted(errors[i], located[i]) for i in union)
    )
    return Problem(errors[0], base, wanted, groups - 1)


def _group(index: int, where: Located) -> tuple[object, ...]:
    """The members of one union are one error; any other error is one of its own."""
    if where.member is None:
        return ("alone", index)
    depth = where.member[0]
    return ("union", depth, where.field[:depth])


def _dotted(field: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in field)


def _wanted(error: ErrorDetails, where: Located) -> str:
    """What to give instead, in the words of the YAML: never pydantic's own."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "value_error":  # our validators' words, without pydantic's "Value error, "
        return str(ctx.get("error", error["msg"]))
    accepted = ACCEPTED.get(_dotted(where.field))
    if accepted and kind not in _OWN_WORDS and not where.key:
        return accepted
    if where.key and kind == "string_type":
        return "a key must be a string: put it in quotes"
    return _with_context(kind, ctx) or _WANTED.get(kind, error["msg"])


def _with_context(kind: str, ctx: dict[str, object]) -> str | None:
    """The kinds whose words need the values pydantic names: a literal's, a bound."""
    if kind == "literal_error":
        return "give " + re.sub(r"'([^']*)'", r"\1", str(ctx.get("expected", "")))
    if kind in _BOUNDS:
        name, wording = _BOUNDS[kind]
        return wording.format(_number(ctx.get(name)))
    if kind == "string_pattern_mismatch":
        return f"give a value matching {ctx.get('pattern')}"
    return None


def _number(value: object) -> str:
    """``0`` rather than ``0.0``: the bound as a person would write it."""
    return f"{value:g}" if isinstance(value, float) else str(value)
