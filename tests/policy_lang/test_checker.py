"""The checker: one golden case per error code, `has` guards, and all errors reported at once.

The policy under test comes first in the file (line 1) and a fixed schema follows it, so the
golden positions below are `p.pdp:1:<col>`: the checker does not care about declaration order.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lark import Lark

from policy_lang.checker import CheckedPolicySet, check
from policy_lang.errors import Diagnostic, PolicyCheckError, PolicyError
from policy_lang.parser import parse
from policy_lang.spans import Source

SCHEMA = """
enum Level { low < mid < high }
enum Color { red, green, blue }

principal entity User in Group {
  tenant: string;
  roles: map<string, set<string>>;
  level: Level;
  color: Color;
  tags: set<string>;
  age: int;
  email: string sensitive;
  auth_time: datetime;
  nick?: string;
  profile: { dept: string; manager?: string; };
}
entity Group {}
entity Doc in Group {
  tenant: string;
  owner: string;
  level: Level;
  labels: map<string, string>;
  ssn?: string sensitive;
}
entity Project { tenant: string; members: set<string>; }
entity Thing {}

context { ip: ip; mfa: bool; }

actions Doc { read, write, delete }
actions Project { read, create }

role viewer { grant read on Doc, Project; }
role editor extends viewer { grant write on Doc; }

roles of User from principal.roles[resource.tenant];
"""


def compile_text(body: str, constants: dict[str, object] | None = None) -> CheckedPolicySet:
    text = body + "\n" + SCHEMA
    return check([parse(text, filename="p.pdp")], constant_values=constants, sources={"p.pdp": Source("p.pdp", text)})


def errors(body: str, constants: dict[str, object] | None = None) -> tuple[Diagnostic, ...]:
    with pytest.raises(PolicyCheckError) as info:
        compile_text(body, constants)
    return info.value.diagnostics


def the_error(body: str) -> Diagnostic:
    diags = errors(body)
    assert len(diags) == 1, [str(d) for d in diags]
    return diags[0]


def test_the_schema_alone_is_valid() -> None:
    checked = compile_text("")
    assert set(checked.schema.entities) == {"User", "Group", "Doc", "Project", "Thing"}
    assert checked.schema.principal_types == ("User",)
    assert checked.role_ancestors["editor"] == frozenset({"editor", "viewer"})


GOLDEN = [
    # ---- unknown_type
    (
        "permit r principal Usr;",
        "p.pdp:1:20: unknown_type: unknown entity type `Usr`",
        "did you mean `User`?",
    ),
    ("entity X { a: strng; }", "p.pdp:1:15: unknown_type: unknown type `strng`", "did you mean `string`?"),
    ("entity X { a: set<Levl>; }", "p.pdp:1:19: unknown_type: unknown type `Levl`", "did you mean `Level`?"),
    ("entity X in Grp {}", "p.pdp:1:13: unknown_type: unknown entity type `Grp`", "did you mean `Group`?"),
    (
        'permit r when resource in Grp::"g";',
        "p.pdp:1:27: unknown_type: unknown entity type `Grp`",
        "did you mean `Group`?",
    ),
    ("permit r resource Docs;", "p.pdp:1:19: unknown_type: unknown entity type `Docs`", "did you mean `Doc`?"),
    ("actions Nope { go }", "p.pdp:1:9: unknown_type: unknown entity type `Nope`", None),
    ("roles of Nobody from principal.tags;", "p.pdp:1:10: unknown_type: unknown entity type `Nobody`", None),
    # ---- unknown_attribute, with did-you-mean
    (
        "permit r when principal.agee > 1;",
        "p.pdp:1:15: unknown_attribute: `User` has no attribute `agee`",
        "did you mean `age`?",
    ),
    (
        "permit r when context.mfaa;",
        "p.pdp:1:15: unknown_attribute: the context has no attribute `mfaa`",
        "did you mean `mfa`?",
    ),
    (
        'permit r when principal.profile.dep == "x";',
        "p.pdp:1:15: unknown_attribute: the record has no attribute `dep`",
        "did you mean `dept`?",
    ),
    (
        "permit r when principal has nik;",
        "p.pdp:1:15: unknown_attribute: `User` has no attribute `nik`",
        "did you mean `nick`?",
    ),
    (
        "permit r when context has ipp;",
        "p.pdp:1:15: unknown_attribute: the context has no attribute `ipp`",
        "did you mean `ip`?",
    ),
    ("permit r when principal.xyz == 1;", "p.pdp:1:15: unknown_attribute: `User` has no attribute `xyz`", None),
    (
        "permit r obligations { mask resource.nothing; };",
        "p.pdp:1:29: unknown_attribute: no attribute `nothing` to mask in `resource.nothing`",
        None,
    ),
    (
        "permit r resource Doc obligations { mask resource.sn; };",
        "p.pdp:1:42: unknown_attribute: no attribute `sn` to mask in `resource.sn`",
        "did you mean `ssn`?",
    ),
    # ---- unknown_action
    ("permit r action reed;", "p.pdp:1:17: unknown_action: unknown action `reed`", "did you mean `read`?"),
    ("permit r resource Doc action raed;", "p.pdp:1:30: unknown_action: unknown action `raed`", "did you mean `read`?"),
    ("role r { grant fly on Doc; }", "p.pdp:1:16: unknown_action: unknown action `fly`", None),
    # ---- unknown_role
    ("role r extends viewr;", "p.pdp:1:16: unknown_role: unknown role `viewr`", "did you mean `viewer`?"),
    ("permit r role editr;", "p.pdp:1:15: unknown_role: unknown role `editr`", "did you mean `editor`?"),
    (
        "permit r when principal in role viewr;",
        "p.pdp:1:28: unknown_role: unknown role `viewr`",
        "did you mean `viewer`?",
    ),
    ("permit r when principal in role admin;", "p.pdp:1:28: unknown_role: unknown role `admin`", None),
    # ---- unknown_name
    ("permit r when max_age > 1;", "p.pdp:1:15: unknown_name: unknown name `max_age`", None),
    ("permit r when principal.level == hihg;", "p.pdp:1:34: unknown_name: unknown name `hihg`", "did you mean `high`?"),
    # ---- unknown_method
    (
        'permit r when principal.tags.containz("a");',
        "p.pdp:1:15: unknown_method: sets have no method `containz`",
        "did you mean `contains`?",
    ),
    (
        'permit r when principal.email.startswith("a");',
        "p.pdp:1:15: unknown_method: strings have no method `startswith`",
        "did you mean `starts_with`?",
    ),
    # ---- unknown_function
    ('permit r when context.ip in cidr("10.0.0.0/8");', "p.pdp:1:29: unknown_function: unknown function `cidr`", None),
    (
        'permit r when now > datetme("2026-01-01T00:00:00Z");',
        "p.pdp:1:21: unknown_function: unknown function `datetme`",
        "did you mean `datetime`?",
    ),
    # ---- optional_attribute
    (
        'permit r when principal.nick == "x";',
        "p.pdp:1:15: optional_attribute: attribute `principal.nick` is optional and may be absent",
        "guard it: `principal has nick and ...`",
    ),
    (
        'permit r when principal.profile.manager == "x";',
        "p.pdp:1:15: optional_attribute: attribute `principal.profile.manager` is optional and may be absent",
        "guard it: `principal.profile has manager and ...`",
    ),
    (
        "permit r advice { n = principal.nick; };",
        "p.pdp:1:23: optional_attribute: attribute `principal.nick` is optional and may be absent",
        "guard it: `principal has nick and ...`",
    ),
    # ---- duplicate_rule
    ("permit r; permit r;", "p.pdp:1:18: duplicate_rule: rule `r` is declared twice", "first declared at p.pdp:1:8"),
    (
        "namespace ns; permit r; forbid r;",
        "p.pdp:1:32: duplicate_rule: rule `ns.r` is declared twice",
        "first declared at p.pdp:1:22",
    ),
    # ---- duplicate_declaration
    (
        "enum E { a } enum E { b }",
        "p.pdp:1:14: duplicate_declaration: `E` is declared twice",
        "first declared at p.pdp:1:1",
    ),
    ("enum E { x, y, x }", "p.pdp:1:16: duplicate_declaration: enum member `x` is listed twice", None),
    # reported at the later of the two, whatever kinds of declaration they are
    ("const low = 1;", "p.pdp:3:14: duplicate_declaration: `low` is declared twice", "first declared at p.pdp:1:1"),
    (
        "const a = 1; window a {}",
        "p.pdp:1:14: duplicate_declaration: `a` is declared twice",
        "first declared at p.pdp:1:1",
    ),
    (
        "window a {} const a = 1;",
        "p.pdp:1:13: duplicate_declaration: `a` is declared twice",
        "first declared at p.pdp:1:1",
    ),
    (
        "entity X { a: int; a: int; }",
        "p.pdp:1:20: duplicate_declaration: `a` is declared twice",
        "first declared at p.pdp:1:12",
    ),
    ("entity X { id: string; }", "p.pdp:1:12: duplicate_declaration: `id` is built in; every entity has one", None),
    (
        "entity Z {} actions Z { go, go }",
        "p.pdp:1:29: duplicate_declaration: action `go` is declared twice for `Z`",
        None,
    ),
    ("role r; role r;", "p.pdp:1:9: duplicate_declaration: `r` is declared twice", "first declared at p.pdp:1:1"),
    (
        "entity Thing { x: int; }",
        "p.pdp:27:1: duplicate_declaration: `Thing` is declared twice",
        "first declared at p.pdp:1:1",
    ),
    # ---- role_cycle: the message names the cycle
    (
        "role a extends b; role b extends c; role c extends a;",
        "p.pdp:1:1: role_cycle: role inheritance cycle: a -> b -> c -> a",
        None,
    ),
    ("role a extends a;", "p.pdp:1:1: role_cycle: role inheritance cycle: a -> a", None),
    ("role y extends x; role x extends y;", "p.pdp:1:19: role_cycle: role inheritance cycle: x -> y -> x", None),
    # ---- never_applies
    (
        "permit r resource Doc action create;",
        "p.pdp:1:30: never_applies: action `create` is not valid for `Doc`",
        "valid actions: delete, read, write",
    ),
    (
        "permit r resource Thing;",
        "p.pdp:1:19: never_applies: `Thing` has no actions, so nothing can be done to it",
        "declare them: `actions Thing { ... }`",
    ),
    (
        "role r { grant read on Thing; }",
        "p.pdp:1:24: never_applies: `Thing` has no actions, so nothing can be done to it",
        "declare them: `actions Thing { ... }`",
    ),
    (
        "role r { grant create on Doc; }",
        "p.pdp:1:16: never_applies: action `create` is not valid for `Doc`",
        "valid actions: delete, read, write",
    ),
    (
        "entity Box {} actions Box { open } role r { grant open on Box; }",
        "p.pdp:1:59: never_applies: no role binding applies to `Box`, so this grant never takes effect",
        "the role binding fails for `Box`: `Box` has no attribute `tenant`",
    ),
    # ---- missing_constant
    (
        "const allow_list: set<ip>;",
        "p.pdp:1:1: missing_constant: constant `allow_list` has no value",
        'give it a value here or under "constants" in a data file',
    ),
    (
        "list blocked: ip;",
        "p.pdp:1:1: missing_constant: constant `blocked` has no value",
        'give it a value here or under "constants" in a data file',
    ),
    # ---- invalid_literal
    (
        'const gw: ip = "10.0.0.300";',
        "p.pdp:1:16: invalid_literal: `10.0.0.300` is not an IP address or CIDR network",
        None,
    ),
    (
        'const start = datetime("yesterday");',
        "p.pdp:1:24: invalid_literal: `yesterday` is not an RFC 3339 datetime",
        None,
    ),
    ('const lvl: Level = "top";', "p.pdp:1:20: invalid_literal: expected one of low, mid, high, found 'top'", None),
    (
        'list nets: ip = ["10.0.0.0/8", "nope"];',
        "p.pdp:1:17: invalid_literal: `nope` is not an IP address or CIDR network",
        None,
    ),
    ("const c: int = true;", "p.pdp:1:16: invalid_literal: expected int, found bool", None),
    (
        'const d: duration = "soon";',
        "p.pdp:1:21: invalid_literal: `soon` is not a duration such as `15m` or `1h30m`",
        None,
    ),
    # ---- invalid_window
    (
        'window w { days "mon-xyz"; }',
        "p.pdp:1:12: invalid_window: `mon-xyz` is not a list of days such as `mon-fri` or `sat,sun`",
        None,
    ),
    ('window w { hours "9-5"; }', "p.pdp:1:12: invalid_window: `9-5` is not an hour range such as `09:00-18:00`", None),
    (
        'window w { hours "25:00-26:00"; }',
        "p.pdp:1:12: invalid_window: `25:00-26:00` is not an hour range such as `09:00-18:00`",
        None,
    ),
    ('window w { zone "Mars/Olympus"; }', "p.pdp:1:12: invalid_window: `Mars/Olympus` is not a known time zone", None),
    (
        'window w { colour "red"; }',
        "p.pdp:1:12: invalid_window: unknown window field `colour`",
        "use `days`, `hours` and `zone`",
    ),
    # ---- not_constant
    (
        "const me = principal.id;",
        "p.pdp:1:12: not_constant: a constant's value must be made of literals and other constants",
        None,
    ),
    (
        "const both = 1 + 2;",
        "p.pdp:1:14: not_constant: a constant's value must be made of literals and other constants",
        None,
    ),
    (
        "const t: bool = true and false;",
        "p.pdp:1:17: not_constant: a constant's value must be made of literals and other constants",
        None,
    ),
]


@pytest.mark.parametrize(("body", "message", "help"), GOLDEN, ids=[g[1].split(": ")[1] + ":" + g[0] for g in GOLDEN])
def test_golden_diagnostic(body: str, message: str, help: str | None) -> None:
    d = the_error(body)
    assert str(d) == message
    assert d.help == help


TYPE_ERRORS = [
    (
        "permit r when principal.color < red;",
        "p.pdp:1:15: type_error: enum `Color` is not ordered (declare it with `<`)",
    ),
    ('permit r when principal.email < "x";', "p.pdp:1:15: type_error: `<` does not apply to string"),
    ("permit r when principal.level < principal.color;", "p.pdp:1:15: type_error: cannot order Level against Color"),
    ("permit r when not principal.age;", "p.pdp:1:19: type_error: the operand of `not` must be bool, found int"),
    ("permit r when principal.age;", "p.pdp:1:15: type_error: a `when` condition must be bool, found int"),
    ("permit r unless principal.email;", "p.pdp:1:17: type_error: an `unless` condition must be bool, found string"),
    ("permit r when principal and true;", "p.pdp:1:15: type_error: the left side of `and` must be bool, found User"),
    ("permit r when true or principal.age;", "p.pdp:1:23: type_error: the right side of `or` must be bool, found int"),
    ('permit r when principal.age == "x";', "p.pdp:1:15: type_error: cannot compare int with string"),
    ("permit r when principal == principal;", "p.pdp:1:15: type_error: entities cannot be compared with `==`"),
    (
        'permit r when principal.tags == [1, "a"];',
        "p.pdp:1:37: type_error: set elements must share one type: int and string",
    ),
    (
        "permit r when [principal.profile].is_empty();",
        "p.pdp:1:16: type_error: a set cannot hold {dept: string, manager?: string}",
    ),
    ('permit r when -principal.email == "x";', "p.pdp:1:15: type_error: cannot negate string"),
    ("permit r when principal.age + 1h > 2;", "p.pdp:1:15: type_error: cannot apply `+` to int and duration"),
    (
        "permit r when principal.age - principal.auth_time > 1h;",
        "p.pdp:1:15: type_error: cannot apply `-` to int and datetime",
    ),
    (
        "permit r when principal.auth_time + principal.auth_time > now;",
        "p.pdp:1:15: type_error: cannot apply `+` to datetime and datetime",
    ),
    ("permit r when principal.age in principal.tags;", "p.pdp:1:15: type_error: cannot look for int in set<string>"),
    ("permit r when principal.age in 5;", "p.pdp:1:32: type_error: `in` does not apply to int"),
    ("permit r when principal.age in context.ip;", "p.pdp:1:15: type_error: only an ip can be in a network, found int"),
    ("permit r when principal.age in now;", "p.pdp:1:32: type_error: `in` does not apply to datetime"),
    (
        'permit r when principal.email in Group::"g";',
        "p.pdp:1:15: type_error: only entities belong to a hierarchy, found string",
    ),
    ("permit r when resource in role viewer;", "p.pdp:1:15: type_error: only `principal` can be `in role ...`"),
    ("permit r when principal.age has x;", "p.pdp:1:15: type_error: int has no attributes"),
    (
        'permit r when principal.tags["x"] == "a";',
        "p.pdp:1:15: type_error: only maps can be indexed, found set<string>",
    ),
    (
        "permit r when principal.roles[1] == principal.tags;",
        "p.pdp:1:31: type_error: a map key must be string, found int",
    ),
    ("permit r when principal.tags.size(1) == 1;", "p.pdp:1:15: type_error: `size` takes 0 argument(s)"),
    ("permit r when principal.tags.contains(1);", "p.pdp:1:39: type_error: `contains` needs string, found int"),
    (
        "permit r when principal.tags.contains_all([1]);",
        "p.pdp:1:43: type_error: `contains_all` needs set<string>, found set<int>",
    ),
    ("permit r when principal.email.starts_with(1);", "p.pdp:1:15: type_error: `starts_with` takes one string"),
    ("permit r when principal.age.abs();", "p.pdp:1:15: type_error: int has no method `abs`"),
    (
        'permit r when principal.age like "5*";',
        "p.pdp:1:15: type_error: the left side of `like` must be string, found int",
    ),
    ("permit r when context.ip in ip(principal.email);", "p.pdp:1:29: type_error: `ip(...)` takes one string literal"),
    (
        'permit r obligations { header "h" = principal.tags; };',
        "p.pdp:1:37: type_error: a header value must be a string, int, bool or enum, found set<string>",
    ),
    (
        "permit r obligations { mask now; };",
        "p.pdp:1:29: type_error: `mask` takes attribute paths such as `resource.ssn`",
    ),
    ("entity X { a: map<int, string>; }", "p.pdp:1:19: type_error: map keys must be strings, found int"),
    (
        "entity X { a: User; }",
        "p.pdp:1:15: type_error: entity type `User` cannot be an attribute type; store the id as a string",
    ),
    ("entity X { a: set<{b: int;}>; }", "p.pdp:1:19: type_error: a set cannot hold a record"),
    ("list maps: map<string, int>;", "p.pdp:1:12: type_error: a set cannot hold a map"),
    ("const c;", "p.pdp:1:1: type_error: constant `c` needs a type or a value"),
    ('const c = [1, "a"];', "p.pdp:1:11: type_error: set elements must share one type"),
    ("const c = [];", "p.pdp:1:11: type_error: an empty constant needs a type: `list name: T = [];`"),
    ("const a = 1; const b: string = a;", "p.pdp:1:32: type_error: constant is declared string but its value is int"),
    ("roles of User from principal.age;", "p.pdp:1:20: type_error: role bindings must be set<string>, found int"),
]


@pytest.mark.parametrize(("body", "message"), TYPE_ERRORS, ids=[t[0] for t in TYPE_ERRORS])
def test_type_error_variants(body: str, message: str) -> None:
    assert str(the_error(body)) == message


def test_entity_comparison_error_says_how_to_compare() -> None:
    assert the_error("permit r when principal != principal;").help == (
        "compare their ids, e.g. `principal.id != resource.id`"
    )


def test_rendered_diagnostic_shows_the_line_a_caret_and_the_help() -> None:
    body = "permit r when principal.agee > 1;"
    with pytest.raises(PolicyCheckError) as info:
        compile_text(body)
    assert info.value.render() == (
        "p.pdp:1:15: unknown_attribute: `User` has no attribute `agee`\n"
        "     1 | permit r when principal.agee > 1;\n"
        "       |               ^^^^^^^^^^^^^^\n"
        "  help: did you mean `age`?"
    )


def test_a_rule_without_resource_clause_is_checked_against_every_resource_type_it_fits() -> None:
    # `read` is valid on Doc and Project; Project has no owner
    assert str(the_error('permit r action read when resource.owner == "x";')) == (
        "p.pdp:1:27: unknown_attribute: `Project` has no attribute `owner`"
    )
    compile_text('permit r action read resource Doc when resource.owner == "x";')


def test_external_constant_with_wrong_data_is_invalid_data() -> None:
    diags = errors("list nets: ip;", {"nets": ["10.0.0.0/8", 5]})
    assert [str(d) for d in diags] == ["p.pdp:1:1: invalid_data: constants.nets[1]: expected ip string, found int"]


def test_external_constant_with_good_data_checks() -> None:
    checked = compile_text("list nets: ip;", {"nets": ["10.0.0.0/8"]})
    assert "nets" in checked.constants


# ---- `has` guards: optional attributes are fine wherever `has` proves them present --------

GUARDED = [
    'permit r when principal has nick and principal.nick == "x";',
    'permit r when not (principal has nick) or principal.nick == "x";',
    'permit r when not (not (principal has nick)) and principal.nick == "x";',
    'permit r when principal has nick and (principal.nick == "x" or principal.nick == "y");',
    'permit r when (principal has nick and true) and principal.nick == "x";',
    'permit r when not (principal has nick and principal.age == 1) or principal.nick == "x";',
    'permit r when (principal has nick or principal has nick) and principal.nick == "x";',
    'permit r when principal has nick when principal.nick == "x";',
    'permit r unless not (principal has nick) when principal.nick == "x";',
    'permit r unless not (principal has nick) unless principal.nick == "x";',
    'permit r when principal has nick unless principal.nick.starts_with("adm");',
    'permit r when principal.profile has manager and principal.profile.manager == "x";',
    'permit r when principal has nick obligations { header "n" = principal.nick; } advice { n = principal.nick; };',
    "forbid r resource Doc when resource has ssn advice { ssn = resource.ssn; };",
    'permit r when principal has nick and [principal.nick, "x"].contains("x");',
]


@pytest.mark.parametrize("body", GUARDED)
def test_has_guard_makes_optional_attribute_ok(body: str) -> None:
    compile_text(body)


UNGUARDED = [
    'permit r when principal has nick or principal.nick == "x";',  # right of `or` runs when `has` was false
    'permit r when not (principal has nick) and principal.nick == "x";',
    'permit r unless principal has nick when principal.nick == "x";',
    'permit r when (principal has nick or principal.age == 1) and principal.nick == "x";',
    'permit r when principal.nick == "x" and principal has nick;',  # order matters: read before the test
    'permit r when principal.profile has manager and principal.nick == "x";',  # a different attribute
    'permit r resource Doc when resource has ssn and principal.nick == "x";',
    "permit r when principal has nick advice { m = principal.profile.manager; };",
]


@pytest.mark.parametrize("body", UNGUARDED)
def test_without_a_proving_has_the_optional_attribute_is_an_error(body: str) -> None:
    assert {d.code for d in errors(body)} == {"optional_attribute"}


# ---- every error at once ------------------------------------------------------------------------


def test_all_errors_of_a_file_are_reported_together_sorted_by_position() -> None:
    body = "\n".join(
        [
            'permit b when principal.nick == "x";',  # 1: optional_attribute
            "entity Broken { f: strng; }",  # 2: unknown_type
            "permit a action reed;",  # 3: unknown_action
            "role r extends nobody;",  # 4: unknown_role
            "permit c when principal.agee > 1 unless context.mfaa;",  # 5: two unknown_attribute
            "const k = principal.id;",  # 6: not_constant
            "permit a;",  # 7: duplicate_rule
            'window w { zone "Nowhere/Town"; }',  # 8: invalid_window
        ]
    )
    diags = errors(body)
    assert [str(d) for d in diags] == [
        "p.pdp:1:15: optional_attribute: attribute `principal.nick` is optional and may be absent",
        "p.pdp:2:20: unknown_type: unknown type `strng`",
        "p.pdp:3:17: unknown_action: unknown action `reed`",
        "p.pdp:4:16: unknown_role: unknown role `nobody`",
        "p.pdp:5:15: unknown_attribute: `User` has no attribute `agee`",
        "p.pdp:5:41: unknown_attribute: the context has no attribute `mfaa`",
        "p.pdp:6:11: not_constant: a constant's value must be made of literals and other constants",
        "p.pdp:7:8: duplicate_rule: rule `a` is declared twice",
        "p.pdp:8:12: invalid_window: `Nowhere/Town` is not a known time zone",
    ]
    assert [(d.span.line, d.span.col) for d in diags] == sorted((d.span.line, d.span.col) for d in diags)


def test_errors_from_several_files_are_reported_together() -> None:
    from pdp.loader import PolicySources, compile_sources

    sources = PolicySources(
        (
            ("b.pdp", "", "permit r2 when principal.nope;"),
            ("a.pdp", "", SCHEMA + "\npermit r1 when nothing;"),
        ),
        (),
    )
    with pytest.raises(PolicyError) as info:
        compile_sources(sources)
    line = SCHEMA.count("\n") + 2
    assert [str(d) for d in info.value.diagnostics] == [
        f"a.pdp:{line}:16: unknown_name: unknown name `nothing`",
        "b.pdp:1:16: unknown_attribute: `User` has no attribute `nope`",
    ]


def test_syntax_errors_of_several_files_are_reported_together() -> None:
    from pdp.loader import PolicySources, compile_sources

    sources = PolicySources((("x.pdp", "", "permit ;"), ("y.pdp", "", "forbid r when ;")), ())
    with pytest.raises(PolicyError) as info:
        compile_sources(sources)
    assert [(d.span.file, d.code) for d in info.value.diagnostics] == [
        ("x.pdp", "syntax_error"),
        ("y.pdp", "syntax_error"),
    ]


def test_the_example_policies_check() -> None:
    from pdp.loader import compile_sources, read_directory

    policy, store = compile_sources(read_directory(Path(__file__).parents[2] / "policies" / "acme"))
    assert len(policy.checked.rules) >= 10
    assert len(store) > 0


# ---- the grammar itself -------------------------------------------------------------------------


def test_grammar_has_no_lalr_conflicts_or_terminal_collisions() -> None:
    grammar = Path(__file__).parents[2] / "policy_lang" / "grammar.lark"
    Lark(grammar.read_text(encoding="utf-8"), parser="lalr", strict=True)
