"""JSON values -> runtime values, checked against a schema type.

Used for request attributes, entity data files and typed constants. A converter is built
once per type and called per value; it raises `ConversionError` naming the exact field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policy_lang.schema import (
    BOOL, DATETIME, DURATION, INT, IP, STRING, EntityType, EnumType, MapOf, Prim, Record, SetOf, Type,
)
from policy_lang.values import parse_datetime, parse_duration, parse_ip

Converter = Callable[[Any, str], Any]

MAX_DEPTH = 32


class ConversionError(ValueError):
    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "bool", int: "int", float: "number", str: "string", list: "list", dict: "object"}.get(
        type(value), type(value).__name__
    )


def _string(value: Any, path: str) -> Any:
    if type(value) is str:
        return value
    raise ConversionError(path, f"expected string, found {_json_type(value)}")


def _int(value: Any, path: str) -> Any:
    if type(value) is int:
        return value
    raise ConversionError(path, f"expected int, found {_json_type(value)}")


def _bool(value: Any, path: str) -> Any:
    if type(value) is bool:
        return value
    raise ConversionError(path, f"expected bool, found {_json_type(value)}")


def _ip(value: Any, path: str) -> Any:
    if type(value) is not str:
        raise ConversionError(path, f"expected ip string, found {_json_type(value)}")
    try:
        return parse_ip(value)
    except ValueError as exc:
        raise ConversionError(path, str(exc)) from None


def _datetime(value: Any, path: str) -> Any:
    if type(value) in (int, float):
        return float(value)
    if type(value) is not str:
        raise ConversionError(path, f"expected datetime string or epoch seconds, found {_json_type(value)}")
    try:
        return parse_datetime(value)
    except ValueError as exc:
        raise ConversionError(path, str(exc)) from None


def _duration(value: Any, path: str) -> Any:
    if type(value) in (int, float):
        return float(value)
    if type(value) is not str:
        raise ConversionError(path, f"expected duration such as \"15m\" or seconds, found {_json_type(value)}")
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConversionError(path, str(exc)) from None


_PRIMS: dict[Prim, Converter] = {
    STRING: _string, INT: _int, BOOL: _bool, IP: _ip, DATETIME: _datetime, DURATION: _duration,
}


def converter(t: Type) -> Converter:
    if isinstance(t, Prim):
        return _PRIMS[t]
    if isinstance(t, EnumType):
        return _enum(t)
    if isinstance(t, SetOf):
        return _set(converter(t.element))
    if isinstance(t, MapOf):
        return _map(converter(t.value))
    if isinstance(t, Record):
        return record_converter(t)
    if isinstance(t, EntityType):
        return record_converter(t.record)
    raise TypeError(f"no JSON form for {t}")


def _enum(t: EnumType) -> Converter:
    ranks = {m: i for i, m in enumerate(t.members)}
    shown = ", ".join(t.members)

    def convert(value: Any, path: str) -> Any:
        if type(value) is str:
            rank = ranks.get(value)
            if rank is not None:
                return rank
        raise ConversionError(path, f"expected one of {shown}, found {value!r}")

    return convert


def _set(element: Converter) -> Converter:
    def convert(value: Any, path: str) -> Any:
        if type(value) is not list:
            raise ConversionError(path, f"expected list, found {_json_type(value)}")
        return frozenset(element(v, f"{path}[{i}]") for i, v in enumerate(value))

    return convert


def _map(value_conv: Converter) -> Converter:
    def convert(value: Any, path: str) -> Any:
        if type(value) is not dict:
            raise ConversionError(path, f"expected object, found {_json_type(value)}")
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise ConversionError(path, "map keys must be strings")
            out[k] = value_conv(v, f"{path}.{k}")
        return out

    return convert


def record_converter(record: Record, *, partial: bool = False) -> Converter:
    """Check every field; unknown fields are errors. `partial` skips the required-field check
    (used for attributes that another source, such as entity data, may complete)."""
    fields = {f.name: (converter(f.type), f.optional) for f in record.fields}
    required = tuple(f.name for f in record.fields if not f.optional)
    known = ", ".join(sorted(fields)) or "none"

    def convert(value: Any, path: str) -> Any:
        if type(value) is not dict:
            raise ConversionError(path, f"expected object, found {_json_type(value)}")
        out = {}
        for k, v in value.items():
            spec = fields.get(k)
            if spec is None:
                raise ConversionError(f"{path}.{k}", f"unknown attribute (known: {known})")
            out[k] = spec[0](v, f"{path}.{k}")
        if not partial:
            for name in required:
                if name not in out:
                    raise ConversionError(f"{path}.{name}", "missing required attribute")
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
