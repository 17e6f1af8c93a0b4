"""Scaling: compile time, memory and decision cost for policy sets of 10 to 10,000 rules.

The policy sets come from benchmarks/generate.py (N rules over N/10 resource types, ten rules per
type, so a typical bucket is the same size at every N). Compile time is `Engine.from_source(text)`
(parse, check, generate code, validate and exec it), always cold: the parser keeps parse results
per file text (policy_lang.parser), so every compile gets a text of its own (a trailing comment
naming the round) and that cache is emptied before each one. Memory is measured with tracemalloc in a
separate compile (tracing slows allocation, so it is never the timed one): the peak above the
starting point while compiling, and what stays allocated afterwards with the engine alive.
"""

from __future__ import annotations

import gc
import itertools
import time
import tracemalloc
from typing import Any

import pytest

from benchmarks import _results
from benchmarks.generate import EXPECTED, SIZES, policy_source, typical_requests
from pdp import Engine
from policy_lang import parser

COMPILE_ROUNDS = {10: 5, 100: 5, 1_000: 3, 10_000: 2}
MIB = 2**20

_engines: dict[int, Engine] = {}
_sources: dict[int, str] = {}
_compiles = itertools.count()


def source(size: int) -> str:
    if size not in _sources:
        _sources[size] = policy_source(size)
    return _sources[size]


def _clear_parse_cache() -> None:
    cache = getattr(parser, "_parse_cached", None)
    if cache is not None and hasattr(cache, "cache_clear"):
        cache.cache_clear()


def cold_source(size: int) -> str:
    """The policy text of a size, unique to this compile, with the parser's cache emptied."""
    _clear_parse_cache()
    gc.collect()
    return f"{source(size)}\n// compile {next(_compiles)}\n"


def _warm_up() -> None:
    """Build the grammar and other one-time state first, so no size pays for it."""
    Engine.from_source(policy_source(10))


def traced_compile(size: int) -> tuple[Engine, dict[str, float]]:
    _warm_up()
    text = cold_source(size)
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        began = time.perf_counter()
        engine = Engine.from_source(text)
        elapsed = time.perf_counter() - began
        peak = tracemalloc.get_traced_memory()[1]
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0]
        _clear_parse_cache()
        gc.collect()
        engine_only = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return engine, {
        "peak_mib": (peak - start) / MIB,
        "retained_mib": (retained - start) / MIB,  # the engine, plus the parser's cached AST of the text
        "engine_only_mib": (engine_only - start) / MIB,  # the engine alone, parse cache emptied
        "traced_compile_s": elapsed,
    }


def engine_for(size: int) -> Engine:
    """The compiled engine of a size; compiled once, under tracemalloc, which records its memory."""
    if size not in _engines:
        engine, memory = traced_compile(size)
        _engines[size] = engine
        _results.MEMORY[size] = memory
        print(
            f"\n[memory] {size:,} rules: peak during compile {memory['peak_mib']:.1f} MiB, "
            f"retained {memory['retained_mib']:.1f} MiB, of which the engine {memory['engine_only_mib']:.1f} MiB "
            f"(traced compile took {memory['traced_compile_s']:.1f} s)"
        )
    return _engines[size]


@pytest.mark.parametrize("size", SIZES)
def test_compile(benchmark: Any, size: int) -> None:
    benchmark.group = "scaling: compile (Engine.from_source)"
    text = source(size)
    _warm_up()
    texts: list[str] = []

    def setup() -> tuple[tuple[str], dict[str, Any]]:
        texts.append(cold_source(size))
        return (texts[-1],), {}

    engine = benchmark.pedantic(Engine.from_source, setup=setup, rounds=COMPILE_ROUNDS[size], iterations=1)
    assert len(engine.policy.checked.rules) == size + 2
    _results.record(f"scaling.compile.{size}", benchmark)
    del engine
    # for comparison, untimed by the benchmark: the last text again, its parse now cached by the parser
    gc.collect()
    began = time.perf_counter()
    Engine.from_source(texts[-1])
    recompile = time.perf_counter() - began
    _results.MEDIANS[f"scaling.recompile.{size}"] = recompile
    engine_for(size)  # one more compile, under tracemalloc (untimed), which records the memory
    memory = _results.MEMORY[size]
    benchmark.extra_info.update(
        {
            "rules": size + 2,
            "resource_types": size // 10 or 1,
            "source_bytes": len(text),
            "peak_compile_mib": round(memory["peak_mib"], 1),
            "retained_mib": round(memory["retained_mib"], 1),
            "engine_only_mib": round(memory["engine_only_mib"], 1),
            "recompile_same_text_s": round(recompile, 3),
        }
    )


@pytest.mark.parametrize("size", SIZES)
def test_decide(benchmark: Any, size: int) -> None:
    benchmark.group = "scaling: decide (3 requests on a typical bucket)"
    engine = engine_for(size)
    decide = engine.decide
    requests = typical_requests(size)
    assert [decide(r).allowed for r in requests] == EXPECTED
    result = benchmark(lambda: [decide(r).allowed for r in requests])
    assert result == EXPECTED
    benchmark.extra_info.update({"rules": size + 2, "buckets": len(engine.policy.buckets)})
    _results.record(f"scaling.decide.{size}", benchmark, per=len(requests))
    if size == max(SIZES):  # the headline ratio again, with the smallest size timed back to back
        small = engine_for(min(SIZES)).decide
        small_requests = typical_requests(min(SIZES))
        ratio = _results.interleaved_ratio(
            lambda: [decide(r).allowed for r in requests], lambda: [small(r).allowed for r in small_requests]
        )
        _results.INTERLEAVED[f"decide at {max(SIZES):,} / at {min(SIZES)} rules"] = ratio
        benchmark.extra_info["interleaved_over_smallest"] = [round(q, 3) for q in ratio]
