"""The typed AST of the policy language: frozen, slotted dataclasses.

Every node carries the span it was parsed from; spans never take part in equality,
so two policies that say the same thing compare equal wherever they were written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from policy_lang.spans import UNKNOWN_SPAN, Span


def _span() -> Span:
    return field(default=UNKNOWN_SPAN, compare=False, repr=False)  # type: ignore[no-any-return]


@dataclass(frozen=True, slots=True)
class Ident:
    name: str
    span: Span = _span()


# ---- expressions -----------------------------------------------------------

LiteralKind = Literal["string", "int", "bool", "duration"]


@dataclass(frozen=True, slots=True)
class Lit:
    value: str | int | bool | float
    kind: LiteralKind
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Var:
    """One of the request's roots: `principal`, `resource`, `context`, or the clock `now`."""

    name: Literal["principal", "resource", "context", "now"]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Name:
    """A bare name: a constant, a list, a window or an enum member."""

    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RoleRef:
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class EntityRef:
    type: str
    id: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Attr:
    obj: Expr
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Index:
    obj: Expr
    key: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Method:
    obj: Expr
    name: str
    args: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Has:
    obj: Expr
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Like:
    obj: Expr
    pattern: str
    span: Span = _span()


BinaryOp = Literal["==", "!=", "<", "<=", ">", ">=", "+", "-", "in"]


@dataclass(frozen=True, slots=True)
class Binary:
    op: BinaryOp
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class And:
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Or:
    left: Expr
    right: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class SetLit:
    items: tuple[Expr, ...]
    span: Span = _span()


Expr = (
    Lit
    | Var
    | Name
    | RoleRef
    | EntityRef
    | Attr
    | Index
    | Method
    | Call
    | Has
    | Like
    | Binary
    | And
    | Or
    | Not
    | Neg
    | SetLit
)

# ---- types -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NamedType:
    name: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class SetType:
    element: TypeExpr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class MapType:
    key: TypeExpr
    value: TypeExpr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RecordType:
    attrs: tuple[AttrDecl, ...]
    span: Span = _span()


TypeExpr = NamedType | SetType | MapType | RecordType

# ---- declarations --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttrDecl:
    name: str
    type: TypeExpr
    optional: bool
    sensitive: bool
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class EnumDecl:
    name: str
    members: tuple[Ident, ...]
    ordered: bool
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class EntityDecl:
    name: str
    attrs: tuple[AttrDecl, ...]
    parents: tuple[Ident, ...]
    is_principal: bool
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ContextDecl:
    attrs: tuple[AttrDecl, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ActionsDecl:
    resource_type: Ident
    actions: tuple[Ident, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Grant:
    actions: tuple[Ident, ...]
    resource_types: tuple[Ident, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RoleDecl:
    name: str
    extends: tuple[Ident, ...]
    grants: tuple[Grant, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class BindingDecl:
    """`roles of User from <expr>;`: where a principal's role names come from."""

    principal_type: Ident
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class ConstDecl:
    """A named value; without a value it must come from an entity data file."""

    name: str
    type: TypeExpr | None
    value: Expr | None
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class WindowField:
    name: str
    value: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class WindowDecl:
    name: str
    fields: tuple[WindowField, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Condition:
    kind: Literal["when", "unless"]
    expr: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Mask:
    targets: tuple[Expr, ...]
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class SetHeader:
    name: str
    value: Expr
    span: Span = _span()


Obligation = Mask | SetHeader


@dataclass(frozen=True, slots=True)
class AdviceItem:
    name: str
    value: Expr
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Annotation:
    name: str
    value: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class Rule:
    id: Ident
    effect: Literal["permit", "forbid"]
    annotations: tuple[Annotation, ...]
    principals: tuple[Ident, ...]
    actions: tuple[Ident, ...]
    resources: tuple[Ident, ...]
    roles: tuple[Ident, ...]
    conditions: tuple[Condition, ...]
    obligations: tuple[Obligation, ...]
    advice: tuple[AdviceItem, ...]
    namespace: str = ""
    span: Span = _span()

    @property
    def qualified_id(self) -> str:
        return f"{self.namespace}.{self.id.name}" if self.namespace else self.id.name


RouteSourceKind = Literal["literal", "path", "query", "header", "source", "now"]


@dataclass(frozen=True, slots=True)
class RouteSource:
    """Where a value comes from in an HTTP request: `path.id`, `query.q`, `header("x-a")`, ..."""

    kind: RouteSourceKind
    name: str  # the parameter, query key, header or peer field; the text for a literal
    default: str | None = None  # for a header the request may not carry
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RouteAssign:
    root: Literal["resource", "context"]
    target: Ident
    source: RouteSource
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class RouteDecl:
    """`route GET "/docs/{id}" => read Document { resource.id = path.id; }`; no methods = any."""

    methods: tuple[Ident, ...]
    pattern: str
    action: Ident
    resource_type: Ident
    assigns: tuple[RouteAssign, ...]
    is_default: bool = False
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class HttpDecl:
    """Assignments every route gets, e.g. `context.ip = source.ip;`."""

    assigns: tuple[RouteAssign, ...]
    span: Span = _span()


Declaration = (
    EnumDecl
    | EntityDecl
    | ContextDecl
    | ActionsDecl
    | RoleDecl
    | BindingDecl
    | ConstDecl
    | WindowDecl
    | RouteDecl
    | HttpDecl
    | Rule
)


@dataclass(frozen=True, slots=True)
class Comment:
    """A `//`, `#` or `/* ... */` comment, verbatim; kept for the formatter, never part of a policy's meaning."""

    text: str
    span: Span = _span()


@dataclass(frozen=True, slots=True)
class PolicyFile:
    path: str
    namespace: str
    items: tuple[Declaration, ...]
    span: Span = _span()
    # In source order. Like spans, comments take no part in equality: they do not change what a policy says.
    comments: tuple[Comment, ...] = field(default=(), compare=False, repr=False)
