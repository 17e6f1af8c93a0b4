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
        known = k.ref(frozenset(f.name for f in record.fields))
        lines += [
            f"def {fn}(a):",
            f"    if type(a) is not {dict_t} or not a.keys() <= {known}:",
            "        raise LookupError",
        ]
        converted: list[str] = []
        for f in record.fields:
            key = k.ref(f.name)
            required = full and not f.optional
            simple = isinstance(f.type, Prim) and f.type in _SIMPLE
            if isinstance(f.type, EnumType):
                ranks = {m: i for i, m in enumerate(f.type.members)}
                convert = f"{k.ref(ranks)}[x]"  # a KeyError for a non-member sends the caller to the slow path
            else:
                convert = f"{k.ref(converter(f.type))}(x)"
            if isinstance(f.type, EnumType):
                # Only an exact `str` is a member name (a str subclass such as a StrEnum is not, for
                # the slow path either): anything else goes to the slow path.
                ind = "    " if required else "        "
                converted += [
                    f"    x = a[{key}]" if required else f"    x = a.get({key}, {missing})",
                    *([] if required else [f"    if x is not {missing}:"]),
                    f"{ind}if type(x) is not {str_t}:",
                    f"{ind}    raise LookupError",
                    f"{ind}out[{key}] = {convert}",
                ]
            elif f.type in _FROM_TEXT:
                parse = k.ref(_FROM_TEXT[f.type])  # type: ignore[index]
                general = k.ref(converter(f.type))
                ind = "    " if required else "        "
                converted += [
                    f"    x = a[{key}]" if required else f"    x = a.get({key}, {missing})",
                    *([] if required else [f"    if x is not {missing}:"]),
                    f"{ind}if type(x) is {str_t}:",
                    f"{ind}    out[{key}] = {parse}(x)",
                    f"{ind}else:",
                    f"{ind}    out[{key}] = {general}(x)",
                ]
            elif required:
                if simple:
                    lines += [
                        f"    x = a[{key}]",  # a KeyError when missing
                        f"    if type(x) is not {k.ref(_SIMPLE[f.type])}:",  # type: ignore[index]
                        "        raise LookupError",
                    ]
                else:
                    converted.append(
                        f"    out[{key}] = {convert.replace('(x)', f'(a[{key}])').replace('[x]', f'[a[{key}]]')}"
                    )
            else:
                if simple:
                    lines += [
                        f"    x = a.get({key}, {missing})",
                        f"    if x is not {missing} and type(x) is not {k.ref(_SIMPLE[f.type])}:",  # type: ignore[index]
                        "        raise LookupError",
                    ]
                else:
                    converted += [
                        f"    x = a.get({key}, {missing})",
                        f"    if x is not {missing}:",
                        f"        out[{key}] = {convert}",
                    ]
        if converted:
            # One copy for all conversions: the caller's dict is never written to.
            lines += [f"    out = {dict_t}(a)", *converted, "    return out"]
        else:
            lines.append("    return a")
    namespace = run("\n".join(lines) + "\n", k.values, {})
    return {name: namespace[fn] for name, fn in names.items()}
