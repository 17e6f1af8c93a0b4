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


# ---- the server's way: outcomes queued as they are, masked and encoded by the writer ---------


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_cpu_per_logged_decision(benchmark: Any, tmp_path: Path, engine: Engine, fmt: str) -> None:
    """CPU time one logged decision costs the server's process, in its two threads: the event
    loop's (`LogRecorder.record`, against `NullRecorder`) and the writer's (masking and encoding
    from memoized pieces, writing). As the server decodes them, requests are fresh dicts that
    share their attribute maps (the decoder keeps decoded maps by their bytes)."""
    import asyncio
    import statistics
    import time

    from pdp.server.recorder import LogRecorder, NullRecorder
    from pdp.server.service import Outcome

    shared = [(c.request, {k: v for k, v in c.request.items() if isinstance(v, dict)}) for c in CASES]
    decisions = [engine.decide(r) for r, _ in shared]

    def fresh(i: int) -> dict[str, Any]:
        request, _ = shared[i % len(shared)]
        return {k: dict(v) if k in ("principal", "resource") else v for k, v in request.items()}

    policy = engine.policy
    outcomes = [
        Outcome(
            decision=decisions[i % len(decisions)],
            decision_id=f"{i:010d}",
            cached=False,
            unauthenticated=False,
            cache_ttl_ms=0,
            request=fresh(i),
            latency_us=5.0,
            schema=engine.schema,
            sensitive_headers=policy.sensitive_headers,
            sensitive_advice=policy.sensitive_advice,
        )
        for i in range(2000)
    ]
    log = DecisionLog(tmp_path / f"decisions.{fmt}", format=fmt, max_bytes=0)
    writer_clock = time.pthread_getcpuclockid(log._thread.ident)  # type: ignore[arg-type]
    on, off = LogRecorder(log, 0), NullRecorder()

    async def feed(recorder: Any) -> float:
        began = time.thread_time()
        for i, outcome in enumerate(outcomes):
            await recorder.record(outcome, "authorize")
            if i % 16 == 0:
                await asyncio.sleep(0)  # let other tasks run, as a server's loop would
        return time.thread_time() - began

    loop_us, writer_us = [], []
    try:
        for _ in range(9):
            base = asyncio.run(feed(off))
            log.flush()
            w = time.clock_gettime(writer_clock)
            spent = asyncio.run(feed(on))
            log.flush()
            writer_us.append((time.clock_gettime(writer_clock) - w) / len(outcomes) * 1e6)
            loop_us.append((spent - base) / len(outcomes) * 1e6)
        benchmark.group = GROUP_CALLER
        benchmark.pedantic(lambda: asyncio.run(feed(on)), rounds=1)
    finally:
        log.close()
    assert log.dropped == 0 and log.write_errors == 0
    loop, writer = statistics.median(loop_us), statistics.median(writer_us)
    benchmark.extra_info.update({"event_loop_us": loop, "writer_us": writer})
    _results.MEDIANS[f"decision_log.server_path.{fmt}"] = (loop + writer) / 1e6
    _results.NOTES.append(
        f"decision log ({fmt}), the server's way: {loop + writer:.1f} us of CPU per logged decision, "
        f"{loop:.1f} us on the event loop (record) + {writer:.1f} us in the writer thread (median of 9 x 2000)"
    )


# ---- the server: throughput with the decision log off and on --------------------------------
#
# Real `pdp serve` processes (decision cache off, so that every call is decided and logged),
# loaded by gRPC clients in this process at concurrency 16 and 64 with the same request. The
# machine is shared and its load moves from one second to the next, so the servers are loaded
# in turns of a few hundred calls (a fraction of a second), the log-off server and each log-on
# server back to back in a rotating order, for many rounds: a drift in load then hits all of them
# alike. Reported per log-on server: the ratio of the total rates (all calls over all the time
# spent on them), and the median and quartiles of the per-round ratios. Besides calls per second,
# the CPU time each server process used per call (from /proc, Linux) says how much work logging
# adds per call; it is less moved by other jobs on the machine than the rate.
#
# Set PDP_BENCH_COMPARE_ROOT to another checkout of this project to add a log-on server running
# that checkout's code (a before/after comparison in one run), and PDP_BENCH_MSGPACK=1 to add a
# log-on server writing msgpack.

CONCURRENCY = (16, 64)
ROUNDS = 60
CHUNK = 320  # calls per turn
LOG_COST_TARGET = 0.05


@pytest.fixture(scope="module")
def log_servers(tmp_path_factory: pytest.TempPathFactory) -> Any:
    import os

    from tests.server.conftest import ROOT, Server

    folder = tmp_path_factory.mktemp("log-servers")
    common = [str(ROOT / "policies"), "--port", "0", "--cache-size", "0", "--reload-interval", "0"]
    roots = {"off": ROOT, "on": ROOT}
    if os.environ.get("PDP_BENCH_MSGPACK"):
        roots["on (msgpack)"] = ROOT
    other = os.environ.get("PDP_BENCH_COMPARE_ROOT")
    if other:
        roots["on (compared checkout)"] = Path(other)
    started: dict[str, Any] = {}
    try:
        for name, root in roots.items():
            args = list(common)
            if name != "off":
                fmt = "msgpack" if "msgpack" in name else "jsonl"
                args += ["--decision-log", str(folder / f"{len(started)}.{fmt}"), "--decision-log-format", fmt]
            started[name] = Server(args, root)
        yield started
    finally:
        for server in started.values():
            server.stop()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 where /proc is not there)."""
    import os

    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _turns(servers: dict[str, Any], concurrency: int, rounds: int, chunk: int) -> list[dict[str, Any]]:
    """Per round and server: (calls, seconds, server CPU seconds) of one turn of `chunk` calls,
    `concurrency` in flight on the server's channel; the servers take turns, the order rotating."""
    import asyncio
    import time

    import grpc

    from pdp.v1 import authorization_pb2_grpc as pb_grpc
    from tests.server.conftest import authorize_request, user

    request = authorize_request(user("bob"))
    channels = {name: grpc.aio.insecure_channel(s.target) for name, s in servers.items()}
    try:
        stubs = {name: pb_grpc.AuthorizationServiceStub(c) for name, c in channels.items()}  # type: ignore[no-untyped-call]
        per_task = max(1, chunk // concurrency)

        async def turn(name: str) -> tuple[int, float, float]:
            stub = stubs[name]

            async def worker() -> None:
                for _ in range(per_task):
                    await stub.Authorize(request)

            pid = servers[name].proc.pid
            cpu = _cpu_seconds(pid)
            began = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            elapsed = time.perf_counter() - began
            return per_task * concurrency, elapsed, _cpu_seconds(pid) - cpu

        names = list(servers)
        for name in names:  # warm up
            await turn(name)
        out = []
        for r in range(rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            out.append({name: await turn(name) for name in order})
        return out
    finally:
        for c in channels.values():
            await c.close()


@pytest.mark.parametrize("concurrency", CONCURRENCY)
def test_server_throughput_log_on_vs_off(benchmark: Any, log_servers: dict[str, Any], concurrency: int) -> None:
    import asyncio
    import statistics

    rounds = asyncio.run(_turns(log_servers, concurrency, ROUNDS, CHUNK))
    benchmark.group = "decision log: server throughput"
    benchmark.pedantic(lambda: asyncio.run(_turns({"on": log_servers["on"]}, concurrency, 1, CHUNK)), rounds=1)

    def total(name: str) -> tuple[float, float]:
        calls = sum(r[name][0] for r in rounds)
        return calls / sum(r[name][1] for r in rounds), sum(r[name][2] for r in rounds) / calls

    off_rate, off_cpu = total("off")
    for name in list(log_servers)[1:]:
        rate, cpu = total(name)
        cost = 1 - rate / off_rate
        per_round = [1 - (r[name][0] / r[name][1]) / (r["off"][0] / r["off"][1]) for r in rounds]
        q1, median, q3 = statistics.quantiles(per_round, n=4)
        benchmark.extra_info[f"log_cost[{name}]"] = cost
        benchmark.extra_info[f"calls_per_s[{name}]"] = rate
        _results.MEDIANS[f"decision_log.server_cost.{name}.c{concurrency}"] = cost
        verdict = "meets target" if cost <= LOG_COST_TARGET else "MISSES target"
        line = (
            f"decision log {name}, concurrency {concurrency}: {rate:.0f} calls/s vs {off_rate:.0f} off: logging "
            f"costs {cost * 100:.1f}% of throughput (target <= {LOG_COST_TARGET * 100:.0f}%: {verdict}); per "
            f"round of {CHUNK} calls each: median {median * 100:.1f}%, quartiles {q1 * 100:.1f} to {q3 * 100:.1f}%"
        )
        if off_cpu > 0:
            benchmark.extra_info[f"cpu_per_call_added[{name}]"] = cpu / off_cpu - 1
            line += f"; server CPU per call {cpu * 1e6:.0f} vs {off_cpu * 1e6:.0f} us off: {(cpu / off_cpu - 1) * 100:+.1f}%"
        _results.NOTES.append(line)
