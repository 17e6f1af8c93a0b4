"""policy_lang.printer is faithful: printing then parsing gives an equal AST."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy_lang import nodes as n
from policy_lang import printer
from policy_lang.parser import parse
from policy_lang.values import parse_duration

ROOT = Path(__file__).resolve().parent.parent

KEYWORDS = frozenset(
    "namespace enum entity principal in sensitive set map context actions role extends grant on roles of from "
    "const list window permit forbid action resource when unless obligations mask header advice or and not has "
    "like true false now".split()
)


def parse_expr(text: str) -> n.Expr:
    rule = parse(f"permit r when {text};").items[0]
    assert isinstance(rule, n.Rule)
    return rule.conditions[0].expr


def roundtrip(e: n.Expr) -> n.Expr:
    return parse_expr(printer.expr(e))


names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
texts = st.text(max_size=8)
units = st.sampled_from(["ms", "s", "m", "h", "d"])
UNIT_ORDER = ["d", "h", "m", "s", "ms"]


def _spell(parts: list[tuple[str, int]]) -> float:
    """A duration as written by hand: each unit once, largest first (see format_duration)."""
    ordered = sorted(parts, key=lambda p: UNIT_ORDER.index(p[0]))
    return parse_duration("".join(f"{count}{unit}" for unit, count in ordered))


durations = st.builds(
    _spell, st.lists(st.tuples(units, st.integers(0, 5000)), min_size=1, max_size=5, unique_by=lambda p: p[0])
)
BINARY_OPS: list[n.BinaryOp] = ["==", "!=", "<", "<=", ">", ">=", "+", "-", "in"]

leaves = st.one_of(
    st.builds(n.Lit, texts, st.just("string")),
    st.builds(n.Lit, st.integers(0, 10**15), st.just("int")),
    st.builds(n.Lit, st.booleans(), st.just("bool")),
    st.builds(n.Lit, durations, st.just("duration")),
    st.builds(n.Var, st.sampled_from(["principal", "resource", "context", "now"])),
    st.builds(n.Name, names),
    st.builds(n.RoleRef, names),
    st.builds(n.EntityRef, names, texts),
)


def _compound(inner: st.SearchStrategy[n.Expr]) -> st.SearchStrategy[n.Expr]:
    args = st.lists(inner, max_size=3).map(tuple)
    return st.one_of(
        st.builds(n.Attr, inner, names),
        st.builds(n.Index, inner, inner),
        st.builds(n.Method, inner, names, args),
        st.builds(n.Call, names, args),
        st.builds(n.Has, inner, names),
        st.builds(n.Like, inner, texts),
        st.builds(n.Binary, st.sampled_from(BINARY_OPS), inner, inner),
        st.builds(n.And, inner, inner),
        st.builds(n.Or, inner, inner),
        st.builds(n.Not, inner),
        st.builds(n.Neg, inner),
        st.builds(n.SetLit, args),
    )


expressions = st.recursive(leaves, _compound, max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(expressions)
def test_expressions_roundtrip(e: n.Expr) -> None:
    assert roundtrip(e) == e


@pytest.mark.parametrize(
    "text",
    [
        "a - (b - c)",
        "a - b - c",
        "not (a == b)",
        "(not a) == b",
        "(a or b) and (c or d)",
        "a or b and c",
        "-(a + b).x",
        "(-a).x",
        "- -a",
        "(a in b) == (c in d)",
        "(a == b) has x",
        '(a + b) like "x\\\\*y"',
        '"q\\"uote\\n\\ttab\\\\"',
        'Group::"a\\"b"',
        "principal in role admin",
        'ip("10.0.0.0/8").contains(context.ip)',
        "[1, 2, [3]][0]",
        "[]",
        "f()",
        "x.m()",
        "1h30m + 1500ms - 1s1ms",
        "resource.tenant in tenant_networks and not (context.ip in tenant_networks[resource.tenant])",
    ],
)
def test_tricky_expressions(text: str) -> None:
    e = parse_expr(text)
    assert roundtrip(e) == e


def test_printing_is_minimal() -> None:
    assert printer.expr(parse_expr("((a)) and ((b == (c)))")) == "a and b == c"
    assert printer.expr(parse_expr("(a - b) - c")) == "a - b - c"
    assert printer.expr(parse_expr("not (a in b)")) == "not (a in b)"


@pytest.mark.parametrize(
    ("text", "printed"),
    [("15m", "15m"), ("90m", "1h30m"), ("1500ms", "1s500ms"), ("1001ms", "1s1ms"), ("0s", "0s"), ("2d", "2d")],
)
def test_durations(text: str, printed: str) -> None:
    seconds = parse_duration(text)
    assert printer.format_duration(seconds) == printed
    assert parse_duration(printer.format_duration(seconds)) == seconds
    assert printer.format_duration(-seconds) == ("-" + printed if seconds else printed)


def test_durations_with_milliseconds_before_other_parts() -> None:
    for text in ("506ms22m810s", "990ms775d516h40s"):
        seconds = parse_duration(text)
        assert parse_duration(printer.format_duration(seconds)) == seconds


@pytest.mark.parametrize("path", sorted((ROOT / "policies").rglob("*.pdp")), ids=lambda p: p.name)
def test_policy_files_roundtrip(path: Path) -> None:
    original = parse(path.read_text(encoding="utf-8"), filename=str(path), namespace="acme")
    printed = printer.policy_file(original)
    again = parse(printed, filename="printed.pdp")
    assert again.items == original.items
    assert again.namespace == original.namespace
    assert printer.policy_file(again) == printed  # printing is stable


def test_every_declaration_kind_roundtrips() -> None:
    text = """
    namespace a.b;
    enum Color { red, green }
    enum Level { low < high }
    principal entity User in Group, Team { name: string; tags?: set<string> sensitive; meta: { x: int; y: map<string, ip>; }; }
    entity Group {}
    context { ip: ip; }
    actions Group { read, write }
    role viewer;
    role admin extends viewer { grant read, write on Group; }
    roles of User from principal.meta.y;
    const limit = 5;
    const who: set<string>;
    list nets: ip = ["10.0.0.0/8",];
    window hours { days "mon-fri"; hours "09:00-17:00"; zone "UTC"; }
    @id("x") @note("a \\"quoted\\" note")
    forbid f principal User action read resource Group role admin when a unless b
      obligations { mask resource.x, resource.y; header "h" = 1; } advice { why = "x"; };
    permit p;
    http { context.ip = source.ip; context.mfa = header("X-Auth-MFA", "false"); }
    http {}
    route GET, HEAD "/docs/{tenant}/{id}" => read Group { resource.id = path.id; context.q = query.q; }
    route * "/" => write Group;
    route POST "/a" => write Group {}
    route default => read Group { resource.id = "fallback \\\\ \\"x\\""; context.at = now; context.who = source.principal; }
    """
    original = parse(text)
    again = parse(printer.policy_file(original))
    assert again == original


# ---- HTTP routes ---------------------------------------------------------------------------------

HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]
header_names = texts.map(str.lower).filter(lambda s: s.lower() == s)  # the parser lower-cases header names
route_sources = st.one_of(
    st.builds(n.RouteSource, st.just("literal"), texts),
    st.builds(n.RouteSource, st.sampled_from(["path", "query", "source"]), names),
    st.builds(n.RouteSource, st.just("header"), header_names, st.none() | texts),
    st.builds(n.RouteSource, st.just("now"), st.just("now")),
)
route_assigns = st.lists(
    st.builds(n.RouteAssign, st.sampled_from(["resource", "context"]), names.map(n.Ident), route_sources), max_size=4
).map(tuple)
routes = st.one_of(
    st.builds(
        n.RouteDecl,
        st.lists(st.sampled_from(HTTP_METHODS), max_size=3, unique=True).map(lambda ms: tuple(map(n.Ident, ms))),
        texts,
        names.map(n.Ident),
        names.map(n.Ident),
        route_assigns,
    ),
    st.builds(
        n.RouteDecl, st.just(()), st.just(""), names.map(n.Ident), names.map(n.Ident), route_assigns, st.just(True)
    ),
    st.builds(n.HttpDecl, route_assigns),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(routes, max_size=4))
def test_route_declarations_roundtrip(items: list[n.RouteDecl | n.HttpDecl]) -> None:
    original = n.PolicyFile("gen.pdp", "", tuple(items))
    printed = printer.policy_file(original)
    assert parse(printed).items == original.items
    assert printer.policy_file(parse(printed)) == printed


@pytest.mark.parametrize(
    ("text", "printed"),
    [
        (
            'route GET,HEAD "/d/{id}"=>read Doc{resource.id=path.id;}',
            'route GET, HEAD "/d/{id}" => read Doc {\n  resource.id = path.id;\n}',
        ),
        ('route * "/" => read Doc {}', 'route * "/" => read Doc;'),
        ("route default => read Doc;", "route default => read Doc;"),
        (
            'route PUT "/a" => write Doc { context.f = header("X-F"); }',
            'route PUT "/a" => write Doc {\n  context.f = header("x-f");\n}',
        ),
        (
            'route POST "/a" => write Doc { context.f = header("x-f", "no"); resource.s = source.ip; context.t = now; }',
            'route POST "/a" => write Doc {\n  context.f = header("x-f", "no");\n  resource.s = source.ip;\n'
            "  context.t = now;\n}",
        ),
        (
            'http { context.v = "a\\"b"; context.q = query.q; }',
            'http {\n  context.v = "a\\"b";\n  context.q = query.q;\n}',
        ),
        ("http {}", "http {}"),
    ],
)
def test_route_declarations_print(text: str, printed: str) -> None:
    (decl,) = parse(text).items
    assert printer.declaration(decl) == printed
    assert parse(printed).items == (decl,)
