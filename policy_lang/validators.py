"""Schema records -> generated straight-line validators for the request hot path.

A generated validator only answers "valid, here is the runtime form" quickly; on any
doubt it raises, and the caller re-runs the generic converter (`policy_lang.convert`),
which is slower but names the exact field and problem. Both come from the same schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policy_lang.codegen import Constants
from policy_lang.convert import _SIMPLE, _cached_datetime, converter
from policy_lang.sandbox import run
from policy_lang.schema import DATETIME, IP, EnumType, Prim, Record
from policy_lang.values import parse_ip

# Strings of these types go straight to the cached parser (a C-level lru_cache call); any other
# value, and any string it refuses, takes the general converter or the slow path.
_FROM_TEXT = {DATETIME: _cached_datetime, IP: parse_ip}

_MISSING = object()


def generate(records: dict[str, tuple[Record, bool]]) -> dict[str, Callable[[Any], Any]]:
    """name -> (record, check required fields) ==> name -> fast validator."""
    k = Constants()
    lines: list[str] = []
    names: dict[str, str] = {}
    missing, dict_t, str_t = k.ref(_MISSING), k.ref(dict), k.ref(str)
    for number, (name, (record, full)) in enumerate(sorted(records.items())):
        fn = f"v{number}"
        names[name] = fn
        # Unknown keys are found by counting, not by a set comparison: every known key present is
        # counted as it is read, so a length above the count means something else is there.
        required_count = sum(1 for f in record.fields if full and not f.optional)
        has_optional = any(not (full and not f.optional) for f in record.fields)
        lines += [f"def {fn}(a):", f"    if type(a) is not {dict_t}:", "        raise LookupError"]
        if has_optional:
            lines.append(f"    c = {required_count}")
        converted: list[str] = []
        for f in record.fields:
            key = k.ref(f.name)
            required = full and not f.optional
            simple = isinstance(f.type, Prim) and f.type in _SIMPLE
            # Reads x; for an optional field, what follows (indented by `ind`) runs only when present.
            read = (
                [f"    x = a[{key}]"]
                if required
                else [f"    x = a.get({key}, {missing})", f"    if x is not {missing}:", "        c += 1"]
            )
            ind = "    " if required else "        "
            if isinstance(f.type, EnumType):
                # Only an exact `str` is a member name (a str subclass such as a StrEnum is not, for
                # the slow path either); a non-member is a KeyError: both send the caller to the slow path.
                ranks = k.ref({m: i for i, m in enumerate(f.type.members)})
                body = [f"if type(x) is not {str_t}:", "    raise LookupError", f"out[{key}] = {ranks}[x]"]
                converted += read + [ind + line for line in body]
                continue
            convert = f"{k.ref(converter(f.type))}(x)"
            if f.type in _FROM_TEXT:
                parse = k.ref(_FROM_TEXT[f.type])  # type: ignore[index]
                body = [
                    f"if type(x) is {str_t}:",
                    f"    out[{key}] = {parse}(x)",
                    "else:",
                    f"    out[{key}] = {convert}",
                ]
                converted += read + [ind + line for line in body]
            elif simple:  # checked in place: nothing to convert, so no copy needed for it
                pytype = k.ref(_SIMPLE[f.type])  # type: ignore[index]
                if required:  # a KeyError when missing
                    lines += [f"    x = a[{key}]", f"    if type(x) is not {pytype}:", "        raise LookupError"]
                else:
                    lines += [
                        f"    x = a.get({key}, {missing})",
                        f"    if x is not {missing}:",
                        f"        if type(x) is not {pytype}:",
                        "            raise LookupError",
                        "        c += 1",
                    ]
            else:
                converted += [*read, f"{ind}out[{key}] = {convert}"]
        count = [f"    if len(a) != {'c' if has_optional else required_count}:", "        raise LookupError"]
        if converted:
            # One copy for all conversions: the caller's dict is never written to.
            lines += [f"    out = {dict_t}(a)", *converted, *count, "    return out"]
        else:
            lines += [*count, "    return a"]
    namespace = run("\n".join(lines) + "\n", k.values, {})
    return {name: namespace[fn] for name, fn in names.items()}
