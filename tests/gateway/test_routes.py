"""HTTP routes, pure (no server): parsing, checking, the route trie, path normalization and
`map_request` end to end with the acme policies.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp import Engine
from pdp.gateway.mapping import HttpRequest, MappingError, bearer, map_request
from pdp.gateway.normalize import MAX_PATH, PathError, normalize_path, parse_query, split_target
from policy_lang import nodes as n
from policy_lang.checker import check
from policy_lang.errors import PolicyCheckError, PolicySyntaxError
from policy_lang.parser import parse
from policy_lang.routes import MAX_SEGMENTS, RouteTable

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"

SCHEMA = """\
enum Level { low < high }
principal entity User {}
entity Doc {
  tenant: string;
  level?: Level;
  tags?: set<string>;
  size?: int;
  public?: bool;
  meta?: map<string, string>;
  rec?: { a: string; };
  nums?: set<int>;
}
entity Other {}
context {
  ip?: ip;
  mfa?: bool;
  at?: datetime;
  age?: duration;
  who?: string;
  q?: string;
}
actions Doc { read, write }
"""


def table(routes: str) -> RouteTable:
    return check([parse(SCHEMA, filename="schema.pdp"), parse(routes, filename="routes.pdp")]).routes


def errors(routes: str) -> list[tuple[str, str | None]]:
    with pytest.raises(PolicyCheckError) as info:
        table(routes)
    return [(str(d), d.help) for d in info.value.diagnostics]


def at(text: str, node: Any) -> str:
    """The source text a node was parsed from."""
    return text[node.span.start : node.span.end]


# ---- parsing ------------------------------------------------------------------------------------


def test_a_route_with_methods_and_assignments() -> None:
    text = 'route GET, HEAD "/t/{tenant}/d/{id}" => read Doc {\n  resource.id = path.id;\n  context.q = query.q;\n}\n'
    (route,) = parse(text, filename="r.pdp").items
    assert route == n.RouteDecl(
        (n.Ident("GET"), n.Ident("HEAD")),
        "/t/{tenant}/d/{id}",
        n.Ident("read"),
        n.Ident("Doc"),
        (
            n.RouteAssign("resource", n.Ident("id"), n.RouteSource("path", "id")),
            n.RouteAssign("context", n.Ident("q"), n.RouteSource("query", "q")),
        ),
    )
    assert isinstance(route, n.RouteDecl) and not route.is_default
    assert str(route.span) == "r.pdp:1:1"
    assert at(text, route) == text.rstrip("\n")
    assert [str(m.span) for m in route.methods] == ["r.pdp:1:7", "r.pdp:1:12"]
    assert at(text, route.action) == "read" and str(route.action.span) == "r.pdp:1:41"
    assert at(text, route.resource_type) == "Doc"
    first, second = route.assigns
    assert at(text, first) == "resource.id = path.id;" and str(first.span) == "r.pdp:2:3"
    assert at(text, first.target) == "id" and str(first.target.span) == "r.pdp:2:12"
    assert at(text, first.source) == "path.id" and str(first.source.span) == "r.pdp:2:17"
    assert at(text, second.source) == "query.q" and str(second.source.span) == "r.pdp:3:15"


def test_any_method_and_an_empty_body() -> None:
    braces, semicolon = parse('route * "/" => write Doc {}'), parse('route * "/" => write Doc;')
    assert braces.items == semicolon.items == (n.RouteDecl((), "/", n.Ident("write"), n.Ident("Doc"), ()),)


def test_the_default_route() -> None:
    text = 'route default => read Doc { resource.id = "fallback"; }'
    (route,) = parse(text, filename="d.pdp").items
    assert isinstance(route, n.RouteDecl)
    assert route.is_default and route.methods == () and route.pattern == ""
    assert route.assigns == (n.RouteAssign("resource", n.Ident("id"), n.RouteSource("literal", "fallback")),)
    assert at(text, route) == text and at(text, route.assigns[0].source) == '"fallback"'


def test_the_http_block() -> None:
    text = 'http {\n  context.ip = source.ip;\n  context.mfa = header("X-Auth-MFA", "false");\n}'
    (block,) = parse(text, filename="h.pdp").items
    assert block == n.HttpDecl(
        (
            n.RouteAssign("context", n.Ident("ip"), n.RouteSource("source", "ip")),
            n.RouteAssign("context", n.Ident("mfa"), n.RouteSource("header", "x-auth-mfa", "false")),
        )
    )
    assert isinstance(block, n.HttpDecl)
    assert str(block.span) == "h.pdp:1:1" and at(text, block) == text
    assert at(text, block.assigns[1].source) == 'header("X-Auth-MFA", "false")'
    assert str(block.assigns[1].source.span) == "h.pdp:3:17"
    assert parse("http {}").items == (n.HttpDecl(()),)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('"plain"', n.RouteSource("literal", "plain")),
        ('"q\\"uote\\\\\\n"', n.RouteSource("literal", 'q"uote\\\n')),
        ('""', n.RouteSource("literal", "")),
        ("path.id", n.RouteSource("path", "id")),
        ("query.page", n.RouteSource("query", "page")),
        ('header("X-Upper")', n.RouteSource("header", "x-upper")),  # header names are case-insensitive
        ('header("x-mfa", "no")', n.RouteSource("header", "x-mfa", "no")),
        ('header("x-mfa", "")', n.RouteSource("header", "x-mfa", "")),
        ("source.ip", n.RouteSource("source", "ip")),
        ("source.principal", n.RouteSource("source", "principal")),
        ("now", n.RouteSource("now", "now")),
    ],
)
def test_every_source(source: str, expected: n.RouteSource) -> None:
    text = f'route GET "/x" => read Doc {{ context.v = {source}; }}'
    (route,) = parse(text).items
    assert isinstance(route, n.RouteDecl)
    assert route.assigns[0].source == expected
    assert at(text, route.assigns[0].source) == source


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('route "/x" => read Doc;', 'routes.pdp:1:7: syntax_error: unexpected `"/x"`'),
        ('route GET "/x" read Doc;', "routes.pdp:1:16: syntax_error: unexpected `read`; expected `=>`"),
        ('route GET "/x" => read Doc { id = path.id; }', "routes.pdp:1:30: syntax_error: unexpected `id`"),
        ('route GET "/x" => read Doc { resource.id = path; }', "routes.pdp:1:48: syntax_error: unexpected `;`"),
        ('route GET "/x" => read Doc { resource.id = header(); }', "routes.pdp:1:51: syntax_error: unexpected `)`"),
        ('route GET "/x" => read Doc { resource.id = 5; }', "routes.pdp:1:44: syntax_error: unexpected `5`"),
        ("route default GET => read Doc;", "routes.pdp:1:15: syntax_error: unexpected `GET`; expected `=>`"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(PolicySyntaxError) as info:
        parse(text, filename="routes.pdp")
    assert str(info.value).startswith(message)


# ---- checking -----------------------------------------------------------------------------------

FILL_HELP = "routes fill strings, ints, bools, ips, datetimes, durations, enums and set<string>"


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        (
            'route GET "/a" => read Dco;',
            [("routes.pdp:1:24: unknown_type: unknown entity type `Dco`", "did you mean `Doc`?")],
        ),
        (
            'route GET "/a" => delete Doc;',
            [("routes.pdp:1:19: never_applies: action `delete` is not valid for `Doc`", "valid actions: read, write")],
        ),
        (
            'route GET "/a" => read Other;',
            [("routes.pdp:1:19: never_applies: action `read` is not valid for `Other`", "valid actions: none")],
        ),
        (
            'route GET, GTE "/a" => read Doc;',
            [("routes.pdp:1:12: invalid_literal: `GTE` is not an HTTP method", "did you mean `GET`?")],
        ),
        (
            'route get "/a" => read Doc;',
            [("routes.pdp:1:7: invalid_literal: `get` is not an HTTP method", "did you mean `GET`?")],
        ),
        (
            'route FETCH "/a" => read Doc;',
            [("routes.pdp:1:7: invalid_literal: `FETCH` is not an HTTP method", "did you mean `PATCH`?")],
        ),
        (
            'route BREW "/a" => read Doc;',
            [("routes.pdp:1:7: invalid_literal: `BREW` is not an HTTP method", None)],
        ),
        (
            'route GET "a/b" => read Doc;',
            [("routes.pdp:1:1: invalid_literal: route pattern `a/b` must start with `/`", None)],
        ),
        (
            'route GET "" => read Doc;',
            [("routes.pdp:1:1: invalid_literal: route pattern `` must start with `/`", None)],
        ),
        *(
            (
                f'route GET "/a/{written}/b" => read Doc;',
                [
                    (
                        f"routes.pdp:1:1: invalid_literal: route segment `{shown}` is not a plain path segment "
                        "or `{name}`",
                        None,
                    )
                ],
            )
            for written, shown in [
                *((x, x) for x in ["..", ".", "b c", "%2e%2e", "{x}.json", "{1x}", "{}", "é", "a?b", "a#b"]),
                ("a\\\\b", "a\\b"),
                ('\\"', '"'),
            ]
        ),
        (
            'route GET "/a//b" => read Doc;',
            [("routes.pdp:1:1: invalid_literal: route segment `` is not a plain path segment or `{name}`", None)],
        ),
        (
            'route GET "/a/" => read Doc;',
            [("routes.pdp:1:1: invalid_literal: route segment `` is not a plain path segment or `{name}`", None)],
        ),
        (
            'route GET "/{id}/x/{id}" => read Doc;',
            [("routes.pdp:1:1: invalid_literal: parameter `id` appears twice", None)],
        ),
        (
            'route GET "/a" => read Doc;\nroute POST, GET "/a" => write Doc;',
            [("routes.pdp:2:1: duplicate_route: route `GET /a` is declared twice", "first declared at routes.pdp:1:1")],
        ),
        (
            'route GET "/a/{x}" => read Doc;\nroute GET "/a/{y}" => write Doc;',
            [
                (
                    "routes.pdp:2:1: duplicate_route: route `GET /a/{y}` is declared twice",
                    "first declared at routes.pdp:1:1",
                )
            ],
        ),
        (
            'route * "/a" => read Doc;\nroute * "/a" => write Doc;',
            [("routes.pdp:2:1: duplicate_route: route `* /a` is declared twice", "first declared at routes.pdp:1:1")],
        ),
        (
            "route default => read Doc;\nroute default => write Doc;",
            [("routes.pdp:2:1: duplicate_declaration: there is already a default route", None)],
        ),
        (
            'route GET "/a" => read Doc { resource.tenat = "x"; }',
            [("routes.pdp:1:39: unknown_attribute: `Doc` has no attribute `tenat`", "did you mean `tenant`?")],
        ),
        (
            'route GET "/a" => read Doc { resource.idd = "x"; }',
            [("routes.pdp:1:39: unknown_attribute: `Doc` has no attribute `idd`", "did you mean `id`?")],
        ),
        (
            'route GET "/a" => read Doc { context.mfaa = "true"; }',
            [("routes.pdp:1:38: unknown_attribute: the context has no attribute `mfaa`", "did you mean `mfa`?")],
        ),
        (
            'route GET "/a/{id}" => read Doc { resource.id = path.idd; }',
            [("routes.pdp:1:49: unknown_name: the route has no path parameter `idd`", "did you mean `id`?")],
        ),
        (
            'route GET "/a" => read Doc { resource.id = path.id; }',
            [("routes.pdp:1:44: unknown_name: the route has no path parameter `id`", None)],
        ),
        (
            "route default => read Doc { resource.id = path.id; }",
            [("routes.pdp:1:43: unknown_name: the route has no path parameter `id`", None)],
        ),
        (
            'route GET "/a" => read Doc { resource.id = source.ipp; }',
            [("routes.pdp:1:44: unknown_name: `source.ipp` is not known", "did you mean `ip`?")],
        ),
        (
            'route GET "/a" => read Doc { resource.id = source.user; }',
            [("routes.pdp:1:44: unknown_name: `source.user` is not known", None)],
        ),
        (
            'route GET "/a" => read Doc { resource.tenant = now; }',
            [("routes.pdp:1:48: type_error: `now` is a datetime, but `tenant` is string", None)],
        ),
        (
            'route GET "/a" => read Doc { context.mfa = header("x", "maybe"); }',
            [("routes.pdp:1:44: invalid_literal: `maybe` is not a boolean (true or false)", None)],
        ),
        (
            'route GET "/a" => read Doc { resource.public = "maybe"; }',
            [("routes.pdp:1:48: invalid_literal: `maybe` is not a boolean (true or false)", None)],
        ),
        (
            'route GET "/a" => read Doc { resource.size = "12x"; }',
            [("routes.pdp:1:46: invalid_literal: `12x` is not an integer", None)],
        ),
        (
            'route GET "/a" => read Doc { context.ip = "not-an-ip"; }',
            [("routes.pdp:1:43: invalid_literal: `not-an-ip` is not an IP address or CIDR network", None)],
        ),
        (
            'route GET "/a" => read Doc { resource.level = header("x-level", "medium"); }',
            [("routes.pdp:1:47: invalid_literal: expected one of low, high, found 'medium'", None)],
        ),
        (
            'route GET "/a" => read Doc { context.at = "yesterday"; }',
            [("routes.pdp:1:43: invalid_literal: `yesterday` is not an RFC 3339 datetime", None)],
        ),
        (
            'route GET "/a" => read Doc { context.age = "soon"; }',
            [("routes.pdp:1:44: invalid_literal: `soon` is not a duration such as `15m` or `1h30m`", None)],
        ),
        *(
            (
                f'route GET "/a" => read Doc {{ resource.{attr} = query.v; }}',
                [(f"routes.pdp:1:39: type_error: a request value cannot fill {shown} attribute `{attr}`", FILL_HELP)],
            )
            for attr, shown in [("meta", "map<string, string>"), ("rec", "{a: string}"), ("nums", "set<int>")]
        ),
        (
            'http { resource.tenant = "x"; }',
            [("routes.pdp:1:8: type_error: an `http` block sets context attributes only", None)],
        ),
        (
            "http { context.who = path.user; }",
            [("routes.pdp:1:22: unknown_name: the route has no path parameter `user`", None)],
        ),
    ],
)
def test_checker_errors(routes: str, expected: list[tuple[str, str | None]]) -> None:
    assert errors(routes) == expected


def test_every_error_is_reported_at_once() -> None:
    routes = 'route GET "/a" => read Dco;\nroute PUSH "/b" => write Doc;\nroute GET "c" => read Doc;\n'
    assert [message for message, _ in errors(routes)] == [
        "routes.pdp:1:24: unknown_type: unknown entity type `Dco`",
        "routes.pdp:2:7: invalid_literal: `PUSH` is not an HTTP method",
        "routes.pdp:3:1: invalid_literal: route pattern `c` must start with `/`",
    ]


def test_valid_routes_check() -> None:
    t = table(
        """\
http { context.ip = source.ip; context.mfa = header("x-mfa", "no"); }
route GET, HEAD "/d/{id}" => read Doc {
  resource.id = path.id;
  resource.tenant = "acme";
  resource.level = header("x-level", "high");
  resource.tags = query.tags;
  resource.size = query.size;
  resource.public = "yes";
  context.at = now;
  context.age = "1h30m";
  context.who = source.principal;
}
route * "/" => write Doc;
route default => read Doc { resource.id = "fallback"; }
"""
    )
    assert bool(t) and t.count == 2 and t.default is not None
    assert [(a.target, a.kind, a.default) for a in t.http] == [("ip", "source", None), ("mfa", "header", "no")]
    assert t.default.action == "read" and t.default.pattern == ""
    assert not RouteTable()


# ---- the route trie -----------------------------------------------------------------------------


def matched(t: RouteTable, method: str, path: str) -> tuple[str, dict[str, str]] | None:
    found = t.match(method, [s for s in path.split("/") if s])
    return None if found is None else (found[0].action, found[1])


def test_literal_segments_beat_parameters() -> None:
    t = table('route GET "/d/{id}" => read Doc;\nroute GET "/d/latest" => write Doc;')
    assert matched(t, "GET", "/d/latest") == ("write", {})
    assert matched(t, "GET", "/d/other") == ("read", {"id": "other"})
    # the order of declaration does not matter
    t = table('route GET "/d/latest" => write Doc;\nroute GET "/d/{id}" => read Doc;')
    assert matched(t, "GET", "/d/latest") == ("write", {})


def test_a_literal_that_leads_nowhere_falls_back_to_the_parameter() -> None:
    t = table('route GET "/a/b/c" => write Doc;\nroute GET "/a/{x}/d" => read Doc;')
    assert matched(t, "GET", "/a/b/c") == ("write", {})
    assert matched(t, "GET", "/a/b/d") == ("read", {"x": "b"})
    assert matched(t, "GET", "/a/b") is None
    # a literal route for another method does not hide the parameter route
    t = table('route POST "/d/latest" => write Doc;\nroute GET "/d/{id}" => read Doc;')
    assert matched(t, "GET", "/d/latest") == ("read", {"id": "latest"})


def test_parameters_named_differently_at_the_same_depth() -> None:
    t = table(
        'route GET "/u/{user}/profile" => read Doc;\n'
        'route GET "/u/{id}/posts/{post}" => write Doc;\n'
        'route POST "/u/{name}" => write Doc;\n'
    )
    assert matched(t, "GET", "/u/ann/profile") == ("read", {"user": "ann"})
    assert matched(t, "GET", "/u/ann/posts/7") == ("write", {"id": "ann", "post": "7"})
    assert matched(t, "POST", "/u/ann") == ("write", {"name": "ann"})
    assert matched(t, "GET", "/u/ann") is None


@pytest.mark.parametrize("star_first", [True, False])
def test_a_route_naming_the_method_beats_a_star_route_whatever_the_parameter_names(star_first: bool) -> None:
    routes = ['route GET "/x/{id}" => read Doc;', 'route * "/x/{key}" => write Doc;']
    t = table("\n".join(reversed(routes) if star_first else routes))
    assert matched(t, "GET", "/x/1") == ("read", {"id": "1"})
    assert matched(t, "DELETE", "/x/1") == ("write", {"key": "1"})


def test_methods_and_star_routes() -> None:
    t = table('route GET, HEAD "/a" => read Doc;\nroute * "/a" => write Doc;\nroute PUT "/b" => write Doc;')
    assert matched(t, "GET", "/a") == ("read", {})
    assert matched(t, "HEAD", "/a") == ("read", {})
    assert matched(t, "POST", "/a") == ("write", {})
    assert matched(t, "PROPFIND", "/a") == ("write", {})  # `*` takes any method, standard or not
    assert matched(t, "PUT", "/b") == ("write", {})
    assert matched(t, "GET", "/b") is None
    assert matched(t, "get", "/b") is None  # map_request upper-cases the method first


def test_the_root_and_the_default_route() -> None:
    t = table('route GET "/" => read Doc { resource.id = "root"; }\nroute default => write Doc;')
    assert matched(t, "GET", "/") == ("read", {})
    assert matched(t, "GET", "/x") is None  # the default route is map_request's fallback, not the trie's
    assert t.default is not None and t.default.action == "write"


def test_deep_paths_and_too_many_segments() -> None:
    deep = "/" + "/".join(f"s{i}" for i in range(MAX_SEGMENTS - 1)) + "/{last}"
    t = table(f'route GET "{deep}" => read Doc {{ resource.id = path.last; }}')
    segments = [f"s{i}" for i in range(MAX_SEGMENTS - 1)] + ["end"]
    found = t.match("GET", segments)
    assert found is not None and found[1] == {"last": "end"}
    assert t.match("GET", [*segments, "more"]) is None
    assert t.match("GET", ["x"] * (MAX_SEGMENTS + 1)) is None
    assert t.match("GET", segments[:-1]) is None


def test_matching_costs_the_depth_not_the_number_of_routes() -> None:
    routes = "\n".join(f'route GET "/r{i}/{{id}}/x" => read Doc {{ resource.id = path.id; }}' for i in range(500))
    t = table(routes)
    assert t.count == 500
    assert matched(t, "GET", "/r499/7/x") == ("read", {"id": "7"})
    assert len(t.root.literal) == 500


# ---- path normalization -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("/", []),
        ("/a/b", ["a", "b"]),
        ("//a//b/", ["a", "b"]),
        ("/a/./b/.", ["a", "b"]),
        ("/a/b/../c", ["a", "c"]),
        ("/a/b/c/../../d", ["a", "d"]),
        ("/a/..", []),
        ("/a/%2e%2e/b", ["b"]),  # an encoded dot is a dot: RFC 3986 unreserved characters
        ("/a/%2E%2E/b", ["b"]),
        ("/a/.%2e/b", ["b"]),
        ("/a/%2e/b", ["a", "b"]),
        ("/a/%252e%252e/b", ["a", "%2e%2e", "b"]),  # decoded once: a literal `%2e%2e`, not `..`
        ("/a/%252fb", ["a", "%2fb"]),
        ("/a/..x/.b", ["a", "..x", ".b"]),
        ("/caf%C3%A9/caf%c3%a9", ["café", "café"]),
        ("/a%20b", ["a b"]),  # an encoded space is data
        ("/%41%42", ["AB"]),
        ("/a+b", ["a+b"]),  # `+` is a space only in query strings
        ("/a?b#c", ["a?b#c"]),  # split_target removes query and fragment before
    ],
)
def test_normalization(path: str, segments: list[str]) -> None:
    assert normalize_path(path) == segments


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", "path must start with /"),
        ("a/b", "path must start with /"),
        ("/a%2fb", "path encodes a slash, a backslash or a control character"),
        ("/a%2Fb", "path encodes a slash, a backslash or a control character"),
        ("/a%5cb", "path encodes a slash, a backslash or a control character"),
        ("/a%5Cb", "path encodes a slash, a backslash or a control character"),
        ("/a%00", "path encodes a slash, a backslash or a control character"),
        ("/a%0a", "path encodes a slash, a backslash or a control character"),
        ("/a%7f", "path encodes a slash, a backslash or a control character"),
        ("/a\\b", "path contains a backslash"),
        ("/a/%zz", "path has a malformed percent escape"),
        ("/a/%2", "path has a malformed percent escape"),
        ("/a/%", "path has a malformed percent escape"),
        ("/a/%%32e", "path has a malformed percent escape"),
        ("/%u002e%u002e/a", "path has a malformed percent escape"),
        ("/%ff", "path is not valid UTF-8 once decoded"),
        ("/%c3", "path is not valid UTF-8 once decoded"),
        ("/%c0%ae%c0%ae/a", "path is not valid UTF-8 once decoded"),  # overlong `..`
        ("/a\udcff", "path has characters that must be percent-encoded"),  # a lone surrogate
        ("/a/...", "path segment ends in a dot or a space, or holds `;`"),
        ("/admin./x", "path segment ends in a dot or a space, or holds `;`"),
        ("/café", "path has characters that must be percent-encoded"),
        ("/a;x=1/b", "path contains `;`"),
        ("/x/..;/admin", "path contains `;`"),
        ("/%EF%BC%8E%EF%BC%8E/admin", "path segment is not in NFKC normal form"),
        ("/..", "path climbs above the root"),
        ("/%2e%2e/admin", "path climbs above the root"),
        ("/a/../..", "path climbs above the root"),
        ("/a/../../a", "path climbs above the root"),
        ("/a b", "path contains spaces or control characters"),
        ("/a\tb", "path contains spaces or control characters"),
        ("/a\x00", "path contains spaces or control characters"),
        ("/a\x7f", "path contains spaces or control characters"),
        ("/a\r\nx", "path contains spaces or control characters"),
        ("/" + "a/" * MAX_SEGMENTS + "b", "path has too many segments"),
        ("/" + "a" * MAX_PATH, "path too long"),
    ],
)
def test_normalization_refuses(path: str, message: str) -> None:
    with pytest.raises(PathError) as info:
        normalize_path(path)
    assert str(info.value) == message


def test_dot_segments_do_not_count_towards_the_limit() -> None:
    assert normalize_path("/" + "a/../" * MAX_SEGMENTS + "b") == ["b"]
    assert len(normalize_path("/" + "a/" * MAX_SEGMENTS)) == MAX_SEGMENTS


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/a/b?x=1&y=2", "/a/b", "x=1&y=2"),
        ("/a/b", "/a/b", ""),
        ("/a/b?", "/a/b", ""),
        ("/a#frag", "/a", ""),
        ("/a#frag?x=1", "/a", ""),
        ("/a?x=1#frag", "/a", "x=1"),
        ("/a?x=1?y=2", "/a", "x=1?y=2"),
    ],
)
def test_split_target(target: str, path: str, query: str) -> None:
    assert split_target(target) == (path, query)


def test_query_parsing_keeps_the_first_value() -> None:
    assert parse_query("x=1&x=2&y&z=a+b&w=%41&e=&%6b=v") == {"x": "1", "y": "", "z": "a b", "w": "A", "e": "", "k": "v"}
    assert parse_query("") == {}
    assert parse_query("a=1;b=2") == {"a": "1;b=2"}  # `;` is no separator
    assert parse_query("v=%zz") == {"v": "%zz"}  # an invalid escape stays as written


@pytest.mark.parametrize("query", ["v=%ff", "%c3=1", "v=\udcff", "&".join(f"k{i}=1" for i in range(257))])
def test_query_parsing_refuses(query: str) -> None:
    with pytest.raises(ValueError):
        parse_query(query)


# ---- properties ---------------------------------------------------------------------------------

SEGMENT_CHARS = st.characters(codec="utf-8", exclude_characters="/\\").filter(lambda c: c >= " " and c != "\x7f")
SEGMENTS = st.lists(
    st.text(SEGMENT_CHARS, min_size=1, max_size=8).filter(
        lambda s: (
            s not in (".", "..")
            and ";" not in s
            and not s.endswith((".", " "))
            and unicodedata.normalize("NFKC", s) == s
        )
    ),
    max_size=10,
)


def _must_encode(c: str) -> bool:
    return c == "%" or c <= " " or c == "\x7f" or not c.isascii()  # raw non-ASCII is refused


@st.composite
def encoded(draw: st.DrawFn, segment: str) -> str:
    """`segment` with a random choice of its characters percent-encoded, in upper or lower case hex."""
    out = []
    for c in segment:
        if _must_encode(c) or draw(st.booleans()):
            hexes = "{:02X}" if draw(st.booleans()) else "{:02x}"
            out.append("".join("%" + hexes.format(b) for b in c.encode("utf-8")))
        else:
            out.append(c)
    return "".join(out)


@settings(max_examples=400, deadline=None)
@given(SEGMENTS, st.data())
def test_normalize_decodes_what_encoding_wrote(segments: list[str], data: st.DataObject) -> None:
    path = "/" + "/".join(data.draw(encoded(s)) for s in segments)
    assert normalize_path(path) == segments


NASTY = st.lists(
    st.sampled_from(list("/.%2eEfF5cC0a zZ?#\\\t\x00\x7fé") + ["%2e", "%2f", "%25", "%c0", "..", "\udcff", "%ff"]),
    max_size=40,
).map("".join)


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.text(max_size=60), NASTY, NASTY.map(lambda s: "/" + s)))
def test_normalize_raises_nothing_but_path_errors(path: str) -> None:
    try:
        segments = normalize_path(path)
    except PathError:
        return
    assert len(segments) <= MAX_SEGMENTS
    for s in segments:
        assert s not in ("", ".", "..") and "/" not in s and "\\" not in s
        assert all(c >= " " and c != "\x7f" for c in s)
    # normalizing is idempotent: the segments, encoded again, come back unchanged
    assert normalize_path("/" + "/".join(s.replace("%", "%25").replace(" ", "%20") for s in segments)) == segments


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=60), NASTY).map(lambda s: "/" + s))
def test_the_fast_path_agrees_with_the_full_normalization(path: str) -> None:
    """A leading `/.` changes nothing, but always takes the full path (decoding, dot segments)."""

    def outcome(p: str) -> list[str] | str:
        try:
            return normalize_path(p)
        except PathError as exc:
            return str(exc)

    assert outcome(path) == outcome("/." + path)


# ---- map_request end to end with the acme policies ----------------------------------------------

NOW = "2026-11-25T10:00:00Z"  # a Wednesday, 11:00 in Berlin: inside business hours
CORP_IP = "10.1.2.3"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(POLICIES)


def user(name: str, *, tenant: str = "acme", roles: tuple[str, ...] = (), clearance: str = "confidential") -> Any:
    return {
        "type": "User",
        "id": name,
        "attributes": {
            "tenant": tenant,
            "roles": {tenant: list(roles)},
            "clearance": clearance,
            "external": False,
            "suspended": False,
            "email": f"{name}@{tenant}.example",
            "auth_time": "2026-11-25T09:55:00Z",
        },
    }


def http(method: str, target: str, headers: dict[str, str] | None = None, ip: str = CORP_IP) -> HttpRequest:
    return HttpRequest(method, target, headers or {}, ip, "spiffe://acme/gateway")


def mapped(engine: Engine, request: HttpRequest) -> dict[str, Any]:
    return map_request(engine.policy.checked.routes, request, 0.0).request


def decide(engine: Engine, request: HttpRequest, principal: Any) -> tuple[bool, tuple[str, ...], Any, Any]:
    decision = engine.decide({**mapped(engine, request), "principal": principal, "now": NOW})
    assert decision.errors == ()
    return decision.allowed, decision.reasons, decision.obligations, decision.advice


TRUSTED = {"x-auth-mfa": "true", "x-device-trusted": "true"}
CONTEXT = {"ip": CORP_IP, "mfa": True, "device_trusted": True}


@pytest.mark.parametrize(
    ("method", "target", "action", "resource"),
    [
        ("GET", "/tenants/acme/documents/doc-plan", "read", {"type": "Document", "id": "doc-plan"}),
        ("HEAD", "/tenants/acme/documents/doc-plan", "read", {"type": "Document", "id": "doc-plan"}),
        ("PUT", "/tenants/acme/documents/doc-plan", "write", {"type": "Document", "id": "doc-plan"}),
        ("PATCH", "/tenants/acme/documents/doc-plan", "write", {"type": "Document", "id": "doc-plan"}),
        ("DELETE", "/tenants/acme/documents/doc-plan", "delete", {"type": "Document", "id": "doc-plan"}),
        ("POST", "/tenants/acme/documents/doc-plan/share", "share", {"type": "Document", "id": "doc-plan"}),
        ("GET", "/tenants/acme/projects/proj-apollo", "read", {"type": "Project", "id": "proj-apollo"}),
        ("POST", "/tenants/acme/projects/proj-old/archive", "archive", {"type": "Project", "id": "proj-old"}),
        ("GET", "/tenants/acme/admin/audit", "view_audit", {"type": "AdminConsole", "id": "acme"}),
        ("POST", "/tenants/acme/admin/users/zoe", "manage_users", {"type": "AdminConsole", "id": "acme"}),
        ("PUT", "/tenants/acme/admin/users/zoe", "manage_users", {"type": "AdminConsole", "id": "acme"}),
        ("DELETE", "/tenants/acme/admin/users/zoe", "manage_users", {"type": "AdminConsole", "id": "acme"}),
        ("get", "/tenants/acme/documents/doc-plan?version=2#top", "read", {"type": "Document", "id": "doc-plan"}),
        ("GET", "//tenants/./acme/documents/x/../doc-plan", "read", {"type": "Document", "id": "doc-plan"}),
        ("GET", "/tenants/acme/documents/doc%2Dplan", "read", {"type": "Document", "id": "doc-plan"}),
    ],
)
def test_every_acme_route_maps(engine: Engine, method: str, target: str, action: str, resource: dict[str, Any]) -> None:
    tenant = {"tenant": "acme"} if resource["type"] != "Project" else None
    expected_resource = {**resource, "attributes": tenant} if tenant else resource
    assert mapped(engine, http(method, target, TRUSTED)) == {
        "action": action,
        "resource": expected_resource,
        "context": CONTEXT,
    }


def test_the_mapped_result(engine: Engine) -> None:
    request = HttpRequest(
        "POST",
        "/tenants/acme/documents/doc-plan/share",
        {"authorization": "Bearer abc.def", "x-auth-mfa": "1"},
        "192.0.2.1",
    )
    result = map_request(engine.policy.checked.routes, request, 0.0)
    assert result.token == "abc.def"
    assert result.route == "/tenants/{tenant}/documents/{id}/share"
    assert result.request["context"] == {"ip": "192.0.2.1", "mfa": True, "device_trusted": False}


def test_header_defaults(engine: Engine) -> None:
    assert mapped(engine, http("GET", "/tenants/acme/documents/doc-plan"))["context"] == {
        "ip": CORP_IP,
        "mfa": False,  # x-auth-mfa absent: the default "false"
        "device_trusted": False,
    }
    for text, value in [("true", True), ("TRUE", True), ("1", True), ("yes", True), (" no ", False), ("0", False)]:
        headers = {"x-auth-mfa": text}
        assert mapped(engine, http("GET", "/tenants/acme/documents/doc-plan", headers))["context"]["mfa"] is value


@pytest.mark.parametrize(
    ("principal", "method", "target", "headers", "outcome"),
    [
        (  # a non-owner reading through the viewer grant gets the sensitive fields masked
            user("bob", roles=("viewer",)),
            "GET",
            "/tenants/acme/documents/doc-plan",
            {},
            (
                True,
                ("acme.non_owner_read_masked", "role:viewer"),
                (
                    {"type": "mask", "path": "resource.ssn"},
                    {"type": "mask", "path": "resource.salary"},
                    {"type": "header", "name": "x-tenant", "value": "acme"},
                ),
                (),
            ),
        ),
        (
            user("bob", roles=("viewer",)),
            "PUT",
            "/tenants/acme/documents/doc-plan",
            {},
            (False, (), (), ()),
        ),
        (
            user("alice"),
            "DELETE",
            "/tenants/acme/documents/doc-plan",
            {},
            (True, ("acme.owner_full_access",), ({"type": "header", "name": "x-tenant", "value": "acme"},), ()),
        ),
        (
            user("erin", roles=("tenant_admin",)),
            "POST",
            "/tenants/acme/documents/doc-plan/share",
            {},
            (True, ("role:tenant_admin",), (), ()),
        ),
        (
            user("dave", roles=("viewer",)),
            "GET",
            "/tenants/acme/projects/proj-apollo",
            {},
            (True, ("role:viewer",), (), ()),
        ),
        (
            user("erin", roles=("tenant_admin",)),
            "POST",
            "/tenants/acme/projects/proj-old/archive",
            {},
            (False, ("acme.archived_project_frozen",), (), ()),
        ),
        (user("ann", roles=("auditor",)), "GET", "/tenants/acme/admin/audit", {}, (True, ("role:auditor",), (), ())),
        (user("ann", roles=("auditor",)), "DELETE", "/tenants/acme/admin/users/zoe", {}, (False, (), (), ())),
        (
            user("erin", roles=("tenant_admin",)),
            "DELETE",
            "/tenants/acme/admin/users/zoe",
            {},
            (True, ("role:tenant_admin",), (), ()),
        ),
        (  # restricted data: the MFA header is absent, so mfa is false
            user("alice", clearance="restricted"),
            "GET",
            "/tenants/acme/documents/doc-merger",
            {"x-device-trusted": "true"},
            (
                False,
                ("acme.restricted_needs_mfa_and_trusted_device",),
                (),
                ({"rule": "acme.restricted_needs_mfa_and_trusted_device", "name": "step_up", "value": "mfa"},),
            ),
        ),
        (
            user("alice", clearance="restricted"),
            "GET",
            "/tenants/acme/documents/doc-merger",
            {"x-auth-mfa": "yes", "x-device-trusted": "yes"},
            (True, ("acme.owner_full_access",), ({"type": "header", "name": "x-tenant", "value": "acme"},), ()),
        ),
        (  # the path names globex, but the stored document says acme: the data wins
            user("bob", roles=("viewer",)),
            "GET",
            "/tenants/globex/documents/doc-plan",
            {},
            (
                True,
                ("acme.non_owner_read_masked", "role:viewer"),
                (
                    {"type": "mask", "path": "resource.ssn"},
                    {"type": "mask", "path": "resource.salary"},
                    {"type": "header", "name": "x-tenant", "value": "acme"},
                ),
                (),
            ),
        ),
        (  # the console's tenant comes from the path: globex's allow-list applies, not acme's rules
            user("erin", roles=("tenant_admin",)),
            "POST",
            "/tenants/globex/admin/users/zoe",
            {},
            (False, ("acme.outside_tenant_network",), (), ()),
        ),
    ],
)
def test_acme_decisions_through_routes(
    engine: Engine, principal: Any, method: str, target: str, headers: dict[str, str], outcome: Any
) -> None:
    assert decide(engine, http(method, target, headers), principal) == outcome


def test_roles_are_scoped_to_the_tenant_the_path_names(engine: Engine) -> None:
    globex_office = "10.20.7.9"  # in globex's allow-list and in the corporate network
    target = "/tenants/globex/admin/users/zoe"
    assert decide(engine, http("POST", target, ip=globex_office), user("erin", roles=("tenant_admin",))) == (
        False,
        (),
        (),
        (),
    )
    globex_admin = user("gus", tenant="globex", roles=("tenant_admin",))
    assert decide(engine, http("POST", target, ip=globex_office), globex_admin) == (
        True,
        ("role:tenant_admin",),
        (),
        (),
    )


def test_routes_decide_like_the_hand_written_requests(engine: Engine) -> None:
    """The request a route builds decides as the one a PEP would send (see tests/test_policies_acme.py)."""
    cases = [
        ("GET", "/tenants/acme/documents/doc-roadmap", "read", "Document", "doc-roadmap"),
        ("PUT", "/tenants/acme/documents/doc-plan", "write", "Document", "doc-plan"),
        ("POST", "/tenants/acme/projects/proj-apollo/archive", "archive", "Project", "proj-apollo"),
        ("GET", "/tenants/acme/projects/proj-old", "read", "Project", "proj-old"),
    ]
    principals = [user("bob", roles=roles) for roles in [(), ("viewer",), ("editor",), ("tenant_admin",)]]
    principals.append(user("alice"))
    for method, target, action, rtype, rid in cases:
        for principal in principals:
            routed = engine.decide(
                {**mapped(engine, http(method, target, TRUSTED)), "principal": principal, "now": NOW}
            )
            written = engine.decide(
                {
                    "principal": principal,
                    "action": action,
                    "resource": {"type": rtype, "id": rid},
                    "context": CONTEXT,
                    "now": NOW,
                }
            )
            assert routed == written, (target, principal["id"])


def test_a_missing_value_fails_closed_in_the_engine(engine: Engine) -> None:
    request = HttpRequest("GET", "/tenants/acme/documents/doc-plan", {})  # no peer address: no context.ip
    assert "ip" not in mapped(engine, request)["context"]
    decision = engine.decide({**mapped(engine, request), "principal": user("alice"), "now": NOW})
    assert not decision.allowed
    assert [(e.field, e.message) for e in decision.errors] == [("context.ip", "missing required attribute")]


@pytest.mark.parametrize(
    ("method", "target", "headers", "message", "field"),
    [
        (
            "GET",
            "/tenants/acme/documents/doc-plan",
            {"x-auth-mfa": "maybe"},
            "context.mfa: `maybe` is not a boolean (true or false)",
            "value",
        ),
        (
            "GET",
            "/tenants/acme/documents/doc-plan",
            {"x-device-trusted": ""},
            "context.device_trusted: `` is not a boolean (true or false)",
            "value",
        ),
        ("GET", "/nope", {}, "no route for GET /nope", "path"),
        ("PATCH", "/tenants/acme/projects/p1", {}, "no route for PATCH /tenants/acme/projects/p1", "path"),
        ("GET", "/tenants/acme/documents", {}, "no route for GET /tenants/acme/documents", "path"),
        (
            "GET",
            "/tenants/acme/documents/a%2fb",
            {},
            "path encodes a slash, a backslash or a control character",
            "path",
        ),
        ("GET", "/tenants/acme/documents/%ff", {}, "path is not valid UTF-8 once decoded", "path"),
        ("GET", "/../tenants/acme/documents/d", {}, "path climbs above the root", "path"),
        ("GET", "tenants/acme/documents/d", {}, "path must start with /", "path"),
        ("GET", "/tenants/acme/documents/d?q=%ff", {}, "malformed query string", "query"),
    ],
)
def test_mapping_errors(
    engine: Engine, method: str, target: str, headers: dict[str, str], message: str, field: str
) -> None:
    with pytest.raises(MappingError) as info:
        map_request(engine.policy.checked.routes, http(method, target, headers), 0.0)
    assert (info.value.message, info.value.field) == (message, field)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # `..` is resolved before matching: the decision is about the path the backend serves
        ("/tenants/acme/documents/../../admin/audit", "no route for GET /tenants/admin/audit"),
        ("/tenants/acme/documents/%2e%2e/%2E%2E/admin/audit", "no route for GET /tenants/admin/audit"),
        ("/tenants/acme/documents/doc-plan/../../admin/audit", ("view_audit", "AdminConsole", "acme")),
        ("/tenants/acme/documents/doc-plan/%2e%2e/%2e%2e/admin/audit", ("view_audit", "AdminConsole", "acme")),
        ("/tenants/globex/../acme/documents/doc-plan", ("read", "Document", "doc-plan")),
        # double encoding stays literal: one segment `%2e%2e`, which no route names in that place
        (
            "/tenants/acme/documents/%252e%252e/%252e%252e/admin/audit",
            "no route for GET /tenants/acme/documents/%2e%2e/%2e%2e/admin/audit",
        ),  # fmt: skip
        ("/tenants/acme/documents/%252e%252e", ("read", "Document", "%2e%2e")),
        ("/tenants/acme/documents/..%2f..%2fadmin", "path encodes a slash, a backslash or a control character"),
        ("/tenants/acme/documents/..%5c..%5cadmin", "path encodes a slash, a backslash or a control character"),
        ("/tenants/acme/documents/..\\..\\admin", "path contains a backslash"),
        (
            "/tenants/acme/documents/doc-plan%00/../../admin/audit",
            "path encodes a slash, a backslash or a control character",
        ),  # fmt: skip
        ("/tenants/acme/documents/..;/..;/admin/audit", "path contains `;`"),
    ],
)
def test_traversal_attempts(engine: Engine, target: str, expected: str | tuple[str, str, str]) -> None:
    """Whatever the spelling, the route matched is the one the normalized path names, never another."""
    try:
        request = mapped(engine, http("GET", target))
    except MappingError as exc:
        assert exc.message == expected
        return
    assert (request["action"], request["resource"]["type"], request["resource"]["id"]) == expected


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["GET", "POST", "put", "DELETE", "PROPFIND", ""]),
    st.one_of(st.text(max_size=60), NASTY.map(lambda s: "/tenants/acme/" + s)),
    st.dictionaries(st.sampled_from(["x-auth-mfa", "x-device-trusted", "authorization"]), st.text(max_size=8)),
)
def test_map_request_raises_nothing_but_mapping_errors(method: str, target: str, headers: dict[str, str]) -> None:
    try:
        result = map_request(_ACME.policy.checked.routes, HttpRequest(method, target, headers, CORP_IP), 0.0)
    except MappingError:
        return
    assert result.request["action"] in _ACME.schema.all_actions()


_ACME = Engine.load(POLICIES)


# ---- mapping details with a table of our own ----------------------------------------------------


def test_sources_and_conversions() -> None:
    t = table(
        """\
http { context.ip = source.ip; context.who = "anonymous"; context.mfa = header("x-mfa", "no"); }
route GET "/d/{tenant}/{id}" => read Doc {
  resource.id = path.id;
  resource.tenant = path.tenant;
  resource.tags = query.tags;
  resource.size = query.size;
  resource.level = header("x-level");
  context.who = source.principal;
  context.at = now;
  context.age = query.age;
}
route default => write Doc { resource.id = "fallback"; resource.tenant = "none"; context.q = query.q; }
"""
    )
    request = HttpRequest(
        "GET",
        "/d/acme/doc%201?tags=a,%20b,,c&size=-42&age=1h30m&tags=ignored",
        {"x-level": "high"},
        "10.0.0.1",
        "spiffe://acme/svc",
    )
    result = map_request(t, request, 1_700_000_000.0)
    assert result.route == "/d/{tenant}/{id}"
    assert result.request == {
        "action": "read",
        "resource": {
            "type": "Doc",
            "id": "doc 1",
            "attributes": {"tenant": "acme", "tags": ["a", "b", "c"], "size": -42, "level": "high"},
        },
        "context": {
            "ip": "10.0.0.1",
            "who": "spiffe://acme/svc",  # the route's assignment wins over the http block's
            "mfa": False,
            "at": "2023-11-14T22:13:20Z",
            "age": "1h30m",
        },
    }
    # values the request does not carry are left out; the default route takes what no route matches
    fallback = map_request(t, HttpRequest("DELETE", "/elsewhere"), 0.0)
    assert fallback.route == "default"
    assert fallback.request == {
        "action": "write",
        "resource": {"type": "Doc", "id": "fallback", "attributes": {"tenant": "none"}},
        "context": {"who": "anonymous", "mfa": False},
    }
    with pytest.raises(MappingError) as info:
        map_request(t, HttpRequest("GET", "/d/acme/x?size=12x"), 0.0)
    assert (info.value.message, info.value.field) == ("resource.size: `12x` is not an integer", "value")
    with pytest.raises(MappingError):
        map_request(t, HttpRequest("GET", "/d/acme/x?size=" + "9" * 19), 0.0)


def test_a_route_without_an_id_maps_to_the_empty_id() -> None:
    t = table(
        'route GET "/a" => read Doc { resource.tenant = "t"; }\nroute GET "/b" => read Doc { resource.id = query.id; }'
    )
    assert map_request(t, HttpRequest("GET", "/a"), 0.0).request["resource"]["id"] == ""
    assert map_request(t, HttpRequest("GET", "/b"), 0.0).request["resource"]["id"] == ""
    assert map_request(t, HttpRequest("GET", "/b?id=x"), 0.0).request["resource"]["id"] == "x"


@pytest.mark.parametrize(
    ("authorization", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", ""), ("Bearer", ""), ("", ""), ("abc", "")],
)
def test_bearer(authorization: str, token: str) -> None:
    assert bearer({"authorization": authorization}) == token
    assert bearer({}) == ""
