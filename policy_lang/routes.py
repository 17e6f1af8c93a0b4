"""HTTP routes: how a gateway's request (method, path, headers, peer) becomes a decision.

`check_routes` validates the `route` and `http` declarations against the schema and builds a
`RouteTable`: a trie over path segments (literal segments before `{parameters}`), so matching
costs the depth of the path, not the number of routes. Values taken from the request are
strings; each assignment converts its string to the JSON form the engine accepts for the
target attribute's type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policy_lang import nodes as n
from policy_lang.convert import converter
from policy_lang.errors import Diagnostic
from policy_lang.schema import (
    BOOL,
    DATETIME,
    DURATION,
    INT,
    IP,
    STRING,
    EntityType,
    EnumType,
    Record,
    Schema,
    SetOf,
    Type,
)
from policy_lang.spans import Span
from policy_lang.typer import did_you_mean

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
PEER_FIELDS = frozenset({"ip", "principal"})
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_LITERAL_SEGMENT = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+")
MAX_SEGMENTS = 64


def _to_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("true", "1", "yes"):
        return True
    if low in ("false", "0", "no"):
        return False
    raise ValueError(f"`{text}` is not a boolean (true or false)")


def _to_int(text: str) -> int:
    if not re.fullmatch(r"-?[0-9]{1,18}", text.strip()):
        raise ValueError(f"`{text}` is not an integer")
    return int(text)


def _to_set(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


_FROM_TEXT: dict[Type, Callable[[str], Any]] = {
    STRING: str, IP: str, DATETIME: str, DURATION: str, BOOL: _to_bool, INT: _to_int, SetOf(STRING): _to_set,
}  # fmt: skip


def text_converter(t: Type) -> Callable[[str], Any] | None:
    """How a request string becomes the JSON value the engine converts for type `t`."""
    if isinstance(t, EnumType):
        return str
    return _FROM_TEXT.get(t)


@dataclass(frozen=True, slots=True)
class Assignment:
    root: str  # "resource" or "context"
    target: str  # attribute name, or "id" for the resource id
    kind: str  # literal, path, query, header, source, now
    name: str
    convert: Callable[[str], Any]
    span: Span
    default: str | None = None


@dataclass(frozen=True, slots=True)
class Route:
    methods: frozenset[str] | None  # None: any method
    pattern: str
    action: str
    resource_type: str
    assigns: tuple[Assignment, ...]
    span: Span
    params: tuple[str, ...] = ()  # the pattern's parameter names, in order


@dataclass(slots=True)
class _Node:
    literal: dict[str, _Node] = field(default_factory=dict)
    # One child for every `{parameter}`, whatever each route calls it: routes naming it differently
    # share it, so a route naming the method wins over a `*` route however their parameters are named.
    param: _Node | None = None
    routes: list[Route] = field(default_factory=list)


@dataclass(slots=True)
class RouteTable:
    root: _Node = field(default_factory=_Node)
    default: Route | None = None
    http: tuple[Assignment, ...] = ()
    count: int = 0

    def __bool__(self) -> bool:
        return self.count > 0 or self.default is not None

    def match(self, method: str, segments: Sequence[str]) -> tuple[Route, dict[str, str]] | None:
        """The most specific route for a normalized path: literal segments win over parameters."""
        if len(segments) > MAX_SEGMENTS:
            return None
        # Depth-first, literal before parameter, iteratively; paths are short.
        stack: list[tuple[_Node, int, tuple[str, ...]]] = [(self.root, 0, ())]
        while stack:
            node, depth, values = stack.pop()
            if depth == len(segments):
                for route in node.routes:
                    if route.methods is None or method in route.methods:
                        return route, dict(zip(route.params, values, strict=True))
                continue
            segment = segments[depth]
            if node.param is not None:
                stack.append((node.param, depth + 1, (*values, segment)))
            literal = node.literal.get(segment)
            if literal is not None:
                stack.append((literal, depth + 1, values))
        return None


def pattern_segments(pattern: str) -> list[str]:
    return [s for s in pattern.split("/")[1:]] if pattern != "/" else []


def check_routes(
    routes: Sequence[n.RouteDecl],
    http: Sequence[n.HttpDecl],
    schema: Schema,
    diagnostics: list[Diagnostic],
) -> RouteTable:
    table = RouteTable()
    seen: dict[tuple[str | None, tuple[str, ...]], n.RouteDecl] = {}

    def error(code: str, message: str, node: Any, help: str | None = None) -> None:
        diagnostics.append(Diagnostic(code, message, node.span, help))

    context_type = schema.context
    http_assigns = []
    for block in http:
        for a in block.assigns:
            if a.root != "context":
                error("type_error", "an `http` block sets context attributes only", a)
                continue
            checked = _assignment(a, context_type, "the context", {}, error)
            if checked is not None:
                http_assigns.append(checked)
    table.http = tuple(http_assigns)

    for decl in routes:
        rtype = schema.entities.get(decl.resource_type.name)
        if rtype is None:
            error("unknown_type", f"unknown entity type `{decl.resource_type.name}`", decl.resource_type,
                  did_you_mean(decl.resource_type.name, schema.entities))  # fmt: skip
            continue
        valid = schema.actions.get(rtype.name, frozenset())
        if decl.action.name not in valid:
            shown = ", ".join(sorted(valid)) or "none"
            error("never_applies", f"action `{decl.action.name}` is not valid for `{rtype.name}`", decl.action,
                  f"valid actions: {shown}")  # fmt: skip
            continue
        methods: frozenset[str] | None = None
        if decl.methods:
            bad = [m for m in decl.methods if m.name not in METHODS]
            for m in bad:
                error("invalid_literal", f"`{m.name}` is not an HTTP method", m, did_you_mean(m.name.upper(), METHODS))
            if bad:
                continue
            methods = frozenset(m.name for m in decl.methods)
        params: dict[str, None] = {}  # in pattern order
        segments: list[str] = []
        if not decl.is_default:
            if not decl.pattern.startswith("/"):
                error("invalid_literal", f"route pattern `{decl.pattern}` must start with `/`", decl)
                continue
            ok = True
            for segment in pattern_segments(decl.pattern):
                param = _PARAM.fullmatch(segment)
                if param:
                    if param.group(1) in params:
                        error("invalid_literal", f"parameter `{param.group(1)}` appears twice", decl)
                        ok = False
                    params[param.group(1)] = None
                    segments.append("{}")
                elif not _LITERAL_SEGMENT.fullmatch(segment) or segment in (".", ".."):
                    error(
                        "invalid_literal", f"route segment `{segment}` is not a plain path segment or `{{name}}`", decl
                    )
                    ok = False
                else:
                    segments.append(segment)
            if not ok:
                continue
        assigns = []
        for a in decl.assigns:
            target_type: Any = rtype.record if a.root == "resource" else context_type
            where = f"`{rtype.name}`" if a.root == "resource" else "the context"
            checked = _assignment(a, target_type, where, params, error, entity=a.root == "resource")
            if checked is not None:
                assigns.append(checked)
        route = Route(methods, decl.pattern, decl.action.name, rtype.name, tuple(assigns), decl.span, tuple(params))
        if decl.is_default:
            if table.default is not None:
                error("duplicate_declaration", "there is already a default route", decl)
                continue
            table.default = route
            continue
        for method in sorted(methods) if methods is not None else [None]:
            key = (method, tuple(segments))
            if key in seen:
                error("duplicate_route", f"route `{method or '*'} {decl.pattern}` is declared twice", decl,
                      f"first declared at {seen[key].span}")  # fmt: skip
            seen[key] = decl
        _insert(table.root, pattern_segments(decl.pattern), route)
        table.count += 1
    return table


def _insert(root: _Node, segments: list[str], route: Route) -> None:
    node = root
    for segment in segments:
        if _PARAM.fullmatch(segment):
            if node.param is None:
                node.param = _Node()
            node = node.param
        else:
            node = node.literal.setdefault(segment, _Node())
    node.routes.append(route)
    node.routes.sort(key=lambda r: r.methods is None)  # routes naming methods before catch-alls


def _assignment(
    a: n.RouteAssign,
    record: Record | EntityType,
    where: str,
    params: Mapping[str, None],
    error: Callable[..., None],
    *,
    entity: bool = False,
) -> Assignment | None:
    name = a.target.name
    if entity and name == "id":
        target_type: Type = STRING
    else:
        rec = record.record if isinstance(record, EntityType) else record
        f = rec.get(name)
        if f is None:
            names = [x.name for x in rec.fields] + (["id"] if entity else [])
            error("unknown_attribute", f"{where} has no attribute `{name}`", a.target, did_you_mean(name, names))
            return None
        target_type = f.type
    convert = text_converter(target_type)
    if convert is None:
        error("type_error", f"a request value cannot fill {target_type} attribute `{name}`", a.target,
              "routes fill strings, ints, bools, ips, datetimes, durations, enums and set<string>")  # fmt: skip
        return None
    src = a.source
    if src.kind == "path" and src.name not in params:
        error("unknown_name", f"the route has no path parameter `{src.name}`", src, did_you_mean(src.name, params))
        return None
    if src.kind == "source" and src.name not in PEER_FIELDS:
        error("unknown_name", f"`source.{src.name}` is not known", src, did_you_mean(src.name, PEER_FIELDS))
        return None
    if src.kind == "now" and target_type != DATETIME:
        error("type_error", f"`now` is a datetime, but `{name}` is {target_type}", src)
        return None
    for literal in (src.name if src.kind == "literal" else None, src.default):
        if literal is not None:
            try:
                converter(target_type)(convert(literal))  # as the engine will: an ip, enum member, datetime...
            except ValueError as exc:
                error("invalid_literal", str(exc), src)
                return None
    return Assignment(a.root, name, src.kind, src.name, convert, a.span, src.default)


def empty_table() -> RouteTable:
    return RouteTable()


def request_values(
    assigns: Sequence[Assignment],
    *,
    params: Mapping[str, str],
    query: Mapping[str, str],
    headers: Mapping[str, str],
    peer: Mapping[str, str],
    now: str,
) -> tuple[dict[str, Any], dict[str, Any], str | None]:
    """Resource attributes, context attributes and the resource id the assignments produce.

    A value the request does not carry is left out (a required attribute then fails closed in
    the engine). A value that does not convert raises ValueError naming the attribute.
    """
    resource: dict[str, Any] = {}
    context: dict[str, Any] = {}
    resource_id: str | None = None
    for a in assigns:
        if a.kind == "literal":
            raw: str | None = a.name
        elif a.kind == "path":
            raw = params.get(a.name)
        elif a.kind == "query":
            raw = query.get(a.name)
        elif a.kind == "header":
            raw = headers.get(a.name, a.default)
        elif a.kind == "source":
            raw = peer.get(a.name)
        else:
            raw = now
        if raw is None:
            continue
        try:
            value = a.convert(raw)
        except ValueError as exc:
            raise ValueError(f"{a.root}.{a.target}: {exc}") from None
        if a.root == "resource" and a.target == "id":
            resource_id = str(value)
        elif a.root == "resource":
            resource[a.target] = value
        else:
            context[a.target] = value
    return resource, context, resource_id
