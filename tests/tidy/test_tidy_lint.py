"""policy_lang.lint: one finding per code, with its exact place and message."""

from __future__ import annotations

from pathlib import Path

import pytest

from pdp.loader import compile_sources, read_directory
from policy_lang.lint import CODES, lint

ROOT = Path(__file__).resolve().parents[2]

SCHEMA = """\
enum Level { low < mid < high }
enum Region { eu, us }
principal entity User {
  tenant: string;
  roles: set<string>;
  level: Level;
  region: Region;
  age: int;
  department?: string;
}
entity Doc { owner: string; size: int; }
context { mfa: bool; trusted: bool; }
actions Doc { read, write }
"""

BINDING = "roles of User from principal.roles;\n"


def findings(tmp_path: Path, rules: str, *, schema: str = SCHEMA, binding: str = BINDING) -> list[str]:
    (tmp_path / "schema.pdp").write_text(schema + binding)
    (tmp_path / "rules.pdp").write_text(rules)
    policy, _ = compile_sources(read_directory(tmp_path))
    return [str(d).replace(f"{tmp_path}/", "") for d in lint(policy.checked)]


def test_example_policies_lint_clean() -> None:
    policy, _ = compile_sources(read_directory(ROOT / "policies"))
    assert lint(policy.checked) == []


def test_a_clean_policy_has_no_findings(tmp_path: Path) -> None:
    rules = """\
role viewer { grant read on Doc; }
const adult = 18;
permit owners action read, write when resource.owner == principal.id and principal.age >= adult;
forbid untrusted unless context.trusted;
permit bounded when principal.age > 3 and principal.age < 5 and principal.level <= mid;
"""
    assert findings(tmp_path, rules) == []


# ---- one test per code ------------------------------------------------------------------------


def test_shadowed_permit(tmp_path: Path) -> None:
    rules = "forbid no_writes action write;\npermit writers action write resource Doc when context.mfa;\n"
    assert findings(tmp_path, rules) == [
        "rules.pdp:2:8: shadowed_permit: permit `writers` never allows: unconditional forbid `no_writes` "
        "denies every request it applies to"
    ]


def test_a_conditional_or_partial_forbid_does_not_shadow(tmp_path: Path) -> None:
    rules = (
        "forbid no_writes action write when context.mfa;\nforbid no_reads action read;\n"
        "permit everything resource Doc;\nrole viewer { grant write on Doc; }\n"
    )
    assert findings(tmp_path, rules) == []


def test_shadowed_grant(tmp_path: Path) -> None:
    rules = "role writer { grant write on Doc; }\nforbid no_writes action write;\n"
    assert findings(tmp_path, rules) == [
        "rules.pdp:1:21: shadowed_grant: role `writer` grants `write` on `Doc` in vain: unconditional forbid "
        "`no_writes` denies it to every holder"
    ]


@pytest.mark.parametrize(
    ("condition", "col", "message"),
    [
        ("principal.age == 1 and principal.age == 2", 38, "`principal.age == 2` contradicts `principal.age == 1`"),
        (
            'principal.tenant == "a" and principal.tenant != "a"',
            43,
            '`principal.tenant != "a"` contradicts `principal.tenant == "a"`',
        ),
        ("principal.age < 3 and principal.age > 5", 37, "`principal.age > 5` contradicts `principal.age < 3`"),
        ("principal.age > 3 and principal.age < 4", 37, "`principal.age < 4` contradicts `principal.age > 3`"),
        ("not context.mfa and context.mfa", 35, "`context.mfa` contradicts `not context.mfa`"),
        ("context.mfa == false and context.mfa", 40, "`context.mfa` contradicts `context.mfa == false`"),
        ("principal.tenant in []", 15, "`principal.tenant in []` is always false"),
        ('"a" == "b"', 15, '`"a" == "b"` is always false'),
        ("principal.age != principal.age", 15, "`principal.age != principal.age` is always false"),
        (
            "principal.region in [eu] and principal.region == us",
            44,
            "`principal.region == us` contradicts `principal.region in [eu]`",
        ),
        (
            "principal.level > low and principal.level < mid",
            41,
            "`principal.level < mid` contradicts `principal.level > low`",
        ),
        (
            "principal has department and not (principal has department)",
            44,
            "`not (principal has department)` contradicts `principal has department`",
        ),
        (
            "principal.age >= 1 and principal.age <= 2 and principal.age != 1 and principal.age != 2",
            84,
            "`principal.age != 2` contradicts the conditions before it on `principal.age`",
        ),
    ],
)
def test_never_applies(tmp_path: Path, condition: str, col: int, message: str) -> None:
    assert findings(tmp_path, f"permit p when {condition};\n") == [
        f"rules.pdp:1:{col}: never_applies: permit `p` never applies: {message}"
    ]


def test_never_applies_across_when_and_unless(tmp_path: Path) -> None:
    rules = "forbid f\n  when principal.level == high\n  unless principal.level > mid or context.mfa;\n"
    assert findings(tmp_path, rules) == [
        "rules.pdp:3:10: never_applies: forbid `f` never applies: `not (principal.level > mid)` contradicts "
        "`principal.level == high`"
    ]


def test_never_applies_for_a_role_no_binding_gives(tmp_path: Path) -> None:
    schema = SCHEMA + "principal entity Service { name: string; }\n"
    rules = "role viewer { grant read on Doc; }\npermit svc principal Service role viewer action read;\n"
    assert findings(tmp_path, rules, schema=schema) == [
        "rules.pdp:2:35: never_applies: permit `svc` never applies: it requires role `viewer`, but no role binding "
        "applies to `Service` with `Doc`"
    ]


def test_satisfiable_conditions_are_not_contradictions(tmp_path: Path) -> None:
    rules = """\
permit a when principal.age == 1 or principal.age == 2;
permit b when principal.tenant != "a" and principal.tenant != "b";
permit c when not (principal.age == 1 and principal.age == 2);
permit d when principal.region in [eu, us] and principal.region != eu;
permit e when principal.level >= mid and principal.level <= mid;
permit f when principal.age > 3 and principal.age < 5;
"""
    assert findings(tmp_path, rules) == []


def test_redundant_condition(tmp_path: Path) -> None:
    rules = "permit same when principal.tenant == principal.tenant;\npermit twice when context.mfa and context.mfa;\n"
    rules += "forbid f unless false when 1 == 1;\n"
    assert findings(tmp_path, rules) == [
        "rules.pdp:1:18: redundant_condition: `principal.tenant == principal.tenant` is always true",
        "rules.pdp:2:35: redundant_condition: `context.mfa` repeats a condition of permit `twice`",
        "rules.pdp:3:17: redundant_condition: `not false` is always true",
        "rules.pdp:3:28: redundant_condition: `1 == 1` is always true",
    ]


def test_identical_rule(tmp_path: Path) -> None:
    rules = "permit a action read when context.mfa;\npermit b action read when context.mfa;\n"
    assert findings(tmp_path, rules) == [
        "rules.pdp:2:8: identical_rule: permit `b` repeats `a`: same scope, conditions, obligations and advice"
    ]


def test_duplicate_role(tmp_path: Path) -> None:
    rules = "role viewer { grant read on Doc; }\nrole reader {\n  grant read on Doc;\n}\n"
    assert findings(tmp_path, rules) == [
        "rules.pdp:2:1: duplicate_role: role `reader` duplicates role `viewer`: same parents, same grants, "
        "and no rule tells them apart"
    ]


def test_roles_that_rules_tell_apart_are_not_duplicates(tmp_path: Path) -> None:
    rules = (
        "role viewer { grant read on Doc; }\nrole reader { grant read on Doc; }\npermit p action write role reader;\n"
    )
    assert findings(tmp_path, rules) == []


def test_empty_role(tmp_path: Path) -> None:
    rules = "role nothing;\nrole alias extends nothing;\nrole marker;\npermit p action read role marker;\n"
    assert findings(tmp_path, rules) == [
        "rules.pdp:1:1: empty_role: role `nothing` has no effect: it grants nothing, directly or through the roles "
        "it extends, and no rule requires it",
        "rules.pdp:2:1: empty_role: role `alias` has no effect: it grants nothing, directly or through the roles "
        "it extends, and no rule requires it",
    ]


def test_a_role_extending_one_that_rules_require_is_not_empty(tmp_path: Path) -> None:
    rules = "role marker;\nrole boss extends marker;\npermit p action read when principal in role marker;\n"
    assert findings(tmp_path, rules) == []


def test_unused_role(tmp_path: Path) -> None:
    rules = "role viewer { grant read on Doc; }\n"
    assert findings(tmp_path, rules, binding="") == [
        "rules.pdp:1:1: unused_role: role `viewer` can never be held: no role binding (`roles of T from ...;`) "
        "is declared"
    ]


def test_unused_constant(tmp_path: Path) -> None:
    rules = """\
const unused = 5;
const limit = 3;
const limits: set<int> = [limit];
list regions: string = ["eu"];
window hours { days "mon-fri"; }
window open { days "mon-sun"; }
permit p when principal.age in limits and now in open;
"""
    assert findings(tmp_path, rules) == [
        "rules.pdp:1:1: unused_constant: constant `unused` is never used",
        "rules.pdp:4:1: unused_constant: list `regions` is never used",
        "rules.pdp:5:1: unused_constant: window `hours` is never used",
    ]


def test_route_without_id(tmp_path: Path) -> None:
    rules = """\
http { context.mfa = header("x-mfa", "false"); }
route GET, HEAD "/docs/{id}" => read Doc { resource.id = path.id; }
route PUT "/docs/{owner}/latest" => write Doc { resource.owner = path.owner; }
route * "/docs" => read Doc;
route default => read Doc { context.trusted = "false"; }
"""
    assert findings(tmp_path, rules) == [
        "rules.pdp:3:1: route_without_id: route `PUT /docs/{owner}/latest` never sets `resource.id`: every request "
        'it matches is decided for the same Doc, with id ""',
        "rules.pdp:4:1: route_without_id: route `* /docs` never sets `resource.id`: every request it matches is "
        'decided for the same Doc, with id ""',
        "rules.pdp:5:1: route_without_id: the default route never sets `resource.id`: every request it matches is "
        'decided for the same Doc, with id ""',
    ]


def test_routes_that_set_the_id_are_clean(tmp_path: Path) -> None:
    rules = """\
http { context.mfa = header("x-mfa", "false"); context.trusted = "no"; }
route GET "/docs/{id}" => read Doc { resource.id = path.id; }
route GET "/docs/{owner}/{name}" => read Doc { resource.id = path.name; resource.owner = path.owner; }
route POST "/docs" => write Doc { resource.id = query.id; }
route default => read Doc { resource.id = "fallback"; }
"""
    assert findings(tmp_path, rules) == []


def test_every_code_is_documented() -> None:
    assert set(CODES) == {
        "shadowed_permit",
        "shadowed_grant",
        "never_applies",
        "redundant_condition",
        "identical_rule",
        "duplicate_role",
        "empty_role",
        "unused_role",
        "unused_constant",
        "route_without_id",
    }
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Formatting and linting", 1)[1].split("\n## ", 1)[0]
    for code in CODES:
        assert f"`{code}`" in section
