"""JSON values -> runtime values, checked against a schema type.

Used for request attributes, entity data files and typed constants. A converter is built
once per type and called per value. On failure it raises `ConversionError`; the path to
the bad field is assembled only then, as the error passes back out through the records,
so the common (valid) case builds no strings at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from policy_lang.schema import (
    BOOL,
    DATETIME,
    DURATION,
    INT,
    IP,
    STRING,
    EntityType,
    EnumType,
    MapOf,
    Prim,
    Record,
    SetOf,
    Type,
)
from policy_lang.values import parse_datetime, parse_duration, parse_ip

Converter = Callable[[Any], Any]

MAX_DEPTH = 32


class ConversionError(ValueError):
    def __init__(self, message: str, parts: tuple[str, ...] = ()):
        super().__init__(message)
        self.message = message
        self.parts = parts

    def under(self, part: str) -> ConversionError:
        return ConversionError(self.message, (part, *self.parts))

    def path(self, root: str) -> str:
        out = root
        for part in self.parts:
            out = f"{out}{part}" if part.startswith("[") else f"{out}.{part}" if out else part
        return out


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "number", str: "string", list: "list", dict: "object"}.get(
        type(value), type(value).__name__
    )


_SIMPLE: dict[Prim, type] = {STRING: str, INT: int, BOOL: bool}
_EMPTY_SET: frozenset[Any] = frozenset()
_SCHEMA_NAME = {str: "string", int: "int", bool: "bool"}


def _simple(pytype: type, name: str) -> Converter:
    def convert(value: Any) -> Any:
        if type(value) is pytype:
            return value
        raise ConversionError(f"expected {name}, found {_json_type(value)}")

    return convert


def _ip(value: Any) -> Any:
    if type(value) is not str:
        raise ConversionError(f"expected ip string, found {_json_type(value)}")
    try:
        return parse_ip(value)
    except ValueError as exc:
        raise ConversionError(str(exc)) from None


_cached_datetime = lru_cache(maxsize=8192)(parse_datetime)


def _finite(value: int | float, what: str) -> float:
    try:
        result = float(value)
    except OverflowError:
        raise ConversionError(f"{what} is out of range") from None
    if not math.isfinite(result):  # NaN compares false to everything: a forbid would never apply
        raise ConversionError(f"{what} must be a finite number")
    return result


def _datetime(value: Any) -> Any:
    if type(value) in (int, float):
        return _finite(value, "epoch seconds")
    if type(value) is not str:
        raise ConversionError(f"expected datetime string or epoch seconds, found {_json_type(value)}")
    try:
        return _cached_datetime(value)
    except ValueError as exc:
        raise ConversionError(str(exc)) from None


def _duration(value: Any) -> Any:
    if type(value) in (int, float):
        return _finite(value, "a duration in seconds")
    if type(value) is not str:
        raise ConversionError(f'expected duration such as "15m" or seconds, found {_json_type(value)}')
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConversionError(str(exc)) from None


def converter(t: Type) -> Converter:
    if isinstance(t, Prim):
        if t in _SIMPLE:
            return _simple(_SIMPLE[t], t.name)
        return {IP: _ip, DATETIME: _datetime, DURATION: _duration}[t]
    if isinstance(t, EnumType):
        return _enum(t)
    if isinstance(t, SetOf):
        return _set(t.element)
    if isinstance(t, MapOf):
        sets_of = _SIMPLE.get(t.value.element) if isinstance(t.value, SetOf) else None  # type: ignore[call-overload,arg-type]
        return _map(converter(t.value), sets_of)
    if isinstance(t, Record):
        return record_converter(t)
    if isinstance(t, EntityType):
        return record_converter(t.record)
    raise TypeError(f"no JSON form for {t}")


def _enum(t: EnumType) -> Converter:
    ranks = {m: i for i, m in enumerate(t.members)}
    shown = ", ".join(t.members)

    def convert(value: Any) -> Any:
        if type(value) is str:
            rank = ranks.get(value)
            if rank is not None:
                return rank
        raise ConversionError(f"expected one of {shown}, found {value!r}")

    return convert


def _set(element_type: Type) -> Converter:
    element = converter(element_type)
    pytype = _SIMPLE.get(element_type) if isinstance(element_type, Prim) else None

    def convert(value: Any) -> Any:
        if type(value) is not list:
            raise ConversionError(f"expected list, found {_json_type(value)}")
        if pytype is not None:  # the common set<string>: no per-element conversion
            for item in value:
                if type(item) is not pytype:
                    break
            else:
                return frozenset(value)
        out = []
        for i, v in enumerate(value):
            try:
                out.append(element(v))
            except ConversionError as exc:
                raise exc.under(f"[{i}]") from None
        return frozenset(out)

    return convert


def _map(value_conv: Converter, sets_of: type | None = None) -> Converter:
    """`sets_of`: the element type when values are sets of a simple type (`map<string,
    set<string>>`, roles per tenant), which are then checked in one loop, without a call per value."""

    def convert(value: Any) -> Any:
        if type(value) is not dict:
            raise ConversionError(f"expected object, found {_json_type(value)}")
        if sets_of is not None:
            out: dict[str, Any] = {}
            for k, v in value.items():
                if type(k) is not str or type(v) is not list:
                    break
                for item in v:
                    if type(item) is not sets_of:
                        break
                else:
                    out[k] = frozenset(v)
                    continue
                break
            else:
                return out
        else:
            try:  # the valid case in one comprehension
                out = {k: value_conv(v) for k, v in value.items()}
            except ConversionError:
                pass
            else:
                if all(type(k) is str for k in out):
                    return out
        for k, v in value.items():
            if type(k) is not str:  # JSON keys are; a dict built in-process may hold others
                raise ConversionError(f"expected string key, found {_json_type(k)}")
            try:
                value_conv(v)
            except ConversionError as exc:
                raise exc.under(k) from None
        raise AssertionError("unreachable")  # pragma: no cover

    return convert


def record_converter(record: Record, *, partial: bool = False) -> Converter:
    """Check every field; unknown fields are errors. `partial` skips the required-field check
    (for attributes that another source, such as entity data, may complete)."""
    simple: dict[str, type] = {}
    complex_: dict[str, Converter] = {}
    for f in record.fields:
        if isinstance(f.type, Prim) and f.type in _SIMPLE:
            simple[f.name] = _SIMPLE[f.type]
        else:
            complex_[f.name] = converter(f.type)
    required = tuple(f.name for f in record.fields if not f.optional)
    known = ", ".join(sorted(f.name for f in record.fields)) or "none"

    def convert(value: Any) -> Any:
        if type(value) is not dict:
            raise ConversionError(f"expected object, found {_json_type(value)}")
        out = {}
        for k, v in value.items():
            pytype = simple.get(k)
            if pytype is not None:
                if type(v) is not pytype:
                    raise ConversionError(f"expected {_SCHEMA_NAME[pytype]}, found {_json_type(v)}", (k,))
                out[k] = v
                continue
            conv = complex_.get(k)
            if conv is None:
                raise ConversionError(f"unknown attribute (known: {known})", (str(k),))
            try:
                out[k] = conv(v)
            except ConversionError as exc:
                raise exc.under(k) from None
        if not partial:
            for name in required:
                if name not in out:
                    raise ConversionError("missing required attribute", (name,))
        return out

    return convert


def check_depth(value: Any, limit: int = MAX_DEPTH) -> bool:
    """True when a JSON value nests no deeper than `limit` (iteratively: no recursion limit)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return False
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    return True
