"""Envoy ext_authz v3 against a real `pdp serve`: Envoy's own message types, a real gRPC client.

The requests look like what Envoy sends: pseudo-headers, a Bearer JWT, the TCP peer as the
source address, a SPIFFE id as the source principal (mTLS / Istio), the query inside `path`,
headers either in `headers` or only in `header_map` (`encode_raw_headers`, `raw_value` bytes).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import code_pb2  # type: ignore[import-untyped]

from pdp import Engine
from pdp.decision import Decision
from pdp.decision_log import read_events
from pdp.gateway.mapping import map_request
from pdp.server.config import Settings
from pdp.server.envoy import EnvoyAuthorizationServicer, http_request
from pdp.server.service import Outcome
from pdp.tokens import TokenConfig, TokenVerifier, merge_principal
from tests.server.conftest import ROOT, Server

ISSUER, AUDIENCE = "https://idp.acme.example", "pdp"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
SPIFFE = "spiffe://cluster.local/ns/frontend/sa/web"
DOC = "/tenants/acme/documents/doc-plan"
OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD

USERS: dict[str, dict[str, Any]] = {
    "alice": {"clearance": "restricted", "roles": {}},  # owns doc-plan, doc-merger, doc-roadmap
    "bob": {"clearance": "confidential", "roles": {"acme": ["viewer"]}},
    "carol": {"clearance": "internal", "roles": {}},
    "erin": {"clearance": "confidential", "roles": {"acme": ["tenant_admin"]}},
}


def claims(sub: str = "alice", **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    out = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 600,
        "tenant": "acme", "external": False, "suspended": False, "email": f"{sub}@acme.example",
        "auth_time": now - 60, **USERS[sub],
    }  # fmt: skip
    out.update(changes)
    return out


def token(sub: str = "alice", key: Any = KEY, **changes: Any) -> str:
    return jwt.encode(claims(sub, **changes), key, algorithm="RS256")


def check_request(
    method: str = "GET",
    path: str = DOC,
    *,
    bearer: str | None = None,
    extra: dict[str, str] | None = None,
    mode: str = "headers",  # "headers", "header_map" (raw values only) or "both"
    ip: str | None = "10.1.2.3",
    principal: str = SPIFFE,
) -> external_auth_pb2.CheckRequest:
    """A CheckRequest as Envoy builds it for an HTTP/2 request through an mTLS listener."""
    req = external_auth_pb2.CheckRequest()
    a = req.attributes
    if ip is not None:
        a.source.address.socket_address.address = ip
        a.source.address.socket_address.port_value = 51234
    a.source.principal = principal
    a.destination.address.socket_address.address = "10.0.0.5"
    a.destination.address.socket_address.port_value = 8443
    a.destination.principal = "spiffe://cluster.local/ns/docs/sa/docs-api"
    a.request.time.GetCurrentTime()
    http = a.request.http
    http.id, http.method, http.path = "7203441513290713416", method, path
    http.host, http.scheme, http.protocol, http.size = "docs.acme.example", "https", "HTTP/2", 0
    headers = {
        ":authority": "docs.acme.example", ":method": method, ":path": path, ":scheme": "https",
        "user-agent": "curl/8.5.0", "accept": "application/json", "x-request-id": "0c2f9a4e-77a1-4c3e",
        "x-forwarded-proto": "https",
    }  # fmt: skip
    if bearer is not None:
        headers["authorization"] = f"Bearer {bearer}"
    headers.update(extra or {})
    if mode in ("headers", "both"):
        http.headers.update(headers)
    if mode in ("header_map", "both"):
        for key, value in headers.items():
            http.header_map.headers.add(key=key, raw_value=value.encode())
    return req


@pytest.fixture(scope="module")
def envoy_keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys")
    (folder / "issuer.pem").write_bytes(PUBLIC_PEM)
    return folder / "issuer.pem"


def server_args(keys: Path, *more: str) -> list[str]:
    return [
        str(ROOT / "policies"), "--port", "0", "--reload-interval", "0", "--jwt-keys", str(keys),
        "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE, *more,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def envoy_server(envoy_keys: Path) -> Iterator[Server]:
    server = Server(server_args(envoy_keys), ROOT)
    yield server
    assert server.stop() == 0, server.output()


@pytest.fixture(scope="module")
def envoy_stub(envoy_server: Server) -> Iterator[external_auth_pb2_grpc.AuthorizationStub]:
    with grpc.insecure_channel(envoy_server.target) as channel:
        yield external_auth_pb2_grpc.AuthorizationStub(channel)


def headers_of(options: Any) -> dict[str, str]:
    return {o.header.key: o.header.value for o in options}


def assert_allowed(r: external_auth_pb2.CheckResponse) -> dict[str, str]:
    assert r.HasField("status") and r.status.code == code_pb2.OK
    assert r.WhichOneof("http_response") == "ok_response"
    for option in r.ok_response.headers:
        assert option.HasField("append") and option.append.value is False
        assert option.append_action == OVERWRITE
    headers = headers_of(r.ok_response.headers)
    assert headers["x-pdp-decision-id"] == r.dynamic_metadata["decision_id"]
    assert r.dynamic_metadata["decision"] == "allow" and r.dynamic_metadata["revision"]
    assert "authorization" in r.ok_response.headers_to_remove
    assert not set(headers) & set(r.ok_response.headers_to_remove)  # Envoy removes after setting
    return headers


def denied(r: external_auth_pb2.CheckResponse, http_status: int) -> dict[str, Any]:
    """Checks the deny envelope and returns the JSON body."""
    assert r.status.code == code_pb2.PERMISSION_DENIED
    assert r.WhichOneof("http_response") == "denied_response"
    assert r.denied_response.status.code == http_status
    headers = headers_of(r.denied_response.headers)
    assert headers["content-type"] == "application/json"
    body: dict[str, Any] = json.loads(r.denied_response.body)
    assert body["decision_id"] == headers["x-pdp-decision-id"] == r.dynamic_metadata["decision_id"]
    assert r.dynamic_metadata["decision"] == "deny"
    text = r.denied_response.body + r.status.message
    assert "acme." not in text and "role:" not in text and "rule" not in text  # no rule ids, no internals
    return body


# ---- allow -----------------------------------------------------------------------------------


def test_owner_reads_with_query_string(envoy_stub: Any) -> None:
    r = envoy_stub.Check(check_request(path=f"{DOC}?version=3&fields=title", bearer=token("alice")), timeout=5)
    headers = assert_allowed(r)
    assert headers["x-tenant"] == "acme"  # the policy's header obligation on document reads
    assert "x-pdp-mask" not in headers  # the owner sees everything
    assert set(headers) == {"x-tenant", "x-pdp-decision-id"}
    assert (
        "x-pdp-mask" in r.ok_response.headers_to_remove and "x-pdp-dry-run-decision" in r.ok_response.headers_to_remove
    )
    assert r.dynamic_metadata["decision_id"] and "dry_run" not in r.dynamic_metadata


@pytest.mark.parametrize("mode", ["headers", "header_map", "both"])
def test_headers_map_or_raw_header_map(envoy_stub: Any, mode: str) -> None:
    r = envoy_stub.Check(check_request(bearer=token("alice"), mode=mode), timeout=5)
    assert assert_allowed(r)["x-tenant"] == "acme"


def test_header_map_wins_over_headers(envoy_stub: Any) -> None:
    req = check_request(bearer=token("alice", key=OTHER), mode="headers")  # a bad token in `headers`
    req.attributes.request.http.header_map.headers.add(key="Authorization", raw_value=f"Bearer {token()}".encode())
    assert_allowed(envoy_stub.Check(req, timeout=5))


def test_repeated_authorization_in_header_map_is_not_a_token(envoy_stub: Any) -> None:
    req = check_request(mode="header_map")
    for sub in ("bob", "alice"):
        req.attributes.request.http.header_map.headers.add(
            key="authorization", raw_value=f"Bearer {token(sub)}".encode()
        )
    denied(envoy_stub.Check(req, timeout=5), 401)


def test_non_owner_read_is_masked_upstream(envoy_stub: Any) -> None:
    headers = assert_allowed(envoy_stub.Check(check_request(bearer=token("bob")), timeout=5))
    assert headers["x-tenant"] == "acme"
    assert headers["x-pdp-mask"] == "resource.ssn,resource.salary"


def test_policy_headers_not_set_are_stripped(envoy_stub: Any) -> None:
    """carol reads the public handbook through a rule without obligations: a client's x-tenant goes."""
    req = check_request(
        path="/tenants/acme/documents/doc-handbook", bearer=token("carol"), extra={"x-tenant": "globex"}
    )
    r = envoy_stub.Check(req, timeout=5)
    headers = assert_allowed(r)
    assert set(headers) == {"x-pdp-decision-id"}
    assert {"authorization", "x-tenant", "x-pdp-mask", "x-pdp-dry-run-decision"} <= set(r.ok_response.headers_to_remove)


def test_mfa_headers_reach_the_context(envoy_stub: Any) -> None:
    path = "/tenants/acme/documents/doc-merger"  # restricted: needs MFA and a trusted device
    body = denied(envoy_stub.Check(check_request(path=path, bearer=token("alice")), timeout=5), 403)
    assert body == {"decision_id": body["decision_id"], "error": "forbidden", "reason": "access denied",
                    "advice": [{"name": "step_up", "value": "mfa"}]}  # fmt: skip
    extra = {"x-auth-mfa": "true", "x-device-trusted": "true"}
    assert_allowed(envoy_stub.Check(check_request(path=path, bearer=token("alice"), extra=extra, mode="header_map")))


# ---- deny ------------------------------------------------------------------------------------


def test_forbidden_is_403_with_a_safe_body(envoy_stub: Any) -> None:
    r = envoy_stub.Check(check_request("PUT", bearer=token("bob")), timeout=5)
    body = denied(r, http_status_pb2.Forbidden)
    assert body == {"decision_id": body["decision_id"], "error": "forbidden", "reason": "access denied"}
    assert "www-authenticate" not in headers_of(r.denied_response.headers)
    assert not r.HasField("ok_response")


def test_missing_token_is_401_with_a_challenge(envoy_stub: Any) -> None:
    r = envoy_stub.Check(check_request(), timeout=5)
    body = denied(r, http_status_pb2.Unauthorized)
    assert body["error"] == "unauthenticated" and body["reason"] == "missing token"
    assert headers_of(r.denied_response.headers)["www-authenticate"] == 'Bearer realm="pdp"'


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (lambda: token(exp=int(time.time()) - 120), "token expired"),
        (lambda: token(key=OTHER), "invalid token"),  # bad signature: not said
        (lambda: token(aud="someone-else"), "invalid token"),
        (lambda: "not.a.token", "invalid token"),
    ],
    ids=["expired", "bad-signature", "wrong-audience", "garbage"],
)
def test_bad_tokens_are_401(envoy_stub: Any, bad: Any, reason: str) -> None:
    r = envoy_stub.Check(check_request(bearer=bad()), timeout=5)
    body = denied(r, 401)
    assert body == {"decision_id": body["decision_id"], "error": "unauthenticated", "reason": reason}
    challenge = headers_of(r.denied_response.headers)["www-authenticate"]
    assert challenge == f'Bearer realm="pdp", error="invalid_token", error_description="{reason}"'


def test_basic_auth_is_not_a_bearer_token(envoy_stub: Any) -> None:
    denied(envoy_stub.Check(check_request(extra={"authorization": "Basic YWxpY2U6cHc="}), timeout=5), 401)


@pytest.mark.parametrize(
    "path",
    [
        "/tenants/acme/unknown/doc-plan",
        "/tenants/acme/documents",
        "/",
        "/tenants/acme/documents/../../admin/audit",
        "/tenants/acme/documents/%2e%2e/%2e%2e/admin/audit",
        "/tenants/acme/documents/%2E%2E/%2E%2E/admin/audit",
        "/tenants/acme/documents/doc-plan%2f..%2f..%2fadmin%2faudit",
        "/tenants/acme/documents/doc-plan%2F..",
        "/tenants/acme/documents/doc%5cplan",
        "/../tenants/acme/documents/doc-plan",
        "/tenants/acme/documents/doc-plan%00",
        "/tenants/acme/documents/doc-plan%zz",
        "tenants/acme/documents/doc-plan",
        "https://docs.acme.example/tenants/acme/documents/doc-plan",
    ],
)
def test_unknown_routes_and_path_tricks_are_403(envoy_stub: Any, path: str) -> None:
    body = denied(envoy_stub.Check(check_request(path=path, bearer=token("alice")), timeout=5), 403)
    assert body["reason"] == "access denied"


def test_unknown_method_is_403(envoy_stub: Any) -> None:
    denied(envoy_stub.Check(check_request("PURGE", bearer=token("alice")), timeout=5), 403)


@pytest.mark.parametrize("ip", ["203.0.113.5", "198.51.100.66"])
def test_blocked_source_ip_denies_even_the_owner(envoy_stub: Any, ip: str) -> None:
    denied(envoy_stub.Check(check_request(bearer=token("alice"), ip=ip), timeout=5), 403)


def test_x_forwarded_for_is_not_the_source(envoy_stub: Any) -> None:
    req = check_request(bearer=token("alice"), ip="203.0.113.5", extra={"x-forwarded-for": "10.1.2.3"})
    denied(envoy_stub.Check(req, timeout=5), 403)


def test_missing_pieces_deny(envoy_stub: Any) -> None:
    tcp = external_auth_pb2.CheckRequest()  # a network-filter (TCP) check: no HTTP attributes
    tcp.attributes.source.address.socket_address.address = "10.1.2.3"
    tcp.attributes.source.principal = SPIFFE
    denied(envoy_stub.Check(tcp, timeout=5), 403)
    denied(envoy_stub.Check(external_auth_pb2.CheckRequest(), timeout=5), 403)
    no_path = check_request(bearer=token("alice"))
    no_path.attributes.request.http.path = ""
    del no_path.attributes.request.http.headers[":path"]
    denied(envoy_stub.Check(no_path, timeout=5), 403)
    no_method = check_request(bearer=token("alice"))
    no_method.attributes.request.http.method = ""
    del no_method.attributes.request.http.headers[":method"]
    denied(envoy_stub.Check(no_method, timeout=5), 403)
    # no source address (a Unix socket peer): the policy needs context.ip, so it fails closed
    denied(envoy_stub.Check(check_request(bearer=token("alice"), ip=None), timeout=5), 403)
    denied(envoy_stub.Check(check_request(bearer=token("alice"), ip="not-an-ip"), timeout=5), 403)


def test_pseudo_headers_stand_in_for_method_and_path(envoy_stub: Any) -> None:
    req = check_request(bearer=token("alice"))
    req.attributes.request.http.method = ""
    req.attributes.request.http.path = ""
    assert_allowed(envoy_stub.Check(req, timeout=5))


# ---- dry run and the decision log ------------------------------------------------------------


def test_dry_run_allows_but_logs_the_real_decision(envoy_keys: Path, tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    server = Server(server_args(envoy_keys, "--envoy-dry-run", "--decision-log", str(log)), ROOT)
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = external_auth_pb2_grpc.AuthorizationStub(channel)
            deny = stub.Check(check_request("PUT", bearer=token("bob")), timeout=5)
            unauthenticated = stub.Check(check_request(), timeout=5)
            allow = stub.Check(check_request(bearer=token("alice")), timeout=5)
    finally:
        assert server.stop() == 0, server.output()
    for r in (deny, unauthenticated, allow):
        assert r.status.code == code_pb2.OK and r.WhichOneof("http_response") == "ok_response"
        assert r.dynamic_metadata["dry_run"] is True and r.dynamic_metadata["decision"] == "allow"
        assert "authorization" in r.ok_response.headers_to_remove
    assert headers_of(deny.ok_response.headers)["x-pdp-dry-run-decision"] == "deny"
    assert headers_of(unauthenticated.ok_response.headers)["x-pdp-dry-run-decision"] == "deny"
    allowed_headers = headers_of(allow.ok_response.headers)
    assert allowed_headers["x-pdp-dry-run-decision"] == "allow" and allowed_headers["x-tenant"] == "acme"
    assert [r.dynamic_metadata["real_decision"] for r in (deny, unauthenticated, allow)] == ["deny", "deny", "allow"]
    events = {e["decision_id"]: e for e in read_events([log])}
    assert len(events) == 3
    logged = events[headers_of(deny.ok_response.headers)["x-pdp-decision-id"]]
    assert logged["allowed"] is False and logged["source"] == "envoy"
    assert logged["request"]["action"] == "write" and logged["request"]["principal"]["id"] == "bob"
    assert events[headers_of(unauthenticated.ok_response.headers)["x-pdp-decision-id"]]["unauthenticated"] is True
    assert events[allowed_headers["x-pdp-decision-id"]]["allowed"] is True


ROUTES = [
    ("GET", "/tenants/acme/documents/doc-plan?x=1", "alice"),
    ("GET", "/tenants/acme/documents/doc-plan", "bob"),
    ("HEAD", "/tenants/acme/documents/doc-roadmap", "bob"),
    ("PUT", "/tenants/acme/documents/doc-plan", "alice"),
    ("PATCH", "/tenants/acme/documents/doc-plan", "bob"),
    ("DELETE", "/tenants/acme/documents/doc-plan", "erin"),
    ("POST", "/tenants/acme/documents/doc-roadmap/share", "erin"),
    ("GET", "/tenants/acme/documents/doc-merger", "alice"),
    ("GET", "/tenants/acme/documents/doc-handbook", "carol"),
    ("GET", "/tenants/globex/documents/doc-globex", "erin"),
    ("GET", "/tenants/acme/projects/proj-apollo", "bob"),
    ("GET", "/tenants/acme/projects/proj-apollo", "carol"),
    ("POST", "/tenants/acme/projects/proj-old/archive", "erin"),
]


def test_the_server_decides_as_engine_decide_on_the_mapped_request(envoy_keys: Path, tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    server = Server(server_args(envoy_keys, "--decision-log", str(log), "--cache-size", "0"), ROOT)
    answers = []
    try:
        with grpc.insecure_channel(server.target) as channel:
            stub = external_auth_pb2_grpc.AuthorizationStub(channel)
            for method, path, sub in ROUTES:
                bearer = token(sub)
                req = check_request(method, path, bearer=bearer)
                answers.append((req, bearer, stub.Check(req, timeout=5)))
    finally:
        assert server.stop() == 0, server.output()
    events = {e["decision_id"]: e for e in read_events([log])}

    engine = Engine.load(ROOT / "policies")
    config = TokenConfig.from_dict(
        {"key_files": [str(envoy_keys)], "algorithms": ["RS256"], "issuer": ISSUER, "audience": AUDIENCE}
    )
    verifier = TokenVerifier(config, engine.schema)
    routes = engine.policy.checked.routes
    outcomes = set()
    for req, bearer, r in answers:
        mapped = map_request(routes, http_request(req), time.time())
        request = {**mapped.request, "principal": merge_principal(None, verifier.verify(bearer))}
        expected = engine.decide(request)
        event = events[r.dynamic_metadata["decision_id"]]
        assert (event["allowed"], event["reasons"]) == (expected.allowed, list(expected.reasons)), req
        assert event["obligations"] == [dict(o) for o in expected.obligations]
        assert (r.status.code == code_pb2.OK) == expected.allowed
        if expected.allowed:
            sent = headers_of(r.ok_response.headers)
            wanted = {o["name"]: o["value"] for o in expected.obligations if o["type"] == "header"}
            assert {k: v for k, v in sent.items() if not k.startswith("x-pdp-")} == wanted
        outcomes.add(expected.allowed)
    assert outcomes == {True, False}


# ---- in process: the request mapping and the fail-closed paths --------------------------------


def test_check_request_becomes_the_gateway_request() -> None:
    req = check_request("get", f"{DOC}?version=3", bearer="t0k3n", mode="both", ip="192.0.2.7")
    req.attributes.request.http.header_map.headers.add(key="X-Twice", raw_value=b"a")
    req.attributes.request.http.header_map.headers.add(key="x-twice", raw_value=b"b")
    req.attributes.request.http.header_map.headers.add(key="x-latin1", raw_value="caf\u00e9".encode("latin-1"))
    http = http_request(req)
    assert (http.method, http.target) == ("get", f"{DOC}?version=3")
    assert (http.source_ip, http.source_principal) == ("192.0.2.7", SPIFFE)
    assert http.headers["authorization"] == "Bearer t0k3n" and http.headers[":authority"] == "docs.acme.example"
    assert http.headers["x-twice"] == "a,b" and http.headers["x-latin1"] == "caf\ufffd"
    assert all(k == k.lower() for k in http.headers)
    separate = check_request(path=DOC)
    separate.attributes.request.http.query = "a=1"
    assert http_request(separate).target == f"{DOC}?a=1"


class _Ids:
    def __init__(self) -> None:
        self.n = 0

    def next(self) -> str:
        self.n += 1
        return f"test-{self.n}"


class _Store:
    current = None
    revision = "r1"


class _Service:
    def __init__(self, decide: Any):
        self.ids, self.store, self.metrics = _Ids(), _Store(), None
        self.decide_http = decide


class _Recorder:
    def __init__(self, fail: bool = False):
        self.fail = fail
        self.seen: list[Outcome] = []

    async def record(self, outcome: Outcome, source: str) -> None:
        if self.fail:
            raise OSError("disk full")
        self.seen.append(outcome)


def _outcome(decision: Decision, decision_id: str = "d-1") -> Outcome:
    return Outcome(decision, decision_id, False, False, 0, {}, 1.0)


def _servicer(decide: Any, recorder: Any = None, **settings: Any) -> EnvoyAuthorizationServicer:
    return EnvoyAuthorizationServicer(_Service(decide), recorder or _Recorder(), Settings(**settings))  # type: ignore[arg-type]


def _check(servicer: EnvoyAuthorizationServicer) -> Any:
    return asyncio.run(servicer.Check(check_request(bearer="x"), None))  # type: ignore[arg-type]


def test_an_exception_denies(caplog: pytest.LogCaptureFixture) -> None:
    def boom(_: Any) -> Outcome:
        raise RuntimeError("engine on fire")

    r = _check(_servicer(boom))
    body = denied(r, 403)
    assert body == {"decision_id": "test-1", "error": "forbidden", "reason": "access denied"}
    assert "fire" not in r.denied_response.body and "internal error" in caplog.text
    # also in dry-run mode: an internal error is never an allow
    assert _check(_servicer(boom, envoy_dry_run=True)).status.code == code_pb2.PERMISSION_DENIED


def test_a_failing_decision_log_denies_an_allow() -> None:
    r = _check(_servicer(lambda _: _outcome(Decision(True, revision="r1")), _Recorder(fail=True)))
    denied(r, 403)


@pytest.mark.parametrize(
    "obligation",
    [
        {"type": "header", "name": "x-pdp-decision-id", "value": "forged"},
        {"type": "header", "name": "host", "value": "evil.example"},
        {"type": "header", "name": "x bad", "value": "v"},
        {"type": "header", "name": "x-ok", "value": "line\r\nbreak"},
        {"type": "redirect", "url": "https://x"},
    ],
)
def test_an_obligation_envoy_cannot_apply_denies(obligation: dict[str, Any]) -> None:
    decision = Decision(True, ("some.rule",), ({"type": "header", "name": "x-tenant", "value": "acme"}, obligation))
    r = _check(_servicer(lambda _: _outcome(decision)))
    denied(r, 403)
    dry = _check(_servicer(lambda _: _outcome(decision), envoy_dry_run=True))
    assert dry.status.code == code_pb2.OK
    assert headers_of(dry.ok_response.headers)["x-pdp-dry-run-decision"] == "deny"


def test_obligation_headers_repeat_append_and_empty_values_remove() -> None:
    decision = Decision(
        True,
        obligations=(
            {"type": "header", "name": "X-Team", "value": "a"},
            {"type": "header", "name": "x-team", "value": "a"},
            {"type": "header", "name": "x-team", "value": "b"},
            {"type": "header", "name": "x-empty", "value": ""},
            {"type": "header", "name": "authorization", "value": "Bearer exchanged"},
        ),
    )
    r = _check(_servicer(lambda _: _outcome(decision)))
    assert r.status.code == code_pb2.OK
    options = [(o.header.key, o.header.value, o.append.value, o.append_action) for o in r.ok_response.headers]
    append = base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD
    assert options[0][0] == "x-pdp-decision-id"
    assert options[1:4] == [
        ("x-team", "a", False, OVERWRITE),
        ("x-team", "b", True, append),
        ("authorization", "Bearer exchanged", False, OVERWRITE),
    ]
    removed = list(r.ok_response.headers_to_remove)
    assert "x-empty" in removed and "authorization" not in removed and "x-team" not in removed


def test_removals_skip_pseudo_headers_and_host() -> None:
    servicer = _servicer(
        lambda _: _outcome(Decision(True)), envoy_remove_headers=("Authorization", ":path", "host", "cookie")
    )
    removed = list(_check(servicer).ok_response.headers_to_remove)
    assert removed == ["authorization", "cookie", "x-pdp-mask", "x-pdp-dry-run-decision"]


def test_answers_for_one_shared_decision_carry_their_own_ids() -> None:
    """Allow answers are copied from a template per decision object: the copies must not leak."""
    shared = Decision(True, obligations=({"type": "header", "name": "x-tenant", "value": "acme"},), revision="r1")
    ids = iter(range(1, 100))
    servicer = _servicer(lambda _: _outcome(shared, f"d-{next(ids)}"))
    answers = [_check(servicer) for _ in range(3)]
    assert [headers_of(r.ok_response.headers)["x-pdp-decision-id"] for r in answers] == ["d-1", "d-2", "d-3"]
    assert [r.dynamic_metadata["decision_id"] for r in answers] == ["d-1", "d-2", "d-3"]
    assert all(headers_of(r.ok_response.headers)["x-tenant"] == "acme" for r in answers)
    assert len(answers[0].ok_response.headers) == len(answers[2].ok_response.headers) == 2


def test_the_readme_snippets_match_what_is_tested() -> None:
    """The README's Envoy and Istio section: the settings these tests rely on are the ones shown."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("### Envoy and Istio") :]
    section = section[: section.index("\n## ")]
    for needle in (
        "envoy.filters.http.ext_authz", "envoy_grpc: { cluster_name: pdp }", "transport_api_version: V3",
        "failure_mode_allow: false", "include_peer_certificate: true", "http2_protocol_options: {}",
        "envoyExtAuthzGrpc", "failOpen: false", "action: CUSTOM", "--envoy-dry-run", "--envoy-remove-headers",
        "x-pdp-decision-id", "x-pdp-mask", "x-pdp-dry-run-decision", 'www-authenticate: Bearer realm="pdp"',
    ):  # fmt: skip
        assert needle in section, needle
    assert "with_request_body:" not in section and "includeRequestBodyInCheck" not in section
