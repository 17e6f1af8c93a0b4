"""Text -> AST: every grammar construct, operator precedence, spans and syntax errors."""

from __future__ import annotations

import pytest

from policy_lang import nodes as n
from policy_lang.errors import PolicyError, PolicySyntaxError
from policy_lang.parser import parse

P = n.Var("principal")
R = n.Var("resource")
C = n.Var("context")
NOW = n.Var("now")


def ids(*names: str) -> tuple[n.Ident, ...]:
    return tuple(n.Ident(x) for x in names)


def attr(obj: n.Expr, *names: str) -> n.Expr:
    for name in names:
        obj = n.Attr(obj, name)
    return obj


def s(value: str) -> n.Lit:
    return n.Lit(value, "string")


def i(value: int) -> n.Lit:
    return n.Lit(value, "int")


def b(op: n.BinaryOp, left: n.Expr, right: n.Expr) -> n.Binary:
    return n.Binary(op, left, right)


def name(x: str) -> n.Name:
    return n.Name(x)


def only(text: str) -> n.Declaration:
    items = parse(text, filename="t.pdp").items
    assert len(items) == 1, items
    return items[0]


def cond(expr_text: str) -> n.Expr:
    """The expression of `permit r when <expr_text>;`."""
    rule = only(f"permit r when {expr_text};")
    assert isinstance(rule, n.Rule)
    assert len(rule.conditions) == 1
    return rule.conditions[0].expr


def rule(**overrides: object) -> n.Rule:
    fields: dict[str, object] = {
        "id": n.Ident("r"),
        "effect": "permit",
        "annotations": (),
        "principals": (),
        "actions": (),
        "resources": (),
        "roles": (),
        "conditions": (),
        "obligations": (),
        "advice": (),
        "namespace": "",
    }
    fields.update(overrides)
    return n.Rule(**fields)  # type: ignore[arg-type]


# ---- files and namespaces ------------------------------------------------------------


def test_empty_file_parses_to_no_items() -> None:
    f = parse("", filename="e.pdp")
    assert f == n.PolicyFile("e.pdp", "", ())


def test_namespace_declaration_qualifies_rule_ids() -> None:
    f = parse("namespace acme.docs.v2;\npermit r;", filename="a.pdp")
    assert f.namespace == "acme.docs.v2"
    (r,) = f.items
    assert isinstance(r, n.Rule)
    assert r.namespace == "acme.docs.v2"
    assert r.qualified_id == "acme.docs.v2.r"


def test_namespace_argument_is_used_when_the_file_declares_none() -> None:
    f = parse("permit r;", namespace="from_folder")
    assert f.namespace == "from_folder"
    r = f.items[0]
    assert isinstance(r, n.Rule) and r.qualified_id == "from_folder.r"


def test_declared_namespace_beats_the_namespace_argument() -> None:
    f = parse("namespace inside;\npermit r;", namespace="outside")
    r = f.items[0]
    assert isinstance(r, n.Rule) and r.qualified_id == "inside.r"


def test_rule_without_namespace_has_a_bare_id() -> None:
    r = only("permit r;")
    assert isinstance(r, n.Rule) and r.qualified_id == "r"


def test_namespace_must_come_first() -> None:
    with pytest.raises(PolicySyntaxError):
        parse("permit r;\nnamespace late;")


# ---- schema ---------------------------------------------------------------------------


def test_ordered_enum() -> None:
    assert only("enum Level { public < internal < secret }") == n.EnumDecl(
        "Level", ids("public", "internal", "secret"), True
    )


def test_unordered_enum() -> None:
    assert only("enum Region { eu, us, apac }") == n.EnumDecl("Region", ids("eu", "us", "apac"), False)


def test_single_member_enum_is_unordered() -> None:
    assert only("enum One { only }") == n.EnumDecl("One", ids("only"), False)


def test_enum_cannot_mix_order_and_commas() -> None:
    with pytest.raises(PolicySyntaxError):
        parse("enum E { a < b, c }")


def test_entity_with_everything() -> None:
    decl = only(
        """
        principal entity User in Group, Team {
          tenant: string;
          department?: string;
          email: string sensitive;
          nickname?: string sensitive;
          tags: set<string>;
          roles: map<string, set<string>>;
          address: { city: string; zip?: string; };
          nets: set<ip>;
        }
        """
    )
    assert decl == n.EntityDecl(
        "User",
        (
            n.AttrDecl("tenant", n.NamedType("string"), False, False),
            n.AttrDecl("department", n.NamedType("string"), True, False),
            n.AttrDecl("email", n.NamedType("string"), False, True),
            n.AttrDecl("nickname", n.NamedType("string"), True, True),
            n.AttrDecl("tags", n.SetType(n.NamedType("string")), False, False),
            n.AttrDecl("roles", n.MapType(n.NamedType("string"), n.SetType(n.NamedType("string"))), False, False),
            n.AttrDecl(
                "address",
                n.RecordType(
                    (
                        n.AttrDecl("city", n.NamedType("string"), False, False),
                        n.AttrDecl("zip", n.NamedType("string"), True, False),
                    )
                ),
                False,
                False,
            ),
            n.AttrDecl("nets", n.SetType(n.NamedType("ip")), False, False),
        ),
        ids("Group", "Team"),
        True,
    )


def test_plain_entity_without_parents_or_attributes() -> None:
    assert only("entity Group {}") == n.EntityDecl("Group", (), (), False)


def test_entity_with_one_parent_is_not_a_principal() -> None:
    decl = only("entity Document in Folder { owner: string; }")
    assert isinstance(decl, n.EntityDecl)
    assert decl.parents == ids("Folder")
    assert decl.is_principal is False


def test_nested_collection_types() -> None:
    decl = only("entity X { m: map<string, map<string, set<set<int>>>>; }")
    assert isinstance(decl, n.EntityDecl)
    assert decl.attrs[0].type == n.MapType(
        n.NamedType("string"),
        n.MapType(n.NamedType("string"), n.SetType(n.SetType(n.NamedType("int")))),
    )


def test_context_declaration() -> None:
    assert only("context { ip: ip; mfa?: bool; }") == n.ContextDecl(
        (n.AttrDecl("ip", n.NamedType("ip"), False, False), n.AttrDecl("mfa", n.NamedType("bool"), True, False))
    )


def test_actions_declaration() -> None:
    assert only("actions Document { read, write, delete }") == n.ActionsDecl(
        n.Ident("Document"), ids("read", "write", "delete")
    )


# ---- RBAC -----------------------------------------------------------------------------


def test_role_without_body() -> None:
    assert only("role viewer;") == n.RoleDecl("viewer", (), ())


def test_role_with_extends_and_no_body() -> None:
    assert only("role admin extends editor, auditor;") == n.RoleDecl("admin", ids("editor", "auditor"), ())


def test_role_with_grants() -> None:
    assert only(
        "role editor extends viewer { grant write, delete on Document, Project; grant create on Project; }"
    ) == n.RoleDecl(
        "editor",
        ids("viewer"),
        (
            n.Grant(ids("write", "delete"), ids("Document", "Project")),
            n.Grant(ids("create"), ids("Project")),
        ),
    )


def test_role_with_empty_body() -> None:
    assert only("role nobody {}") == n.RoleDecl("nobody", (), ())


def test_role_binding() -> None:
    assert only("roles of User from principal.roles[resource.tenant];") == n.BindingDecl(
        n.Ident("User"), n.Index(attr(P, "roles"), attr(R, "tenant"))
    )


# ---- named values -------------------------------------------------------------------


def test_const_with_value_only() -> None:
    assert only("const max_age = 15m;") == n.ConstDecl("max_age", None, n.Lit(900.0, "duration"))


def test_const_with_type_and_value() -> None:
    assert only('const gateway: ip = "10.0.0.1";') == n.ConstDecl("gateway", n.NamedType("ip"), s("10.0.0.1"))


def test_const_with_type_only_is_external() -> None:
    assert only("const nets: map<string, set<ip>>;") == n.ConstDecl(
        "nets", n.MapType(n.NamedType("string"), n.SetType(n.NamedType("ip"))), None
    )


def test_inline_list_is_a_typed_set_constant() -> None:
    assert only('list corp: ip = ["10.0.0.0/8", "192.168.0.0/16",];') == n.ConstDecl(
        "corp", n.SetType(n.NamedType("ip")), n.SetLit((s("10.0.0.0/8"), s("192.168.0.0/16")))
    )


def test_empty_inline_list() -> None:
    assert only("list none: string = [];") == n.ConstDecl("none", n.SetType(n.NamedType("string")), n.SetLit(()))


def test_external_list() -> None:
    assert only("list blocked: ip;") == n.ConstDecl("blocked", n.SetType(n.NamedType("ip")), None)


def test_window() -> None:
    assert only('window hours { days "mon-fri"; hours "08:00-19:00"; zone "Europe/Berlin"; }') == n.WindowDecl(
        "hours",
        (
            n.WindowField("days", "mon-fri"),
            n.WindowField("hours", "08:00-19:00"),
            n.WindowField("zone", "Europe/Berlin"),
        ),
    )


def test_empty_window() -> None:
    assert only("window always {}") == n.WindowDecl("always", ())


# ---- rules ----------------------------------------------------------------------------


def test_minimal_rules() -> None:
    assert only("permit r;") == rule()
    assert only("forbid r;") == rule(effect="forbid")


def test_rule_with_every_clause() -> None:
    text = """
    @description("no writes without mfa")
    @owner("security")
    forbid no_mfa
      principal User, Service
      action write, delete
      resource Document
      role editor, admin
      when principal.suspended
      unless context.mfa
      when true
      obligations {
        mask resource.ssn, principal.address.zip;
        header "x-tenant" = resource.tenant;
      }
      advice {
        step_up = "mfa";
        retry = true;
      };
    """
    assert only(text) == rule(
        id=n.Ident("no_mfa"),
        effect="forbid",
        annotations=(n.Annotation("description", "no writes without mfa"), n.Annotation("owner", "security")),
        principals=ids("User", "Service"),
        actions=ids("write", "delete"),
        resources=ids("Document"),
        roles=ids("editor", "admin"),
        conditions=(
            n.Condition("when", attr(P, "suspended")),
            n.Condition("unless", attr(C, "mfa")),
            n.Condition("when", n.Lit(True, "bool")),
        ),
        obligations=(
            n.Mask((attr(R, "ssn"), attr(P, "address", "zip"))),
            n.SetHeader("x-tenant", attr(R, "tenant")),
        ),
        advice=(n.AdviceItem("step_up", s("mfa")), n.AdviceItem("retry", n.Lit(True, "bool"))),
    )


def test_scopes_may_come_in_any_order_and_repeat() -> None:
    r = only("permit r resource Doc action read principal User action write role viewer resource Folder;")
    assert isinstance(r, n.Rule)
    assert r.principals == ids("User")
    assert r.actions == ids("read", "write")
    assert r.resources == ids("Doc", "Folder")
    assert r.roles == ids("viewer")


def test_several_obligation_and_advice_blocks_accumulate() -> None:
    r = only('permit r obligations { mask resource.a; } advice { x = 1; } obligations { header "h" = 2; };')
    assert isinstance(r, n.Rule)
    assert r.obligations == (n.Mask((attr(R, "a"),)), n.SetHeader("h", i(2)))
    assert r.advice == (n.AdviceItem("x", i(1)),)


def test_annotation_values_are_unquoted() -> None:
    r = only('@note("say \\"hi\\"\\n") permit r;')
    assert isinstance(r, n.Rule)
    assert r.annotations == (n.Annotation("note", 'say "hi"\n'),)


def test_conditions_must_follow_scopes() -> None:
    with pytest.raises(PolicySyntaxError):
        parse("permit r when true action read;")


def test_rule_needs_a_terminating_semicolon() -> None:
    with pytest.raises(PolicySyntaxError):
        parse("permit r when true")


def test_keywords_are_usable_where_only_a_name_fits() -> None:
    # the contextual lexer: right after `permit` only a name can follow
    r = only("permit permit;")
    assert isinstance(r, n.Rule) and r.id.name == "permit"


# ---- expressions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"abc"', s("abc")),
        ('""', s("")),
        ("42", i(42)),
        ("0", i(0)),
        ("true", n.Lit(True, "bool")),
        ("false", n.Lit(False, "bool")),
        ("principal", P),
        ("resource", R),
        ("context", C),
        ("now", NOW),
        ("corporate_network", name("corporate_network")),
        ("role admin", n.RoleRef("admin")),
        ('Group::"finance"', n.EntityRef("Group", "finance")),
        ('ip("10.0.0.0/8")', n.Call("ip", (s("10.0.0.0/8"),))),
        ('datetime("2026-01-01T00:00:00Z")', n.Call("datetime", (s("2026-01-01T00:00:00Z"),))),
        ("f()", n.Call("f", ())),
        ("f(1, 2)", n.Call("f", (i(1), i(2)))),
        ("[]", n.SetLit(())),
        ('["a"]', n.SetLit((s("a"),))),
        ('["a", "b",]', n.SetLit((s("a"), s("b")))),
        ("(((1)))", i(1)),
        ("principal.address.city", attr(P, "address", "city")),
        ('principal.roles["acme"]', n.Index(attr(P, "roles"), s("acme"))),
        ('m["a"]["b"]', n.Index(n.Index(name("m"), s("a")), s("b"))),
        ("principal.tags.is_empty()", n.Method(attr(P, "tags"), "is_empty", ())),
        ('principal.tags.contains("x")', n.Method(attr(P, "tags"), "contains", (s("x"),))),
        ("a.f(1, 2).g()", n.Method(n.Method(name("a"), "f", (i(1), i(2))), "g", ())),
        ('principal.roles["t"].size()', n.Method(n.Index(attr(P, "roles"), s("t")), "size", ())),
        ("principal has department", n.Has(P, "department")),
        ("principal.address has zip", n.Has(attr(P, "address"), "zip")),
        ('resource.path like "/public/*"', n.Like(attr(R, "path"), "/public/*")),
        ("-5", n.Neg(i(5))),
        ("- -x", n.Neg(n.Neg(name("x")))),
        ("not a", n.Not(name("a"))),
        ("not not a", n.Not(n.Not(name("a")))),
    ],
)
def test_atoms_and_postfix(text: str, expected: n.Expr) -> None:
    assert cond(text) == expected


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">=", "in"])
def test_each_comparison_operator(op: n.BinaryOp) -> None:
    assert cond(f"a {op} b") == b(op, name("a"), name("b"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # or binds loosest, then and, then not, then comparisons, then + -, then unary minus, then postfix
        ("a or b and c", n.Or(name("a"), n.And(name("b"), name("c")))),
        ("a and b or c", n.Or(n.And(name("a"), name("b")), name("c"))),
        ("a or b or c", n.Or(n.Or(name("a"), name("b")), name("c"))),
        ("a and b and c", n.And(n.And(name("a"), name("b")), name("c"))),
        ("not a and b", n.And(n.Not(name("a")), name("b"))),
        ("not a or not b", n.Or(n.Not(name("a")), n.Not(name("b")))),
        ("not a == b", n.Not(b("==", name("a"), name("b")))),
        ("a == b and c != d", n.And(b("==", name("a"), name("b")), b("!=", name("c"), name("d")))),
        ("a + b == c", b("==", b("+", name("a"), name("b")), name("c"))),
        ("a == b + c", b("==", name("a"), b("+", name("b"), name("c")))),
        ("a - b - c", b("-", b("-", name("a"), name("b")), name("c"))),
        ("a - b + c", b("+", b("-", name("a"), name("b")), name("c"))),
        ("-a + b", b("+", n.Neg(name("a")), name("b"))),
        ("a - -b", b("-", name("a"), n.Neg(name("b")))),
        ("-a.b", n.Neg(attr(name("a"), "b"))),
        ("(a or b) and c", n.And(n.Or(name("a"), name("b")), name("c"))),
        ("not (a and b)", n.Not(n.And(name("a"), name("b")))),
        ("now - principal.auth_time < 15m", b("<", b("-", NOW, attr(P, "auth_time")), n.Lit(900.0, "duration"))),
        ("x in s and y", n.And(b("in", name("x"), name("s")), name("y"))),
        ("a + b in s", b("in", b("+", name("a"), name("b")), name("s"))),
        ("principal in role admin or x", n.Or(b("in", P, n.RoleRef("admin")), name("x"))),
        ('resource in Group::"g"', b("in", R, n.EntityRef("Group", "g"))),
        ("principal has a and principal.a", n.And(n.Has(P, "a"), attr(P, "a"))),
        ('not s like "a*"', n.Not(n.Like(name("s"), "a*"))),
        ("a.b + c.d", b("+", attr(name("a"), "b"), attr(name("c"), "d"))),
    ],
)
def test_precedence_and_associativity(text: str, expected: n.Expr) -> None:
    assert cond(text) == expected


@pytest.mark.parametrize("text", ["a == b == c", "a < b < c", "a in b in c", "a == b in c", "a has b has c"])
def test_comparisons_do_not_chain(text: str) -> None:
    with pytest.raises(PolicySyntaxError):
        parse(f"permit r when {text};")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("15m", 900.0),
        ("2h", 7200.0),
        ("1h30m", 5400.0),
        ("1d", 86400.0),
        ("1d2h3m4s", 93784.0),
        ("500ms", 0.5),
        ("1m500ms", 60.5),
        ("0s", 0.0),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert cond(f"x < {text}") == b("<", name("x"), n.Lit(seconds, "duration"))


@pytest.mark.parametrize("text", ["1hx", "15 m", "1x"])
def test_malformed_durations_are_syntax_errors(text: str) -> None:
    with pytest.raises(PolicySyntaxError):
        parse(f"permit r when x < {text};")


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        (r'"plain"', "plain"),
        (r'"quote \" inside"', 'quote " inside'),
        (r'"back \\ slash"', "back \\ slash"),
        (r'"new\nline"', "new\nline"),
        (r'"tab\there"', "tab\there"),
        (r'"\\n is not a newline"', "\\n is not a newline"),
        ('"unicode é ✓ 雪"', "unicode é ✓ 雪"),
    ],
)
def test_string_escapes(literal: str, value: str) -> None:
    assert cond(f"x == {literal}") == b("==", name("x"), s(value))


@pytest.mark.parametrize("literal", [r'"bad \q escape"', '"unterminated', '"line\nbreak"'])
def test_bad_strings_are_syntax_errors(literal: str) -> None:
    with pytest.raises(PolicySyntaxError):
        parse(f"permit r when x == {literal};")


# ---- comments ----------------------------------------------------------------------------


def test_comments_of_every_kind_are_ignored() -> None:
    plain = parse("enum E { a, b }\npermit r when a == b;")
    commented = parse(
        """// line comment
        # hash comment
        enum E { a, /* inline */ b }  // trailing
        /* a block
           over several lines, with "quotes" and ; and } */
        permit r # after the id
          when a == /* mid-expression */ b; // done
        """
    )
    assert commented.items == plain.items


def test_comment_markers_inside_strings_are_text() -> None:
    assert cond('x == "http://a#b/*c*/"') == b("==", name("x"), s("http://a#b/*c*/"))


def test_unterminated_block_comment_is_an_error() -> None:
    with pytest.raises(PolicySyntaxError):
        parse("/* never closed\npermit r;")


# ---- spans ------------------------------------------------------------------------------

SPAN_SOURCE = """namespace acme;
// a comment line
permit read_own
  action read
  when resource.owner == principal.id
   and principal.age > 1;
"""


def test_spans_point_at_the_source() -> None:
    f = parse(SPAN_SOURCE, filename="f.pdp")
    (r,) = f.items
    assert isinstance(r, n.Rule)
    assert (r.span.file, r.span.line, r.span.col, r.span.end_line, r.span.end_col) == ("f.pdp", 3, 1, 6, 26)
    assert SPAN_SOURCE[r.span.start : r.span.end].startswith("permit read_own")
    assert SPAN_SOURCE[r.span.start : r.span.end].endswith("> 1;")
    assert (r.id.span.line, r.id.span.col, r.id.span.end_col) == (3, 8, 16)
    assert (r.actions[0].span.line, r.actions[0].span.col) == (4, 10)
    (c,) = r.conditions
    assert (c.span.line, c.span.col) == (5, 3)
    conj = c.expr
    assert isinstance(conj, n.And)
    assert (conj.span.line, conj.span.col, conj.span.end_line, conj.span.end_col) == (5, 8, 6, 25)
    eq = conj.left
    assert isinstance(eq, n.Binary)
    assert (eq.span.line, eq.span.col, eq.span.end_col) == (5, 8, 38)
    owner = eq.left
    assert isinstance(owner, n.Attr)
    assert (owner.span.line, owner.span.col, owner.span.end_col) == (5, 8, 22)
    assert SPAN_SOURCE[owner.span.start : owner.span.end] == "resource.owner"
    assert (eq.right.span.line, eq.right.span.col) == (5, 26)
    gt = conj.right
    assert isinstance(gt, n.Binary)
    assert (gt.span.line, gt.span.col) == (6, 8)
    assert str(gt.span) == "f.pdp:6:8"


def test_declaration_spans() -> None:
    text = "enum E { a, b }\n\n  entity X {\n    f?: string;\n  }\n"
    enum, entity = parse(text, filename="d.pdp").items
    assert isinstance(enum, n.EnumDecl) and isinstance(entity, n.EntityDecl)
    assert (enum.span.line, enum.span.col) == (1, 1)
    assert (enum.members[1].span.line, enum.members[1].span.col) == (1, 13)
    assert (entity.span.line, entity.span.col, entity.span.end_line) == (3, 3, 5)
    assert (entity.attrs[0].span.line, entity.attrs[0].span.col) == (4, 5)
    assert (entity.attrs[0].type.span.line, entity.attrs[0].type.span.col) == (4, 9)


def test_inline_list_value_span_starts_at_its_bracket() -> None:
    decl = only('list nets: ip = ["10.0.0.0/8", "nope"];')
    assert isinstance(decl, n.ConstDecl) and decl.value is not None
    assert (decl.value.span.col, decl.value.span.end_col) == (17, 39)
    assert (decl.value.items[1].span.col, decl.value.items[1].span.end_col) == (32, 38)


def test_spans_do_not_take_part_in_equality() -> None:
    a = parse("permit r when x == 1;")
    b_ = parse("\n\n\n   permit   r\n when\n x==1 ;", filename="elsewhere.pdp")
    assert a.items == b_.items
    assert a.items[0].span != b_.items[0].span


# ---- syntax errors ------------------------------------------------------------------------


def syntax_error(text: str) -> PolicyError:
    with pytest.raises(PolicySyntaxError) as info:
        parse(text, filename="bad.pdp")
    assert len(info.value.diagnostics) == 1
    assert info.value.diagnostics[0].code == "syntax_error"
    return info.value


def test_unexpected_token_is_shown_with_a_caret_under_it() -> None:
    err = syntax_error("permit r\n  when principal.age >= ;\n")
    assert err.render() == (
        "bad.pdp:2:25: syntax_error: unexpected `;`; expected `(`, `-`, `[`, a duration, a name, a number, a string\n"
        "     2 |   when principal.age >= ;\n"
        "       |                         ^"
    )


def test_caret_covers_the_whole_offending_token() -> None:
    err = syntax_error("permit r when a == 1 == 2;")
    rendered = err.render().splitlines()
    assert rendered[0].startswith("bad.pdp:1:22: syntax_error: unexpected `==`; expected ")
    assert rendered[1] == "     1 | permit r when a == 1 == 2;"
    assert rendered[2] == "       |                      ^^"


def test_unexpected_name() -> None:
    err = syntax_error("permit 1;")
    assert err.render() == (
        "bad.pdp:1:8: syntax_error: unexpected `1`; expected a name\n     1 | permit 1;\n       |        ^"
    )


def test_unexpected_character() -> None:
    err = syntax_error("permit r when a ~ b;")
    assert err.render() == (
        "bad.pdp:1:17: syntax_error: unexpected character `~`\n     1 | permit r when a ~ b;\n       |                 ^"
    )


def test_enum_mixing_separators() -> None:
    err = syntax_error("enum E { a < b, c }")
    assert str(err.diagnostics[0]) == "bad.pdp:1:15: syntax_error: unexpected `,`; expected `<`, `}`"


def test_unexpected_end_of_file_points_just_after_the_last_token() -> None:
    err = syntax_error("permit r\n  when")
    rendered = err.render().splitlines()
    assert rendered[0].startswith("bad.pdp:2:7: syntax_error: unexpected end of file; expected ")
    assert rendered[1:] == ["     2 |   when", "       |       ^"]


def test_syntax_error_on_a_later_line_counts_lines_from_one() -> None:
    err = syntax_error("// one\n// two\n\npermit r when ;")
    d = err.diagnostics[0]
    assert (d.span.line, d.span.col) == (4, 15)


def test_syntax_error_str_is_the_first_line() -> None:
    err = syntax_error("permit r when a ~ b;")
    assert str(err) == "bad.pdp:1:17: syntax_error: unexpected character `~`"
