"""Text -> AST. The only module that imports lark.

The grammar lives in `grammar.lark`; the LALR parser is built once per process. A
Transformer turns lark's parse tree into `policy_lang.nodes` with a span on every node.
Comments are ignored by the grammar; a lexer callback collects them into
`PolicyFile.comments` (for the formatter) without making them part of the AST's meaning.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from policy_lang import nodes as n
from policy_lang.errors import Diagnostic, PolicyError, PolicySyntaxError
from policy_lang.spans import Source, Span
from policy_lang.values import parse_duration

_GRAMMAR = Path(__file__).with_name("grammar.lark")


# The comments of the parse running on this thread; the lexer callbacks append to it.
_comment_sink = threading.local()


def _collect_comment(token: Token) -> Token:
    sink: list[Token] | None = getattr(_comment_sink, "tokens", None)
    if sink is not None:
        sink.append(token)
    return token


@lru_cache(maxsize=1)
def _parser() -> Lark:
    return Lark(
        _GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=False,
        lexer_callbacks={"COMMENT": _collect_comment, "BLOCK_COMMENT": _collect_comment},
    )


def parse(text: str, *, filename: str = "<string>", namespace: str = "") -> n.PolicyFile:
    """Parse one `.pdp` file. `namespace` is used when the file declares none.

    Results are kept per (text, filename, namespace): the AST is immutable, and a reload
    then re-parses only the files that changed (LALR parsing in Python is the slow step).
    """
    return _parse_cached(text, filename, namespace)


@lru_cache(maxsize=4096)
def _parse_cached(text: str, filename: str, namespace: str) -> n.PolicyFile:
    comments: list[Token] = []
    _comment_sink.tokens = comments
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise PolicySyntaxError([_syntax_diagnostic(exc, filename)], {filename: Source(filename, text)}) from None
    finally:
        _comment_sink.tokens = None
    try:
        return _ToAst(filename, namespace, comments).transform(tree)  # type: ignore[no-any-return]
    except PolicyError as exc:
        exc.sources[filename] = Source(filename, text)
        raise


_FRIENDLY = {"NAME": "a name", "STRING": "a string", "INT": "a number", "DURATION": "a duration", "$END": "end of file"}


def _describe_terminal(name: str) -> str:
    if name in _FRIENDLY:
        return _FRIENDLY[name]
    for term in _parser().terminals:
        if term.name == name and term.pattern.type == "str":
            return f"`{term.pattern.value}`"
    return name.lower()


def _syntax_diagnostic(exc: UnexpectedInput, filename: str) -> Diagnostic:
    line, col = max(exc.line, 1), max(exc.column, 1)
    if isinstance(exc, UnexpectedToken):
        found = "end of file" if exc.token.type == "$END" else f"`{exc.token}`"
        expected = sorted({_describe_terminal(t) for t in exc.expected})
        message = f"unexpected {found}"
        width = max(len(str(exc.token)), 1)
        if exc.token.type == "$END" and exc.token.end_line and exc.token.end_column:
            # lark places end of file on the last token; the caret belongs just after it.
            line, col = exc.token.end_line, exc.token.end_column
    elif isinstance(exc, UnexpectedCharacters):
        message = f"unexpected character `{exc.char}`"
        expected = []
        width = 1
    elif isinstance(exc, UnexpectedEOF):
        message = "unexpected end of file"
        expected = sorted({_describe_terminal(t) for t in exc.expected})
        width = 1
    else:  # pragma: no cover - lark has no other kinds today
        message, expected, width = str(exc), [], 1
    if expected:
        shown = ", ".join(expected[:8]) + (", ..." if len(expected) > 8 else "")
        message += f"; expected {shown}"
    span = Span(filename, line, col, line, col + width)
    return Diagnostic("syntax_error", message, span)


def unquote(token: str) -> str:
    body = token[1:-1]
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class _ToAst:
    """One short method per grammar rule, called with (meta, children); `meta` carries the positions.

    The walk is our own, iterative and post-order: deep nesting cannot exhaust the stack, and
    it avoids the per-node wrapper objects that lark's `v_args` builds.
    """

    def __init__(self, filename: str, namespace: str, comments: list[Token] | None = None):
        self.filename = filename
        self.namespace = namespace
        self.comments = tuple(n.Comment(str(tok), self._tok_span(tok)) for tok in comments or ())
        self._methods: dict[str, Any] = {}

    def transform(self, root: Tree[Token]) -> Any:
        results: list[Any] = []
        work: list[tuple[Any, bool]] = [(root, False)]
        methods = self._methods
        while work:
            node, done = work.pop()
            if not isinstance(node, Tree):
                results.append(node)
            elif done:
                count = len(node.children)
                children = results[len(results) - count :] if count else []
                if count:
                    del results[len(results) - count :]
                method = methods.get(node.data)
                if method is None:
                    method = methods[node.data] = getattr(self, str(node.data))
                results.append(method(node.meta, children))
            else:
                work.append((node, True))
                work.extend((child, False) for child in reversed(node.children))
        return results[0]

    def _span(self, meta: Any) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.filename, 0, 0, 0, 0)
        return Span(self.filename, meta.line, meta.column, meta.end_line, meta.end_column, meta.start_pos, meta.end_pos)

    def _tok_span(self, tok: Token) -> Span:
        return Span(
            self.filename,
            tok.line or 0,
            tok.column or 0,
            tok.end_line or 0,
            tok.end_column or 0,
            tok.start_pos or 0,
            tok.end_pos or 0,
        )

    def _ident(self, tok: Token) -> n.Ident:
        return n.Ident(str(tok), self._tok_span(tok))

    # ---- file ----------------------------------------------------------------
    def start(self, meta: Any, children: list[Any]) -> n.PolicyFile:
        namespace = self.namespace
        items = []
        for child in children:
            if isinstance(child, tuple) and child[0] == "namespace":
                namespace = child[1]
            else:
                items.append(child)
        final = tuple(_with_namespace(item, namespace) if isinstance(item, n.Rule) else item for item in items)
        return n.PolicyFile(self.filename, namespace, final, self._span(meta), self.comments)

    def namespace_decl(self, meta: Any, children: list[Any]) -> tuple[str, str]:
        return ("namespace", children[0])

    def qual_name(self, meta: Any, children: list[Token]) -> str:
        return ".".join(str(c) for c in children)

    def name_list(self, meta: Any, children: list[Token]) -> tuple[n.Ident, ...]:
        return tuple(self._ident(c) for c in children)

    # ---- schema --------------------------------------------------------------
    def ordered_enum(self, meta: Any, children: list[Token]) -> n.EnumDecl:
        return n.EnumDecl(str(children[0]), tuple(self._ident(c) for c in children[1:]), True, self._span(meta))

    def unordered_enum(self, meta: Any, children: list[Token]) -> n.EnumDecl:
        return n.EnumDecl(str(children[0]), tuple(self._ident(c) for c in children[1:]), False, self._span(meta))

    def principal_mark(self, meta: Any, children: list[Any]) -> str:
        return "principal"

    def entity_decl(self, meta: Any, children: list[Any]) -> n.EntityDecl:
        is_principal = bool(children) and children[0] == "principal"
        rest = children[1:] if is_principal else children
        name, *body = rest
        parents: tuple[n.Ident, ...] = ()
        if body and isinstance(body[0], tuple):
            parents, body = body[0], body[1:]
        return n.EntityDecl(str(name), tuple(body), parents, is_principal, self._span(meta))

    def entity_parents(self, meta: Any, children: list[Any]) -> tuple[n.Ident, ...]:
        return children[0]  # type: ignore[no-any-return]

    def attr_decl(self, meta: Any, children: list[Any]) -> n.AttrDecl:
        name = children[0]
        optional = any(isinstance(c, Token) and c.type == "OPTIONAL" for c in children)
        sensitive = any(isinstance(c, Token) and c.type == "SENSITIVE" for c in children)
        type_ = next(c for c in children[1:] if not isinstance(c, Token))
        return n.AttrDecl(str(name), type_, optional, sensitive, self._span(meta))

    def named_type(self, meta: Any, children: list[Token]) -> n.NamedType:
        return n.NamedType(str(children[0]), self._span(meta))

    def set_type(self, meta: Any, children: list[Any]) -> n.SetType:
        return n.SetType(children[0], self._span(meta))

    def map_type(self, meta: Any, children: list[Any]) -> n.MapType:
        return n.MapType(children[0], children[1], self._span(meta))

    def record_type(self, meta: Any, children: list[Any]) -> n.RecordType:
        return n.RecordType(tuple(children), self._span(meta))

    def context_decl(self, meta: Any, children: list[Any]) -> n.ContextDecl:
        return n.ContextDecl(tuple(children), self._span(meta))

    def actions_decl(self, meta: Any, children: list[Any]) -> n.ActionsDecl:
        return n.ActionsDecl(self._ident(children[0]), children[1], self._span(meta))

    # ---- RBAC ----------------------------------------------------------------
    def role_decl(self, meta: Any, children: list[Any]) -> n.RoleDecl:
        name, *rest = children
        extends: tuple[n.Ident, ...] = ()
        if rest and isinstance(rest[0], tuple):
            extends, rest = rest[0], rest[1:]
        return n.RoleDecl(str(name), extends, tuple(rest), self._span(meta))

    def role_extends(self, meta: Any, children: list[Any]) -> tuple[n.Ident, ...]:
        return children[0]  # type: ignore[no-any-return]

    def grant(self, meta: Any, children: list[Any]) -> n.Grant:
        return n.Grant(children[0], children[1], self._span(meta))

    def binding_decl(self, meta: Any, children: list[Any]) -> n.BindingDecl:
        return n.BindingDecl(self._ident(children[0]), children[1], self._span(meta))

    # ---- named values --------------------------------------------------------
    def const_decl(self, meta: Any, children: list[Any]) -> n.ConstDecl:
        name, *rest = children
        type_ = value = None
        for child in rest:
            if isinstance(child, (n.NamedType, n.SetType, n.MapType, n.RecordType)) and type_ is None and value is None:
                type_ = child
            else:
                value = child
        return n.ConstDecl(str(name), type_, value, self._span(meta))

    def list_decl(self, meta: Any, children: list[Any]) -> n.ConstDecl:
        name, element, *value = children
        return n.ConstDecl(str(name), n.SetType(element, element.span), value[0] if value else None, self._span(meta))

    def list_value(self, meta: Any, children: list[Any]) -> n.SetLit:
        return n.SetLit(tuple(c for c in children if c is not None), self._span(meta))

    def window_decl(self, meta: Any, children: list[Any]) -> n.WindowDecl:
        return n.WindowDecl(str(children[0]), tuple(children[1:]), self._span(meta))

    def window_field(self, meta: Any, children: list[Token]) -> n.WindowField:
        return n.WindowField(str(children[0]), unquote(children[1]), self._span(meta))

    # ---- HTTP routes ---------------------------------------------------------
    def route_decl(self, meta: Any, children: list[Any]) -> n.RouteDecl:
        methods, pattern, action, rtype, assigns = children
        return n.RouteDecl(
            methods, unquote(pattern), self._ident(action), self._ident(rtype), assigns, False, self._span(meta)
        )

    def default_route_decl(self, meta: Any, children: list[Any]) -> n.RouteDecl:
        action, rtype, assigns = children
        return n.RouteDecl((), "", self._ident(action), self._ident(rtype), assigns, True, self._span(meta))

    def route_methods(self, meta: Any, children: list[Token]) -> tuple[n.Ident, ...]:
        return tuple(self._ident(c) for c in children)

    def any_method(self, meta: Any, children: list[Any]) -> tuple[n.Ident, ...]:
        return ()

    def route_body(self, meta: Any, children: list[Any]) -> tuple[n.RouteAssign, ...]:
        return tuple(children)

    def http_decl(self, meta: Any, children: list[Any]) -> n.HttpDecl:
        return n.HttpDecl(tuple(children), self._span(meta))

    def route_assign(self, meta: Any, children: list[Any]) -> n.RouteAssign:
        (root, target), source = children
        return n.RouteAssign(root, target, source, self._span(meta))

    def route_target(self, meta: Any, children: list[Token]) -> tuple[str, n.Ident]:
        return str(children[0]), self._ident(children[1])

    def source_literal(self, meta: Any, c: list[Token]) -> n.RouteSource:
        return n.RouteSource("literal", unquote(c[0]), None, self._span(meta))

    def source_path(self, meta: Any, c: list[Token]) -> n.RouteSource:
        return n.RouteSource("path", str(c[0]), None, self._span(meta))

    def source_query(self, meta: Any, c: list[Token]) -> n.RouteSource:
        return n.RouteSource("query", str(c[0]), None, self._span(meta))

    def source_header(self, meta: Any, c: list[Token]) -> n.RouteSource:
        default = unquote(c[1]) if len(c) > 1 else None
        return n.RouteSource("header", unquote(c[0]).lower(), default, self._span(meta))

    def source_peer(self, meta: Any, c: list[Token]) -> n.RouteSource:
        return n.RouteSource("source", str(c[0]), None, self._span(meta))

    def source_now(self, meta: Any, c: list[Any]) -> n.RouteSource:
        return n.RouteSource("now", "now", None, self._span(meta))

    # ---- rules ---------------------------------------------------------------
    def rule(self, meta: Any, children: list[Any]) -> n.Rule:
        parts: dict[str, list[Any]] = {
            "annotations": [],
            "principal": [],
            "action": [],
            "resource": [],
            "role": [],
            "conditions": [],
            "obligations": [],
            "advice": [],
        }
        effect = rule_id = None
        for child in children:
            if isinstance(child, Token) and child.type == "EFFECT":
                effect = str(child)
            elif isinstance(child, Token):
                rule_id = self._ident(child)
            elif isinstance(child, n.Annotation):
                parts["annotations"].append(child)
            elif isinstance(child, n.Condition):
                parts["conditions"].append(child)
            elif isinstance(child, tuple) and child and child[0] in ("principal", "action", "resource", "role"):
                parts[child[0]].extend(child[1])
            elif isinstance(child, tuple) and child and child[0] in ("obligations", "advice"):
                parts[child[0]].extend(child[1])
        assert effect in ("permit", "forbid") and rule_id is not None
        return n.Rule(
            rule_id,
            "permit" if effect == "permit" else "forbid",
            tuple(parts["annotations"]),
            tuple(parts["principal"]),
            tuple(parts["action"]),
            tuple(parts["resource"]),
            tuple(parts["role"]),
            tuple(parts["conditions"]),
            tuple(parts["obligations"]),
            tuple(parts["advice"]),
            "",
            self._span(meta),
        )

    def annotation(self, meta: Any, children: list[Token]) -> n.Annotation:
        return n.Annotation(str(children[0]), unquote(children[1]), self._span(meta))

    def principal_scope(self, meta: Any, children: list[Any]) -> tuple[str, Any]:
        return ("principal", children[0])

    def action_scope(self, meta: Any, children: list[Any]) -> tuple[str, Any]:
        return ("action", children[0])

    def resource_scope(self, meta: Any, children: list[Any]) -> tuple[str, Any]:
        return ("resource", children[0])

    def role_scope(self, meta: Any, children: list[Any]) -> tuple[str, Any]:
        return ("role", children[0])

    def when(self, meta: Any, children: list[Any]) -> n.Condition:
        return n.Condition("when", children[0], self._span(meta))

    def unless(self, meta: Any, children: list[Any]) -> n.Condition:
        return n.Condition("unless", children[0], self._span(meta))

    def obligations(self, meta: Any, children: list[Any]) -> tuple[str, Any]:
        return ("obligations", children)

    def mask(self, meta: Any, children: list[Any]) -> n.Mask:
        return n.Mask(tuple(children), self._span(meta))

    def header(self, meta: Any, children: list[Any]) -> n.SetHeader:
        return n.SetHeader(unquote(children[0]), children[1], self._span(meta))

    def advice(self, meta: Any, children: list[Any]) -> tuple[str, Any]:
        return ("advice", children)

    def advice_item(self, meta: Any, children: list[Any]) -> n.AdviceItem:
        return n.AdviceItem(str(children[0]), children[1], self._span(meta))

    # ---- expressions ---------------------------------------------------------
    def or_(self, meta: Any, c: list[Any]) -> n.Or:
        return n.Or(c[0], c[1], self._span(meta))

    def and_(self, meta: Any, c: list[Any]) -> n.And:
        return n.And(c[0], c[1], self._span(meta))

    def not_(self, meta: Any, c: list[Any]) -> n.Not:
        return n.Not(c[0], self._span(meta))

    def neg(self, meta: Any, c: list[Any]) -> n.Neg:
        return n.Neg(c[0], self._span(meta))

    def _binary(self, op: n.BinaryOp, meta: Any, c: list[Any]) -> n.Binary:
        return n.Binary(op, c[0], c[1], self._span(meta))

    def eq(self, meta: Any, c: list[Any]) -> n.Binary:
        return self._binary("==", meta, c)

    def ne(self, meta: Any, c: list[Any]) -> n.Binary:
        return self._binary("!=", meta, c)

    def lt(self, meta: Any, c: list[Any]) -> n.Binary:
        return self._binary("<", meta, c)

    def le(self, meta: Any, c: list[Any]) -> n.Binary:
        return self._binary("<=", meta, c)

    def gt(self, meta: Any, c: list[Any]) -> n.Binary:
        return self._binary(">", meta, c)

    def ge(self, meta: Any, c: list[Any]) -> n.Binary:
        return self._binary(">=", meta, c)

    def add(self, meta: Any, c: list[Any]) -> n.Binary:
        return self._binary("+", meta, c)

    def sub(self, meta: Any, c: list[Any]) -> n.Binary:
        return self._binary("-", meta, c)

    def in_(self, meta: Any, c: list[Any]) -> n.Binary:
        return self._binary("in", meta, c)

    def has(self, meta: Any, c: list[Any]) -> n.Has:
        return n.Has(c[0], str(c[1]), self._span(meta))

    def like(self, meta: Any, c: list[Any]) -> n.Like:
        return n.Like(c[0], unquote(c[1]), self._span(meta))

    def attr(self, meta: Any, c: list[Any]) -> n.Attr:
        return n.Attr(c[0], str(c[1]), self._span(meta))

    def method(self, meta: Any, c: list[Any]) -> n.Method:
        return n.Method(c[0], str(c[1]), tuple(x for x in c[2:] if x is not None), self._span(meta))

    def index(self, meta: Any, c: list[Any]) -> n.Index:
        return n.Index(c[0], c[1], self._span(meta))

    def string(self, meta: Any, c: list[Token]) -> n.Lit:
        return n.Lit(unquote(c[0]), "string", self._span(meta))

    def int(self, meta: Any, c: list[Token]) -> n.Lit:
        return n.Lit(int(c[0]), "int", self._span(meta))

    def duration(self, meta: Any, c: list[Token]) -> n.Lit:
        return n.Lit(parse_duration(str(c[0])), "duration", self._span(meta))

    def true(self, meta: Any, c: list[Any]) -> n.Lit:
        return n.Lit(True, "bool", self._span(meta))

    def false(self, meta: Any, c: list[Any]) -> n.Lit:
        return n.Lit(False, "bool", self._span(meta))

    def principal(self, meta: Any, c: list[Any]) -> n.Var:
        return n.Var("principal", self._span(meta))

    def resource(self, meta: Any, c: list[Any]) -> n.Var:
        return n.Var("resource", self._span(meta))

    def context(self, meta: Any, c: list[Any]) -> n.Var:
        return n.Var("context", self._span(meta))

    def now(self, meta: Any, c: list[Any]) -> n.Var:
        return n.Var("now", self._span(meta))

    def role_ref(self, meta: Any, c: list[Token]) -> n.RoleRef:
        return n.RoleRef(str(c[0]), self._span(meta))

    def entity_ref(self, meta: Any, c: list[Token]) -> n.EntityRef:
        return n.EntityRef(str(c[0]), unquote(c[1]), self._span(meta))

    def call(self, meta: Any, c: list[Any]) -> n.Call:
        return n.Call(str(c[0]), tuple(x for x in c[1:] if x is not None), self._span(meta))

    def name(self, meta: Any, c: list[Token]) -> n.Name:
        return n.Name(str(c[0]), self._span(meta))

    def set_lit(self, meta: Any, c: list[Any]) -> n.SetLit:
        return n.SetLit(tuple(x for x in c if x is not None), self._span(meta))


def _with_namespace(rule: n.Rule, namespace: str) -> n.Rule:
    return n.Rule(
        rule.id,
        rule.effect,
        rule.annotations,
        rule.principals,
        rule.actions,
        rule.resources,
        rule.roles,
        rule.conditions,
        rule.obligations,
        rule.advice,
        namespace,
        rule.span,
    )
