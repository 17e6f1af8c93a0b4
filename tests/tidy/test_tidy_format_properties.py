"""Properties of policy_lang.formatter: same AST, same comments, idempotent.

Over the example policies and a file with every construct, with comments and whitespace
inserted between any two tokens; and over whole programs built from random ASTs.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy_lang import nodes as n
from policy_lang import printer
from policy_lang.formatter import comment_texts, format_text
from policy_lang.parser import parse

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "policies").rglob("*.pdp") if not p.stem.endswith("_test"))

EVERY_CONSTRUCT = """// header

namespace a.b;
enum Color { red, green }
enum Level { low < high }
principal entity User in Group, Team {
  name: string;
  tags?: set<string> sensitive;
  meta: { x: int; y: map<string, ip>; };
}
entity Group {}
context { ip: ip; }
actions Group { read, write }
role viewer;
role admin extends viewer { grant read, write on Group; }
roles of User from principal.meta.y;
const limit = 5;
const who: set<string>;
list nets: ip = ["10.0.0.0/8", "10.1.0.0/16"];
window hours { days "mon-fri"; hours "09:00-17:00"; zone "UTC"; }
@id("x") @note("a \\"quoted\\" note")
forbid f principal User action read resource Group role admin when a and (b or c) and not d unless e
  obligations { mask resource.x, resource.y; header "h" = 1; } advice { why = "x"; };
permit p;
permit q when principal.name == "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" and principal.name != "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
http { context.ip = source.ip; context.mfa = header("x-mfa", "false"); }
http {}
route GET, HEAD "/g/{tenant}/{id}" => read Group { resource.id = path.id; context.q = query.q; context.at = now; }
route * "/" => write Group;
route POST "/x" => write Group {}
route default => read Group { resource.id = "any"; context.who = source.principal; context.h = header("x-h"); }
"""

TEXTS = [p.read_text(encoding="utf-8") for p in EXAMPLES] + [EVERY_CONSTRUCT]

INSERTS = [" // c\n", "\n# h\n", " /* b */ ", "/*b*/", "\n/* m\n   two lines */\n", "\n\n", "   ", "\n", "\t"]
_STRING = re.compile(r'"([^"\\\n]|\\.)*"')
_UNSPLITTABLE = {"==", "!=", "<=", ">=", "::", "=>"}


def token_gaps(text: str) -> list[int]:
    """Offsets between two tokens (or at either end), outside strings and comments."""
    return list(_token_gaps(text))


@lru_cache(maxsize=64)
def _token_gaps(text: str) -> tuple[int, ...]:
    f = parse(text)
    blocked = [False] * (len(text) + 1)
    for c in f.comments:
        for i in range(c.span.start + 1, c.span.end):
            blocked[i] = True
    code = list(text)
    for c in f.comments:
        for i in range(c.span.start, c.span.end):
            code[i] = " "
    for m in _STRING.finditer("".join(code)):
        for i in range(m.start() + 1, m.end()):
            blocked[i] = True

    def word(ch: str) -> bool:
        return ch.isalnum() or ch == "_"

    gaps = [0, len(text)]
    for i in range(1, len(text)):
        if blocked[i] or (word(code[i - 1]) and word(code[i])) or text[i - 1 : i + 1] in _UNSPLITTABLE:
            continue
        gaps.append(i)
    return tuple(gaps)


def insert(text: str, data: st.DataObject, count: int) -> str:
    """`text` with `count` comments or runs of whitespace inserted between its tokens."""
    gaps = token_gaps(text)
    chosen = sorted((data.draw(st.sampled_from(gaps)), data.draw(st.sampled_from(INSERTS))) for _ in range(count))
    for at, piece in reversed(chosen):  # from the end, so that the earlier offsets stay valid
        text = text[:at] + piece + text[at:]
    return text


def assert_well_formatted(source: str) -> str:
    out = format_text(source)
    before, after = parse(source), parse(out)
    assert after.items == before.items
    assert after.namespace == before.namespace
    assert len(after.comments) == len(before.comments)
    assert Counter(comment_texts(after)) == Counter(comment_texts(before))
    assert format_text(out) == out
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TEXTS), st.integers(1, 12), st.data())
def test_comments_and_whitespace_anywhere(original: str, count: int, data: st.DataObject) -> None:
    out = assert_well_formatted(insert(original, data, count))
    assert parse(out).items == parse(original).items


# ---- programs from random ASTs ------------------------------------------------------------------

KEYWORDS = frozenset(
    "namespace enum entity principal in sensitive set map context actions role extends grant on roles of from "
    "const list window permit forbid action resource when unless obligations mask header advice or and not has "
    "like true false now".split()
)
names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
idents = st.lists(names.map(n.Ident), min_size=1, max_size=4).map(tuple)
texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)
paths = st.builds(
    lambda root, attrs: _path(root, attrs),
    st.sampled_from(["principal", "resource", "context"]),
    st.lists(names, min_size=1, max_size=3),
)


def _path(root: str, attrs: list[str]) -> n.Expr:
    e: n.Expr = n.Var(root)  # type: ignore[arg-type]
    for a in attrs:
        e = n.Attr(e, a)
    return e


leaves = st.one_of(
    st.builds(n.Lit, texts, st.just("string")),
    st.builds(n.Lit, st.integers(0, 10**6), st.just("int")),
    st.builds(n.Lit, st.booleans(), st.just("bool")),
    st.builds(n.Name, names),
    st.builds(n.RoleRef, names),
    paths,
)


def _compound(inner: st.SearchStrategy[n.Expr]) -> st.SearchStrategy[n.Expr]:
    ops: list[n.BinaryOp] = ["==", "!=", "<", ">=", "+", "-", "in"]
    return st.one_of(
        st.builds(n.Binary, st.sampled_from(ops), inner, inner),
        st.builds(n.And, inner, inner),
        st.builds(n.Or, inner, inner),
        st.builds(n.Not, inner),
        st.builds(n.Method, inner, names, st.lists(inner, max_size=2).map(tuple)),
        st.builds(n.SetLit, st.lists(inner, max_size=3).map(tuple)),
    )


expressions = st.recursive(leaves, _compound, max_leaves=10)
types: st.SearchStrategy[n.TypeExpr] = st.recursive(
    st.builds(n.NamedType, st.sampled_from(["string", "int", "bool", "ip", "Level"])),
    lambda inner: st.one_of(
        st.builds(n.SetType, inner),
        st.builds(n.MapType, st.just(n.NamedType("string")), inner),
        st.builds(
            n.RecordType,
            st.lists(st.builds(n.AttrDecl, names, inner, st.booleans(), st.booleans()), max_size=4).map(tuple),
        ),
    ),
    max_leaves=6,
)
attrs = st.lists(st.builds(n.AttrDecl, names, types, st.booleans(), st.booleans()), max_size=5).map(tuple)
literal_items = st.lists(st.builds(n.Lit, texts, st.just("string")), max_size=8).map(tuple)

declarations: st.SearchStrategy[n.Declaration] = st.one_of(
    st.builds(n.EnumDecl, names, idents, st.booleans()).filter(lambda d: len(d.members) > 1 or not d.ordered),
    st.builds(n.EntityDecl, names, attrs, st.lists(names.map(n.Ident), max_size=2).map(tuple), st.booleans()),
    st.builds(n.ContextDecl, attrs),
    st.builds(n.ActionsDecl, names.map(n.Ident), idents),
    st.builds(
        n.RoleDecl,
        names,
        st.lists(names.map(n.Ident), max_size=2).map(tuple),
        st.lists(st.builds(n.Grant, idents, idents), max_size=3).map(tuple),
    ),
    st.builds(n.BindingDecl, names.map(n.Ident), paths),
    st.builds(n.ConstDecl, names, st.none(), expressions),
    st.builds(n.ConstDecl, names, st.just(n.SetType(n.NamedType("ip"))), st.builds(n.SetLit, literal_items)),
    st.builds(n.WindowDecl, names, st.lists(st.builds(n.WindowField, names, texts), max_size=3).map(tuple)),
    st.builds(
        n.Rule,
        names.map(n.Ident),
        st.sampled_from(["permit", "forbid"]),
        st.lists(st.builds(n.Annotation, names, texts), max_size=2).map(tuple),
        st.lists(names.map(n.Ident), max_size=2).map(tuple),
        st.lists(names.map(n.Ident), max_size=2).map(tuple),
        st.lists(names.map(n.Ident), max_size=2).map(tuple),
        st.lists(names.map(n.Ident), max_size=2).map(tuple),
        st.lists(st.builds(n.Condition, st.sampled_from(["when", "unless"]), expressions), max_size=3).map(tuple),
        st.lists(
            st.one_of(
                st.builds(n.Mask, st.lists(paths, min_size=1, max_size=2).map(tuple)),
                st.builds(n.SetHeader, texts, expressions),
            ),
            max_size=2,
        ).map(tuple),
        st.lists(st.builds(n.AdviceItem, names, expressions), max_size=2).map(tuple),
    ),
)
HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"]
route_sources = st.one_of(
    st.builds(n.RouteSource, st.just("literal"), texts),
    st.builds(n.RouteSource, st.sampled_from(["path", "query", "source"]), names),
    st.builds(n.RouteSource, st.just("header"), names.map(lambda s: "x-" + s), st.none() | texts),
    st.builds(n.RouteSource, st.just("now"), st.just("now")),
)
route_assigns = st.lists(
    st.builds(n.RouteAssign, st.sampled_from(["resource", "context"]), names.map(n.Ident), route_sources), max_size=4
).map(tuple)
route_declarations: st.SearchStrategy[n.Declaration] = st.one_of(
    st.builds(
        n.RouteDecl,
        st.lists(st.sampled_from(HTTP_METHODS), max_size=3, unique=True).map(lambda ms: tuple(map(n.Ident, ms))),
        texts.map(lambda s: "/" + s),
        names.map(n.Ident),
        names.map(n.Ident),
        route_assigns,
    ),
    st.builds(
        n.RouteDecl, st.just(()), st.just(""), names.map(n.Ident), names.map(n.Ident), route_assigns, st.just(True)
    ),
    st.builds(n.HttpDecl, route_assigns),
)
declarations = declarations | route_declarations

programs = st.builds(
    lambda ns, items: n.PolicyFile(
        "gen.pdp", ns, tuple(replace(d, namespace=ns) if isinstance(d, n.Rule) else d for d in items)
    ),
    st.sampled_from(["", "gen", "a.b"]),
    st.lists(declarations, max_size=6),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs, st.integers(0, 6), st.data())
def test_generated_programs(program: n.PolicyFile, count: int, data: st.DataObject) -> None:
    text = printer.policy_file(program)
    assert parse(text).items == program.items  # the printer is faithful; the formatter must stay so
    assert parse(assert_well_formatted(text)).items == program.items
    if count:
        assert parse(assert_well_formatted(insert(text, data, count))).items == program.items
