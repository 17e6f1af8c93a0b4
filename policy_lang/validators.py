"""Schema records -> generated straight-line validators for the request hot path.

A generated validator only answers "valid, here is the runtime form" quickly; on any
doubt it raises, and the caller re-runs the generic converter (`policy_lang.convert`),
which is slower but names the exact field and problem. Both come from the same schema.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policy_lang.codegen import Constants
from policy_lang.convert import _SIMPLE, converter
from policy_lang.sandbox import run
from policy_lang.schema import Prim, Record

_MISSING = object()


def generate(records: dict[str, tuple[Record, bool]]) -> dict[str, Callable[[Any], Any]]:
    """name -> (record, check required fields) ==> name -> fast validator."""
    k = Constants()
    lines: list[str] = []
    names: dict[str, str] = {}
    missing, dict_t = k.ref(_MISSING), k.ref(dict)
    for number, (name, (record, full)) in enumerate(sorted(records.items())):
        fn = f"v{number}"
        names[name] = fn
        lines += [
            f"def {fn}(a):",
            f"    if type(a) is not {dict_t}:",
            "        raise LookupError",
            "    c = 0",
            "    out = a",
        ]
        for f in record.fields:
            key = k.ref(f.name)
            lines += [f"    x = a.get({key}, {missing})", f"    if x is not {missing}:", "        c += 1"]
            if isinstance(f.type, Prim) and f.type in _SIMPLE:
                lines += [f"        if type(x) is not {k.ref(_SIMPLE[f.type])}:", "            raise LookupError"]
            else:
                # The first converted field copies: the caller's dict is never written to.
                lines += [
                    "        if out is a:",
                    f"            out = {dict_t}(a)",
                    f"        out[{key}] = {k.ref(converter(f.type))}(x)",
                ]
            if full and not f.optional:
                lines += ["    else:", "        raise LookupError"]
        lines += ["    if c != len(a):", "        raise LookupError", "    return out"]
    namespace = run("\n".join(lines) + "\n", k.values, {})
    return {name: namespace[fn] for name, fn in names.items()}
