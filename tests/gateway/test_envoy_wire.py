"""The Envoy servicer in process: reading only the headers the routes need decides as reading
them all, and answers spliced together as bytes are the messages built field by field."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from envoy.service.auth.v3 import external_auth_pb2

from pdp.cache import DecisionCache
from pdp.decision import Decision
from pdp.server import app
from pdp.server.config import Settings
from pdp.server.envoy import EnvoyAuthorizationServicer, http_request, request_headers
from pdp.server.metrics import Metrics
from pdp.server.policy_store import PolicyStore
from pdp.server.service import DecisionService, Outcome
from tests.gateway.test_envoy import AUDIENCE, DOC, ISSUER, PUBLIC_PEM, check_request, token
from tests.server.conftest import ROOT


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Outcome] = []

    async def record(self, outcome: Outcome, source: str) -> None:
        self.seen.append(outcome)


def make(tmp_path: Path, cache_size: int = 1000, **settings: Any) -> tuple[EnvoyAuthorizationServicer, Recorder]:
    (tmp_path / "issuer.pem").write_bytes(PUBLIC_PEM)
    config = Settings(
        policy_dir=str(ROOT / "policies"), cache_size=cache_size, jwt_keys=(str(tmp_path / "issuer.pem"),),
        jwt_issuer=ISSUER, jwt_audience=AUDIENCE, **settings,
    )  # fmt: skip
    store = PolicyStore(config.policy_dir)
    service = DecisionService(
        store,
        cache=DecisionCache(config.cache_size, config.cache_ttl),
        metrics=Metrics(),
        verifier_factory=app._verifier_factory(app.token_config(config)),  # noqa: SLF001
        token_required=True,
    )
    store._on_swap = service.on_swap  # noqa: SLF001
    store.reload(force=True)
    recorder = Recorder()
    return EnvoyAuthorizationServicer(service, recorder, config), recorder


def check(servicer: EnvoyAuthorizationServicer, request: Any) -> Any:
    raw = asyncio.run(servicer.check(request, None))  # type: ignore[arg-type]
    return external_auth_pb2.CheckResponse.FromString(raw)


def test_only_the_named_headers_are_read_when_envoy_sent_them() -> None:
    names = ("authorization", "x-auth-mfa")
    plain = check_request(bearer="t", extra={"x-auth-mfa": "true"}).attributes.request.http
    assert request_headers(plain, names) == {"authorization": "Bearer t", "x-auth-mfa": "true"}
    full = request_headers(plain)
    assert full["authorization"] == "Bearer t" and ":path" in full
    # names that are not all lower-case, or a header_map: everything is read, as without names
    for http in (
        check_request(bearer="t", extra={"X-Auth-Mfa": "true"}).attributes.request.http,
        check_request(bearer="t", mode="header_map").attributes.request.http,
        check_request(bearer="t", mode="both").attributes.request.http,
    ):
        assert request_headers(http, names) == request_headers(http)
    # without a method or a path the pseudo-headers stand in, read in full
    bare = check_request(bearer="t")
    bare.attributes.request.http.method = ""
    assert http_request(bare, names).method == "GET" and ":method" in http_request(bare, names).headers


@pytest.mark.parametrize(
    "request_",
    [
        check_request(bearer=token("alice")),
        check_request(bearer=token("bob")),  # masked upstream
        check_request(bearer=token("bob"), extra={"X-Auth-Mfa": "true", "x-device-trusted": "true"}),
        check_request(bearer=token("alice"), mode="header_map"),
        check_request("DELETE", bearer=token("carol")),  # forbidden
        check_request(bearer=token("alice", exp=1)),  # expired
        check_request(),  # no token
        check_request(path="/nowhere", bearer=token("alice")),
    ],
)
def test_decisions_are_those_of_the_full_gateway_request(tmp_path: Path, request_: Any) -> None:
    servicer, recorder = make(tmp_path)
    service = servicer.service
    for _ in range(2):  # the second time from the decision cache (when cacheable)
        answer = check(servicer, request_)
        outcome = recorder.seen[-1]
        full = service.decide_http(http_request(request_))
        assert (outcome.decision, outcome.unauthenticated) == (full.decision, full.unauthenticated)
        assert answer == servicer.response(outcome)


def test_spliced_answers_equal_the_built_ones(tmp_path: Path) -> None:
    servicer, _ = make(tmp_path)
    decision = Decision(
        True, ("r",), ({"type": "header", "name": "x-tenant", "value": "acme"}, {"type": "mask", "path": "a.b"})
    )
    for length in (0, 1, 2, 3, 23, 24, 200):
        decision_id = "7" * length
        outcome = Outcome(decision, decision_id, False, False, 0, {}, 1.0)
        answer = external_auth_pb2.CheckResponse.FromString(servicer.encode(outcome))
        expected = external_auth_pb2.CheckResponse()
        expected.CopyFrom(servicer._templates[id(decision)][1])  # noqa: SLF001
        expected.ok_response.headers[0].header.value = decision_id
        expected.dynamic_metadata.fields["decision_id"].string_value = decision_id
        assert answer == expected, length
        assert answer.ok_response.headers[0].header.value == answer.dynamic_metadata["decision_id"] == decision_id


def test_the_message_call_is_the_bytes_call(tmp_path: Path) -> None:
    servicer, recorder = make(tmp_path, envoy_dry_run=True)
    request = check_request("DELETE", bearer=token("carol"))
    raw = asyncio.run(servicer.check(request, None))  # type: ignore[arg-type]
    message = asyncio.run(servicer.Check(request, None))  # type: ignore[arg-type]
    first, second = recorder.seen
    assert message == external_auth_pb2.CheckResponse.FromString(
        raw.replace(first.decision_id.encode(), second.decision_id.encode())
    )
    assert message.dynamic_metadata["real_decision"] == "deny" and message.status.code == 0
    assert DOC in request.attributes.request.http.path
