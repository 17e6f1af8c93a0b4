"""Reading `*_test.toml` files: fixtures, tables of cases, expectations, and errors with file:line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pdp.engine import Engine
from pdp.testing.model import ErrorPattern, PolicyTest, PolicyTestError, discover, load_test_file

Write = Callable[[Path, dict[str, str]], Path]


def load(write: Write, tmp_path: Path, text: str, **extra: str) -> list[PolicyTest]:
    write(tmp_path, {"t_test.toml": text, **extra})
    return list(load_test_file(tmp_path / "t_test.toml").tests)


def error_of(write: Write, tmp_path: Path, text: str, **extra: str) -> PolicyTestError:
    with pytest.raises(PolicyTestError) as info:
        load(write, tmp_path, text, **extra)
    return info.value


def test_a_request_built_from_fixtures_is_the_request_the_engine_takes(
    write: Write, tmp_path: Path, fixtures_toml: str, policy_dir: Path
) -> None:
    tests = load(
        write,
        tmp_path,
        fixtures_toml
        + """
[[case]]
name = "ann reads"
principal = "ann"
action = "read"
resource = "red_doc"
expect = "allow"
reasons = ["team_read"]
""",
    )
    assert len(tests) == 1
    test = tests[0]
    assert test.name == "ann reads"
    assert test.request == {
        "principal": {"type": "User", "id": "ann", "attributes": {"team": "red", "admin": False, "roles": []}},
        "action": "read",
        "resource": {"type": "Doc", "id": "d1", "attributes": {"team": "red", "locked": False}},
        "context": {"vpn": True},
        "now": "2026-11-25T10:00:00Z",
    }
    assert test.expect.allowed is True
    assert test.expect.reasons == ("team_read",)
    assert test.expect.errors == ()  # no errors expected unless the case says so
    decision = Engine.load(policy_dir).decide(test.request)
    assert decision.allowed and decision.reasons == ("team_read",)


def test_extends_merges_attributes_one_level_deep_and_keeps_the_fixture_name_as_id(
    write: Write, tmp_path: Path
) -> None:
    tests = load(
        write,
        tmp_path,
        """
[principals.base]
type = "User"
parents = ["Group::staff"]
attributes = { team = "red", roles = { acme = ["viewer"] }, admin = false }

[principals.ann]
extends = "base"
attributes = { roles = { globex = ["editor"] } }

[resources.doc]
type = "Doc"

[[case]]
name = "x"
principal = "ann"
action = "read"
resource = "doc"
expect = "deny"
""",
    )
    principal = tests[0].request["principal"]
    assert principal == {
        "type": "User",
        "id": "ann",
        "attributes": {"team": "red", "roles": {"globex": ["editor"]}, "admin": False},
        "parents": [{"type": "Group", "id": "staff"}],
    }
    assert tests[0].request["resource"] == {"type": "Doc", "id": "doc"}  # no attributes: the data files' entity
    assert "context" not in tests[0].request and "now" not in tests[0].request


def test_a_table_case_is_one_test_per_combination_with_where_overrides(
    write: Write, tmp_path: Path, fixtures_toml: str
) -> None:
    tests = load(
        write,
        tmp_path,
        fixtures_toml
        + """
[[case]]
name = "writes"
principals = ["ann", "wes", "root"]
actions = ["read", "write"]
resources = ["red_doc", "locked_doc"]
expect = "deny"
reasons = ["locked_write"]
  [[case.where]]
  action = "read"
  expect = "allow"
  [[case.where]]
  principal = ["ann", "wes"]
  action = "read"
  reasons = ["team_read"]
  [[case.where]]
  resource = "red_doc"
  action = "write"
  reasons = []
  [[case.where]]
  principal = "wes"
  resource = "red_doc"
  action = "write"
  expect = "allow"
""",
    )
    assert len(tests) == 12
    by_name = {t.name: t for t in tests}
    assert list(by_name)[:3] == [
        "writes [ann read red_doc]",
        "writes [ann read locked_doc]",
        "writes [ann write red_doc]",
    ]
    ann_read = by_name["writes [ann read red_doc]"].expect
    assert (ann_read.allowed, ann_read.reasons) == (True, ("team_read",))
    root_read = by_name["writes [root read locked_doc]"].expect
    assert (root_read.allowed, root_read.reasons) == (True, None)  # `expect` set afresh: reasons dropped
    ann_write = by_name["writes [ann write locked_doc]"].expect
    assert (ann_write.allowed, ann_write.reasons) == (False, ("locked_write",))
    assert by_name["writes [root write red_doc]"].expect.reasons == ()
    wes_write = by_name["writes [wes write red_doc]"].expect
    assert (wes_write.allowed, wes_write.reasons) == (True, None)
    assert by_name["writes [wes read red_doc]"].labels == {
        "principal": "wes",
        "action": "read",
        "resource": "red_doc",
        "context": "vpn",
    }


def test_a_matrix_has_a_row_per_principal_and_a_cell_per_action(
    write: Write, tmp_path: Path, fixtures_toml: str
) -> None:
    text = (
        fixtures_toml
        + """
[[case]]
name = "roles"
resource = "red_doc"
actions = ["read", "write"]
[case.matrix]
ann  = ["allow", "deny"]
wes  = ["allow", "allow"]
  [[case.where]]
  principal = "wes"
  action = "write"
  reasons = ["role:writer"]
"""
    )
    tests = load(write, tmp_path, text)
    lines = text.splitlines()
    got = {t.name: (t.expect.allowed, t.expect.reasons, lines[t.line - 1].strip()) for t in tests}
    assert got == {
        "roles [ann read red_doc]": (True, None, 'ann  = ["allow", "deny"]'),
        "roles [ann write red_doc]": (False, None, 'ann  = ["allow", "deny"]'),
        "roles [wes read red_doc]": (True, None, 'wes  = ["allow", "allow"]'),
        "roles [wes write red_doc]": (True, ("role:writer",), "[[case.where]]"),
    }


def test_lines_point_at_the_case(write: Write, tmp_path: Path, fixtures_toml: str) -> None:
    text = (
        fixtures_toml
        + """
[[case]]
name = "first"
principal = "ann"
action = "read"
resource = "red_doc"
expect = "allow"

[[case]]
name = "second"
principal = "ann"
actions = ["read", "write"]
resource = "red_doc"
expect = "deny"
  [[case.where]]
  action = "read"
  expect = "allow"
"""
    )
    tests = load(write, tmp_path, text)
    lines = text.splitlines()
    first_header = lines.index('name = "first"')  # 0-based index of the name = 1-based line of [[case]]
    second_header = lines.index('name = "second"')
    where = lines.index("  [[case.where]]") + 1
    assert [(t.name, t.line) for t in tests] == [
        ("first", first_header),
        ("second [ann read red_doc]", where),
        ("second [ann write red_doc]", second_header),
    ]
    assert tests[1].location == f"{tmp_path / 't_test.toml'}:{where}"
    assert tests[1].id == f"{tmp_path / 't_test.toml'}::second [ann read red_doc]"


def test_defaults_now_with_overrides_and_inline_fixtures(write: Write, tmp_path: Path, fixtures_toml: str) -> None:
    tests = load(
        write,
        tmp_path,
        fixtures_toml
        + """
[[case]]
name = "inline"
principal = { extends = "ann", attributes = { admin = true } }
action = "read"
resources = ["Doc::d9", { type = "Doc", id = "d8", attributes = { team = "x", locked = false } }]
contexts = ["cafe", { extends = "vpn", note = "x" }]
now = 1764064800
with.principal = { team = "green" }
with.context = { vpn = false }
expect = "deny"
""",
    )
    assert [t.name for t in tests] == [
        "inline [ann read Doc::d9 cafe]",
        "inline [ann read Doc::d9 vpn with note=x]",
        "inline [ann read d8 cafe]",
        "inline [ann read d8 vpn with note=x]",
    ]
    request = tests[1].request
    assert request["principal"] == {
        "type": "User",
        "id": "ann",
        "attributes": {"team": "green", "admin": True, "roles": []},
    }
    assert request["resource"] == {"type": "Doc", "id": "d9"}
    assert request["context"] == {"vpn": False, "note": "x"}
    assert request["now"] == 1764064800


def test_datetimes_become_rfc3339_text(write: Write, tmp_path: Path) -> None:
    tests = load(
        write,
        tmp_path,
        """
[defaults]
now = 2026-11-25T11:00:00+01:00

[principals.ann]
type = "User"
attributes = { auth_time = 2026-11-25T09:55:00Z }

[[case]]
name = "x"
principal = "ann"
action = "read"
resource = "Doc::d"
expect = "deny"
""",
    )
    assert tests[0].request["now"] == "2026-11-25T11:00:00+01:00"
    assert tests[0].request["principal"]["attributes"] == {"auth_time": "2026-11-25T09:55:00Z"}


def test_expectations_obligations_advice_errors(write: Write, tmp_path: Path) -> None:
    tests = load(
        write,
        tmp_path,
        """
[[case]]
name = "x"
principal = "User::u"
action = "read"
resource = "Doc::d"
expect = "deny"
obligations = ["mask resource.ssn", "header x-tenant = acme", { type = "header", name = "n", value = 3 }]
advice = [{ name = "step_up", value = "mfa" }]
errors = ["no entry", { field = "principal.attributes.x" }]
""",
    )
    expect = tests[0].expect
    assert expect.obligations == (
        {"type": "mask", "path": "resource.ssn"},
        {"type": "header", "name": "x-tenant", "value": "acme"},
        {"type": "header", "name": "n", "value": "3"},
    )
    assert expect.advice == ({"name": "step_up", "value": "mfa"},)
    assert expect.errors == (ErrorPattern(message="no entry"), ErrorPattern(field="principal.attributes.x"))


def test_includes_share_fixtures_and_local_ones_shadow_them(write: Write, tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "testdata/people.toml": """
                include = "more.toml"
                [principals.ann]
                type = "User"
                attributes = { team = "red" }
            """,
            "testdata/more.toml": """
                [resources.doc]
                type = "Doc"
                id = "d1"
            """,
        },
    )
    tests = load(
        write,
        tmp_path,
        """
include = ["testdata/people.toml", "testdata/more.toml"]   # more.toml twice: read once

[principals.bob]
extends = "ann"

[principals.ann]
type = "User"
attributes = { team = "local" }

[[case]]
name = "x"
principals = ["ann", "bob"]
action = "read"
resource = "doc"
expect = "deny"
""",
    )
    assert [t.request["principal"]["attributes"] for t in tests] == [{"team": "local"}, {"team": "local"}]
    assert tests[0].request["resource"] == {"type": "Doc", "id": "d1"}


def test_discover_finds_only_test_files(write: Write, tmp_path: Path) -> None:
    write(tmp_path, {"a_test.toml": "", "sub/b_test.toml": "", "testdata/c.toml": "", "d.toml": "", "e_test.pdp": ""})
    assert discover(tmp_path) == [tmp_path / "a_test.toml", tmp_path / "sub" / "b_test.toml"]


# ---- errors name the file and the line ---------------------------------------------------------------

CASE = """
[[case]]
name = "x"
principal = "User::u"
action = "read"
resource = "Doc::d"
expect = "deny"
"""


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("a = 1\nb = [\n", 2, "not valid TOML"),
        ("a = 1\nb = 2 3\nc = 4\n", 2, "not valid TOML"),
        ("[[cases]]\nname = 'x'\n", 1, "unknown key `cases` in the top level of a test file (did you mean `case`?)"),
        (CASE + 'extra = "y"\n', 2, "unknown key `extra` in case 'x'"),
        (CASE.replace('expect = "deny"', 'expect = "denied"'), 2, '`expect` in case \'x\' is "allow" or "deny"'),
        (CASE.replace('expect = "deny"\n', ""), 2, 'case \'x\' needs `expect = "allow"` or `expect = "deny"`'),
        (CASE.replace('principal = "User::u"', 'principal = "bbo"'), 2, "unknown principal fixture `bbo`"),
        (CASE.replace('name = "x"\n', ""), 2, "every case needs a `name`"),
        (CASE + CASE, 9, "duplicate case name 'x' (first at line 2)"),
        (CASE.replace('principal = "User::u"', ""), 2, "case 'x' needs a `principal`"),
        (CASE + 'principals = ["User::v"]\n', 2, "gives both `principal` and `principals`"),
        (CASE + "  [[case.where]]\n  action = 'write'\n  expect = 'allow'\n", 8, "matches no combination"),
        (CASE.replace("[[case]]", "[defaults]\nnow = 2026-11-25T10:00:00\n[[case]]"), 4, "has no offset"),
        (
            "[principals.ann]\ntype = 'User'\ntenant = 'acme'\n" + CASE,
            1,
            "unknown key `tenant` in principal fixture `ann`; attributes go under `attributes`",
        ),
        (
            "[principals.a]\nextends = 'b'\ntype = 'User'\n[principals.b]\nextends = 'a'\n"
            + CASE.replace("User::u", "a"),
            1,
            "extends itself",
        ),
        ('include = "nowhere.toml"\n' + CASE, 1, "no fixture file"),
        (CASE.replace("obligations", "x") + "obligations = ['hide resource.x']\n", 2, "an obligation in case 'x' is"),
    ],
)
def test_errors_name_file_and_line(write: Write, tmp_path: Path, text: str, line: int, message: str) -> None:
    error = error_of(write, tmp_path, text)
    assert error.file == str(tmp_path / "t_test.toml")
    assert message in error.message
    assert error.line == line, error.message
    assert str(error).startswith(f"{tmp_path / 't_test.toml'}:{line}: ")


def test_a_matrix_row_of_the_wrong_length(write: Write, tmp_path: Path, fixtures_toml: str) -> None:
    text = fixtures_toml + (
        "[[case]]\nname = 'm'\nresource = 'red_doc'\nactions = ['read', 'write']\n[case.matrix]\nann = ['allow']\n"
    )
    error = error_of(write, tmp_path, text)
    assert error.message == "matrix row `ann` of case 'm' needs one cell per action (read, write)"
    assert text.splitlines()[error.line - 1] == "ann = ['allow']"


def test_an_error_in_an_included_file_names_that_file(write: Write, tmp_path: Path) -> None:
    write(tmp_path, {"testdata/f.toml": "[principals.ann]\ntype = 'User'\n\n[[case]]\nname = 'no cases here'\n"})
    error = error_of(write, tmp_path, "include = ['testdata/f.toml']\n" + CASE)
    assert error.file == str(tmp_path / "testdata" / "f.toml")
    assert error.line == 4
    assert "unknown key `case` in a fixture file" in error.message
