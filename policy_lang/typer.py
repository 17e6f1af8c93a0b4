"""Expression typing for one request environment (principal type, resource type).

`Typer.infer` returns the type of an expression and records it per node, so the compiler
can pick the right operation (`in` on a set, a CIDR, a window, a role or a hierarchy).
Optional attributes may only be read where a `has` test proves them present.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from policy_lang import nodes as n
from policy_lang.convert import ConversionError, converter
from policy_lang.errors import Diagnostic
from policy_lang.schema import (
    BOOL,
    DATETIME,
    DURATION,
    EMPTY_SET,
    INT,
    IP,
    ROLE,
    STRING,
    WINDOW,
    EntityRefType,
    EntityType,
    EnumType,
    MapOf,
    Record,
    Schema,
    SetOf,
    Type,
    compatible,
)

Path = tuple[str, ...]


class TypeFailure(Exception):
    """Stops typing of one expression; the diagnostic is already recorded."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


@dataclass(frozen=True, slots=True)
class Env:
    principal: EntityType
    resource: EntityType


@dataclass(slots=True)
class Names:
    """What a bare name or `role x` can refer to."""

    constants: dict[str, Type] = field(default_factory=dict)
    windows: set[str] = field(default_factory=set)
    enum_members: dict[str, EnumType] = field(default_factory=dict)
    roles: set[str] = field(default_factory=set)


SET_METHODS = {"contains", "contains_any", "contains_all", "is_empty", "size"}
STRING_METHODS = {"starts_with", "ends_with", "contains"}
CONSTRUCTORS = {"ip": IP, "datetime": DATETIME, "duration": DURATION}
ORDERED_PRIMS = (INT, DURATION, DATETIME)


def _owner(obj: n.Expr, base: Type) -> str:
    """How an unknown-attribute message names what was read: `User`, the context or a record."""
    if isinstance(base, EntityType):
        return f"`{base}`"
    return "the context" if obj == n.Var("context") else "the record"


def path_of(expr: n.Expr) -> Path | None:
    if isinstance(expr, n.Var):
        return (expr.name,)
    if isinstance(expr, n.Attr):
        base = path_of(expr.obj)
        return None if base is None else (*base, expr.name)
    return None


def facts_when(expr: n.Expr, value: bool) -> frozenset[Path]:
    """Attribute paths known present when `expr` evaluates to `value`."""
    if isinstance(expr, n.Has):
        base = path_of(expr.obj)
        return frozenset({(*base, expr.name)}) if value and base is not None else frozenset()
    if isinstance(expr, n.Not):
        return facts_when(expr.operand, not value)
    if isinstance(expr, n.And):
        if value:
            return facts_when(expr.left, True) | facts_when(expr.right, True)
        return facts_when(expr.left, False) & facts_when(expr.right, False)
    if isinstance(expr, n.Or):
        if value:
            return facts_when(expr.left, True) & facts_when(expr.right, True)
        return facts_when(expr.left, False) | facts_when(expr.right, False)
    return frozenset()


class Typer:
    def __init__(self, schema: Schema, names: Names, env: Env, diagnostics: list[Diagnostic]):
        self.schema = schema
        self.names = names
        self.env = env
        self.diagnostics = diagnostics
        self.types: dict[int, Type] = {}

    def error(self, code: str, message: str, node: n.Expr, help: str | None = None) -> TypeFailure:
        self.diagnostics.append(Diagnostic(code, message, node.span, help))
        return TypeFailure()

    def check(self, expr: n.Expr, facts: frozenset[Path] = frozenset()) -> Type | None:
        try:
            return self.infer(expr, facts)
        except TypeFailure:
            return None

    def expect(self, expr: n.Expr, want: Type, facts: frozenset[Path], what: str) -> None:
        got = self.infer(expr, facts)
        if got != want:
            raise self.error("type_error", f"{what} must be {want}, found {got}", expr)

    def infer(self, expr: n.Expr, facts: frozenset[Path] = frozenset()) -> Type:
        result: Type = _INFER[type(expr)](self, expr, facts)
        self.types[id(expr)] = result
        return result

    # ---- leaves ----------------------------------------------------------------
    def _lit(self, e: n.Lit, facts: frozenset[Path]) -> Type:
        return {"string": STRING, "int": INT, "bool": BOOL, "duration": DURATION}[e.kind]

    def _var(self, e: n.Var, facts: frozenset[Path]) -> Type:
        if e.name == "principal":
            return self.env.principal
        if e.name == "resource":
            return self.env.resource
        if e.name == "context":
            return self.schema.context
        return DATETIME

    def _name(self, e: n.Name, facts: frozenset[Path]) -> Type:
        if e.name in self.names.constants:
            return self.names.constants[e.name]
        if e.name in self.names.windows:
            return WINDOW
        if e.name in self.names.enum_members:
            return self.names.enum_members[e.name]
        known = [*self.names.constants, *self.names.windows, *self.names.enum_members]
        raise self.error("unknown_name", f"unknown name `{e.name}`", e, did_you_mean(e.name, known))

    def _roleref(self, e: n.RoleRef, facts: frozenset[Path]) -> Type:
        if e.name not in self.names.roles:
            raise self.error("unknown_role", f"unknown role `{e.name}`", e, did_you_mean(e.name, self.names.roles))
        return ROLE

    def _entityref(self, e: n.EntityRef, facts: frozenset[Path]) -> Type:
        if e.type not in self.schema.entities:
            raise self.error(
                "unknown_type", f"unknown entity type `{e.type}`", e, did_you_mean(e.type, self.schema.entities)
            )
        return EntityRefType(e.type)

    def _call(self, e: n.Call, facts: frozenset[Path]) -> Type:
        if e.name not in CONSTRUCTORS:
            raise self.error("unknown_function", f"unknown function `{e.name}`", e, did_you_mean(e.name, CONSTRUCTORS))
        if len(e.args) != 1 or not (isinstance(e.args[0], n.Lit) and e.args[0].kind == "string"):
            raise self.error("type_error", f"`{e.name}(...)` takes one string literal", e)
        try:
            converter(CONSTRUCTORS[e.name])(e.args[0].value)
        except ConversionError as exc:
            raise self.error("invalid_literal", exc.message, e.args[0]) from None
        return CONSTRUCTORS[e.name]

    def _setlit(self, e: n.SetLit, facts: frozenset[Path]) -> Type:
        if not e.items:
            return EMPTY_SET
        first = self.infer(e.items[0], facts)
        if isinstance(first, (Record, MapOf, EntityType)):
            raise self.error("type_error", f"a set cannot hold {first}", e.items[0])
        for item in e.items[1:]:
            other = self.infer(item, facts)
            if other != first:
                raise self.error("type_error", f"set elements must share one type: {first} and {other}", item)
        return SetOf(first)

    # ---- attribute access --------------------------------------------------------
    def _record_of(self, t: Type, node: n.Expr) -> Record:
        if isinstance(t, EntityType):
            return t.record
        if isinstance(t, Record):
            return t
        raise self.error("type_error", f"{t} has no attributes", node)

    def _attr(self, e: n.Attr, facts: frozenset[Path]) -> Type:
        base = self.infer(e.obj, facts)
        if isinstance(base, EntityType) and e.name == "id":
            return STRING
        record = self._record_of(base, e.obj)
        f = record.get(e.name)
        if f is None:
            owner = f"`{base}`" if isinstance(base, EntityType) else "the record"
            if e.obj == n.Var("context"):
                owner = "the context"
            names = [x.name for x in record.fields] + (["id"] if isinstance(base, EntityType) else [])
            raise self.error(
                "unknown_attribute", f"{owner} has no attribute `{e.name}`", e, did_you_mean(e.name, names)
            )
        if f.optional:
            path = path_of(e)
            if path is None or path not in facts:
                shown = ".".join(path) if path else e.name
                raise self.error(
                    "optional_attribute",
                    f"attribute `{shown}` is optional and may be absent",
                    e,
                    f"guard it: `{'.'.join(path[:-1]) if path else 'x'} has {e.name} and ...`",
                )
        return f.type

    def _has(self, e: n.Has, facts: frozenset[Path]) -> Type:
        base = self.infer(e.obj, facts)
        record = self._record_of(base, e.obj)
        if record.get(e.name) is None:
            names = [x.name for x in record.fields]
            raise self.error(
                "unknown_attribute",
                f"{_owner(e.obj, base)} has no attribute `{e.name}`",
                e,
                did_you_mean(e.name, names),
            )
        return BOOL

    def _index(self, e: n.Index, facts: frozenset[Path]) -> Type:
        base = self.infer(e.obj, facts)
        if not isinstance(base, MapOf):
            raise self.error("type_error", f"only maps can be indexed, found {base}", e.obj)
        self.expect(e.key, STRING, facts, "a map key")
        return base.value

    def _method(self, e: n.Method, facts: frozenset[Path]) -> Type:
        base = self.infer(e.obj, facts)
        args = [self.infer(a, facts) for a in e.args]
        if isinstance(base, SetOf) or base == EMPTY_SET:
            elem = base.element if isinstance(base, SetOf) else None
            if e.name not in SET_METHODS:
                raise self.error(
                    "unknown_method", f"sets have no method `{e.name}`", e, did_you_mean(e.name, SET_METHODS)
                )
            arity = 0 if e.name in ("is_empty", "size") else 1
            if len(args) != arity:
                raise self.error("type_error", f"`{e.name}` takes {arity} argument(s)", e)
            if e.name == "contains" and elem is not None and args[0] != elem:
                raise self.error("type_error", f"`contains` needs {elem}, found {args[0]}", e.args[0])
            if e.name == "contains" and elem is None and isinstance(args[0], (Record, MapOf, EntityType)):
                raise self.error("type_error", f"a set cannot hold {args[0]}", e.args[0])
            if e.name in ("contains_any", "contains_all") and not compatible(base, args[0]):
                raise self.error("type_error", f"`{e.name}` needs {base}, found {args[0]}", e.args[0])
            return INT if e.name == "size" else BOOL
        if base == STRING:
            if e.name not in STRING_METHODS:
                raise self.error(
                    "unknown_method", f"strings have no method `{e.name}`", e, did_you_mean(e.name, STRING_METHODS)
                )
            if args != [STRING]:
                raise self.error("type_error", f"`{e.name}` takes one string", e)
            return BOOL
        raise self.error("type_error", f"{base} has no method `{e.name}`", e)

    def _like(self, e: n.Like, facts: frozenset[Path]) -> Type:
        self.expect(e.obj, STRING, facts, "the left side of `like`")
        return BOOL

    # ---- operators ---------------------------------------------------------------
    def _not(self, e: n.Not, facts: frozenset[Path]) -> Type:
        self.expect(e.operand, BOOL, facts, "the operand of `not`")
        return BOOL

    def _neg(self, e: n.Neg, facts: frozenset[Path]) -> Type:
        t = self.infer(e.operand, facts)
        if t not in (INT, DURATION):
            raise self.error("type_error", f"cannot negate {t}", e)
        return t

    def _and(self, e: n.And, facts: frozenset[Path]) -> Type:
        self.expect(e.left, BOOL, facts, "the left side of `and`")
        self.expect(e.right, BOOL, facts | facts_when(e.left, True), "the right side of `and`")
        return BOOL

    def _or(self, e: n.Or, facts: frozenset[Path]) -> Type:
        self.expect(e.left, BOOL, facts, "the left side of `or`")
        self.expect(e.right, BOOL, facts | facts_when(e.left, False), "the right side of `or`")
        return BOOL

    def _binary(self, e: n.Binary, facts: frozenset[Path]) -> Type:
        left = self.infer(e.left, facts)
        right = self.infer(e.right, facts)
        if e.op in ("==", "!="):
            if not compatible(left, right):
                raise self.error("type_error", f"cannot compare {left} with {right}", e)
            if isinstance(left, EntityType):
                # At run time an entity is its attributes, so `==` would equate two entities that merely look alike.
                raise self.error(
                    "type_error",
                    f"entities cannot be compared with `{e.op}`",
                    e,
                    f"compare their ids, e.g. `principal.id {e.op} resource.id`",
                )
            return BOOL
        if e.op in ("<", "<=", ">", ">="):
            if left != right:
                raise self.error("type_error", f"cannot order {left} against {right}", e)
            if isinstance(left, EnumType):
                if not left.ordered:
                    raise self.error("type_error", f"enum `{left.name}` is not ordered (declare it with `<`)", e)
                return BOOL
            if left not in ORDERED_PRIMS:
                raise self.error("type_error", f"`{e.op}` does not apply to {left}", e)
            return BOOL
        if e.op in ("+", "-"):
            return self._arith(e, left, right)
        return self._in(e, left, right)

    def _arith(self, e: n.Binary, left: Type, right: Type) -> Type:
        table: dict[tuple[Type, Type], Type] = {
            (INT, INT): INT,
            (DURATION, DURATION): DURATION,
            (DATETIME, DURATION): DATETIME,
        }
        if e.op == "-":
            table[(DATETIME, DATETIME)] = DURATION
        result = table.get((left, right))
        if result is None:
            raise self.error("type_error", f"cannot apply `{e.op}` to {left} and {right}", e)
        return result

    def _in(self, e: n.Binary, left: Type, right: Type) -> Type:
        if isinstance(right, SetOf):
            if right.element != left:
                raise self.error("type_error", f"cannot look for {left} in {right}", e)
        elif right == EMPTY_SET:
            if isinstance(left, (Record, MapOf, EntityType)):
                raise self.error("type_error", f"cannot look for {left} in a set", e.left)
        elif right == IP:
            if left != IP:
                raise self.error("type_error", f"only an ip can be in a network, found {left}", e.left)
        elif right == WINDOW:
            if left != DATETIME:
                raise self.error("type_error", f"only a datetime can be in a window, found {left}", e.left)
        elif right == ROLE:
            if e.left != n.Var("principal"):
                raise self.error("type_error", "only `principal` can be `in role ...`", e.left)
        elif isinstance(right, EntityRefType):
            if not isinstance(left, (EntityType, EntityRefType)):
                raise self.error("type_error", f"only entities belong to a hierarchy, found {left}", e.left)
        elif isinstance(right, MapOf):
            if left != STRING:
                raise self.error("type_error", f"map keys are strings, found {left}", e.left)
        else:
            raise self.error("type_error", f"`in` does not apply to {right}", e.right)
        return BOOL


# Node type -> Typer method: one dict lookup per node (the checker infers every node of every rule).
_INFER: dict[type, Callable[[Typer, Any, frozenset[Path]], Type]] = {
    t: getattr(Typer, "_" + t.__name__.lower())
    for t in (
        n.Lit, n.Var, n.Name, n.RoleRef, n.EntityRef, n.Call, n.SetLit, n.Attr, n.Has, n.Index, n.Method,
        n.Like, n.Not, n.Neg, n.And, n.Or, n.Binary,
    )
}  # fmt: skip
