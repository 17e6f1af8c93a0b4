"""The gate between generated source and `exec`.

Generated code must be made only of our own templates: names we chose, attribute
names from a fixed list, and integer constants. Anything else means policy text leaked
into code, and the compile fails instead of running it.
"""

from __future__ import annotations

import builtins
import dis
import re
from types import CodeType
from typing import Any

_NAME = re.compile(
    r"^(k\d+|[brov]\d+|P|R|C|X|T|RL|H|F|M|E|G|K|D|e|a|c|x|out|frozenset|len|set|type|Exception|LookupError|ROLES\d*)$"
)
_ATTRS = frozenset(
    {
        "contains",
        "isdisjoint",
        "issuperset",
        "startswith",
        "endswith",
        "append",
        "update",
        "get",
        "keys",
    }
)
# What our templates compile to, and nothing else: no imports, classes, closures,
# iteration, or attribute and global writes. (From 3.12 on, CPython lays out exception
# handlers with backward jumps, so loops are excluded by the keyword check below instead.)
_OPCODES = frozenset(
    dis.opmap[name]
    for name in (
        "CACHE",
        "NOP",
        "RESUME",
        "EXTENDED_ARG",
        "POP_TOP",
        "COPY",
        "SWAP",
        "PUSH_NULL",
        "LOAD_CONST",
        "LOAD_FAST",
        "LOAD_FAST_CHECK",
        "LOAD_FAST_LOAD_FAST",
        "STORE_FAST",
        "STORE_FAST_LOAD_FAST",
        "STORE_FAST_STORE_FAST",
        "DELETE_FAST",
        "LOAD_GLOBAL",
        "LOAD_NAME",
        "STORE_NAME",
        "LOAD_ATTR",
        "LOAD_METHOD",
        "BINARY_OP",
        "BINARY_SUBSCR",
        "STORE_SUBSCR",
        "BUILD_LIST",
        "BUILD_TUPLE",
        "BUILD_SET",
        "LIST_APPEND",
        "LIST_EXTEND",
        "LIST_TO_TUPLE",
        "CALL_INTRINSIC_1",
        "PRECALL",
        "CALL",
        "KW_NAMES",
        "COMPARE_OP",
        "CONTAINS_OP",
        "IS_OP",
        "TO_BOOL",
        "UNARY_NOT",
        "UNARY_NEGATIVE",
        "JUMP_FORWARD",
        "JUMP_BACKWARD",
        "JUMP_BACKWARD_NO_INTERRUPT",
        "POP_JUMP_FORWARD_IF_FALSE",
        "POP_JUMP_FORWARD_IF_TRUE",
        "POP_JUMP_FORWARD_IF_NONE",
        "POP_JUMP_FORWARD_IF_NOT_NONE",
        "POP_JUMP_IF_FALSE",
        "POP_JUMP_IF_TRUE",
        "POP_JUMP_IF_NONE",
        "POP_JUMP_IF_NOT_NONE",
        "JUMP_IF_FALSE_OR_POP",
        "JUMP_IF_TRUE_OR_POP",
        "CHECK_EXC_MATCH",
        "PUSH_EXC_INFO",
        "POP_EXCEPT",
        "RERAISE",
        "RAISE_VARARGS",
        "RETURN_VALUE",
        "RETURN_CONST",
        "MAKE_FUNCTION",
    )  # fmt: skip
    if name in dis.opmap
)
_BINARY_OP = dis.opmap["BINARY_OP"]
# The binary operators the compiler emits: `+`, `&` (role sets), `-`, `+=` (counters), `|=` (match bits).
_BINARY_ARGS = frozenset(
    i
    for i, (name, _) in enumerate(getattr(dis, "_nb_ops", ()))
    if name in ("NB_ADD", "NB_AND", "NB_SUBTRACT", "NB_INPLACE_ADD", "NB_INPLACE_OR")
) or frozenset({0, 1, 10, 13, 20})
# Big tuple/set displays compile to BUILD_LIST + LIST_APPEND/LIST_EXTEND + LIST_TO_TUPLE
# (3.12+: CALL_INTRINSIC_1 INTRINSIC_LIST_TO_TUPLE); only that intrinsic is allowed.
_INTRINSIC_1 = dis.opmap.get("CALL_INTRINSIC_1")
_INTRINSIC_ARGS = frozenset(
    i for i, name in enumerate(getattr(dis, "_intrinsic1_descs", ())) if name == "INTRINSIC_LIST_TO_TUPLE"
)
_KEYWORDS = re.compile(r"\b(?:while|for|lambda|import|class|yield|await|async|global|nonlocal|with|del|exec|eval)\b")
SAFE_BUILTINS = ("frozenset", "len", "set", "type", "Exception", "LookupError")


class UnsafeCodeError(RuntimeError):
    pass


def validate(source: str) -> CodeType:
    """Compile generated source and check what the compiler produced, not the text.

    Every name read (globals, attributes, locals) must be one of ours, every constant an
    integer, a bool, None, an empty tuple or nested code, and every opcode straight-line.
    """
    keyword = _KEYWORDS.search(source)
    if keyword:
        raise UnsafeCodeError(f"generated code uses `{keyword.group(0)}`")
    try:
        code = compile(source, "<policy>", "exec")
    except SyntaxError as exc:
        raise UnsafeCodeError(f"generated code does not compile: {exc.msg}") from None
    stack = [code]
    while stack:
        co = stack.pop()
        for name in co.co_names:
            if not (_NAME.match(name) or name in _ATTRS):
                raise UnsafeCodeError(f"generated code names `{name}`")
        for name in co.co_varnames:
            if not _NAME.match(name):
                raise UnsafeCodeError(f"generated code binds `{name}`")
        if co.co_cellvars or co.co_freevars:
            raise UnsafeCodeError("generated code makes a closure")
        for const in co.co_consts:
            if isinstance(const, CodeType):
                if not _NAME.match(const.co_name):
                    raise UnsafeCodeError(f"generated code defines `{const.co_name}`")
                stack.append(const)
            elif not (const is None or const == () or type(const) in (int, bool)):
                raise UnsafeCodeError("generated code holds a literal that is not an integer")
        raw = co.co_code
        bad = set(raw[0::2]) - _OPCODES
        if bad:
            raise UnsafeCodeError(f"generated code uses `{dis.opname[min(bad)]}`")
        at = raw.find(_BINARY_OP)
        while at >= 0:
            if at % 2 == 0 and raw[at + 1] not in _BINARY_ARGS:
                raise UnsafeCodeError("generated code uses an operator the compiler never emits")
            at = raw.find(_BINARY_OP, at + 1)
        if _INTRINSIC_1 is not None:
            at = raw.find(_INTRINSIC_1)
            while at >= 0:
                if at % 2 == 0 and raw[at + 1] not in _INTRINSIC_ARGS:
                    raise UnsafeCodeError("generated code uses an intrinsic the compiler never emits")
                at = raw.find(_INTRINSIC_1, at + 1)
    return code


def run(source: str, constants: list[Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Validate, then execute with only the constants table and a few builtins in scope."""
    code = validate(source)
    namespace: dict[str, Any] = {f"k{i}": v for i, v in enumerate(constants)}
    namespace.update(extra)
    namespace["__builtins__"] = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
    exec(code, namespace)  # noqa: S102 - validated above
    return namespace
