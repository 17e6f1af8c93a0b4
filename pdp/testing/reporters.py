"""The results of a policy test run as text (for people), JSON (for programs) and JUnit XML (for CI)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from pdp.testing.coverage import CoverageReport, Target
from pdp.testing.model import PolicyTestError
from pdp.testing.runner import CaseResult, SuiteResult, advice_text, error_text, obligation_text

# ---- text ------------------------------------------------------------------------------------------


def summary_line(passed: int, failed: int) -> str:
    return f"{passed} passed, {failed} failed"


def got_text(decision: dict[str, Any]) -> str:
    """A decision on one line: verdict, reasons, obligations, advice, errors."""
    parts = [decision["decision"]]
    if decision["reasons"]:
        parts.append("reasons " + ", ".join(decision["reasons"]))
    if decision["obligations"]:
        parts.append("obligations " + ", ".join(obligation_text(o) for o in decision["obligations"]))
    if decision["advice"]:
        parts.append("advice " + ", ".join(advice_text(a) for a in decision["advice"]))
    if decision["errors"]:
        parts.append("errors " + "; ".join(error_text(e) for e in decision["errors"]))
    return "; ".join(parts)


def format_failure(result: CaseResult) -> str:
    """`FAIL file:line: name`, each mismatch as expected vs got, the decision, and its explain trace."""
    out = [f"FAIL {result.test.location}: {result.test.name}"]
    out += [f"  {m.field}: expected {m.expected}, got {m.got}" for m in result.mismatches]
    out.append(f"  got: {got_text(result.decision)}")
    if result.explanation:
        out.append("  explain:")
        out += [f"    {line}" if line else "" for line in result.explanation.rstrip("\n").splitlines()]
    return "\n".join(out) + "\n"


def format_load_error(error: PolicyTestError) -> str:
    return f"ERROR {error.location}: {error.message}\n"


def format_coverage(report: CoverageReport, *, show_uncovered: bool = True) -> str:
    out = [
        f"coverage: rules and role grants {report.rules_covered}/{len(report.rules)} ({report.rule_percent:.1f}%), "
        f"branches {report.branches_covered}/{len(report.branches)} ({report.branch_percent:.1f}%)"
    ]
    if show_uncovered:
        if report.uncovered_rules:
            out.append("uncovered rules and role grants:")
            out += [_target_line(t) for t in report.uncovered_rules]
        if report.uncovered_branches:
            out.append("uncovered branches:")
            out += [_target_line(t) for t in report.uncovered_branches]
    return "\n".join(out) + "\n"


def _target_line(t: Target) -> str:
    return f"  {t.location}: {t.owner if t.kind == 'branch' else t.id}: {t.description}"


def format_minimum(report: CoverageReport, minimum: float) -> str:
    verdict = "meets" if report.meets(minimum) else "is below"
    return f"coverage of rules and role grants {report.rule_percent:.1f}% {verdict} the minimum of {minimum:g}%\n"


def format_text(suite: SuiteResult, *, verbose: bool = False, minimum: float | None = None) -> str:
    """The whole report; its last line is the summary `N passed, N failed`."""
    out: list[str] = []
    for error in suite.load_errors:
        out.append(format_load_error(error))
    for result in suite.results:
        if not result.passed:
            out.append(format_failure(result))
        elif verbose:
            out.append(f"ok   {result.test.location}: {result.test.name}\n")
    if suite.empty and suite.files:
        out.append(f"no cases in the {suite.files} test file(s) under {suite.directory}\n")
    elif suite.empty:
        out.append(f"no policy tests (*_test.toml) under {suite.directory}\n")
    elif suite.loaded and not suite.results:
        out.append("no test matched the filter\n")
    if suite.results:
        out.append(format_coverage(suite.coverage))
    if minimum is not None:
        out.append(format_minimum(suite.coverage, minimum))
    out.append(summary_line(suite.passed, suite.failed) + "\n")
    return "".join(out)


# ---- JSON ------------------------------------------------------------------------------------------


def result_json(result: CaseResult) -> dict[str, Any]:
    test = result.test
    out: dict[str, Any] = {
        "id": test.id,
        "name": test.name,
        "case": test.case,
        "file": test.file,
        "line": test.line,
        "status": "passed" if result.passed else "failed",
        "seconds": round(result.seconds, 6),
        "request": result.request,
        "expected": test.expect.to_json(),
        "got": result.decision,
        "mismatches": [m.to_json() for m in result.mismatches],
    }
    if result.explanation is not None:
        out["explanation"] = result.explanation
    return out


def suite_json(suite: SuiteResult, *, minimum: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "directory": suite.directory,
        "files": suite.files,
        "summary": {"passed": suite.passed, "failed": suite.failed, "total": suite.passed + suite.failed},
        "tests": [result_json(r) for r in suite.results],
        "load_errors": [{"file": e.file, "line": e.line, "message": e.message} for e in suite.load_errors],
        "coverage": suite.coverage.to_json(),
    }
    if minimum is not None:
        out["min_coverage"] = {"required": minimum, "met": suite.coverage.meets(minimum)}
    return out


# ---- JUnit XML -------------------------------------------------------------------------------------


def junit_xml(suite: SuiteResult) -> bytes:
    """One <testsuite> per test file, one <testcase> per test; a file that cannot be read is an <error>."""
    root = ET.Element("testsuites", name="pdp test")
    by_file: dict[str, ET.Element] = {}
    counts: dict[str, dict[str, float]] = {}

    def testsuite(file: str) -> ET.Element:
        if file not in by_file:
            by_file[file] = ET.SubElement(root, "testsuite", name=file)
            counts[file] = {"tests": 0, "failures": 0, "errors": 0, "time": 0.0}
        return by_file[file]

    for error in suite.load_errors:
        element = ET.SubElement(
            testsuite(error.file), "testcase", classname=_classname(error.file), name="(test file)", file=error.file
        )
        element.set("line", str(error.line))
        failure = ET.SubElement(element, "error", message=error.message, type="PolicyTestError")
        failure.text = format_load_error(error)
        counts[error.file]["tests"] += 1
        counts[error.file]["errors"] += 1
    for result in suite.results:
        test = result.test
        element = ET.SubElement(
            testsuite(test.file),
            "testcase",
            classname=_classname(test.file),
            name=test.name,
            file=test.file,
            line=str(test.line),
            time=f"{result.seconds:.6f}",
        )
        c = counts[test.file]
        c["tests"] += 1
        c["time"] += result.seconds
        if not result.passed:
            c["failures"] += 1
            message = "; ".join(f"{m.field}: expected {m.expected}, got {m.got}" for m in result.mismatches)
            failure = ET.SubElement(element, "failure", message=message, type="PolicyTestFailure")
            failure.text = format_failure(result)
    totals = {"tests": 0.0, "failures": 0.0, "errors": 0.0, "time": 0.0}
    for file, element in by_file.items():
        for key, value in counts[file].items():
            element.set(key, f"{value:.6f}" if key == "time" else str(int(value)))
            totals[key] += value
    for key, value in totals.items():
        root.set(key, f"{value:.6f}" if key == "time" else str(int(value)))
    ET.indent(root)
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True))


def _classname(file: str) -> str:
    stem = file[: -len(".toml")] if file.endswith(".toml") else file
    return stem.replace("\\", "/").strip("/").replace("/", ".")
