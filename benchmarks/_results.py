"""Figures the benchmarks record for the end-of-run summary (printed by benchmarks/conftest.py)."""

from __future__ import annotations

import statistics
import time
from typing import Any

# name -> median seconds (per request for deciders, per compile for compile times)
MEDIANS: dict[str, float] = {}
# size -> {"peak_mib": ..., "retained_mib": ...}
MEMORY: dict[int, dict[str, float]] = {}
NOTES: list[str] = []


def median_of(benchmark: Any) -> float | None:
    """The median of a finished benchmark, or None when benchmarks are disabled."""
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return None
    return float(stats.stats.median)


def record(name: str, benchmark: Any, per: int = 1) -> None:
    median = median_of(benchmark)
    if median is not None:
        MEDIANS[name] = median / per


# label -> (first quartile, median, third quartile) of the per-slice ratios of `interleaved_ratio`
INTERLEAVED: dict[str, tuple[float, float, float]] = {}


def _timed(fn: Any, number: int) -> float:
    began = time.perf_counter()
    for _ in range(number):
        fn()
    return time.perf_counter() - began


def interleaved_ratio(a: Any, b: Any, rounds: int = 61, slice_s: float = 0.003) -> tuple[float, float, float]:
    """time(a) / time(b), the two timed back to back (order alternating) in slices of about `slice_s`,
    `rounds` times: a drift in the machine's load hits both sides of each ratio. Returns the first
    quartile, the median and the third quartile of the per-slice ratios."""
    number = max(1, int(slice_s / max(_timed(a, 3) / 3, 1e-9)))
    ratios = []
    for i in range(rounds):
        if i % 2:
            tb, ta = _timed(b, number), _timed(a, number)
        else:
            ta, tb = _timed(a, number), _timed(b, number)
        ratios.append(ta / tb)
    q1, q2, q3 = statistics.quantiles(ratios, n=4)
    return q1, q2, q3


def paired(a: Any, b: Any, pairs: int) -> tuple[list[float], list[float]]:
    """Per-call latencies of `a` and `b`, called alternately (order flipping), so that a drift
    in the machine's load (client and server share it) hits both sides alike."""
    ta, tb = [], []
    clock = time.perf_counter
    for i in range(pairs):
        first, second, t_first, t_second = (a, b, ta, tb) if i % 2 else (b, a, tb, ta)
        began = clock()
        first()
        mid = clock()
        second()
        t_first.append(mid - began)
        t_second.append(clock() - mid)
    return sorted(ta), sorted(tb)


def percentiles(benchmark: Any) -> tuple[float, float] | None:
    """(p50, p99) of a finished benchmark's rounds, or None when benchmarks are disabled."""
    stats = getattr(benchmark, "stats", None)
    if stats is None:
        return None
    data = sorted(stats.stats.data)
    return data[len(data) // 2], data[min(len(data) - 1, int(len(data) * 0.99))]
