"""`pdp fmt` and `pdp lint` through the command line (in-process via main(), and once as a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pdp.cli import all_commands, main
from pdp.tidy_cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"

UGLY = "permit  p when a  and b; // why\n"
PRETTY = "permit p\n  when a and b;  // why\n"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_the_module_provides_fmt_and_lint() -> None:
    assert [c.name for c in COMMANDS] == ["fmt", "lint"]
    names = [c.name for c in all_commands()]
    assert "fmt" in names and "lint" in names


# ---- fmt ---------------------------------------------------------------------------------------


def test_check_on_canonical_files_is_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "fmt", "--check", str(POLICIES))
    assert (code, out) == (0, "")
    assert err == "would reformat 0 of 5 files\n"


def test_check_prints_a_diff_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.pdp"
    path.write_text(UGLY)
    (tmp_path / "b.pdp").write_text(PRETTY)
    code, out, err = run(capsys, "fmt", "--check", str(tmp_path))
    assert code == 1
    assert out == (
        f"--- {path}\n+++ {path} (formatted)\n@@ -1 +1,2 @@\n"
        "-permit  p when a  and b; // why\n+permit p\n+  when a and b;  // why\n"
    )
    assert err == "would reformat 1 of 2 files\n"
    assert path.read_text() == UGLY


def test_check_shows_a_missing_final_newline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.pdp"
    path.write_text("permit p;")
    code, out, _ = run(capsys, "fmt", "--check", str(path))
    assert code == 1
    assert out.endswith("-permit p;\n\\ No newline at end of file\n+permit p;\n")


def test_fmt_rewrites_in_place_and_names_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ugly, pretty = tmp_path / "sub" / "a.pdp", tmp_path / "b.pdp"
    ugly.parent.mkdir()
    ugly.write_text(UGLY)
    pretty.write_text(PRETTY)
    code, out, err = run(capsys, "fmt", str(tmp_path))
    assert (code, out, err) == (0, f"{ugly}\n", "reformatted 1 of 2 files\n")
    assert ugly.read_text() == PRETTY
    assert run(capsys, "fmt", str(tmp_path))[:2] == (0, "")


def test_fmt_takes_files_and_skips_policy_tests_in_directories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rules_test.pdp").write_text(UGLY)
    (tmp_path / "notes.txt").write_text(UGLY)
    assert run(capsys, "fmt", "--check", str(tmp_path))[0] == 0
    assert run(capsys, "fmt", "--check", str(tmp_path / "rules_test.pdp"))[0] == 1


def test_a_file_that_does_not_parse_is_reported_and_left_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.pdp"
    bad.write_text("entity X {\n  a: string\n}\n")
    (tmp_path / "ok.pdp").write_text(UGLY)
    code, out, err = run(capsys, "fmt", str(tmp_path))
    assert code == 1
    assert out == f"{tmp_path / 'ok.pdp'}\n"  # the others are still formatted
    assert err.startswith(f"{bad}:3:1: syntax_error: unexpected `}}`; expected `,`, `;`, `=`, `>`, `sensitive`\n")
    assert err.endswith("reformatted 1 of 2 files; 1 could not be formatted\n")
    assert bad.read_text() == "entity X {\n  a: string\n}\n"
    code, out, err = run(capsys, "fmt", "--check", str(bad))
    assert (code, out) == (1, "")
    assert f"{bad}:3:1: syntax_error:" in err


def test_fmt_of_a_missing_path_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "fmt", str(tmp_path / "nope"))
    assert code == 2
    assert err == f"pdp: error: no such file or directory: {tmp_path / 'nope'}\n"


def test_fmt_needs_a_path(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "fmt")[0] == 2


# ---- lint --------------------------------------------------------------------------------------

SCHEMA = "principal entity User { age: int; roles: set<string>; }\nentity Doc {}\nactions Doc { read }\n"


@pytest.fixture
def linty(tmp_path: Path) -> Path:
    (tmp_path / "schema.pdp").write_text(SCHEMA + "roles of User from principal.roles;\n")
    (tmp_path / "rules.pdp").write_text(
        "const unused = 1;\npermit p when principal.age == 1 and principal.age == 2;\nrole nothing;\n"
    )
    return tmp_path


def test_lint_clean(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "lint", str(POLICIES)) == (0, "", "")


def test_lint_findings(linty: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "lint", str(linty))
    rules = linty / "rules.pdp"
    assert code == 1
    assert out == (
        f"{rules}:1:1: unused_constant: constant `unused` is never used\n"
        f"{rules}:2:38: never_applies: permit `p` never applies: `principal.age == 2` contradicts `principal.age == 1`\n"
        f"{rules}:3:1: empty_role: role `nothing` has no effect: it grants nothing, directly or through the roles "
        "it extends, and no rule requires it\n"
    )
    assert err == "3 findings\n"


def test_lint_json(linty: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lint", "--json", str(linty))
    assert code == 1
    found = json.loads(out)
    assert [(f["line"], f["col"], f["code"], f["severity"]) for f in found] == [
        (1, 1, "unused_constant", "warning"),
        (2, 38, "never_applies", "warning"),
        (3, 1, "empty_role", "warning"),
    ]
    assert found[0]["file"] == str(linty / "rules.pdp")
    assert found[0]["message"] == "constant `unused` is never used"
    assert run(capsys, "lint", "--json", str(POLICIES)) == (0, "[]\n", "")


def test_lint_reports_compile_errors_as_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "schema.pdp").write_text(SCHEMA)
    (tmp_path / "rules.pdp").write_text("permit p when principal.agee == 1;\n")
    code, out, err = run(capsys, "lint", str(tmp_path))
    assert code == 1
    assert out.startswith(f"{tmp_path / 'rules.pdp'}:1:15: unknown_attribute: `User` has no attribute `agee`\n")
    assert err == "1 error\n"
    code, out, _ = run(capsys, "lint", "--json", str(tmp_path))
    assert code == 1
    assert [(f["code"], f["severity"]) for f in json.loads(out)] == [("unknown_attribute", "error")]


def test_lint_of_a_missing_directory_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "lint", str(tmp_path / "nope"))
    assert code == 2
    assert err.startswith("pdp: error: ")


def test_as_a_subprocess(tmp_path: Path) -> None:
    (tmp_path / "a.pdp").write_text(UGLY)
    proc = subprocess.run(
        [sys.executable, "-m", "pdp.cli", "fmt", "--check", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"--- {tmp_path / 'a.pdp'}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pdp.cli", "lint", "policies"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
