"""AST -> policy text.

Faithful: parsing the printed text gives an AST equal to the one printed (spans aside).
Parentheses are added only where the grammar's precedence needs them, so the text reads
like hand-written policy. Comments are not reproduced here; `policy_lang.formatter` lays
out whole files, comments included, from the pieces this module prints.

Precedence, loosest first (see grammar.lark): `or`, `and`, `not`, comparisons (not
associative), `+`/`-` (left associative), unary `-`, postfix (`.x`, `.m()`, `[k]`), atoms.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from policy_lang import nodes as n
from policy_lang.values import parse_duration

_OR, _AND, _NOT, _CMP, _ADD, _UNARY, _POSTFIX, _ATOM = range(1, 9)

_COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">=", "in"})

_QUAL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


# ---- literals ---------------------------------------------------------------------


def quote(text: str) -> str:
    """A string literal that the grammar's STRING token reads back as `text`."""
    body = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{body}"'


def _whole_parts(whole: int) -> list[str]:
    parts = []
    for unit, size in _UNITS:
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return parts


def _duration_candidates(seconds: float) -> Iterator[str]:
    total_ms = round(abs(seconds) * 1000)
    whole, ms = divmod(total_ms, 1000)
    parts = _whole_parts(whole) + ([f"{ms}ms"] if ms else [])
    yield "".join(parts) or "0s"
    if ms:
        # parse_duration adds the parts up as floats, in order, so spellings of one total can
        # differ in the last bit: try other splits between whole seconds and milliseconds,
        # then other orders of the same parts.
        yield f"{total_ms}ms"
        for borrowed in range(1, min(whole, 10) + 1):
            yield "".join(_whole_parts(whole - borrowed)) + f"{ms + 1000 * borrowed}ms"
        for order in itertools.islice(itertools.permutations(parts), 1, None):
            yield "".join(order)


def format_duration(seconds: float) -> str:
    """Seconds -> duration text such as `15m` or `1h30m`; negative values get a leading `-`.

    Picks the largest-unit-first spelling that `parse_duration` reads back as exactly
    `seconds` (it sums whole milliseconds, so every spelling of one total is equal).
    """
    sign = "-" if seconds < 0 else ""
    first = None
    for text in _duration_candidates(seconds):
        if parse_duration(text) == abs(seconds):
            return sign + text
        first = first or text
    return sign + (first or "0s")


def _literal(e: n.Lit) -> str:
    if e.kind == "string":
        return quote(str(e.value))
    if e.kind == "bool":
        return "true" if e.value else "false"
    if e.kind == "duration":
        return format_duration(float(e.value))
    return str(e.value)


# ---- expressions --------------------------------------------------------------------


def precedence(e: n.Expr) -> int:
    if isinstance(e, n.Or):
        return _OR
    if isinstance(e, n.And):
        return _AND
    if isinstance(e, n.Not):
        return _NOT
    if isinstance(e, (n.Has, n.Like)):
        return _CMP
    if isinstance(e, n.Binary):
        return _CMP if e.op in _COMPARISONS else _ADD
    if isinstance(e, n.Neg):
        return _UNARY
    if isinstance(e, n.Lit) and e.kind == "int" and isinstance(e.value, int) and e.value < 0:
        return _UNARY  # only built by hand: prints as `-5`, which reads back as Neg(5)
    if isinstance(e, (n.Attr, n.Index, n.Method)):
        return _POSTFIX
    return _ATOM


def expr(e: n.Expr) -> str:
    """Policy text for an expression."""
    return _at(e, _OR)


def _at(e: n.Expr, level: int) -> str:
    """`e` printed where the grammar expects an expression of at least `level`."""
    text = _print(e)
    return f"({text})" if precedence(e) < level else text


def _args(items: Iterable[n.Expr]) -> str:
    return ", ".join(expr(a) for a in items)


def _print(e: n.Expr) -> str:
    if isinstance(e, n.Lit):
        return _literal(e)
    if isinstance(e, n.Var):
        return e.name
    if isinstance(e, n.Name):
        return e.name
    if isinstance(e, n.RoleRef):
        return f"role {e.name}"
    if isinstance(e, n.EntityRef):
        return f"{e.type}::{quote(e.id)}"
    if isinstance(e, n.Call):
        return f"{e.name}({_args(e.args)})"
    if isinstance(e, n.SetLit):
        return f"[{_args(e.items)}]"
    if isinstance(e, n.Attr):
        return f"{_at(e.obj, _POSTFIX)}.{e.name}"
    if isinstance(e, n.Method):
        return f"{_at(e.obj, _POSTFIX)}.{e.name}({_args(e.args)})"
    if isinstance(e, n.Index):
        return f"{_at(e.obj, _POSTFIX)}[{expr(e.key)}]"
    if isinstance(e, n.Has):
        return f"{_at(e.obj, _ADD)} has {e.name}"
    if isinstance(e, n.Like):
        return f"{_at(e.obj, _ADD)} like {quote(e.pattern)}"
    if isinstance(e, n.Binary):
        if e.op in _COMPARISONS:
            return f"{_at(e.left, _ADD)} {e.op} {_at(e.right, _ADD)}"
        return f"{_at(e.left, _ADD)} {e.op} {_at(e.right, _UNARY)}"
    if isinstance(e, n.Neg):
        return f"-{_at(e.operand, _UNARY)}"
    if isinstance(e, n.Not):
        # `not a in b` means `not (a in b)`; the parentheses only say so to the reader.
        return f"not {_at(e.operand, _ADD if precedence(e.operand) == _CMP else _NOT)}"
    if isinstance(e, n.And):
        return f"{_at(e.left, _AND)} and {_at(e.right, _NOT)}"
    if isinstance(e, n.Or):
        return f"{_at(e.left, _OR)} or {_at(e.right, _AND)}"
    raise TypeError(f"not an expression: {e!r}")


def chain(e: n.Expr) -> tuple[str, list[tuple[n.Expr, str]]]:
    """`e` split along its top-level `and` (or `or`) chain: the operator and each operand with its text.

    `f" {op} ".join(texts) == expr(e)`; an expression that is neither gives `("", [(e, expr(e))])`.
    """
    if not isinstance(e, (n.And, n.Or)):
        return "", [(e, expr(e))]
    kind, op, first, rest = (n.And, "and", _AND, _NOT) if isinstance(e, n.And) else (n.Or, "or", _OR, _AND)
    operands: list[tuple[n.Expr, str]] = []
    node: n.Expr = e
    while isinstance(node, kind):
        operands.append((node.right, _at(node.right, rest)))
        node = node.left
    operands.append((node, _at(node, first)))
    operands.reverse()
    return op, operands


def children(e: n.Expr) -> tuple[n.Expr, ...]:
    """The direct subexpressions of `e`, left to right."""
    of = _CHILDREN.get(type(e))
    return of(e) if of is not None else ()


# By exact node type: a dict lookup rather than a chain of isinstance (walks run per rule at compile).
_CHILDREN: dict[type, Callable[[Any], tuple[n.Expr, ...]]] = {
    **dict.fromkeys((n.Attr, n.Has, n.Like), lambda e: (e.obj,)),
    n.Index: lambda e: (e.obj, e.key),
    n.Method: lambda e: (e.obj, *e.args),
    n.Call: lambda e: e.args,
    n.SetLit: lambda e: e.items,
    **dict.fromkeys((n.Binary, n.And, n.Or), lambda e: (e.left, e.right)),
    **dict.fromkeys((n.Not, n.Neg), lambda e: (e.operand,)),
}


def walk(e: n.Expr) -> Iterator[n.Expr]:
    """`e` and every subexpression, parents before children."""
    stack = [e]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(children(node)))


# ---- types and declarations ---------------------------------------------------------------


def type_expr(t: n.TypeExpr) -> str:
    if isinstance(t, n.NamedType):
        return t.name
    if isinstance(t, n.SetType):
        return f"set<{type_expr(t.element)}>"
    if isinstance(t, n.MapType):
        return f"map<{type_expr(t.key)}, {type_expr(t.value)}>"
    if not t.attrs:
        return "{}"
    return "{ " + " ".join(attr_decl(a) for a in t.attrs) + " }"


def attr_decl(a: n.AttrDecl) -> str:
    return f"{a.name}{'?' if a.optional else ''}: {type_expr(a.type)}{' sensitive' if a.sensitive else ''};"


def names(idents: Iterable[n.Ident]) -> str:
    return ", ".join(i.name for i in idents)


def _block(head: str, lines: list[str], indent: str = "  ") -> str:
    if not lines:
        return head + " {}"
    return head + " {\n" + "".join(f"{indent}{line}\n" for line in lines) + "}"


def condition(c: n.Condition) -> str:
    return f"{c.kind} {expr(c.expr)}"


def obligation(o: n.Obligation) -> str:
    if isinstance(o, n.Mask):
        return f"mask {_args(o.targets)};"
    return f"header {quote(o.name)} = {expr(o.value)};"


def scope_lines(rule: n.Rule) -> list[str]:
    """The rule's `principal`, `action`, `resource` and `role` scopes, one per line."""
    out = []
    for keyword, idents in (
        ("principal", rule.principals),
        ("action", rule.actions),
        ("resource", rule.resources),
        ("role", rule.roles),
    ):
        if idents:
            out.append(f"{keyword} {names(idents)}")
    return out


def annotation(a: n.Annotation) -> str:
    return f"@{a.name}({quote(a.value)})"


def advice_item(a: n.AdviceItem) -> str:
    return f"{a.name} = {expr(a.value)};"


def grant(g: n.Grant) -> str:
    return f"grant {names(g.actions)} on {names(g.resource_types)};"


def window_field(f: n.WindowField) -> str:
    return f"{f.name} {quote(f.value)};"


def enum_decl(d: n.EnumDecl) -> str:
    sep = " < " if d.ordered else ", "
    return f"enum {d.name} {{ {sep.join(m.name for m in d.members)} }}"


def actions_decl(d: n.ActionsDecl) -> str:
    return f"actions {d.resource_type.name} {{ {names(d.actions)} }}"


def entity_head(d: n.EntityDecl) -> str:
    """`principal entity User in Group`: an entity declaration up to its `{`."""
    head = ("principal " if d.is_principal else "") + f"entity {d.name}"
    return head + (f" in {names(d.parents)}" if d.parents else "")


def role_head(d: n.RoleDecl) -> str:
    """`role admin extends editor`: a role declaration up to its `{` or `;`."""
    return f"role {d.name}" + (f" extends {names(d.extends)}" if d.extends else "")


def const_head(d: n.ConstDecl, keyword: str = "const") -> str:
    """A constant up to its `= value`: `const name: T`, or with keyword `list`, `list name: E` for a `set<E>`."""
    if keyword == "list" and isinstance(d.type, n.SetType):
        return f"list {d.name}: {type_expr(d.type.element)}"
    return f"const {d.name}" + (f": {type_expr(d.type)}" if d.type is not None else "")


def const_decl(d: n.ConstDecl, keyword: str = "const") -> str:
    """A whole constant declaration; `keyword="list"` keeps the `list` spelling (same AST)."""
    value = f" = {expr(d.value)}" if d.value is not None else ""
    return f"{const_head(d, keyword)}{value};"


def rule(r: n.Rule) -> str:
    lines = [annotation(a) for a in r.annotations]
    lines.append(f"{r.effect} {r.id.name}")
    body = scope_lines(r) + [condition(c) for c in r.conditions]
    if r.obligations:
        body.append(_block("obligations", [obligation(o) for o in r.obligations], "    ").replace("\n}", "\n  }"))
    if r.advice:
        body.append(_block("advice", [advice_item(a) for a in r.advice], "    ").replace("\n}", "\n  }"))
    lines += [f"  {line}" for line in body]
    return "\n".join(lines) + ";"


def declaration(d: n.Declaration) -> str:
    if isinstance(d, n.Rule):
        return rule(d)
    if isinstance(d, n.EnumDecl):
        return enum_decl(d)
    if isinstance(d, n.EntityDecl):
        return _block(entity_head(d), [attr_decl(a) for a in d.attrs])
    if isinstance(d, n.ContextDecl):
        return _block("context", [attr_decl(a) for a in d.attrs])
    if isinstance(d, n.ActionsDecl):
        return actions_decl(d)
    if isinstance(d, n.RoleDecl):
        if not d.grants:
            return role_head(d) + ";"
        return _block(role_head(d), [grant(g) for g in d.grants])
    if isinstance(d, n.BindingDecl):
        return binding(d)
    if isinstance(d, n.ConstDecl):
        return const_decl(d)
    if isinstance(d, n.RouteDecl):
        if not d.assigns:
            return route_head(d) + ";"
        return _block(route_head(d), [route_assign(a) for a in d.assigns])
    if isinstance(d, n.HttpDecl):
        return _block("http", [route_assign(a) for a in d.assigns])
    return _block(f"window {d.name}", [window_field(f) for f in d.fields])


def binding(d: n.BindingDecl) -> str:
    return f"roles of {d.principal_type.name} from {expr(d.expr)};"


# ---- HTTP routes --------------------------------------------------------------------------------


def route_head(d: n.RouteDecl) -> str:
    """`route GET, HEAD "/docs/{id}" => read Document`: a route up to its `{` or `;`."""
    target = f"=> {d.action.name} {d.resource_type.name}"
    if d.is_default:
        return f"route default {target}"
    methods = names(d.methods) if d.methods else "*"
    return f"route {methods} {quote(d.pattern)} {target}"


def route_source(s: n.RouteSource) -> str:
    """`path.id`, `query.q`, `header("x-a", "no")`, `source.ip`, `now` or a string literal."""
    if s.kind == "literal":
        return quote(s.name)
    if s.kind == "header":
        default = f", {quote(s.default)}" if s.default is not None else ""
        return f"header({quote(s.name)}{default})"
    if s.kind == "now":
        return "now"
    if s.kind == "source":
        return f"source.{s.name}"
    return f"{s.kind}.{s.name}"  # path, query


def route_assign(a: n.RouteAssign) -> str:
    return f"{a.root}.{a.target.name} = {route_source(a.source)};"


def policy_file(f: n.PolicyFile) -> str:
    """A whole file. `list` declarations come back as `const name: set<T> = [...]`, which parses the same."""
    # A namespace taken from a folder name need not be a valid name; such files parse back with `namespace=`.
    parts = [f"namespace {f.namespace};"] if _QUAL_NAME.fullmatch(f.namespace) else []
    parts += [declaration(d) for d in f.items]
    return "\n\n".join(parts) + "\n"
