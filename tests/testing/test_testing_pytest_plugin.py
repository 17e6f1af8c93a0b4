"""The pytest plugin, installed by the `pytest11` entry point: `pytest` in a repository of policies
collects its `*_test.toml` files, one item per test, with readable failures."""

from __future__ import annotations

import textwrap

import pytest

# In the module, not in a conftest: pytest refuses `pytest_plugins` in conftests below the rootdir.
pytest_plugins = ["pytester"]

CASES = """
[[case]]
name = "team members read"
principals = ["ann", "wes"]
action = "read"
resource = "red_doc"
expect = "allow"
  [[case.where]]
  principal = "wes"
  reasons = ["team_read", "role:reader"]

[[case]]
name = "ann writes"
principal = "ann"
action = "write"
resource = "red_doc"
expect = "allow"

[[case]]
name = "off the vpn"
principal = "ann"
action = "read"
resource = "red_doc"
context = "cafe"
expect = "deny"
reasons = ["off_vpn"]
"""


# Leave out the slow plugins of this environment in the inner runs (blocking an absent plugin is harmless).
ADDOPTS = "-p no:cacheprovider -p no:hypothesispytest -p no:benchmark"


def make_repo(pytester: pytest.Pytester, policy: str, files: dict[str, str]) -> None:
    pytester.makefile(".toml", pyproject=f'[tool.pytest.ini_options]\naddopts = "{ADDOPTS}"\n')
    for name, text in {"policies/p.pdp": policy, **files}.items():
        path = pytester.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")


def test_collects_one_item_per_test_and_reports_failures(
    pytester: pytest.Pytester, policy_text: str, fixtures_toml: str
) -> None:
    make_repo(pytester, policy_text, {"policies/p_test.toml": fixtures_toml + CASES})
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=3, failed=1)
    text = (pytester.path / "policies" / "p_test.toml").read_text().splitlines()
    line = text.index('name = "ann writes"')  # 1-based line of the [[case]] header above it
    result.stdout.fnmatch_lines(
        [
            "*policies/p_test.toml::team members read ?ann read red_doc? PASSED*",
            "*policies/p_test.toml::ann writes FAILED*",
            "*policies/p_test.toml::off the vpn PASSED*",
            f"FAIL policies/p_test.toml:{line}: ann writes",
            "  decision: expected allow, got deny",
            "  got: deny",
            "  explain:",
            '    request: User::"ann" write Doc::"d1" at 2026-11-25T10:00:00Z',
            "*#1 forbid locked_write*not matched",
            "*1 failed, 3 passed*",
        ]
    )


def test_keyword_selection_and_node_ids(pytester: pytest.Pytester, policy_text: str, fixtures_toml: str) -> None:
    make_repo(pytester, policy_text, {"policies/p_test.toml": fixtures_toml + CASES})
    result = pytester.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "policies/p_test.toml::team members read [[]ann read red_doc[]]",
            "policies/p_test.toml::team members read [[]wes read red_doc[]]",
            "policies/p_test.toml::ann writes",
            "policies/p_test.toml::off the vpn",
        ]
    )
    pytester.runpytest("-k", "team").assert_outcomes(passed=2)


def test_a_test_file_below_the_policies_uses_the_nearest_directory_with_policies(
    pytester: pytest.Pytester, policy_text: str, fixtures_toml: str
) -> None:
    make_repo(pytester, policy_text, {"policies/tests/more_test.toml": fixtures_toml + CASES})
    pytester.runpytest().assert_outcomes(passed=3, failed=1)


NAMESPACED_CASE = """
[[case]]
name = "namespaced reasons"
principal = "ann"
action = "read"
resource = "red_doc"
expect = "allow"
reasons = ["acme.team_read"]
"""


def test_pdp_policy_dirs_names_the_directory_pdp_test_would_be_given(
    pytester: pytest.Pytester, policy_text: str, fixtures_toml: str
) -> None:
    """Rule ids take the folder path under the policy directory: policies/acme/p.pdp -> acme.*"""
    make_repo(
        pytester, "", {"policies/acme/p.pdp": policy_text, "policies/acme/p_test.toml": fixtures_toml + NAMESPACED_CASE}
    )
    (pytester.path / "policies" / "p.pdp").unlink()
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)  # compiled from policies/acme: the rule is plain `team_read`
    result.stdout.fnmatch_lines(["  reasons: expected [[]acme.team_read[]], got [[]team_read[]]"])
    pytester.makefile(
        ".toml",
        pyproject=f'[tool.pytest.ini_options]\naddopts = "{ADDOPTS}"\npdp_policy_dirs = ["policies"]\n',
    )
    pytester.runpytest().assert_outcomes(passed=1)


def test_a_broken_test_file_is_a_collection_error_with_its_line(pytester: pytest.Pytester, policy_text: str) -> None:
    make_repo(
        pytester,
        policy_text,
        {"policies/p_test.toml": '[[case]]\nname = "x"\nprincipal = "nobody"\naction = "read"\nresource = "Doc::d"\n'},
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*policies/p_test.toml:1: unknown principal fixture `nobody`*"])


def test_policies_that_do_not_compile_are_a_collection_error(
    pytester: pytest.Pytester, policy_text: str, fixtures_toml: str
) -> None:
    make_repo(
        pytester,
        "entity X {\n  a: string\n}\n",
        {"policies/p_test.toml": fixtures_toml + CASES, "policies/q_test.toml": fixtures_toml + CASES},
    )
    result = pytester.runpytest()
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*do not compile*", "*p.pdp:3:1: syntax_error*"])


def test_other_toml_files_are_left_alone(pytester: pytest.Pytester) -> None:
    make_repo(pytester, "", {"policies/data.toml": "x = [\n", "policies/testdata/f.toml": "y = [\n"})
    pytester.makepyfile(test_plain="def test_ok():\n    pass\n")
    pytester.runpytest().assert_outcomes(passed=1)
