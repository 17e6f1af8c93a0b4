"""Deciding the acme request set: the engine vs the hand-written baseline vs cedarpy vs pycasbin.

Every implementation decides the same requests in the same loop shape (a list of booleans over
the set), in one run, in one benchmark group; the summary divides the medians by the number of
requests. Before timing, each peer's answers are checked against the expected outcome, and a
request a peer gets wrong is dropped from the whole comparison (for every implementation) and
named in the summary.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cedarpy
import pytest

from benchmarks import _results
from benchmarks.baseline import decide as baseline_decide
from benchmarks.peers import CasbinPeer, CedarPeer
from benchmarks.requests import CASES, Case
from pdp import Engine

POLICIES = Path(__file__).resolve().parents[1] / "policies"
GROUP = "acme: decide the request set"
CASBIN_ROUNDS = 15  # ~0.1 s per pass: the automatic calibration would stop at 5 rounds
PER_REQUEST = {"rounds": 300, "iterations": 20, "warmup_rounds": 20}  # single calls: batch 20 per timing


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(POLICIES)


@pytest.fixture(scope="module")
def cedar() -> CedarPeer:
    return CedarPeer()


@pytest.fixture(scope="module")
def casbin_peer() -> CasbinPeer:
    return CasbinPeer(c.request for c in CASES)


@pytest.fixture(scope="module")
def compared(engine: Engine, cedar: CedarPeer, casbin_peer: CasbinPeer) -> list[Case]:
    """The cases on which both peers give the expected answer (engine and baseline must, always)."""
    kept = []
    for case in CASES:
        decision = engine.decide(case.request)
        assert decision.allowed is case.allowed, f"engine decides `{case.name}` wrongly: {decision}"
        assert baseline_decide(case.request)[0] is case.allowed, f"baseline decides `{case.name}` wrongly"
        answers = {"cedarpy": cedar.decide(case.request), "pycasbin": casbin_peer.decide(case.request)}
        wrong = sorted(name for name, allowed in answers.items() if allowed is not case.allowed)
        if wrong:
            _results.NOTES.append(f"request `{case.name}` dropped from the comparison: {', '.join(wrong)} disagree")
        else:
            kept.append(case)
    assert len(kept) >= 12, "too few requests left to compare"
    _results.NOTES.append(
        f"acme comparison over {len(kept)} of {len(CASES)} requests "
        f"({sum(c.allowed for c in kept)} allow, {sum(not c.allowed for c in kept)} deny)"
    )
    return kept


def _run(benchmark: Any, name: str, fn: Callable[[], list[bool]], cases: list[Case], rounds: int = 0) -> None:
    """Time `fn` (one pass over the set); `rounds` fixes the round count for the slow peers."""
    benchmark.group = GROUP
    benchmark.extra_info["requests"] = len(cases)
    if rounds:
        result = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=1)
    else:
        result = benchmark(fn)
    if name != "empty_loop":
        assert result == [c.allowed for c in cases]
    _results.record(f"acme.{name}", benchmark, per=len(cases))


def _empty(request: Any) -> bool:
    return True


def test_empty_function_call(benchmark: Any) -> None:
    """Calibration: one call of an empty Python function (the harness' floor)."""
    benchmark.group = "calibration"

    def empty() -> None:
        pass

    benchmark(empty)
    _results.record("calibration.empty_call", benchmark)


def test_empty_loop(benchmark: Any, compared: list[Case]) -> None:
    """Calibration: the loop every decider below runs, calling an empty function."""
    requests = [c.request for c in compared]
    _run(benchmark, "empty_loop", lambda: [_empty(r) for r in requests], compared)


def test_engine(benchmark: Any, engine: Engine, compared: list[Case]) -> None:
    decide = engine.decide
    requests = [c.request for c in compared]
    _run(benchmark, "engine", lambda: [decide(r).allowed for r in requests], compared)


def test_baseline(benchmark: Any, engine: Engine, compared: list[Case]) -> None:
    decide = baseline_decide
    requests = [c.request for c in compared]
    _run(benchmark, "baseline", lambda: [decide(r)[0] for r in requests], compared)
    # the same ratio again, robust to load drifts: engine and baseline timed back to back
    engine_decide = engine.decide
    ratio = _results.interleaved_ratio(
        lambda: [engine_decide(r).allowed for r in requests], lambda: [decide(r)[0] for r in requests]
    )
    _results.INTERLEAVED["engine / baseline"] = ratio
    benchmark.extra_info["interleaved_engine_over_baseline"] = [round(q, 3) for q in ratio]


def test_cedarpy_prepared(benchmark: Any, engine: Engine, cedar: CedarPeer, compared: list[Case]) -> None:
    """Requests already converted to Cedar's form and every principal already in one entity set:
    only `cedarpy.is_authorized` is timed."""
    cedar_requests, entities = cedar.prepare_all(c.request for c in compared)
    policies, is_authorized = cedar.policies, cedarpy.is_authorized
    _run(
        benchmark,
        "cedarpy_prepared",
        lambda: [is_authorized(q, policies, entities).allowed for q in cedar_requests],
        compared,
    )
    decide, requests = engine.decide, [c.request for c in compared]
    ratio = _results.interleaved_ratio(
        lambda: [is_authorized(q, policies, entities).allowed for q in cedar_requests],
        lambda: [decide(r).allowed for r in requests],
        rounds=21,
    )
    _results.INTERLEAVED["cedarpy prepared / engine"] = ratio
    benchmark.extra_info["interleaved_cedarpy_over_engine"] = [round(q, 3) for q in ratio]


def test_cedarpy_batch(benchmark: Any, engine: Engine, cedar: CedarPeer, compared: list[Case]) -> None:
    """As prepared, in one `cedarpy.is_authorized_batch` call for the whole set."""
    cedar_requests, entities = cedar.prepare_all(c.request for c in compared)
    _run(benchmark, "cedarpy_batch", lambda: cedar.decide_batch(cedar_requests, entities), compared)
    decide, requests = engine.decide, [c.request for c in compared]
    ratio = _results.interleaved_ratio(
        lambda: cedar.decide_batch(cedar_requests, entities), lambda: [decide(r).allowed for r in requests], rounds=21
    )
    _results.INTERLEAVED["cedarpy batch / engine"] = ratio
    benchmark.extra_info["interleaved_cedarpy_over_engine"] = [round(q, 3) for q in ratio]


def test_cedarpy_end_to_end(benchmark: Any, cedar: CedarPeer, compared: list[Case]) -> None:
    """From the JSON request: convert, add the principal entity to the stored ones, authorize."""
    decide = cedar.decide
    requests = [c.request for c in compared]
    _run(benchmark, "cedarpy_end_to_end", lambda: [decide(r) for r in requests], compared)


def test_casbin_prepared(benchmark: Any, casbin_peer: CasbinPeer, compared: list[Case]) -> None:
    """Requests already converted to casbin's (sub, obj, act, env): only `enforce` is timed."""
    prepared = [casbin_peer.prepare(c.request) for c in compared]
    enforce = casbin_peer.enforcer.enforce
    _run(benchmark, "casbin_prepared", lambda: [enforce(*p) for p in prepared], compared, rounds=CASBIN_ROUNDS)


def test_casbin_end_to_end(benchmark: Any, casbin_peer: CasbinPeer, compared: list[Case]) -> None:
    decide = casbin_peer.decide
    requests = [c.request for c in compared]
    _run(benchmark, "casbin_end_to_end", lambda: [decide(r) for r in requests], compared, rounds=CASBIN_ROUNDS)


# ---- per request: where the engine spends more than the baseline ------------------------
@pytest.mark.parametrize("impl", ["engine", "baseline"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_per_request(benchmark: Any, engine: Engine, case: Case, impl: str) -> None:
    benchmark.group = f"acme per request: {case.name}"
    request = case.request
    if impl == "engine":
        decide = engine.decide
        allowed = benchmark.pedantic(lambda: decide(request).allowed, **PER_REQUEST)
    else:
        allowed = benchmark.pedantic(lambda: baseline_decide(request)[0], **PER_REQUEST)
    assert allowed is case.allowed
    _results.record(f"per_request.{case.name}.{impl}", benchmark)
