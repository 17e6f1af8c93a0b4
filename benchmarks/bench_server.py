"""The gRPC decision point against itself: Authorize vs an empty RPC, cache, batches,
throughput with and without the decision log, and tail latency while policies reload.

All servers are real `pdp serve` processes on loopback; clients run in this process, so
client and server share the machine's two cores. Only ratios taken in one run mean much, and
the paired ones (`test_vs_empty_rpc_paired`: each call alternating with an empty RPC on the
same channel, and interleaved in slices) are the ones a drift in load cannot bias.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks import _results
from pdp.v1 import authorization_pb2 as pb
from pdp.v1 import authorization_pb2_grpc as pb_grpc
from tests.server.conftest import ROOT, Server, authorize_request, user

ROUNDS = 2000
LATENCY: dict[str, tuple[float, float]] = {}  # name -> (p50, p99) seconds


def _record(name: str, benchmark: Any) -> None:
    found = _results.percentiles(benchmark)
    if found:
        LATENCY[name] = found
        _results.MEDIANS[f"server_{name}"] = found[0]


def _note_ratio(label: str, a: str, b: str, target: str) -> None:
    if a in LATENCY and b in LATENCY:
        (a50, a99), (b50, b99) = LATENCY[a], LATENCY[b]
        _results.NOTES.append(
            f"{label}: p50 {a50 * 1e6:.0f} us / {b50 * 1e6:.0f} us = {a50 / b50:.2f}x, "
            f"p99 {a99 * 1e6:.0f} us / {b99 * 1e6:.0f} us = {a99 / b99:.2f}x ({target})"
        )


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    folder = tmp_path_factory.mktemp("bench")
    reloading = folder / "policies"
    shutil.copytree(ROOT / "policies", reloading, ignore=shutil.ignore_patterns("*_test.toml"))
    started = {
        "cached": Server([str(ROOT / "policies"), "--port", "0", "--reload-interval", "0"], ROOT),
        "uncached": Server(
            [str(ROOT / "policies"), "--port", "0", "--cache-size", "0", "--reload-interval", "0"], ROOT
        ),
        "logging": Server(
            [
                str(ROOT / "policies"),
                "--port",
                "0",
                "--cache-size",
                "0",
                "--reload-interval",
                "0",
                "--decision-log",
                str(folder / "decisions.jsonl"),
            ],
            ROOT,
        ),  # fmt: skip
        "reloading": Server([str(reloading), "--port", "0", "--cache-size", "0", "--reload-interval", "0.25"], ROOT),
    }
    started["reloading"].policy_dir = reloading  # type: ignore[attr-defined]
    yield started
    for server in started.values():
        server.stop()


def _health_call(server: Server) -> Any:
    stub = health_pb2_grpc.HealthStub(server.channel())
    request = health_pb2.HealthCheckRequest(service="")
    return lambda: stub.Check(request)


def _authorize_call(server: Server, msg: pb.AuthorizeRequest | None = None) -> Any:
    stub = server.stub()
    request = msg or authorize_request(user("bob"))
    return lambda: stub.Authorize(request)


def test_empty_rpc(benchmark: Any, servers: dict[str, Server]) -> None:
    benchmark.group = "server: one call"
    benchmark.pedantic(_health_call(servers["uncached"]), rounds=ROUNDS, warmup_rounds=200)
    _record("empty_rpc", benchmark)


def test_authorize(benchmark: Any, servers: dict[str, Server]) -> None:
    benchmark.group = "server: one call"
    benchmark.pedantic(_authorize_call(servers["uncached"]), rounds=ROUNDS, warmup_rounds=200)
    _record("authorize", benchmark)
    _note_ratio("Authorize vs empty RPC (cache off)", "authorize", "empty_rpc", "target p50 <= 1.1x, p99 <= 1.2x")


def test_authorize_cache_hit(benchmark: Any, servers: dict[str, Server]) -> None:
    benchmark.group = "server: one call"
    benchmark.pedantic(_authorize_call(servers["cached"]), rounds=ROUNDS, warmup_rounds=200)
    _record("authorize_cache_hit", benchmark)
    _note_ratio("cache hit vs miss", "authorize_cache_hit", "authorize", "lower is better")


def _batch_request() -> pb.AuthorizeBatchRequest:
    """One principal and context, 50 documents (4 distinct ids) x read and write: 100 decisions."""
    resources = ["doc-plan", "doc-merger", "doc-handbook", "doc-roadmap"]
    items = [
        pb.ResourceActions(resource=pb.Entity(type="Document", id=resources[i % 4]), actions=["read", "write"])
        for i in range(50)
    ]
    probe = authorize_request(user("bob"))
    return pb.AuthorizeBatchRequest(principal=probe.principal, context=probe.context, items=items)


def test_batch_of_100(benchmark: Any, servers: dict[str, Server]) -> None:
    benchmark.group = "server: one call"
    stub = servers["uncached"].stub()
    request = _batch_request()
    assert len(stub.AuthorizeBatch(request).results) == 100
    benchmark.pedantic(lambda: stub.AuthorizeBatch(request), rounds=300, warmup_rounds=20)
    _record("batch_100", benchmark)
    _note_ratio("batch of 100 decisions vs one empty RPC", "batch_100", "empty_rpc", "target p50 <= 2x")


def _pct(data: list[float], q: float) -> float:
    return data[min(len(data) - 1, int(len(data) * q))]


@pytest.mark.parametrize("call", ["authorize", "batch_100"])
def test_vs_empty_rpc_paired(benchmark: Any, servers: dict[str, Server], call: str) -> None:
    """The targets again, each call paired with an empty RPC on the same server (and the same
    channel) in one loop, and interleaved in slices: load drift cannot bias these ratios."""
    benchmark.group = "server: paired with an empty RPC"
    channel = servers["uncached"].channel()
    health, stub = health_pb2_grpc.HealthStub(channel), pb_grpc.AuthorizationServiceStub(channel)
    probe = health_pb2.HealthCheckRequest(service="")
    empty = lambda: health.Check(probe)  # noqa: E731
    if call == "authorize":
        single = authorize_request(user("bob"))
        fn, pairs, target = (lambda: stub.Authorize(single)), ROUNDS, "target p50 <= 1.1x, p99 <= 1.2x"
        label = "Authorize"
    else:
        request = _batch_request()
        fn, pairs, target = (lambda: stub.AuthorizeBatch(request)), ROUNDS // 4, "target p50 <= 2x"
        label = "batch of 100"
    c50 = _paired_with_empty(benchmark, fn, empty, pairs, label, target)
    _results.MEDIANS[f"server_{call}_paired"] = c50
    _results.INTERLEAVED[f"{label} / empty RPC"] = _results.interleaved_ratio(fn, empty, rounds=41, slice_s=0.02)
    channel.close()


def _paired_with_empty(benchmark: Any, fn: Any, empty: Any, pairs: int, label: str, target: str) -> float:
    """`fn` alternating with an empty RPC, after a warm-up; notes p50 and p99 of both; the p50 of `fn`."""
    for _ in range(100):
        fn()
        empty()
    measured, base = _results.paired(fn, empty, pairs)
    benchmark.pedantic(fn, rounds=1)
    (c50, c99), (e50, e99) = (_pct(measured, 0.5), _pct(measured, 0.99)), (_pct(base, 0.5), _pct(base, 0.99))
    benchmark.extra_info.update({"p50_us": c50 * 1e6, "empty_p50_us": e50 * 1e6, "p50_ratio": c50 / e50})
    _results.NOTES.append(
        f"{label} vs empty RPC (paired calls): p50 {c50 * 1e6:.0f} us / {e50 * 1e6:.0f} us = {c50 / e50:.2f}x, "
        f"p99 {c99 * 1e6:.0f} us / {e99 * 1e6:.0f} us = {c99 / e99:.2f}x ({target})"
    )
    return c50


def test_floor_fixed_answer_vs_empty_rpc_paired(benchmark: Any, servers: dict[str, Server], tmp_path: Path) -> None:
    """The paired Authorize measure against a server whose Authorize returns the real answer's
    bytes without deciding (`floor_server.py`): what the call costs apart from our handler."""
    benchmark.group = "server: paired with an empty RPC"
    request = authorize_request(user("bob"))
    answer = tmp_path / "answer.bin"
    answer.write_bytes(servers["uncached"].stub().Authorize(request).SerializeToString())
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.floor_server", str(answer)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        channel = grpc.insecure_channel(f"127.0.0.1:{int(proc.stdout.readline())}")
        health, stub = health_pb2_grpc.HealthStub(channel), pb_grpc.AuthorizationServiceStub(channel)
        probe = health_pb2.HealthCheckRequest(service="")
        fixed, empty = (lambda: stub.Authorize(request)), (lambda: health.Check(probe))
        label, target = "floor: fixed-answer Authorize", "the wire's share of the Authorize ratio"
        _paired_with_empty(benchmark, fixed, empty, ROUNDS, label, target)
        channel.close()
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def _load(target: str, concurrency: int, calls: int) -> float:
    """Calls per second with `concurrency` calls in flight on one channel."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = pb_grpc.AuthorizationServiceStub(channel)
        request = authorize_request(user("bob"))
        await stub.Authorize(request)
        per_task = calls // concurrency

        async def worker() -> None:
            for _ in range(per_task):
                await stub.Authorize(request)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return per_task * concurrency / (time.perf_counter() - began)


@pytest.mark.parametrize("concurrency", [16, 64])
def test_throughput_logging_on_vs_off(benchmark: Any, servers: dict[str, Server], concurrency: int) -> None:
    benchmark.group = "server: throughput"
    calls = 4000
    off, on = [], []
    for _ in range(3):  # alternate, so that a drift in load hits both
        off.append(asyncio.run(_load(servers["uncached"].target, concurrency, calls)))
        on.append(asyncio.run(_load(servers["logging"].target, concurrency, calls)))
    benchmark.pedantic(lambda: asyncio.run(_load(servers["logging"].target, concurrency, 1000)), rounds=1)
    off_rate, on_rate = statistics.median(off), statistics.median(on)
    benchmark.extra_info.update({"calls_per_s_log_off": off_rate, "calls_per_s_log_on": on_rate})
    _results.NOTES.append(
        f"throughput at concurrency {concurrency}: {off_rate:.0f}/s with the decision log off, "
        f"{on_rate:.0f}/s on: logging costs {(1 - on_rate / off_rate) * 100:.1f}% (target <= 5%)"
    )


def test_p99_while_reloading_every_second(benchmark: Any, servers: dict[str, Server]) -> None:
    benchmark.group = "server: reloads"
    server = servers["reloading"]
    policy: Path = server.policy_dir / "acme" / "documents.pdp"  # type: ignore[attr-defined]
    original = policy.read_text()
    stop = threading.Event()

    def rewrite() -> None:
        n = 0
        while not stop.wait(1.0):
            n += 1
            policy.write_text(original + f"\n// reload {n}\n")  # a new revision every second

    call = _authorize_call(server)
    steady = []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        call()
        steady.append(time.perf_counter() - t)
    thread = threading.Thread(target=rewrite, daemon=True)
    thread.start()
    try:
        benchmark.pedantic(call, rounds=ROUNDS * 2, warmup_rounds=0)
    finally:
        stop.set()
        thread.join()
        policy.write_text(original)
    steady.sort()
    LATENCY["steady"] = (steady[len(steady) // 2], steady[int(len(steady) * 0.99)])
    _record("reloading", benchmark)
    _note_ratio("Authorize while reloading every second vs steady", "reloading", "steady", "p99 ratio reported")
