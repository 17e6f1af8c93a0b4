"""The decision log: what logging costs the caller, and how many events a second the writer keeps up with.

- `event_for`: building one event in the caller's thread (masking and capping the request).
- `submit`: queueing one ready event while the writer thread drains the queue to a file.
- sustained throughput: N events submitted as fast as one thread can, then `close()` (everything
  on disk), per format; and the same end to end (event_for + submit per event). Target: the
  writer keeps up with 20,000 events/s on this machine.

    .venv/bin/python -m pytest benchmarks/bench_decision_log.py --benchmark-only
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _results
from benchmarks.requests import CASES
from pdp import Engine
from pdp.decision_log import DecisionEvent, DecisionLog, Masker, event_for

POLICIES = Path(__file__).resolve().parents[1] / "policies"
GROUP_CALLER = "decision log: cost to the caller, per event"
GROUP_THROUGHPUT = "decision log: N events to disk"
N = 20_000
TARGET = 20_000  # events/s


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(POLICIES)


@pytest.fixture(scope="module")
def decided(engine: Engine) -> list[tuple[Any, Any]]:
    return [(c.request, engine.decide(c.request)) for c in CASES]


@pytest.fixture(scope="module")
def events(engine: Engine, decided: list[tuple[Any, Any]]) -> list[DecisionEvent]:
    masker = Masker(engine.schema)
    pairs = itertools.islice(itertools.cycle(decided), N)
    return [event_for(r, d, masker=masker, latency_us=5.0, cached=False, source="authorize") for r, d in pairs]


def test_event_for(benchmark: Any, engine: Engine, decided: list[tuple[Any, Any]]) -> None:
    masker = Masker(engine.schema)
    request, decision = decided[0]
    benchmark.group = GROUP_CALLER
    benchmark(lambda: event_for(request, decision, masker=masker, latency_us=5.0, cached=False, source="authorize"))
    _results.record("decision_log.event_for", benchmark)
    median = _results.median_of(benchmark)
    if median is not None:
        _results.NOTES.append(f"decision log: event_for (mask + build) {median * 1e6:.2f} us per event")


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_submit(benchmark: Any, tmp_path: Path, events: list[DecisionEvent], fmt: str) -> None:
    """One submit while the writer drains concurrently (its work competes for the GIL, as it would in a server)."""
    log = DecisionLog(tmp_path / f"decisions.{fmt}", format=fmt, queue_size=100_000, max_bytes=0)
    cycle = itertools.cycle(events)
    benchmark.group = GROUP_CALLER
    try:
        benchmark(lambda: log.submit(next(cycle)))
    finally:
        log.close()
    assert log.dropped == 0 and log.write_errors == 0
    _results.record(f"decision_log.submit.{fmt}", benchmark)
    median = _results.median_of(benchmark)
    if median is not None:
        _results.NOTES.append(f"decision log: submit ({fmt}) {median * 1e6:.2f} us per event")


def _throughput(benchmark: Any, tmp_path: Path, fmt: str, name: str, feed: Callable[[DecisionLog], None]) -> None:
    counter = itertools.count()
    logs: list[DecisionLog] = []

    def setup() -> tuple[tuple[DecisionLog], dict[str, Any]]:
        log = DecisionLog(tmp_path / f"decisions-{next(counter)}.{fmt}", format=fmt, queue_size=10_000)
        logs.append(log)
        return (log,), {}

    def run(log: DecisionLog) -> None:
        feed(log)
        log.close()

    benchmark.group = GROUP_THROUGHPUT
    benchmark.extra_info["events"] = N
    benchmark.pedantic(run, setup=setup, rounds=5, iterations=1, warmup_rounds=1)
    for log in logs:
        assert log.written == N and log.dropped == 0 and log.write_errors == 0
    median = _results.median_of(benchmark)
    if median is not None:
        rate = N / median
        _results.MEDIANS[f"decision_log.{name}.{fmt}"] = median / N
        verdict = "meets target" if rate >= TARGET else "MISSES target"
        _results.NOTES.append(
            f"decision log: {name} ({fmt}) {rate:,.0f} events/s, {median / N * 1e6:.2f} us per event "
            f"(target >= {TARGET:,}/s: {verdict})"
        )


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_sustained_throughput(benchmark: Any, tmp_path: Path, events: list[DecisionEvent], fmt: str) -> None:
    """Ready events submitted by one thread, then close(): the writer's rate (encode + write)."""

    def feed(log: DecisionLog) -> None:
        submit = log.submit
        for e in events:
            submit(e)

    _throughput(benchmark, tmp_path, fmt, "sustained", feed)


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_end_to_end_throughput(
    benchmark: Any, tmp_path: Path, engine: Engine, decided: list[tuple[Any, Any]], fmt: str
) -> None:
    """event_for + submit per decision (the caller's masking included), then close()."""
    masker = Masker(engine.schema)
    pairs = list(itertools.islice(itertools.cycle(decided), N))

    def feed(log: DecisionLog) -> None:
        submit = log.submit
        for request, decision in pairs:
            submit(event_for(request, decision, masker=masker, latency_us=5.0, cached=False, source="authorize"))

    _throughput(benchmark, tmp_path, fmt, "end_to_end", feed)
