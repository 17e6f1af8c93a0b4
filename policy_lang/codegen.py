"""Typed expressions -> Python expression source.

Policy text never reaches the generated source: every literal, attribute name and
compiled helper goes through the constants table and appears only as `k<N>`. The
generated module is re-parsed and every name in it checked before it is run
(see `policy_lang.sandbox`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from policy_lang import nodes as n
from policy_lang.convert import converter
from policy_lang.runtime import NOW, PID, RID, ancestors, ip_in_any, principal_ancestors, resource_ancestors
from policy_lang.schema import (
    EMPTY_SET,
    IP,
    ROLE,
    WINDOW,
    EntityRefType,
    EntityType,
    MapOf,
    SetOf,
    Type,
)
from policy_lang.typer import CONSTRUCTORS
from policy_lang.values import IPSet, glob_match, glob_pieces


class Constants:
    """The constants table: values by slot, deduplicated where hashable."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._index: dict[tuple[type, Any], int] = {}

    def ref(self, value: Any) -> str:
        # Containers are not deduplicated: `frozenset({1}) == frozenset({True})`, but they differ.
        if isinstance(value, (frozenset, tuple)):
            self.values.append(value)
            return f"k{len(self.values) - 1}"
        try:
            key = (type(value), value)
            hash(key)
        except TypeError:
            self.values.append(value)
            return f"k{len(self.values) - 1}"
        if key not in self._index:
            self._index[key] = len(self.values)
            self.values.append(value)
        return f"k{self._index[key]}"


class Glob:
    __slots__ = ("pattern", "pieces")

    def __init__(self, pattern: str):
        self.pattern = pattern
        self.pieces = glob_pieces(pattern)

    def __call__(self, text: str) -> bool:
        return glob_match(self.pieces, text)


ConstLookup = Callable[[str], Any]

# Traced and/or chains up to this many operands keep one traced node per step (see `_chain`).
TRACE_NESTED_CHAIN = 32


def _chain_length(e: n.Expr, kind: type[n.And] | type[n.Or]) -> int:
    """How many operands a chain of one operator has."""
    count, stack = 0, [e]
    while stack:
        node = stack.pop()
        if isinstance(node, kind):
            stack += (node.left, node.right)
        else:
            count += 1
    return count


class ExprCompiler:
    """Compiles one rule's expressions for one (principal type, resource type).

    With `trace` set, every node's value is passed through `T(node_no, value)` so
    explain and coverage can see what was compared, reusing this one code path.
    """

    def __init__(
        self,
        consts: Constants,
        types: dict[int, Type],
        constant_value: ConstLookup,
        *,
        trace: bool = False,
        node_ids: dict[int, int] | None = None,
    ):
        self.k = consts
        self.types = types
        self.constant_value = constant_value
        self.trace = trace
        self.node_ids = node_ids if node_ids is not None else {}

    def node_no(self, e: n.Expr) -> int:
        return self.node_ids.setdefault(id(e), len(self.node_ids))

    def expr(self, e: n.Expr) -> str:
        code = getattr(self, "_" + type(e).__name__.lower())(e)
        if self.trace:
            return f"T({self.node_no(e)}, {code})"
        return code  # type: ignore[no-any-return]

    def type_of(self, e: n.Expr) -> Type:
        return self.types[id(e)]

    def is_constant(self, e: n.Expr) -> bool:
        if isinstance(e, (n.Lit, n.Call, n.RoleRef, n.EntityRef)):
            return True
        if isinstance(e, n.Name):
            return True
        if isinstance(e, n.SetLit):
            return all(self.is_constant(i) for i in e.items)
        return False

    def value_of(self, e: n.Expr) -> Any:
        """The value of a constant expression, computed at compile time."""
        if isinstance(e, n.Lit):
            return e.value
        if isinstance(e, n.Name):
            return self.constant_value(e.name)
        if isinstance(e, n.Call):
            arg = e.args[0]
            assert isinstance(arg, n.Lit)
            return converter(CONSTRUCTORS[e.name])(arg.value)
        if isinstance(e, n.RoleRef):
            return e.name
        if isinstance(e, n.EntityRef):
            return f"{e.type}::{e.id}"
        if isinstance(e, n.SetLit):
            return frozenset(self.value_of(i) for i in e.items)
        raise AssertionError(f"not constant: {e}")

    # ---- leaves ------------------------------------------------------------------
    def _lit(self, e: n.Lit) -> str:
        return self.k.ref(e.value)

    def _var(self, e: n.Var) -> str:
        if e.name == "now":
            return f"X[{NOW}]"
        return {"principal": "P", "resource": "R", "context": "C"}[e.name]

    def _name(self, e: n.Name) -> str:
        return self.k.ref(self.value_of(e))

    def _roleref(self, e: n.RoleRef) -> str:
        return self.k.ref(e.name)

    def _entityref(self, e: n.EntityRef) -> str:
        return self.k.ref(self.value_of(e))

    def _call(self, e: n.Call) -> str:
        return self.k.ref(self.value_of(e))

    def _setlit(self, e: n.SetLit) -> str:
        if self.is_constant(e):
            return self.k.ref(self.value_of(e))
        return "frozenset((" + "".join(self.expr(i) + ", " for i in e.items) + "))"

    # ---- access ------------------------------------------------------------------
    def _attr(self, e: n.Attr) -> str:
        if e.name == "id" and isinstance(self.type_of(e.obj), EntityType) and isinstance(e.obj, n.Var):
            return f"X[{PID}]" if e.obj.name == "principal" else f"X[{RID}]"
        return f"{self.expr(e.obj)}[{self.k.ref(e.name)}]"

    def _has(self, e: n.Has) -> str:
        return f"({self.k.ref(e.name)} in {self.expr(e.obj)})"

    def _index(self, e: n.Index) -> str:
        return f"{self.expr(e.obj)}[{self.expr(e.key)}]"

    def _method(self, e: n.Method) -> str:
        obj = self.expr(e.obj)
        args = [self.expr(a) for a in e.args]
        if e.name == "contains":
            return f"({args[0]} in {obj})"
        if e.name == "contains_any":
            return f"(not {obj}.isdisjoint({args[0]}))"
        if e.name == "contains_all":
            return f"{obj}.issuperset({args[0]})"
        if e.name == "is_empty":
            return f"(len({obj}) == 0)"
        if e.name == "size":
            return f"len({obj})"
        if e.name == "starts_with":
            return f"{obj}.startswith({args[0]})"
        if e.name == "ends_with":
            return f"{obj}.endswith({args[0]})"
        raise AssertionError(e.name)

    def _like(self, e: n.Like) -> str:
        glob = Glob(e.pattern)
        text = self.expr(e.obj)
        # The common shapes as str methods, without a call into glob_match.
        if len(glob.pieces) == 1:
            return f"({text} == {self.k.ref(glob.pieces[0])})"
        if len(glob.pieces) == 2 and not glob.pieces[1]:
            return f"{text}.startswith({self.k.ref(glob.pieces[0])})"
        if len(glob.pieces) == 2 and not glob.pieces[0]:
            return f"{text}.endswith({self.k.ref(glob.pieces[1])})"
        return f"{self.k.ref(glob)}({text})"

    # ---- operators -----------------------------------------------------------------
    def _not(self, e: n.Not) -> str:
        return f"(not {self.expr(e.operand)})"

    def _neg(self, e: n.Neg) -> str:
        return f"(-{self.expr(e.operand)})"

    def _and(self, e: n.And) -> str:
        return self._chain(e, n.And, " and ")

    def _or(self, e: n.Or) -> str:
        return self._chain(e, n.Or, " or ")

    def _chain(self, e: n.And | n.Or, kind: type[n.And] | type[n.Or], op: str) -> str:
        """A chain of one operator as one flat `(a op b op c ...)`.

        Nesting every step would exceed Python's parenthesis limit for long chains; `a or
        (b or c)` and `(a or b) or c` evaluate the same. Traced code keeps a short chain
        nested, so every inner step has its own value (coverage counts the branches of each);
        a long one is flattened too, and then only the chain as a whole and its operands are
        traced, not the inner steps.
        """
        if self.trace and _chain_length(e, kind) <= TRACE_NESTED_CHAIN:
            return f"({self.expr(e.left)}{op}{self.expr(e.right)})"
        operands: list[n.Expr] = []
        stack: list[n.Expr] = [e]
        while stack:
            node = stack.pop()
            if isinstance(node, kind):
                stack.append(node.right)
                stack.append(node.left)
            else:
                operands.append(node)
        return "(" + op.join(self.expr(o) for o in operands) + ")"

    def _binary(self, e: n.Binary) -> str:
        if e.op == "in":
            return self._in(e)
        return f"({self.expr(e.left)} {e.op} {self.expr(e.right)})"

    def _in(self, e: n.Binary) -> str:
        right_t = self.type_of(e.right)
        left = self.expr(e.left)
        if right_t == ROLE:
            return f"({self.expr(e.right)} in RL)"
        if isinstance(right_t, EntityRefType):
            target = self.expr(e.right)
            if isinstance(e.left, n.Var):
                side = principal_ancestors if e.left.name == "principal" else resource_ancestors
                return f"({target} in {self.k.ref(side)}(X))"
            return f"({target} in {self.k.ref(ancestors)}(X, {left}))"
        if right_t == IP:
            return f"{self.expr(e.right)}.contains({left})"
        if right_t == WINDOW:
            return f"{self.expr(e.right)}.contains({left})"
        if isinstance(right_t, SetOf) and right_t.element == IP:
            if self.is_constant(e.right) and not self.trace:
                return f"({left} in {self.k.ref(IPSet(self.value_of(e.right)))})"
            if isinstance(e.right, n.Index) and self.is_constant(e.right.obj) and not self.trace:
                # A constant map of network lists (allow-lists per tenant): each list searched as one set.
                by_key = {k: IPSet(v) for k, v in self.value_of(e.right.obj).items()}
                return f"({left} in {self.k.ref(by_key)}[{self.expr(e.right.key)}])"
            return f"{self.k.ref(ip_in_any)}({left}, {self.expr(e.right)})"
        if isinstance(right_t, (SetOf, MapOf)) or right_t == EMPTY_SET:
            return f"({left} in {self.expr(e.right)})"
        raise AssertionError(f"`in` on {right_t}")
