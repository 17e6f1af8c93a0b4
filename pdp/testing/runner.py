"""Runs policy tests: each test's request is decided by the engine and compared with what it expects.

A failing test keeps the explain trace of its decision (`pdp.explain`), and every request is
also recorded for coverage (`pdp.testing.coverage`). A test without a `now` runs at the
current time, pinned once per test so that its decision, coverage and trace see one clock.
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pdp.engine import Engine
from pdp.explain import explain, format_explanation
from pdp.testing.coverage import Coverage, CoverageReport
from pdp.testing.model import ErrorPattern, Expectation, PolicyTest, PolicyTestError, discover, load_test_file

_P = TypeVar("_P")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Mismatch:
    """One part of the decision that is not what the test expects."""

    field: str  # decision, reasons, obligations, advice, errors
    expected: str
    got: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "expected": self.expected, "got": self.got}


@dataclass(frozen=True, slots=True)
class CaseResult:
    test: PolicyTest
    request: dict[str, Any]  # as decided: `now` pinned when the test gives none
    decision: dict[str, Any]  # Decision.to_json()
    mismatches: tuple[Mismatch, ...]
    explanation: str | None  # the explain trace of a failing decision
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.mismatches


@dataclass(frozen=True, slots=True)
class SuiteResult:
    directory: str
    files: int  # test files read (including those that could not be)
    loaded: int  # tests in them, before the filter
    results: tuple[CaseResult, ...]
    load_errors: tuple[PolicyTestError, ...]  # each counts as one failure
    coverage: CoverageReport

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.passed) + len(self.load_errors)

    @property
    def empty(self) -> bool:
        """No test at all (a filter matching nothing is not this)."""
        return not self.loaded and not self.load_errors


# ---- comparing -----------------------------------------------------------------------------------


def compare(expect: Expectation, decision: Mapping[str, Any]) -> list[Mismatch]:
    """The differences between what a test expects and a decision (`Decision.to_json()`)."""
    out = []
    if expect.allowed != decision["allowed"]:
        out.append(Mismatch("decision", _verdict(expect.allowed), _verdict(decision["allowed"])))
    if expect.reasons is not None and sorted(expect.reasons) != sorted(decision["reasons"]):
        out.append(Mismatch("reasons", _items(expect.reasons), _items(decision["reasons"])))
    if expect.obligations is not None:
        wanted = sorted(_canonical(o) for o in expect.obligations)
        if wanted != sorted(_canonical(o) for o in decision["obligations"]):
            out.append(
                Mismatch(
                    "obligations",
                    _items(obligation_text(o) for o in expect.obligations),
                    _items(obligation_text(o) for o in decision["obligations"]),
                )
            )
    if expect.advice is not None and not _all_matched(expect.advice, decision["advice"], _advice_matches):
        out.append(
            Mismatch(
                "advice",
                _items(advice_text(a) for a in expect.advice),
                _items(advice_text(a) for a in decision["advice"]),
            )
        )
    if not _all_matched(expect.errors, decision["errors"], ErrorPattern.matches):
        out.append(
            Mismatch(
                "errors",
                _items((e.describe() for e in expect.errors), empty="none"),
                _items((error_text(e) for e in decision["errors"]), empty="none"),
            )
        )
    return out


def _verdict(allowed: bool) -> str:
    return "allow" if allowed else "deny"


def _items(items: Iterable[str], empty: str = "[]") -> str:
    listed = list(items)
    return "[" + ", ".join(listed) + "]" if listed else empty


def _canonical(item: Mapping[str, Any]) -> str:
    return json.dumps(dict(item), sort_keys=True, default=str)


def obligation_text(o: Mapping[str, Any]) -> str:
    if o.get("type") == "mask":
        return f"mask {o.get('path')}"
    if o.get("type") == "header":
        return f"header {o.get('name')} = {o.get('value')}"
    return _canonical(o)


def advice_text(a: Mapping[str, Any]) -> str:
    text = f"{a.get('name')} = {json.dumps(a.get('value'))}"
    return text + (f" (from {a['rule']})" if a.get("rule") else "")


def error_text(e: Mapping[str, Any]) -> str:
    where = e.get("rule") or e.get("field")
    return f"{e.get('message')}" + (f" ({where})" if where else "")


def _advice_matches(expected: Mapping[str, Any], got: Mapping[str, Any]) -> bool:
    return all(got.get(k) == v for k, v in expected.items())


def _all_matched(patterns: Sequence[_P], items: Sequence[_T], matches: Callable[[_P, _T], bool]) -> bool:
    """Whether each pattern matches its own item and no item is left over."""
    if len(patterns) != len(items):
        return False
    taken = [False] * len(items)

    def assign(k: int) -> bool:
        if k == len(patterns):
            return True
        for j, item in enumerate(items):
            if not taken[j] and matches(patterns[k], item):
                taken[j] = True
                if assign(k + 1):
                    return True
                taken[j] = False
        return False

    return assign(0)


# ---- running --------------------------------------------------------------------------------------


def run_test(engine: Engine, test: PolicyTest, coverage: Coverage | None = None) -> CaseResult:
    """Decide the test's request, compare, and (for a failure) explain the decision."""
    started = time.perf_counter()
    request = test.request if "now" in test.request else {**test.request, "now": time.time()}
    decision = engine.decide(request).to_json()
    if coverage is not None:
        coverage.record(request)
    mismatches = tuple(compare(test.expect, decision))
    explanation = format_explanation(explain(engine, request)) if mismatches else None
    return CaseResult(test, request, decision, mismatches, explanation, time.perf_counter() - started)


def matches_filter(test: PolicyTest, pattern: str | None) -> bool:
    """`pattern` is a glob (fnmatch, case-sensitive) on the test's name or on `file::name`."""
    if pattern is None:
        return True
    return fnmatch.fnmatchcase(test.name, pattern) or fnmatch.fnmatchcase(test.id, pattern)


def load_tests(paths: Iterable[Path]) -> tuple[list[PolicyTest], list[PolicyTestError], int]:
    tests: list[PolicyTest] = []
    errors: list[PolicyTestError] = []
    count = 0
    for path in paths:
        count += 1
        try:
            tests += load_test_file(path).tests
        except PolicyTestError as exc:
            errors.append(exc)
    return tests, errors, count


def run_suite(engine: Engine, directory: str | Path, *, pattern: str | None = None) -> SuiteResult:
    """Every test file under `directory` (`*_test.toml`), run against `engine`."""
    tests, errors, count = load_tests(discover(directory))
    coverage = Coverage(engine)
    results = tuple(run_test(engine, t, coverage) for t in tests if matches_filter(t, pattern))
    return SuiteResult(str(directory), count, len(tests), results, tuple(errors), coverage.report())
