"""The gate between generated source and `exec`.

Generated code must be made only of our own templates: names we chose, attribute
names from a fixed list, and integer constants. Anything else means policy text leaked
into code, and the compile fails instead of running it.
"""

from __future__ import annotations

import ast
import builtins
import re
from typing import Any

_NAME = re.compile(
    r"^(k\d+|[brov]\d+|P|R|C|X|T|RL|H|F|M|E|G|e|a|c|x|out|frozenset|len|set|type|Exception|LookupError|ROLES\d*)$"
)
_ATTRS = frozenset(
    {
        "now",
        "pid",
        "rid",
        "panc",
        "ranc",
        "ancestors",
        "ip_in_any",
        "contains",
        "isdisjoint",
        "issuperset",
        "startswith",
        "endswith",
        "append",
        "update",
        "get",
    }
)
_NODES = (
    ast.Module,
    ast.FunctionDef,
    ast.arguments,
    ast.arg,
    ast.Return,
    ast.If,
    ast.Try,
    ast.ExceptHandler,
    ast.Expr,
    ast.Assign,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.Attribute,
    ast.Call,
    ast.Subscript,
    ast.Compare,
    ast.BoolOp,
    ast.UnaryOp,
    ast.BinOp,
    ast.Constant,
    ast.Tuple,
    ast.List,
    ast.And,
    ast.Or,
    ast.Not,
    ast.USub,
    ast.Sub,
    ast.Add,
    ast.BitAnd,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.In,
    ast.NotIn,
    ast.Pass,
    ast.AugAssign,
    ast.Raise,
    ast.Is,
    ast.IsNot,
)
SAFE_BUILTINS = ("frozenset", "len", "set", "type", "Exception", "LookupError")


class UnsafeCodeError(RuntimeError):
    pass


def validate(source: str) -> None:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if not isinstance(node, _NODES):
            raise UnsafeCodeError(f"generated code contains a {type(node).__name__}")
        if isinstance(node, ast.Name) and not _NAME.match(node.id):
            raise UnsafeCodeError(f"generated code names `{node.id}`")
        if isinstance(node, ast.FunctionDef) and not _NAME.match(node.name):
            raise UnsafeCodeError(f"generated code defines `{node.name}`")
        if isinstance(node, ast.arg) and not _NAME.match(node.arg):
            raise UnsafeCodeError(f"generated code takes `{node.arg}`")
        if isinstance(node, ast.ExceptHandler) and node.name not in (None, "e"):
            raise UnsafeCodeError("generated code binds an unexpected exception name")
        if isinstance(node, ast.Attribute) and node.attr not in _ATTRS:
            raise UnsafeCodeError(f"generated code reads attribute `{node.attr}`")
        if isinstance(node, ast.Constant) and not (node.value is None or type(node.value) in (int, bool)):
            raise UnsafeCodeError("generated code holds a literal that is not an integer")


def run(source: str, constants: list[Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Validate, then execute with only the constants table and a few builtins in scope."""
    validate(source)
    namespace: dict[str, Any] = {f"k{i}": v for i, v in enumerate(constants)}
    namespace.update(extra)
    namespace["__builtins__"] = {name: getattr(builtins, name) for name in SAFE_BUILTINS}
    exec(compile(source, "<policy>", "exec"), namespace)  # noqa: S102 - validated above
    return namespace
