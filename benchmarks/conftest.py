"""Collects benchmarks/bench_*.py (pyproject's python_files stays test_*.py) and prints a summary
of the figures and ratios measured in this run, against the targets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks import _results

ACME_IMPLS = (
    ("engine", "engine"),
    ("baseline", "hand-written baseline"),
    ("empty_loop", "empty function, same loop (overhead)"),
    ("cedarpy_prepared", "cedarpy, prepared inputs"),
    ("cedarpy_batch", "cedarpy, one batch call"),
    ("cedarpy_end_to_end", "cedarpy, end to end"),
    ("casbin_prepared", "pycasbin, prepared inputs"),
    ("casbin_end_to_end", "pycasbin, end to end"),
)
PEERS = ("cedarpy_prepared", "cedarpy_batch", "cedarpy_end_to_end", "casbin_prepared", "casbin_end_to_end")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Module | None:
    # a file named on the command line is collected by pytest itself
    if file_path.suffix == ".py" and file_path.name.startswith("bench_") and not parent.session.isinitpath(file_path):
        return pytest.Module.from_parent(parent, path=file_path)  # type: ignore[no-any-return]
    return None


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:10.2f} us"


def _verdict(ok: bool) -> str:
    return "meets target" if ok else "MISSES target"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    m = _results.MEDIANS
    if not m and not _results.MEMORY and not _results.NOTES and not _results.INTERLEAVED:
        return
    w = terminalreporter.write_line
    terminalreporter.section("pdp benchmark summary (medians of this run)")
    if any(f"acme.{key}" in m for key, _ in ACME_IMPLS):
        w("acme request set, per request:")
        for key, label in ACME_IMPLS:
            if f"acme.{key}" in m:
                w(f"  {label:40s} {_us(m[f'acme.{key}'])}")
    engine, baseline = m.get("acme.engine"), m.get("acme.baseline")
    if engine and baseline:
        ratio = engine / baseline
        w(
            f"  engine / baseline                        {ratio:10.2f}x   (target <= 2.0x, aim 1.5x: {_verdict(ratio <= 2.0)})"
        )
        loop = m.get("acme.empty_loop")
        if loop and baseline > loop:
            w(f"  engine / baseline, loop overhead removed {(engine - loop) / (baseline - loop):10.2f}x")
    peers = {k: m[f"acme.{k}"] for k in PEERS if f"acme.{k}" in m}
    if engine and peers:
        fastest = min(peers, key=peers.__getitem__)
        factor = peers[fastest] / engine
        w(f"  fastest peer ({fastest}) / engine {factor:8.1f}x   (target >= 10x: {_verdict(factor >= 10)})")
        cedar = [v for k, v in peers.items() if k.startswith("cedarpy")]
        casbin = [v for k, v in peers.items() if k.startswith("casbin")]
        if cedar:
            w(f"  fastest cedarpy / engine                 {min(cedar) / engine:10.1f}x")
        if casbin:
            w(f"  fastest pycasbin / engine                {min(casbin) / engine:10.1f}x")
    cases = [k.split(".")[1] for k in m if k.startswith("per_request.") and k.endswith(".engine")]
    cases = [c for c in cases if f"per_request.{c}.baseline" in m]
    if cases:
        w("acme, one request at a time (engine, baseline, engine/baseline):")
        for case in cases:
            e, b = m[f"per_request.{case}.engine"], m[f"per_request.{case}.baseline"]
            w(f"  {case:40s} {_us(e)} {_us(b)} {e / b:8.2f}x")
    sizes = sorted(int(k.split(".")[-1]) for k in m if k.startswith("scaling.decide."))
    if sizes:
        w("scaling, decide per request on a typical bucket:")
        for size in sizes:
            w(f"  {size:>6,} rules {_us(m[f'scaling.decide.{size}'])}")
        if sizes[0] == 10 and sizes[-1] == 10_000:
            ratio = m["scaling.decide.10000"] / m["scaling.decide.10"]
            w(f"  decide at 10,000 / at 10                 {ratio:10.2f}x   (target <= 1.3x: {_verdict(ratio <= 1.3)})")
    sizes = sorted(int(k.split(".")[-1]) for k in m if k.startswith("scaling.compile."))
    if sizes:
        w("scaling, compile (Engine.from_source):")
        for size in sizes:
            again = m.get(f"scaling.recompile.{size}")
            extra = f"   (same text again, parse cached: {again:.3f} s, one run)" if again is not None else ""
            w(f"  {size:>6,} rules {m[f'scaling.compile.{size}']:10.3f} s{extra}")
        if 10_000 in sizes:
            w(
                f"  compile of 10,000 rules: {m['scaling.compile.10000']:.2f} s (target < 2 s: "
                f"{_verdict(m['scaling.compile.10000'] < 2.0)})"
            )
    if _results.MEMORY:
        w("scaling, memory (tracemalloc, separate traced compile):")
        for size, mem in sorted(_results.MEMORY.items()):
            w(
                f"  {size:>6,} rules  peak during compile {mem['peak_mib']:8.1f} MiB   retained {mem['retained_mib']:8.1f} MiB"
                f" ({mem['engine_only_mib']:.1f} MiB once the parser's cache is emptied)"
            )
    if _results.INTERLEAVED:
        w("the same ratios measured interleaved (two sides timed back to back in ~3 ms slices; median [quartiles]):")
        for label, (q1, q2, q3) in _results.INTERLEAVED.items():
            w(f"  {label:40s} {q2:10.2f}x   [{q1:.2f}-{q3:.2f}]")
    for note in _results.NOTES:
        w(f"note: {note}")
