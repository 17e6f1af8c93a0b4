"""Envoy ext_authz Check against an empty RPC (health Check) on the same real `pdp serve`.

The Check is what Envoy sends for `GET /tenants/acme/documents/doc-plan?version=3` with a
verified RS256 bearer token (the verifier caches it), a SPIFFE source principal and the usual
pseudo-headers; the answer is an allow with the policy's `x-tenant` header. Client and server
share the machine, so only the ratio means much. Target: Check p50 <= 1.15x the empty RPC.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from benchmarks import _results
from tests.server.conftest import ROOT, Server

ROUNDS = 2000
ISSUER, AUDIENCE = "https://idp.acme.example", "pdp"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
LATENCY: dict[str, tuple[float, float]] = {}  # name -> (p50, p99) seconds


def _record(name: str, benchmark: Any) -> None:
    found = _results.percentiles(benchmark)
    if found:
        LATENCY[name] = found
        _results.MEDIANS[f"envoy_{name}"] = found[0]


def _check_request(bearer: str) -> external_auth_pb2.CheckRequest:
    req = external_auth_pb2.CheckRequest()
    a = req.attributes
    a.source.address.socket_address.address = "10.1.2.3"
    a.source.address.socket_address.port_value = 51234
    a.source.principal = "spiffe://cluster.local/ns/frontend/sa/web"
    a.destination.address.socket_address.address = "10.0.0.5"
    a.destination.address.socket_address.port_value = 8443
    a.destination.principal = "spiffe://cluster.local/ns/docs/sa/docs-api"
    a.request.time.GetCurrentTime()
    http = a.request.http
    path = "/tenants/acme/documents/doc-plan?version=3"
    http.id, http.method, http.path, http.host, http.scheme, http.protocol = (
        "7203441513290713416", "GET", path, "docs.acme.example", "https", "HTTP/2",
    )  # fmt: skip
    http.headers.update(
        {
            ":authority": "docs.acme.example", ":method": "GET", ":path": path, ":scheme": "https",
            "authorization": f"Bearer {bearer}", "user-agent": "curl/8.5.0", "accept": "application/json",
            "x-request-id": "0c2f9a4e-77a1-4c3e", "x-forwarded-proto": "https",
        }
    )  # fmt: skip
    return req


@pytest.fixture(scope="module")
def envoy_bench_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("envoy-bench")
    pem = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (folder / "issuer.pem").write_bytes(pem)
    server = Server(
        [
            str(ROOT / "policies"), "--port", "0", "--reload-interval", "0",
            "--jwt-keys", str(folder / "issuer.pem"), "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE,
        ],
        Path(ROOT),
    )  # fmt: skip
    yield server
    server.stop()


@pytest.fixture(scope="module")
def calls(envoy_bench_server: Server) -> Iterator[dict[str, Any]]:
    now = int(time.time())
    bearer = jwt.encode(
        {
            "iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 3600, "tenant": "acme",
            "roles": {}, "clearance": "restricted", "external": False, "suspended": False,
            "email": "alice@acme.example", "auth_time": now - 60,
        },
        KEY,
        algorithm="RS256",
    )  # fmt: skip
    with grpc.insecure_channel(envoy_bench_server.target) as channel:
        envoy = external_auth_pb2_grpc.AuthorizationStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        check = _check_request(bearer)
        empty = health_pb2.HealthCheckRequest(service="")
        answer = envoy.Check(check)
        assert answer.status.code == 0 and answer.ok_response.headers, answer  # an allow, with headers
        yield {"check": lambda: envoy.Check(check), "empty": lambda: health.Check(empty)}


def test_empty_rpc(benchmark: Any, calls: dict[str, Any]) -> None:
    benchmark.group = "envoy: one call"
    benchmark.pedantic(calls["empty"], rounds=ROUNDS, warmup_rounds=200)
    _record("empty_rpc", benchmark)


def test_envoy_check(benchmark: Any, calls: dict[str, Any]) -> None:
    benchmark.group = "envoy: one call"
    benchmark.pedantic(calls["check"], rounds=ROUNDS, warmup_rounds=200)
    _record("check", benchmark)


def test_envoy_check_vs_empty_rpc_paired(benchmark: Any, calls: dict[str, Any]) -> None:
    """The target: Check p50 <= 1.15x an empty RPC on the same server, both timed in one loop."""
    benchmark.group = "envoy: one call"
    check, empty = _results.paired(calls["check"], calls["empty"], ROUNDS * 2)
    benchmark.pedantic(calls["check"], rounds=1)

    def p(data: list[float], q: float) -> float:
        return data[min(len(data) - 1, int(len(data) * q))]

    (c50, c99), (e50, e99) = (p(check, 0.5), p(check, 0.99)), (p(empty, 0.5), p(empty, 0.99))
    benchmark.extra_info.update({"check_p50_us": c50 * 1e6, "empty_p50_us": e50 * 1e6, "p50_ratio": c50 / e50})
    _results.MEDIANS["envoy_check_paired"] = c50
    _results.MEDIANS["envoy_empty_rpc_paired"] = e50
    _results.NOTES.append(
        f"Envoy Check vs empty RPC (paired calls): p50 {c50 * 1e6:.0f} us / {e50 * 1e6:.0f} us = {c50 / e50:.2f}x, "
        f"p99 {c99 * 1e6:.0f} us / {e99 * 1e6:.0f} us = {c99 / e99:.2f}x (target p50 <= 1.15x)"
    )
    if "check" in LATENCY and "empty_rpc" in LATENCY:
        (s50, s99), (m50, m99) = LATENCY["check"], LATENCY["empty_rpc"]
        _results.NOTES.append(
            f"Envoy Check vs empty RPC (separate runs): p50 {s50 * 1e6:.0f} us / {m50 * 1e6:.0f} us = "
            f"{s50 / m50:.2f}x, p99 {s99 * 1e6:.0f} us / {m99 * 1e6:.0f} us = {s99 / m99:.2f}x"
        )


def test_envoy_check_interleaved(benchmark: Any, calls: dict[str, Any]) -> None:
    """The same ratio with the two calls timed back to back in slices, so load drift hits both."""
    benchmark.group = "envoy: one call"
    q1, q2, q3 = _results.interleaved_ratio(calls["check"], calls["empty"], rounds=41, slice_s=0.02)
    benchmark.pedantic(calls["check"], rounds=1)
    benchmark.extra_info.update({"ratio_q1": q1, "ratio_median": q2, "ratio_q3": q3})
    _results.INTERLEAVED["Envoy Check / empty RPC"] = (q1, q2, q3)
