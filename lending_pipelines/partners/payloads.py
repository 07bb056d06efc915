"""What every partner's pydantic payload models share: the base model, and the translation of a
`pydantic.ValidationError` into the three facts each partner's own payload error names —
where (the wire field, dotted), the value found, and what was expected."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import pydantic
from pydantic_core import PydanticCustomError

MISSING = object()  # the value of a field that was not in the payload at all

# pydantic's error types, as the phrase our messages use after "expected".
_PHRASES = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "string_type": "a string",
    "string_too_short": "a non-empty string",
    "decimal_type": "a decimal",
    "decimal_parsing": "a decimal",
    "finite_number": "a decimal",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "dict_type": "an object",
    "list_type": "a list",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
}
_TYPE_PHRASES: dict[Any, str] = {
    int: "an integer",
    str: "a string",
    Decimal: "a decimal",
    bool: "true or false",
    date: "a date",
    dict: "an object",
    list: "a list",
}


class Payload(pydantic.BaseModel):
    """A partner payload: read by its wire names only, unknown fields ignored (partners add
    fields), immutable once read."""

    model_config = pydantic.ConfigDict(extra="ignore", frozen=True)


def refuse(expected: str) -> PydanticCustomError:
    """The error a field validator raises: `expected` becomes the phrase after "expected"."""
    return PydanticCustomError("payload", "{expected}", {"expected": expected})


@dataclass(frozen=True)
class FieldProblem:
    """The first field of a payload that is not what the model needs."""

    field: str  # wire names, dotted; list positions as [i]
    value: Any  # MISSING when the field was absent
    expected: str


def first_problem(model: type[pydantic.BaseModel], exc: pydantic.ValidationError) -> FieldProblem:
    """The first error of `exc` (raised validating `model`) as field, value and expectation.
    A field annotated with `Expect(...)` is described by that phrase whatever went wrong."""
    error = exc.errors(include_url=False)[0]
    loc = tuple(error["loc"])
    field = ""
    for part in loc:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    kind = error["type"]
    info, annotation = _field_at(model, loc)
    declared = _declared(info)
    if declared is not None:
        expected = declared
    elif kind == "payload":
        expected = str(error["ctx"]["expected"])
    elif kind == "missing":
        expected = _annotation_phrase(annotation)
    else:
        expected = _PHRASES.get(kind, error["msg"])
    value = MISSING if kind == "missing" else error["input"]
    return FieldProblem(field or "body", value, expected)


def _field_at(model: type[pydantic.BaseModel], loc: tuple[Any, ...]) -> tuple[Any, Any]:
    """The FieldInfo (None for a list item) and annotation at `loc` (wire names) in `model`."""
    info: Any = None
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(part, int):
            args = typing.get_args(annotation)
            info, annotation = None, (args[0] if args else Any)
            continue
        if not (isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel)):
            return None, Any
        fields = annotation.model_fields
        info = next((f for name, f in fields.items() if part in (name, f.alias)), None)
        if info is None:
            return None, Any
        annotation = info.annotation
    return info, annotation


def _declared(info: Any) -> str | None:
    """The `Expect` phrase of a field, in its metadata or inside `Annotated[...] | None`."""
    if info is None:
        return None
    found = [m for m in info.metadata if isinstance(m, Expect)]
    pending = [info.annotation]
    while pending and not found:
        annotation = pending.pop()
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            found = [m for m in typing.get_args(annotation)[1:] if isinstance(m, Expect)]
        elif origin in (typing.Union, types.UnionType):
            pending.extend(typing.get_args(annotation))
    return found[0].expected if found else None


def _annotation_phrase(annotation: Any) -> str:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return "an object"
    origin = typing.get_origin(annotation) or annotation
    return _TYPE_PHRASES.get(origin, "a value")


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X, `Annotated[X, ...]` -> X."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = args[0] if len(args) == 1 else Any
        else:
            return annotation


@dataclass(frozen=True)
class Expect:
    """Field metadata (`Annotated[date, Expect("a date as [yyyy, m, d]")]`): the phrase after
    "expected" in any error about this field."""

    expected: str
