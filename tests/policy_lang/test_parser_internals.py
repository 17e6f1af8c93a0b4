"""The parser's fast path against lark's own machinery: the lexer's tokens, the spans the builder
computes, the constructors that skip the frozen dataclasses' `__init__`, threads, and that a
syntax error is still lark's report."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest

from benchmarks.generate import policy_source
from policy_lang import nodes as n
from policy_lang import parser
from policy_lang.errors import PolicySyntaxError
from policy_lang.spans import Span

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "policies").rglob("*.pdp"))

TRICKY = """// leading comment
namespace acme.docs;  # trailing

const x: set<int>= [1, 2,];
permit r when ((principal.a or -principal.b[0] + 1 >= 3) and not (resource.c)) unless (context.d);
@doc("d") forbid f principal User, Admin action read when principal has x and "a" like "b*" /* block
comment */ ;
entity T { roles: set<string>; when?: int; principal: string sensitive; }
route GET, HEAD "/d/{id}" => read T { resource.id = path.id; context.h = header("X-H", "d"); }
route default => read T;
http { context.now = now; }
"""


def _fresh(text: str, **kwargs: Any) -> n.PolicyFile:
    parser._parse_cached.cache_clear()
    return parser.parse(text, **kwargs)


def _fast_tokens(text: str) -> list[tuple[str, str, int, int]]:
    lark, builder = parser._parser()
    with parser._lock:
        builder.begin(text, "t.pdp", "")
        try:
            return [(t.type, t.value, t.start_pos, t.end_pos) for t in lark.parse_interactive(text).iter_parse()]
        finally:
            builder.finish()


def _lark_tokens(text: str) -> list[tuple[str, str, int, int]]:
    """lark's stock contextual lexer, driven by the same LALR tables."""
    return [
        (t.type, t.value, t.start_pos, t.end_pos)
        for t in parser._reference_parser().parse_interactive(text).iter_parse()
    ]


@pytest.mark.parametrize(
    "text",
    [TRICKY, policy_source(100), *(p.read_text(encoding="utf-8") for p in EXAMPLES)],
    ids=["tricky", "generated", *(p.name for p in EXAMPLES)],
)
def test_the_lexer_matches_larks_contextual_lexer(text: str) -> None:
    assert _fast_tokens(text) == _lark_tokens(text)


def test_the_lexer_splits_by_context_like_lark() -> None:
    # after `set<int` only `>` is acceptable: `>=` is `>` then `=`, as lark's contextual lexer has it
    tokens = _fast_tokens("const x: set<int>= [1];")
    assert ("MORETHAN", ">", 16, 17) in tokens and ("EQUAL", "=", 17, 18) in tokens
    # a keyword where only a name fits is a name
    assert ("NAME", "when", 11, 15) in _fast_tokens("entity T { when: int; }")


def _spans(node: Any, path: str = "file") -> list[tuple[str, tuple[int, ...]]]:
    out: list[tuple[str, tuple[int, ...]]] = []
    if dataclasses.is_dataclass(node):
        span = getattr(node, "span", None)
        if span is not None:
            out.append(
                (
                    f"{path}:{type(node).__name__}",
                    (span.line, span.col, span.end_line, span.end_col, span.start, span.end),
                )
            )
        for field in dataclasses.fields(node):
            if field.name != "span":
                out.extend(_spans(getattr(node, field.name), f"{path}.{field.name}"))
    elif isinstance(node, tuple):
        for i, item in enumerate(node):
            out.extend(_spans(item, f"{path}[{i}]"))
    return out


def test_spans_as_lark_propagated_them() -> None:
    """Values from the parser before the fast path (lark's propagate_positions): a node spans
    its rule's first to last token, a parenthesized child counting from its `(` to its `)`."""
    spans = dict(_spans(_fresh(TRICKY, filename="s.pdp")))
    assert spans["file:PolicyFile"] == (2, 1, 11, 28, 19, 515)
    assert spans["file.items[0].value.items[1]:Lit"] == (4, 24, 4, 25, 76, 77)
    assert spans["file.items[1]:Rule"] == (5, 1, 5, 99, 81, 179)
    assert spans["file.items[1].conditions[0]:Condition"] == (5, 10, 5, 79, 90, 159)
    assert spans["file.items[1].conditions[0].expr:And"] == (5, 16, 5, 78, 96, 158)
    assert spans["file.items[1].conditions[0].expr.left:Or"] == (5, 17, 5, 56, 97, 136)
    assert spans["file.items[1].conditions[0].expr.right:Not"] == (5, 62, 5, 78, 142, 158)
    assert spans["file.items[1].conditions[1]:Condition"] == (5, 80, 5, 98, 160, 178)
    assert spans["file.items[1].conditions[1].expr:Attr"] == (5, 88, 5, 97, 168, 177)
    assert spans["file.items[2]:Rule"] == (6, 1, 7, 13, 180, 293)
    assert spans["file.items[2].conditions[0]:Condition"] == (6, 54, 6, 92, 233, 271)
    assert spans["file.items[2].conditions[0].expr.right:Like"] == (6, 79, 6, 92, 258, 271)
    assert spans["file.items[4]:RouteDecl"] == (9, 1, 9, 95, 368, 462)
    assert spans["file.items[4].assigns[1]:RouteAssign"] == (9, 62, 9, 93, 429, 460)
    assert spans["file.items[4].assigns[1].source:RouteSource"] == (9, 74, 9, 92, 441, 459)
    assert spans["file.items[5]:RouteDecl"] == (10, 1, 10, 25, 463, 487)
    assert spans["file.items[6].assigns[0]:RouteAssign"] == (11, 8, 11, 26, 495, 513)
    comments = _fresh(TRICKY, filename="s.pdp").comments
    assert [(c.text, c.span) for c in comments] == [
        ("// leading comment", Span("s.pdp", 1, 1, 1, 19, 0, 18)),
        ("# trailing", Span("s.pdp", 2, 23, 2, 33, 41, 51)),
        ("/* block\ncomment */", Span("s.pdp", 6, 93, 7, 11, 272, 291)),
    ]


def test_every_span_is_where_its_text_is() -> None:
    text = TRICKY + policy_source(10).replace("namespace gen;", "")
    lines = text.split("\n")
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    for path, (line, col, end_line, end_col, start, end) in _spans(_fresh(text)):
        assert offsets[line - 1] + col - 1 == start, path
        assert offsets[end_line - 1] + end_col - 1 == end, path
        assert text[start:end].strip() == text[start:end] != "", path


def test_an_empty_file_and_a_file_of_comments_span_nothing() -> None:
    assert _fresh("").span == Span("<string>", 0, 0, 0, 0)
    only_comments = _fresh("// a\n/* b */\n")
    assert only_comments.span == Span("<string>", 0, 0, 0, 0)
    assert [c.text for c in only_comments.comments] == ["// a", "/* b */"]


@pytest.mark.parametrize(
    "cls, values",
    [
        (Span, ("f.pdp", 1, 2, 3, 4, 5, 6)),
        (n.Ident, ("x", Span("f", 1, 1, 1, 2))),
        (n.Rule, (n.Ident("r"), "permit", (), (), (), (), (), (), (), (), "ns", Span("f", 1, 1, 1, 2))),
    ],
)
def test_the_fast_constructors_build_what_the_class_builds(cls: type, values: tuple[Any, ...]) -> None:
    fast = parser._fast_constructor(cls)(*values)
    slow = cls(*values)
    assert type(fast) is cls
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert all(getattr(fast, f.name) is getattr(slow, f.name) for f in dataclasses.fields(cls))
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(fast, dataclasses.fields(cls)[0].name, None)  # still frozen


def test_a_class_the_fast_constructor_is_not_for_gets_its_own_constructor() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            assert self.a > 0

    assert parser._fast_constructor(NoSlots) is NoSlots
    assert parser._fast_constructor(Checked) is Checked


def test_parses_on_several_threads_agree() -> None:
    texts = [policy_source(100) + f"\n// {i}\n" for i in range(8)]
    expected = [_spans(_fresh(t)) for t in texts]
    parser._parse_cached.cache_clear()
    results: dict[int, Any] = {}

    def work(i: int) -> None:
        results[i] = _spans(parser.parse(texts[i]))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[i] for i in range(len(texts))] == expected


def test_a_syntax_error_is_reported_by_lark_and_the_next_parse_is_clean() -> None:
    with pytest.raises(PolicySyntaxError) as caught:
        _fresh('permit r when (principal.a == "x";\n', filename="e.pdp")
    assert str(caught.value.diagnostics[0]) == "e.pdp:1:34: syntax_error: unexpected `;`; expected `)`"
    with pytest.raises(PolicySyntaxError) as caught:
        _fresh("permit r when principal.a == $;", filename="e.pdp")
    assert "unexpected character `$`" in str(caught.value.diagnostics[0])
    after = _fresh("// c\npermit r;", filename="ok.pdp")
    assert [c.text for c in after.comments] == ["// c"]
    assert after.items[0].span == Span("ok.pdp", 2, 1, 2, 10, 5, 14)
