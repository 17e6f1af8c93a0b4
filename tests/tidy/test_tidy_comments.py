"""The parser keeps comments on `PolicyFile.comments`, outside the AST's meaning."""

from __future__ import annotations

from policy_lang import nodes as n
from policy_lang.parser import parse
from policy_lang.spans import Span


def test_every_comment_kind_is_captured_with_its_span() -> None:
    text = '// a\nnamespace x; # b\n/* c\nd */ permit r when "//no" == "#no /*no*/"; // e\n'
    f = parse(text, filename="c.pdp")
    assert [c.text for c in f.comments] == ["// a", "# b", "/* c\nd */", "// e"]
    assert [str(c.span) for c in f.comments] == ["c.pdp:1:1", "c.pdp:2:14", "c.pdp:3:1", "c.pdp:4:44"]
    block = f.comments[2]
    assert block.span == Span("c.pdp", 3, 1, 4, 5, 22, 31)
    assert all(text[c.span.start : c.span.end] == c.text for c in f.comments)


def test_comments_take_no_part_in_equality() -> None:
    plain = parse("permit r when a;", filename="a.pdp")
    commented = parse("// why\npermit r /* here */ when a; # end", filename="a.pdp")
    assert plain == commented
    assert hash(plain) == hash(commented)
    assert plain.comments == () and len(commented.comments) == 3


def test_the_parse_cache_keeps_comments() -> None:
    text = "// kept\npermit r;"
    first, second = parse(text), parse(text)
    assert first is second
    assert second.comments == (n.Comment("// kept"),)


def test_a_syntax_error_does_not_leak_comments_into_the_next_parse() -> None:
    try:
        parse("// one\npermit", filename="bad.pdp")
    except Exception:
        pass
    assert parse("permit ok;").comments == ()
