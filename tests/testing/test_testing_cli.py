"""`pdp test DIR`: failures with file:line, expected vs got and the trace; summary line; exit codes;
--filter, --json, --junit-xml, --min-coverage; and the example policies' own tests."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest

from pdp.cli import main

ROOT = Path(__file__).resolve().parents[2]
Write = Callable[[Path, dict[str, str]], Path]

CASES = """
[[case]]
name = "team members read"
principals = ["ann", "wes"]
action = "read"
resource = "red_doc"
expect = "allow"
reasons = ["team_read"]
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


def run(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["test", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def suite(policy_dir: Path, write: Write, fixtures_toml: str) -> Path:
    """Three cases, four tests; `ann writes` fails (no grant, no permit)."""
    write(policy_dir, {"p_test.toml": fixtures_toml + CASES})
    return policy_dir


def line_of(path: Path, text: str) -> int:
    return path.read_text().splitlines().index(text) + 1


def test_a_failure_shows_file_line_expected_got_and_the_trace(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(str(suite), capsys=capsys)
    assert code == 1
    test_file = suite / "p_test.toml"
    case_line = line_of(test_file, 'name = "ann writes"') - 1  # the [[case]] header
    assert f"FAIL {test_file}:{case_line}: ann writes\n" in out
    assert "  decision: expected allow, got deny\n" in out
    assert "  got: deny\n" in out
    # the explain trace of the failing decision, indented under it
    assert '    request: User::"ann" write Doc::"d1" at 2026-11-25T10:00:00Z\n' in out
    assert "      #1 forbid locked_write" in out
    assert "          when resource.locked -> false" in out
    assert out.count("FAIL ") == 1
    assert out.splitlines()[-1] == "3 passed, 1 failed"
    assert out.endswith("3 passed, 1 failed\n")


def test_all_passing_exits_0_with_the_summary_last(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = (
        (suite / "p_test.toml")
        .read_text()
        .replace(
            'action = "write"\nresource = "red_doc"\nexpect = "allow"',
            'action = "write"\nresource = "red_doc"\nexpect = "deny"',
        )
    )
    (suite / "p_test.toml").write_text(text)
    code, out, _ = run(str(suite), capsys=capsys)
    assert code == 0
    assert "FAIL" not in out
    assert out.splitlines()[-1] == "4 passed, 0 failed"


def test_reasons_mismatch_is_shown_as_expected_vs_got(
    policy_dir: Path, write: Write, fixtures_toml: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write(
        policy_dir,
        {
            "p_test.toml": fixtures_toml
            + """
[[case]]
name = "wes reads"
principal = "wes"
action = "read"
resource = "red_doc"
expect = "allow"
reasons = ["team_read"]
obligations = ["mask resource.x"]
"""
        },
    )
    code, out, _ = run(str(policy_dir), capsys=capsys)
    assert code == 1
    assert "  reasons: expected [team_read], got [team_read, role:reader]\n" in out
    assert "  obligations: expected [mask resource.x], got []\n" in out
    assert "  got: allow; reasons team_read, role:reader\n" in out


def test_unexpected_errors_fail_a_deny(
    policy_dir: Path, write: Write, fixtures_toml: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A misspelt attribute denies with an error: the test must not pass as a deny."""
    write(
        policy_dir,
        {
            "p_test.toml": fixtures_toml
            + """
[[case]]
name = "a typo"
principal = "ann"
action = "read"
resource = "red_doc"
with.principal = { tema = "red" }
expect = "deny"

[[case]]
name = "the typo, expected"
principal = "ann"
action = "read"
resource = "red_doc"
with.principal = { tema = "red" }
expect = "deny"
errors = [{ field = "principal.attributes.tema" }]
"""
        },
    )
    code, out, _ = run(str(policy_dir), capsys=capsys)
    assert code == 1
    assert "FAIL" in out and ": a typo\n" in out
    assert "  errors: expected none, got [" in out and "(principal.attributes.tema)]" in out
    assert out.splitlines()[-1] == "1 passed, 1 failed"


def test_filter_is_a_glob_on_test_names(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(str(suite), "--filter", "team members*", capsys=capsys)
    assert code == 0
    assert out.splitlines()[-1] == "2 passed, 0 failed"
    code, out, _ = run(str(suite), "--filter", "*[[]wes read *", capsys=capsys)
    assert out.splitlines()[-1] == "1 passed, 0 failed"
    code, out, _ = run(str(suite), "--filter", "*p_test.toml::ann*", capsys=capsys)
    assert code == 1
    assert out.splitlines()[-1] == "0 passed, 1 failed"
    code, out, _ = run(str(suite), "--filter", "nothing like it", capsys=capsys)
    assert code == 1
    assert "no test matched the filter" in out
    assert out.splitlines()[-1] == "0 passed, 0 failed"


def test_an_empty_suite_fails(policy_dir: Path, write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(str(policy_dir), capsys=capsys)
    assert code == 1
    assert f"no policy tests (*_test.toml) under {policy_dir}" in out
    assert out.splitlines()[-1] == "0 passed, 0 failed"
    write(policy_dir, {"empty_test.toml": "# nothing yet\n"})
    code, out, _ = run(str(policy_dir), capsys=capsys)
    assert code == 1
    assert f"no cases in the 1 test file(s) under {policy_dir}" in out
    assert out.splitlines()[-1] == "0 passed, 0 failed"


def test_a_broken_test_file_is_a_failure_with_file_and_line(
    suite: Path, write: Write, capsys: pytest.CaptureFixture[str]
) -> None:
    write(suite, {"sub/broken_test.toml": '[[case]]\nname = "x"\nprincipal = "nobody"\naction = "read"\n'})
    code, out, _ = run(str(suite), "--filter", "team*", capsys=capsys)
    assert code == 1
    assert f"ERROR {suite / 'sub' / 'broken_test.toml'}:1: unknown principal fixture `nobody`" in out
    assert out.splitlines()[-1] == "2 passed, 1 failed"


def test_policies_that_do_not_compile_exit_1(tmp_path: Path, write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path, {"p.pdp": "entity X {\n  a: string\n}\n", "p_test.toml": ""})
    code, _, err = run(str(tmp_path), capsys=capsys)
    assert code == 1
    assert "p.pdp:3:1: syntax_error" in err


def test_a_missing_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(str(tmp_path / "nowhere"), capsys=capsys)
    assert code == 2
    assert "no policy directory" in err


def test_json_output(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(str(suite), "--json", "--min-coverage", "50", capsys=capsys)
    assert code == 1
    result = json.loads(out)  # stdout is only the JSON document
    assert err == "3 passed, 1 failed\n"
    assert result["summary"] == {"passed": 3, "failed": 1, "total": 4}
    statuses = {t["name"]: t["status"] for t in result["tests"]}
    assert statuses == {
        "team members read [ann read red_doc]": "passed",
        "team members read [wes read red_doc]": "passed",
        "ann writes": "failed",
        "off the vpn": "passed",
    }
    failed = next(t for t in result["tests"] if t["status"] == "failed")
    assert failed["file"] == str(suite / "p_test.toml")
    assert failed["line"] == line_of(suite / "p_test.toml", 'name = "ann writes"') - 1
    assert failed["expected"] == {"decision": "allow", "errors": []}
    assert failed["got"]["decision"] == "deny"
    assert failed["mismatches"] == [{"field": "decision", "expected": "allow", "got": "deny"}]
    assert "forbid locked_write" in failed["explanation"]
    assert failed["request"]["principal"]["id"] == "ann"
    assert result["coverage"]["rules"]["total"] == 5
    assert result["min_coverage"]["required"] == 50
    assert {t["id"] for t in result["coverage"]["targets"] if t["covered"]} >= {"team_read", "off_vpn"}


def test_junit_xml(suite: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "out" / "junit.xml"
    report.parent.mkdir()
    code, out, _ = run(str(suite), "--junit-xml", str(report), capsys=capsys)
    assert code == 1
    assert out.splitlines()[-1] == "3 passed, 1 failed"
    root = ET.parse(report).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("4", "1", "0")
    (testsuite,) = root.findall("testsuite")
    assert testsuite.get("name") == str(suite / "p_test.toml")
    cases = testsuite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "team members read [ann read red_doc]",
        "team members read [wes read red_doc]",
        "ann writes",
        "off the vpn",
    ]
    failure = cases[2].find("failure")
    assert failure is not None
    assert failure.get("message") == "decision: expected allow, got deny"
    assert failure.text is not None and "forbid locked_write" in failure.text
    assert cases[2].get("line") == str(line_of(suite / "p_test.toml", 'name = "ann writes"') - 1)
    assert all(c.find("failure") is None for c in (cases[0], cases[1], cases[3]))


def test_junit_xml_reports_broken_files_as_errors(
    suite: Path, write: Write, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(suite, {"bad_test.toml": "x = [\n"})
    report = tmp_path / "junit.xml"
    run(str(suite), "--junit-xml", str(report), capsys=capsys)
    root = ET.parse(report).getroot()
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "1", "1")
    error = root.find("testsuite/testcase/error")
    assert error is not None and "not valid TOML" in (error.get("message") or "")


def test_coverage_is_printed_with_uncovered_rules_and_branches(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(str(suite), capsys=capsys)
    policy = suite / "p.pdp"
    assert "coverage: rules and role grants 3/5 (60.0%), branches 3/6 (50.0%)\n" in out
    assert (
        "uncovered rules and role grants:\n"
        f"  {policy}:15: locked_write: never matched in a test\n"
        f"  {policy}:7: role:writer write on Doc: no test was allowed through this grant\n"
    ) in out
    assert (
        "uncovered branches:\n"
        f"  {policy}:13: team_read: `principal.admin`, the right side of an `or`, was never the true side that decided it\n"
        f"  {policy}:18: locked_write: `unless principal.admin` never held\n"
        f"  {policy}:18: locked_write: `unless principal.admin` never failed to hold\n"
    ) in out


def test_min_coverage_gates_on_rules(suite: Path, write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(str(suite), "--filter", "team*", "--min-coverage", "60", capsys=capsys)
    # team_read and the reader grant: 2 of 5
    assert "coverage of rules and role grants 40.0% is below the minimum of 60%\n" in out
    assert code == 1
    assert out.splitlines()[-1] == "2 passed, 0 failed"
    code, out, _ = run(str(suite), "--filter", "team*", "--min-coverage", "40", capsys=capsys)
    assert code == 0
    assert "coverage of rules and role grants 40.0% meets the minimum of 40%\n" in out
    code, _, err = run(str(suite), "--min-coverage", "101", capsys=capsys)
    assert code == 2 and "percentage" in err


def test_verbose_lists_passing_tests(suite: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = run(str(suite), "-v", "--filter", "off*", capsys=capsys)
    line = line_of(suite / "p_test.toml", 'name = "off the vpn"') - 1
    assert f"ok   {suite / 'p_test.toml'}:{line}: off the vpn\n" in out


# ---- the example policies ship with tests ----------------------------------------------------------


def test_the_example_policies_pass_their_tests_with_full_coverage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(str(ROOT / "policies"), "--min-coverage", "95", capsys=capsys)
    assert code == 0, out
    assert "coverage: rules and role grants 24/24 (100.0%), branches 6/6 (100.0%)" in out
    assert re.fullmatch(r"\d+ passed, 0 failed", out.splitlines()[-1])
    assert int(out.splitlines()[-1].split()[0]) >= 150


def test_ci_runs_the_policy_tests() -> None:
    script = (ROOT / "scripts" / "test.sh").read_text().splitlines()
    validate = script.index(".venv/bin/pdp validate policies")
    assert script[validate + 1] == ".venv/bin/pdp test --min-coverage 95 policies"


def test_the_console_script() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pdp.cli", "test", "policies", "--filter", "*owner*"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.fullmatch(r"[1-9]\d* passed, 0 failed", proc.stdout.splitlines()[-1])
