"""nginx end to end, with and without `auth_request` to the decision point's HTTP endpoint.

One nginx (tests/gateway/nginx_support.py) serves the same echo upstream at `/direct/...` (no
authorization) and at `/...` (every request first asks the decision point); a client keeps one
connection to nginx open. The added cost of authorization is the difference between the two,
measured interleaved (direct, authorized, direct, ...) so that a drift in load hits both, and
reported as p50/p99 differences and ratios. The decision point's own share is measured by
calling its check endpoint directly. nginx, the decision point, the upstream and the client
share this machine's cores; only ratios taken in one run mean much.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _results
from tests.gateway.http_fixtures import Pdp, bearer
from tests.gateway.nginx_support import Nginx, Upstream, nginx_binary

ROUNDS = 2000
DOC_PLAN = "/tenants/acme/documents/doc-plan"
LATENCY: dict[str, tuple[float, float]] = {}  # name -> (p50, p99) seconds


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    binary, why = nginx_binary()
    if binary is None:
        pytest.skip(why)
    folder: Path = tmp_path_factory.mktemp("bench_nginx")
    app = Upstream()
    pdp = Pdp(folder)
    proxy = Nginx(binary, folder / "nginx", pdp.http_port, app.port)
    yield {"nginx": proxy, "pdp": pdp, "app": app}
    proxy.stop()
    pdp.stop()
    app.stop()


def _caller(port: int, target: str, headers: dict[str, str], status: int = 200) -> tuple[Callable[[], None], Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def call() -> None:
        conn.request("GET", target, headers=headers)
        response = conn.getresponse()
        response.read()
        assert response.status == status, response.status

    call()
    return call, conn


def _percentiles(samples: list[float]) -> tuple[float, float]:
    data = sorted(samples)
    return data[len(data) // 2], data[min(len(data) - 1, int(len(data) * 0.99))]


def _record(name: str, benchmark: Any) -> None:
    found = _results.percentiles(benchmark)
    if found:
        LATENCY[name] = found
        _results.MEDIANS[f"nginx_{name}"] = found[0]


def test_nginx_direct(benchmark: Any, stack: dict[str, Any]) -> None:
    benchmark.group = "nginx: one request to the upstream"
    call, conn = _caller(stack["nginx"].port, "/direct" + DOC_PLAN, bearer())
    try:
        benchmark.pedantic(call, rounds=ROUNDS, warmup_rounds=200)
    finally:
        conn.close()
    _record("direct", benchmark)


def test_nginx_auth_request(benchmark: Any, stack: dict[str, Any]) -> None:
    benchmark.group = "nginx: one request to the upstream"
    call, conn = _caller(stack["nginx"].port, DOC_PLAN, bearer())
    try:
        benchmark.pedantic(call, rounds=ROUNDS, warmup_rounds=200)
    finally:
        conn.close()
    _record("auth_request", benchmark)


def test_pdp_check_alone(benchmark: Any, stack: dict[str, Any]) -> None:
    """The decision point's HTTP check without nginx: token verification, routing, decision, log."""
    benchmark.group = "nginx: one request to the upstream"
    headers = {"X-Original-URI": DOC_PLAN, "X-Original-Method": "GET", **bearer()}
    call, conn = _caller(stack["pdp"].http_port, "/", headers)
    try:
        benchmark.pedantic(call, rounds=ROUNDS, warmup_rounds=200)
    finally:
        conn.close()
    _record("pdp_check", benchmark)


def test_added_cost_interleaved(benchmark: Any, stack: dict[str, Any]) -> None:
    """Direct and authorized requests alternating on two keep-alive connections: the difference
    is what auth_request adds to a request."""
    benchmark.group = "nginx: added cost"
    direct, c1 = _caller(stack["nginx"].port, "/direct" + DOC_PLAN, bearer())
    authorized, c2 = _caller(stack["nginx"].port, DOC_PLAN, bearer())
    plain: list[float] = []
    auth: list[float] = []
    try:
        for _ in range(200):
            direct()
            authorized()
        for i in range(ROUNDS):
            pair = ((direct, plain), (authorized, auth)) if i % 2 else ((authorized, auth), (direct, plain))
            for call, into in pair:
                began = time.perf_counter()
                call()
                into.append(time.perf_counter() - began)
        benchmark.pedantic(authorized, rounds=1)
    finally:
        c1.close()
        c2.close()
    (d50, d99), (a50, a99) = _percentiles(plain), _percentiles(auth)
    benchmark.extra_info.update(
        {"direct_p50_us": d50 * 1e6, "auth_p50_us": a50 * 1e6, "direct_p99_us": d99 * 1e6, "auth_p99_us": a99 * 1e6}
    )
    _results.NOTES.append(
        f"nginx auth_request vs no authorization (interleaved, {ROUNDS} each): "
        f"p50 {a50 * 1e6:.0f} us vs {d50 * 1e6:.0f} us = +{(a50 - d50) * 1e6:.0f} us ({a50 / d50:.2f}x), "
        f"p99 {a99 * 1e6:.0f} us vs {d99 * 1e6:.0f} us = +{(a99 - d99) * 1e6:.0f} us ({a99 / d99:.2f}x)"
    )
    if "pdp_check" in LATENCY:
        c50, c99 = LATENCY["pdp_check"]
        _results.NOTES.append(
            f"the decision point's HTTP check alone (no nginx): p50 {c50 * 1e6:.0f} us, p99 {c99 * 1e6:.0f} us "
            f"({c50 / max(a50 - d50, 1e-9) * 100:.0f}% of the p50 added by auth_request)"
        )
