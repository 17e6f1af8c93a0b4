"""The `pdp` command line, run as a real subprocess and in-process through main()."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pdp.cli import COMMANDS, main
from pdp.engine import Engine

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
BOB = POLICIES / "requests" / "bob-reads-plan.json"


def pdp(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pdp.cli", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def policy_file_count() -> int:
    return len([p for p in POLICIES.rglob("*.pdp") if not p.stem.endswith("_test")])


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(POLICIES)


@pytest.fixture
def broken_checks(tmp_path: Path) -> Path:
    """Parses, but two files do not make sense against the schema."""
    (tmp_path / "schema.pdp").write_text(
        "principal entity User { name: string; }\nentity Doc { owner: string; }\nactions Doc { read }\n"
    )
    (tmp_path / "a.pdp").write_text("// owners\npermit a\n  action read\n  when resource.ownr == principal.name;\n")
    (tmp_path / "b.pdp").write_text("forbid b action raed;\n")
    return tmp_path


@pytest.fixture
def broken_syntax(tmp_path: Path) -> Path:
    (tmp_path / "a.pdp").write_text("entity X {\n  a: string\n}\n")
    (tmp_path / "b.pdp").write_text("permit q\n  when principal.x = 3;\n")
    return tmp_path


# ---- validate ---------------------------------------------------------------------------


def test_validate_ok(engine: Engine) -> None:
    proc = pdp("validate", str(POLICIES))  # the revision hashes file names as given
    assert proc.returncode == 0, proc.stderr
    match = re.fullmatch(r"ok: (\d+) rules, (\d+) files, revision ([0-9a-f]+)\n", proc.stdout)
    assert match, proc.stdout
    assert int(match[1]) == len(engine.policy.checked.rules)
    assert int(match[2]) == policy_file_count()
    assert match[3] == engine.revision
    assert proc.stderr == ""


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("pdp")
    if not script.exists():
        pytest.skip("the `pdp` console script is not installed; run `pip install -e .`")
    proc = subprocess.run([str(script), "validate", str(POLICIES)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: ")


def test_validate_reports_every_check_error_with_source_and_caret(broken_checks: Path) -> None:
    proc = pdp("validate", str(broken_checks))
    assert proc.returncode == 1
    assert proc.stdout == ""
    err = proc.stderr
    a, b = broken_checks / "a.pdp", broken_checks / "b.pdp"
    assert f"{a}:4:8: unknown_attribute: `Doc` has no attribute `ownr`" in err
    assert "     4 |   when resource.ownr == principal.name;\n       |        ^^^^^^^^^^^^^\n" in err
    assert f"{b}:1:17: unknown_action: unknown action `raed`" in err
    assert "     1 | forbid b action raed;\n       |                 ^^^^\n" in err
    assert "did you mean `owner`?" in err
    assert err.index(str(a)) < err.index(str(b))  # sorted by place
    assert err.rstrip().endswith("2 errors")


def test_validate_reports_syntax_errors_of_every_file(broken_syntax: Path) -> None:
    proc = pdp("validate", str(broken_syntax))
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    headers = [line for line in lines if re.match(r"^\S+\.pdp:\d+:\d+: syntax_error: ", line)]
    assert [h.split(":")[0] for h in headers] == [str(broken_syntax / "a.pdp"), str(broken_syntax / "b.pdp")]
    assert f"{broken_syntax / 'b.pdp'}:2:20: syntax_error: unexpected `=`" in proc.stderr
    caret = lines.index("     2 |   when principal.x = 3;") + 1
    assert lines[caret] == "       |                    ^"


def test_validate_missing_and_empty_directories(tmp_path: Path) -> None:
    missing = pdp("validate", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "no policy directory" in missing.stderr
    empty = pdp("validate", str(tmp_path))
    assert empty.returncode == 1
    assert "no policy files" in empty.stderr


# ---- check ------------------------------------------------------------------------------


def test_check_allows_bob_with_reasons(engine: Engine) -> None:
    proc = pdp("check", str(POLICIES), "--request", str(BOB))
    assert proc.returncode == 0, proc.stderr
    decision = json.loads(proc.stdout)
    assert decision["allowed"] is True
    assert decision["decision"] == "allow"
    assert decision["reasons"] == ["acme.non_owner_read_masked", "role:viewer"]
    assert {"type": "mask", "path": "resource.ssn"} in decision["obligations"]
    assert decision == engine.decide(json.loads(BOB.read_text())).to_json()


def test_check_reads_stdin() -> None:
    proc = pdp("check", "policies", "--request", "-", stdin=BOB.read_text())
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["allowed"] is True


def test_check_denied_still_exits_zero() -> None:
    request = json.loads(BOB.read_text())
    request["principal"]["attributes"]["suspended"] = True
    proc = pdp("check", "policies", "-r", "-", stdin=json.dumps(request))
    assert proc.returncode == 0
    decision = json.loads(proc.stdout)
    assert decision["allowed"] is False
    assert decision["reasons"] == ["acme.suspended_account"]


def test_check_invalid_request_is_a_deny_with_errors() -> None:
    proc = pdp("check", "policies", "-r", "-", stdin='{"principal": 3}')
    assert proc.returncode == 0
    decision = json.loads(proc.stdout)
    assert decision["allowed"] is False and decision["errors"]


def test_check_bad_json_and_unreadable_files(tmp_path: Path) -> None:
    bad = pdp("check", "policies", "--request", "-", stdin="{not json")
    assert bad.returncode == 2
    assert "not valid JSON" in bad.stderr and bad.stdout == ""
    missing = pdp("check", "policies", "--request", str(tmp_path / "missing.json"))
    assert missing.returncode == 2
    assert "cannot read request" in missing.stderr


def test_check_broken_policy_exits_one(broken_checks: Path) -> None:
    proc = pdp("check", str(broken_checks), "--request", str(BOB))
    assert proc.returncode == 1
    assert "unknown_attribute" in proc.stderr and proc.stdout == ""


# ---- explain ----------------------------------------------------------------------------


def test_explain_text_lists_every_rule_and_the_values_compared(engine: Engine) -> None:
    proc = pdp("explain", "policies", "--request", str(BOB))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    bucket = engine.policy.buckets[("User", "Document", "read")]
    positions = [out.index(f" {rule.id} (") for rule in bucket.rules]
    assert positions == sorted(positions)
    assert "decision: allow" in out
    assert "acme.non_owner_read_masked (policies/acme/documents.pdp:14): MATCHED" in out
    assert "acme.suspended_account (policies/acme/zero_trust.pdp:15): not matched" in out
    assert "resource.classification > principal.clearance: internal vs confidential -> false" in out
    assert 'resource.owner != principal.id: "alice" vs "bob" -> true' in out
    assert "context.ip in blocked_networks: 10.1.2.3 vs [198.51.100.66, 203.0.113.0/24] -> false" in out
    assert "roles: held viewer" in out


def test_explain_json_matches_check() -> None:
    explained = pdp("explain", "policies", "--request", str(BOB), "--json")
    checked = pdp("check", "policies", "--request", str(BOB))
    assert explained.returncode == 0, explained.stderr
    result = json.loads(explained.stdout)
    assert result["decision"] == json.loads(checked.stdout)
    assert "engine_decision" not in result
    assert [r["matched"] for r in result["rules"]].count(True) == 1


def test_explain_bad_json_exits_two() -> None:
    proc = pdp("explain", "policies", "--request", "-", stdin="[")
    assert proc.returncode == 2


# ---- plan -------------------------------------------------------------------------------


def test_plan_lists_forbids_before_permits_and_role_grants(engine: Engine) -> None:
    proc = pdp("plan", "policies", "--resource-type", "Document", "--action", "read")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    bucket = engine.policy.buckets[("User", "Document", "read")]
    forbids = [r.id for r in bucket.rules if r.effect == "forbid"]
    permits = [r.id for r in bucket.rules if r.effect == "permit"]
    assert forbids and permits
    assert out.index("forbids (") < out.index("permits (")
    last_forbid = max(out.index(f" {rid} ") for rid in forbids)
    first_permit = min(out.index(f" {rid} ") for rid in permits)
    assert last_forbid < out.index("permits (") < first_permit
    assert "viewer: declares the grant; also conferred by editor, tenant_admin" in out
    assert "held roles come from: roles of User from principal.roles[resource.tenant];" in out
    assert "reads the clock: no" in out
    assert "when resource.classification > principal.clearance" in out
    assert "unless context.mfa and context.device_trusted" in out
    assert "policies/acme/zero_trust.pdp:27" in out
    assert "role viewer (held through editor, tenant_admin, viewer)" in out


def test_plan_unknown_action_and_type_are_errors() -> None:
    action = pdp("plan", "policies", "--resource-type", "Document", "--action", "fly")
    assert action.returncode == 2
    assert "action `fly` is not valid for `Document`" in action.stderr
    assert "valid actions: delete, read, share, write" in action.stderr
    rtype = pdp("plan", "policies", "-t", "Documnt", "-a", "read")
    assert rtype.returncode == 2
    assert "unknown resource type `Documnt`; did you mean `Document`?" in rtype.stderr


def test_plan_reads_the_clock_for_admin_console() -> None:
    proc = pdp("plan", "policies", "-t", "AdminConsole", "-a", "view_audit")
    assert proc.returncode == 0
    assert "reads the clock: yes" in proc.stdout
    assert "unless now in business_hours" in proc.stdout
    assert "permits (evaluated when no forbid matched; a match allows):\n    none" in proc.stdout


# ---- in-process ---------------------------------------------------------------------------


def test_main_in_process(capsys: pytest.CaptureFixture[str], engine: Engine) -> None:
    assert main(["validate", str(POLICIES)]) == 0
    assert capsys.readouterr().out == (
        f"ok: {len(engine.policy.checked.rules)} rules, {policy_file_count()} files, revision {engine.revision}\n"
    )
    assert main(["check", str(POLICIES), "--request", str(BOB)]) == 0
    assert json.loads(capsys.readouterr().out)["allowed"] is True
    assert main(["plan", str(POLICIES), "-t", "Project", "-a", "archive"]) == 0
    assert "acme.archived_project_frozen" in capsys.readouterr().out


def test_main_usage_errors_return_two(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["check", str(POLICIES)]) == 2  # --request is required
    assert main(["frobnicate"]) == 2
    assert "usage: pdp" in capsys.readouterr().err
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(command.name in out for command in COMMANDS)


def test_python_dash_m_works() -> None:
    proc = pdp("--help")
    assert proc.returncode == 0
    assert "validate" in proc.stdout and "explain" in proc.stdout
