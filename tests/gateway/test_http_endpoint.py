"""The HTTP endpoint of a real `pdp serve`: the gateway check as nginx, Traefik and Envoy call it,
the trusted-proxy rules, the wire parser's refusals, AuthZEN 1.0, health and metadata.

The decision point runs as a subprocess on loopback; requests go through http.client or raw
sockets. A few wire-level cases (timeouts) run the endpoint in-process with short limits.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pdp.cache import DecisionCache
from pdp.decision import Decision
from pdp.server.config import Settings
from pdp.server.http_endpoint import HttpEndpoint, Malformed, client_address, parse_ip, parse_trusted
from pdp.server.http_wire import Request, WireLimits
from pdp.server.policy_store import PolicyStore
from pdp.server.recorder import NullRecorder
from pdp.server.service import DecisionService
from tests.gateway.http_fixtures import Pdp, Reply, bearer, post_json, raw, request, token
from tests.server.conftest import ROOT, free_port, now_iso

DOC_PLAN = "/tenants/acme/documents/doc-plan"
EVAL, EVALS = "/access/v1/evaluation", "/access/v1/evaluations"
DECISION_ID = re.compile(r"^[0-9a-f]{12}-[0-9]{10}$")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("http")


@pytest.fixture(scope="module")
def pdp(folder: Path) -> Iterator[Pdp]:
    """JWT keys on; loopback is a trusted proxy (the default); decision log and metrics on."""
    metrics = free_port()
    server = Pdp(
        folder, "--decision-log", str(folder / "decisions.jsonl"), "--metrics-port", str(metrics), "--max-batch", "5"
    )
    server.metrics_port = metrics  # type: ignore[attr-defined]
    yield server
    assert server.stop() == 0, server.server.output()


@pytest.fixture(scope="module")
def untrusting(folder: Path) -> Iterator[Pdp]:
    """Loopback is NOT a trusted proxy here: forwarded headers from it are ignored."""
    server = Pdp(folder, "--trusted-proxies", "10.255.255.1/32")
    yield server
    assert server.stop() == 0, server.server.output()


@pytest.fixture(scope="module")
def open_pdp(folder: Path) -> Iterator[Pdp]:
    """No JWT keys: AuthZEN subjects are taken as they are sent."""
    server = Pdp(folder, "--max-batch", "3", "--max-message-bytes", "65536", jwt_keys=False)
    yield server
    assert server.stop() == 0, server.server.output()


def nginx_check(port: int, uri: str, method: str = "GET", who: str | None = "bob", **headers: str) -> Reply:
    """The subrequest nginx's auth_request sends: always GET /, the client's request in headers."""
    sent = {"X-Original-URI": uri, "X-Original-Method": method, **(bearer(who) if who else {})}
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return request(port, "GET", "/", sent)


STEP_UP = [{"name": "step_up", "value": "mfa"}]


def assert_denied(reply: Reply, status: int = 403, reason: str = "access denied", advice: Any = None) -> None:
    assert reply.status == status, reply
    did = reply.headers["x-pdp-decision-id"]
    assert DECISION_ID.match(did)
    error = "unauthenticated" if status == 401 else "forbidden"
    expected = {"error": error, "decision_id": did, "reason": reason}  # nothing about rules or the policy
    if advice is not None:
        expected["advice"] = advice
    assert reply.json() == expected
    assert "x-tenant" not in reply.headers


# ---- the gateway check ---------------------------------------------------------------------


def test_allow_is_200_with_the_decision_id_and_header_obligations(pdp: Pdp) -> None:
    reply = nginx_check(pdp.http_port, DOC_PLAN)
    assert reply.status == 200, reply
    assert DECISION_ID.match(reply.headers["x-pdp-decision-id"])
    assert reply.headers["x-tenant"] == "acme"  # the `header "x-tenant"` obligation
    assert reply.headers["x-pdp-mask"] == "resource.ssn, resource.salary"  # the `mask` obligations
    assert reply.body == b""


def test_deny_is_403_with_a_small_json_body(pdp: Pdp) -> None:
    assert_denied(nginx_check(pdp.http_port, "/tenants/acme/documents/doc-merger"), advice=STEP_UP)  # clearance
    assert_denied(nginx_check(pdp.http_port, DOC_PLAN, "PUT"))  # a viewer does not write
    assert_denied(nginx_check(pdp.http_port, DOC_PLAN, "DELETE"))


def test_the_original_method_decides_not_the_subrequest_method(pdp: Pdp) -> None:
    sent = {"X-Original-URI": DOC_PLAN, "X-Original-Method": "DELETE", **bearer()}
    assert request(pdp.http_port, "GET", "/", sent).status == 403
    sent["X-Original-Method"] = "get"  # case does not matter
    assert request(pdp.http_port, "GET", "/", sent).status == 200


INVALID = 'Bearer realm="pdp", error="invalid_token", error_description="{}"'


@pytest.mark.parametrize(
    ("headers", "reason", "challenge"),
    [
        ({}, "missing token", 'Bearer realm="pdp"'),
        ({"Authorization": "Basic Ym9iOnNlY3JldA=="}, "missing token", 'Bearer realm="pdp"'),
        ({"Authorization": "Bearer not.a.token"}, "invalid token", INVALID.format("invalid token")),
        ({"Authorization": f"Bearer {token(exp=int(time.time()) - 120)}"}, "token expired", INVALID.format("token expired")),
        ({"Authorization": f"Bearer {token(nbf=int(time.time()) + 600)}"}, "token not yet valid", INVALID.format("token not yet valid")),
        ({"Authorization": f"Bearer {token(aud='someone-else')}"}, "invalid token", INVALID.format("invalid token")),
    ],
    ids=["missing", "basic", "garbage", "expired", "not-yet-valid", "wrong-audience"],
)  # fmt: skip
def test_missing_or_bad_tokens_are_401_with_a_bearer_challenge(
    pdp: Pdp, headers: dict[str, str], reason: str, challenge: str
) -> None:
    reply = request(pdp.http_port, "GET", "/", {"X-Original-URI": DOC_PLAN, "X-Original-Method": "GET", **headers})
    assert_denied(reply, 401, reason)
    assert reply.headers["www-authenticate"] == challenge


def test_a_denial_shows_advice_but_no_rule(pdp: Pdp) -> None:
    merger = "/tenants/acme/documents/doc-merger"
    reply = nginx_check(pdp.http_port, merger, who="alice", X_Forwarded_For="10.1.2.3")  # no MFA header
    assert reply.status == 403
    assert reply.json() == {
        "decision_id": reply.headers["x-pdp-decision-id"],
        "error": "forbidden",
        "reason": "access denied",
        "advice": [{"name": "step_up", "value": "mfa"}],
    }
    assert nginx_check(pdp.http_port, merger, who="alice", X_Auth_Mfa="true", X_Device_Trusted="true").status == 200


@pytest.mark.parametrize("uri", ["/", "/favicon.ico", "/tenants/acme", "/tenants/acme/documents", "/v2" + DOC_PLAN])
def test_unknown_routes_are_403(pdp: Pdp, uri: str) -> None:
    assert_denied(nginx_check(pdp.http_port, uri))


def test_the_same_path_written_differently_is_the_same_decision(pdp: Pdp) -> None:
    for uri in ("//tenants//acme/documents/./doc-plan", "/tenants/acme/documents/doc%2Dplan", DOC_PLAN + "?x=1#f"):
        assert nginx_check(pdp.http_port, uri).status == 200, uri


@pytest.mark.parametrize(
    "uri",
    [
        "/tenants/acme/documents/../../admin/audit",
        "/tenants/acme/documents/doc-plan/../../../acme/admin/audit",  # resolves to the audit route
        "/tenants/acme/documents/%2e%2e/%2e%2e/admin/audit",
        "/tenants/acme/documents/%2E%2E/%2E%2E/acme/admin/audit",
        "/tenants/acme/documents/doc-plan%2f..%2f..%2fadmin%2faudit",  # an encoded slash is refused
        "/tenants/acme/documents/doc-plan%2F",
        "/../tenants/acme/documents/doc-plan",  # climbing above the root is refused, not clamped
        "/tenants/acme/documents/..%2fdoc-plan",
        "//tenants/acme/admin/audit",
        "/tenants/acme/documents//../doc-merger",
        "/tenants/acme/documents/doc-plan%00",
        "/tenants/acme/documents/doc-plan\\..\\..\\admin\\audit",
        "/tenants/acme/documents/doc-plan%5c..%5cadmin",
        "/tenants/acme/documents/%zz",
        "tenants/acme/documents/doc-plan",
        "http://evil.example/tenants/acme/documents/doc-plan",
    ],
)
def test_traversal_tricks_cannot_reach_an_allow(pdp: Pdp, uri: str) -> None:
    assert_denied(nginx_check(pdp.http_port, uri))


def test_ambiguous_check_requests_are_denied(pdp: Pdp) -> None:
    port = pdp.http_port
    auth = f"Authorization: Bearer {token()}\r\n".encode()

    def send(*lines: bytes) -> bytes:
        return raw(port, b"GET / HTTP/1.1\r\nHost: pdp\r\nConnection: close\r\n" + b"".join(lines) + b"\r\n")

    allowed = send(auth, b"X-Original-URI: " + DOC_PLAN.encode() + b"\r\n", b"X-Original-Method: GET\r\n")
    assert allowed.startswith(b"HTTP/1.1 200 ")
    for lines in [
        (auth, b"X-Original-URI: " + DOC_PLAN.encode() + b"\r\n", b"X-Original-URI: /admin\r\n", b"X-Original-Method: GET\r\n"),
        (auth, auth, b"X-Original-URI: " + DOC_PLAN.encode() + b"\r\n", b"X-Original-Method: GET\r\n"),
        (auth, b"X-Original-URI: " + DOC_PLAN.encode() + b"\r\n"),  # no method: a POST would pass as GET
        (auth, b"X-Forwarded-Uri: " + DOC_PLAN.encode() + b"\r\n"),
        # a client-sent X-Original-URI smuggled next to Traefik's X-Forwarded-*: which one is true?
        (auth, b"X-Original-URI: " + DOC_PLAN.encode() + b"\r\n", b"X-Original-Method: GET\r\n",
         b"X-Forwarded-Uri: /tenants/acme/admin/audit\r\n", b"X-Forwarded-Method: GET\r\n"),
        (auth, b"X-Original-URI: " + DOC_PLAN.encode() + b"\r\n", b"X-Original-Method: G(E)T\r\n"),
    ]:  # fmt: skip
        answer = send(*lines)
        assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n"), (lines, answer)


# ---- Traefik forwardAuth and Envoy http_service ----------------------------------------------


def traefik(port: int, uri: str, method: str = "GET", who: str | None = "bob", **headers: str) -> Reply:
    sent = {
        "X-Forwarded-Method": method,
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "docs.acme.example",
        "X-Forwarded-Uri": uri,
        "X-Forwarded-For": "10.1.2.3",
        **(bearer(who) if who else {}),
    }
    sent.update({k.replace("_", "-"): v for k, v in headers.items()})
    return request(port, "GET", "/", sent)


def test_traefik_forward_auth_contract(pdp: Pdp) -> None:
    reply = traefik(pdp.http_port, DOC_PLAN + "?download=1")
    assert reply.status == 200, reply
    assert reply.headers["x-tenant"] == "acme" and DECISION_ID.match(reply.headers["x-pdp-decision-id"])
    assert_denied(traefik(pdp.http_port, DOC_PLAN, "PATCH"))
    assert_denied(traefik(pdp.http_port, "/tenants/acme/documents/doc-merger"), advice=STEP_UP)
    assert_denied(traefik(pdp.http_port, DOC_PLAN, who=None), 401, "missing token")
    assert_denied(traefik(pdp.http_port, "/tenants/acme/documents/%2e%2e/%2e%2e/admin/audit"))
    # Traefik forwards client headers: a client X-Original-URI makes the request ambiguous
    assert_denied(traefik(pdp.http_port, "/tenants/acme/admin/audit", X_Original_URI=DOC_PLAN, X_Original_Method="GET"))


def test_envoy_http_service_uses_the_request_itself(pdp: Pdp) -> None:
    """Envoy http_service sends the client's method and path (after `path_prefix: /check`)."""
    port = pdp.http_port
    assert request(port, "GET", "/check" + DOC_PLAN, bearer()).status == 200
    assert request(port, "HEAD", "/check" + DOC_PLAN, bearer()).status == 200
    assert request(port, "GET", DOC_PLAN, bearer()).status == 200  # without a prefix
    assert_denied(request(port, "DELETE", "/check" + DOC_PLAN, bearer()))
    assert_denied(request(port, "POST", "/check" + DOC_PLAN + "/share", bearer(), b"{}"))
    assert_denied(request(port, "GET", "/check" + DOC_PLAN), 401, "missing token")
    # the endpoint's own paths, seen through the prefix, are client paths like any other
    for path in ("/check/healthz", "/check/access/v1/evaluation", "/check/.well-known/authzen-configuration"):
        assert_denied(request(port, "GET", path, bearer()))


# ---- source address and trusted proxies -----------------------------------------------------


GLOBEX_DOC = "/tenants/globex/documents/doc-globex"  # globex admits only 172.16.0.0/12 and 10.20.0.0/16


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 403),  # the peer, 127.0.0.1, is not on globex's networks
        ({"X-Forwarded-For": "10.20.0.5"}, 200),
        ({"X-Forwarded-For": "10.20.0.5, 127.0.0.1"}, 200),  # trusted hops are skipped
        ({"X-Forwarded-For": "203.0.113.50, 10.20.0.5"}, 200),  # left of the client: the client's own claim
        ({"X-Forwarded-For": "10.20.0.5, 172.31.0.9"}, 200),
        ({"X-Forwarded-For": "10.20.0.5, 198.51.100.7"}, 403),  # the right-most untrusted one is the client
        ({"X-Forwarded-For": "10.20.0.5, 203.0.113.9, 127.0.0.1"}, 403),  # ... and it is on a blocked network
        ({"X-Forwarded-For": "10.20.0.5:4711"}, 200),
        ({"X-Forwarded-For": "[::ffff:10.20.0.5]:4711"}, 200),
        ({"X-Forwarded-For": "unknown, 10.20.0.5"}, 200),  # never read: the right-most untrusted comes first
        ({"X-Forwarded-For": "10.20.0.5, unknown"}, 403),
        ({"X-Forwarded-For": "10.20.0.5, "}, 403),
        ({"X-Real-IP": "10.20.0.5"}, 200),
        ({"X-Real-IP": "10.20.0.5", "X-Forwarded-For": "127.0.0.1"}, 403),  # X-Forwarded-For first
        ({"X-Real-IP": "not-an-ip"}, 403),
    ],
)
def test_forwarded_for_from_a_trusted_proxy(pdp: Pdp, headers: dict[str, str], status: int) -> None:
    reply = nginx_check(pdp.http_port, GLOBEX_DOC, who="gina", **{k.replace("-", "_"): v for k, v in headers.items()})
    assert reply.status == status, reply
    if status == 200:
        assert reply.headers["x-tenant"] == "globex"


def test_repeated_forwarded_for_fields_are_one_list(pdp: Pdp) -> None:
    head = f"GET / HTTP/1.1\r\nHost: pdp\r\nConnection: close\r\nAuthorization: Bearer {token('gina')}\r\n"
    head += f"X-Original-URI: {GLOBEX_DOC}\r\nX-Original-Method: GET\r\n"
    assert raw(
        pdp.http_port, (head + "X-Forwarded-For: 10.20.0.5\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n").encode()
    ).startswith(b"HTTP/1.1 200 ")
    assert raw(pdp.http_port, (head + "X-Forwarded-For: 10.20.0.5\r\nX-Forwarded-For: 198.51.100.1\r\n\r\n").encode()).startswith(b"HTTP/1.1 403 ")  # fmt: skip


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(untrusting: Pdp) -> None:
    port = untrusting.http_port
    assert nginx_check(port, GLOBEX_DOC, who="gina", X_Forwarded_For="10.20.0.5").status == 403
    assert nginx_check(port, GLOBEX_DOC, who="gina", X_Real_IP="10.20.0.5").status == 403
    assert nginx_check(port, GLOBEX_DOC, who="gina", X_Forwarded_For="garbage").status == 403
    # and a blocked address claimed by the client does not hurt either: the peer decides
    assert nginx_check(port, DOC_PLAN, X_Forwarded_For="203.0.113.9").status == 200


def test_forwarded_for_is_believed_only_from_trusted_peers(pdp: Pdp, untrusting: Pdp) -> None:
    assert nginx_check(pdp.http_port, DOC_PLAN, X_Forwarded_For="203.0.113.9").status == 403  # blocked network
    assert nginx_check(untrusting.http_port, DOC_PLAN, X_Forwarded_For="203.0.113.9").status == 200


def test_client_address_rules() -> None:
    trusted = parse_trusted(["127.0.0.1/32", "10.0.0.0/8", "::1/128"])

    def client(peer: str, *fields: tuple[str, str]) -> str:
        return client_address(parse_ip(peer), Request("GET", "/", "HTTP/1.1", list(fields)), trusted)

    assert client("192.0.2.1", ("x-forwarded-for", "10.20.0.5")) == "192.0.2.1"
    assert client("127.0.0.1") == "127.0.0.1"
    assert client("127.0.0.1", ("x-forwarded-for", "192.0.2.7, 10.1.1.1, 127.0.0.1")) == "192.0.2.7"
    assert client("::1", ("x-forwarded-for", "2001:db8::1")) == "2001:db8::1"
    assert client("::ffff:127.0.0.1", ("x-forwarded-for", "192.0.2.8")) == "192.0.2.8"
    assert client("127.0.0.1", ("x-forwarded-for", "10.9.9.9, 10.1.1.1")) == "10.9.9.9"  # all trusted: left-most
    assert client("127.0.0.1", ("x-real-ip", "[2001:db8::2]:443")) == "2001:db8::2"
    with pytest.raises(Malformed):
        client("127.0.0.1", ("x-forwarded-for", "192.0.2.7, _hidden"))
    with pytest.raises(ValueError, match="trusted-proxies"):
        parse_trusted(["10.0.0.0/33"])


# ---- the wire ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"GARBAGE\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)),  # a TLS ClientHello
        b"GET /\r\n\r\n",  # HTTP/0.9
        b"GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n",
        b"GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",  # bare LF
        b"GET / HTTP/1.1\rHost: x\r\n\r\n",
        b"G\x00T / HTTP/1.1\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\r\n" * 10,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: a\x01b\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n continued\r\n\r\n",  # obs-fold
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A : 1\r\n\r\n",  # space before the colon
        b"GET /healthz HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n",
        b"POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    ],
)
def test_garbage_is_400_and_the_server_survives(pdp: Pdp, garbage: bytes) -> None:
    answer = raw(pdp.http_port, garbage)
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer
    assert b"Connection: close\r\n" in answer
    assert request(pdp.http_port, "GET", "/healthz").status == 200


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (
            b"POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            411,
        ),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (b"GET /healthz HTTP/1.2\r\nHost: x\r\n\r\n", 505),
        (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),  # HTTP/2 prior knowledge
        (b"POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Length: 2\r\n\r\n{}", 417),
        # the same refusals on the check endpoint are 403: nginx would turn anything else into a 500
        (b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 403),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: 1\r\n" * 101 + b"\r\n", 403),
        (b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", 403),
        (b"GET / HTTP/1.1\r\n\r\n", 403),
        (b"GET /tenants HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", 403),
    ],
)
def test_refusals_close_the_connection(open_pdp: Pdp, data: bytes, status: int) -> None:
    answer = raw(open_pdp.http_port, data)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer
    assert b"Connection: close\r\n" in answer
    assert request(open_pdp.http_port, "GET", "/healthz").status == 200


def test_keep_alive_pipelining_and_connection_close(pdp: Pdp) -> None:
    check = f"GET / HTTP/1.1\r\nHost: pdp\r\nX-Original-URI: {DOC_PLAN}\r\nX-Original-Method: GET\r\n"
    check += f"Authorization: Bearer {token()}\r\n"
    two = (check + "\r\n" + "GET /healthz HTTP/1.1\r\nHost: pdp\r\nConnection: close\r\n\r\n").encode()
    answer = raw(pdp.http_port, two)  # both answered on one connection, then closed by the server
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert answer.count(b"Connection: close") == 1
    # HTTP/1.0 closes unless asked to keep alive
    assert b"Connection: close" in raw(pdp.http_port, b"GET /healthz HTTP/1.0\r\n\r\n")
    kept = raw(pdp.http_port, b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", timeout=1.0)
    assert b"Connection: keep-alive\r\n" in kept
    # a body on a check request is read and ignored
    answer = raw(pdp.http_port, (check + "Content-Length: 5\r\nConnection: close\r\n\r\nhello").encode())
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")


def test_expect_100_continue(open_pdp: Pdp) -> None:
    body = json.dumps(_bob_request(open_pdp_subject()))
    data = (
        f"POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
    ).encode()
    answer = raw(open_pdp.http_port, data)
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"), answer


def test_request_id_is_echoed(pdp: Pdp) -> None:
    assert request(pdp.http_port, "GET", "/healthz", {"X-Request-ID": "req-42"}).headers["x-request-id"] == "req-42"
    reply = nginx_check(pdp.http_port, DOC_PLAN, X_Request_ID="bfe9eb29")
    assert reply.headers["x-request-id"] == "bfe9eb29"


def _endpoint(limits: WireLimits) -> tuple[HttpEndpoint, Any]:
    store = PolicyStore(ROOT / "policies")
    store.reload(force=True)
    service = DecisionService(store, cache=DecisionCache[Decision](10, 60))
    return HttpEndpoint(Settings(http_port=1), service, NullRecorder(), limits), store


async def _exchange(port: int, data: bytes, pause: float = 0.0, more: bytes = b"") -> tuple[bytes, float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    writer.write(data)
    if pause:
        await asyncio.sleep(pause)
        writer.write(more)
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    return answer, time.monotonic() - began


def test_slow_clients_time_out() -> None:
    limits = WireLimits(idle_timeout=0.6, head_timeout=0.3, body_timeout=0.3)

    async def main() -> None:
        endpoint, _ = _endpoint(limits)
        await endpoint.start("127.0.0.1", 0)
        port = endpoint.port
        try:
            answer, took = await _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # head never ends
            assert answer.startswith(b"HTTP/1.1 408 ") and 0.25 < took < 3, (answer, took)
            answer, _ = await _exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n")  # on the check endpoint: 403
            assert answer.startswith(b"HTTP/1.1 403 "), answer
            answer, _ = await _exchange(port, b"G")  # a request line trickling in
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            post = b"POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{}"
            answer, _ = await _exchange(port, post)  # body never completes
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            answer, took = await _exchange(port, b"")  # idle: closed silently
            assert answer == b"" and 0.5 < took < 3, (answer, took)
            ok = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
            answer, took = await _exchange(port, ok)  # answered, then idle keep-alive closes
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.count(b"HTTP/1.1") == 1 and took > 0.5
            answer, _ = await _exchange(port, ok[:20], 0.1, ok[20:] + b"GET /healthz HTTP/1.0\r\n\r\n")
            assert answer.count(b"HTTP/1.1 200 ") == 2  # slow but within the limits
        finally:
            endpoint.close()

    asyncio.run(main())


def test_close_stops_listening_and_drops_idle_connections() -> None:
    async def main() -> None:
        endpoint, _ = _endpoint(WireLimits())
        await endpoint.start("127.0.0.1", 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", endpoint.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
        await asyncio.sleep(0.05)
        endpoint.close()
        await asyncio.wait_for(reader.read(), 5)  # the idle keep-alive connection is closed
        assert reader.at_eof()
        writer.close()
        await writer.wait_closed()
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", endpoint.port)

    asyncio.run(main())


# ---- health, metadata, logs, metrics ----------------------------------------------------------


def test_healthz(pdp: Pdp, tmp_path: Path) -> None:
    reply = request(pdp.http_port, "GET", "/healthz")
    assert reply.status == 200 and reply.json()["status"] == "serving" and reply.json()["revision"]
    assert request(pdp.http_port, "HEAD", "/healthz").body == b""
    assert request(pdp.http_port, "POST", "/healthz", body=b"").status == 405

    broken = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", broken, ignore=shutil.ignore_patterns("*_test.toml"))
    (broken / "acme" / "broken.pdp").write_text("permit oops when;\n")
    server = Pdp(tmp_path, policy_dir=broken)
    try:
        reply = request(server.http_port, "GET", "/healthz")
        assert reply.status == 503 and reply.json() == {"status": "not serving", "revision": ""}
        assert_denied(nginx_check(server.http_port, DOC_PLAN))  # no policy: every check is a 403
    finally:
        assert server.stop() == 0


def test_well_known_authzen_configuration(pdp: Pdp) -> None:
    port = pdp.http_port
    reply = request(port, "GET", "/.well-known/authzen-configuration")
    base = f"http://127.0.0.1:{port}"
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    assert reply.json() == {
        "policy_decision_point": base,
        "access_evaluation_endpoint": f"{base}/access/v1/evaluation",
        "access_evaluations_endpoint": f"{base}/access/v1/evaluations",
    }
    # behind a trusted TLS proxy
    proxied = request(
        port,
        "GET",
        "/.well-known/authzen-configuration",
        {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "pdp.acme.example"},
    )
    assert proxied.json()["access_evaluation_endpoint"] == "https://pdp.acme.example/access/v1/evaluation"
    evil = request(port, "GET", "/.well-known/authzen-configuration", {"Host": "x/y@evil"})
    assert evil.json()["policy_decision_point"] == f"http://127.0.0.1:{port}"
    assert request(port, "POST", "/.well-known/authzen-configuration", body=b"").status == 405


def test_every_decision_is_logged(pdp: Pdp, folder: Path) -> None:
    did = nginx_check(pdp.http_port, "/tenants/acme/documents/doc-merger").headers["x-pdp-decision-id"]
    malformed = nginx_check(pdp.http_port, DOC_PLAN, X_Forwarded_For="nonsense").headers["x-pdp-decision-id"]
    authzen = post_json(pdp.http_port, "/access/v1/evaluation", _bob_request(), bearer())
    wanted = {did, malformed, authzen.json()["context"]["decision_id"]}
    events: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 10
    while not wanted <= events.keys() and time.monotonic() < deadline:
        time.sleep(0.1)
        lines = (folder / "decisions.jsonl").read_text().splitlines()
        events = {e["decision_id"]: e for e in map(json.loads, lines)}
    assert events[did]["source"] == "http" and events[did]["allowed"] is False
    assert events[did]["request"]["principal"]["id"] == "bob"
    assert events[malformed]["source"] == "http" and events[malformed]["errors"][0]["field"] == "http"
    assert events[authzen.json()["context"]["decision_id"]]["source"] == "authzen"


def test_responses_are_counted_in_metrics(pdp: Pdp) -> None:
    nginx_check(pdp.http_port, DOC_PLAN)
    text = request(pdp.metrics_port, "GET", "/metrics").body.decode()  # type: ignore[attr-defined]
    assert re.search(r'pdp_http_responses_total\{code="200",endpoint="check"\} [1-9]', text), text
    assert re.search(r'pdp_http_responses_total\{code="403",endpoint="check"\} [1-9]', text)
    assert re.search(r'pdp_decisions_total\{result="allow"\} [1-9]', text)


# ---- AuthZEN 1.0 ------------------------------------------------------------------------------

OFFICE = {"ip": "10.1.2.3", "mfa": True, "device_trusted": True}
MASKED_READ = [
    {"type": "mask", "path": "resource.ssn"},
    {"type": "mask", "path": "resource.salary"},
    {"type": "header", "name": "x-tenant", "value": "acme"},
]


def open_pdp_subject(uid: str = "bob", **changes: Any) -> dict[str, Any]:
    properties = {
        "tenant": "acme", "roles": {"acme": ["viewer"]}, "clearance": "confidential", "external": False,
        "suspended": False, "email": f"{uid}@acme.example", "auth_time": now_iso(-60), **changes,
    }  # fmt: skip
    return {"type": "User", "id": uid, "properties": properties}


def _bob_request(subject: dict[str, Any] | None = None, doc: str = "doc-plan", action: str = "read") -> dict[str, Any]:
    return {
        "subject": subject or {"type": "User", "id": "bob"},
        "action": {"name": action},
        "resource": {"type": "Document", "id": doc},
        "context": OFFICE,
    }


def ids_out(document: Any) -> Any:
    """The document with every decision id checked and replaced by `<id>`."""
    if isinstance(document, dict):
        out = {}
        for key, value in document.items():
            if key == "decision_id":
                assert isinstance(value, str) and DECISION_ID.match(value), value
                out[key] = "<id>"
            else:
                out[key] = ids_out(value)
        return out
    if isinstance(document, list):
        return [ids_out(v) for v in document]
    return document


def test_authzen_evaluation_with_a_token(pdp: Pdp) -> None:
    reply = post_json(pdp.http_port, "/access/v1/evaluation", _bob_request(), bearer())
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    assert ids_out(reply.json()) == {
        "decision": True,
        "context": {
            "decision_id": "<id>",
            "reasons": ["acme.non_owner_read_masked", "role:viewer"],
            "obligations": MASKED_READ,
        },
    }
    reply = post_json(pdp.http_port, "/access/v1/evaluation", _bob_request(doc="doc-merger"), bearer())
    assert ids_out(reply.json()) == {
        "decision": False,
        "context": {"decision_id": "<id>", "reasons": ["acme.clearance_too_low"]},
    }


def test_authzen_the_token_is_the_subject(pdp: Pdp) -> None:
    port = pdp.http_port
    anonymous = {k: v for k, v in _bob_request().items() if k != "subject"}
    assert post_json(port, "/access/v1/evaluation", anonymous, bearer()).json()["decision"] is True
    # properties cannot raise what the token says: bob stays a viewer
    raised = _bob_request(
        {"type": "User", "id": "bob", "properties": {"roles": {"acme": ["tenant_admin"]}}}, action="delete"
    )
    assert post_json(port, "/access/v1/evaluation", raised, bearer()).json()["decision"] is False
    # a token for bob does not answer questions about alice
    reply = post_json(port, "/access/v1/evaluation", _bob_request({"type": "User", "id": "alice"}), bearer())
    assert reply.status == 401 and reply.headers["www-authenticate"] == INVALID.format("invalid token")
    assert reply.json() == {"error": "request principal id does not match the token subject"}
    reply = post_json(port, "/access/v1/evaluation", _bob_request())  # this server requires a token
    assert reply.status == 401 and reply.json() == {"error": "missing token"}
    assert reply.headers["www-authenticate"] == 'Bearer realm="pdp"'
    reply = post_json(port, "/access/v1/evaluation", _bob_request(), bearer(exp=int(time.time()) - 300))
    assert reply.status == 401 and reply.json() == {"error": "token expired"}


def test_authzen_evaluation_without_tokens(open_pdp: Pdp) -> None:
    port = open_pdp.http_port
    reply = post_json(port, "/access/v1/evaluation", _bob_request(open_pdp_subject()))
    assert ids_out(reply.json()) == {
        "decision": True,
        "context": {
            "decision_id": "<id>",
            "reasons": ["acme.non_owner_read_masked", "role:viewer"],
            "obligations": MASKED_READ,
        },
    }
    reply = post_json(port, "/access/v1/evaluation", _bob_request(open_pdp_subject(), doc="doc-merger"))
    assert ids_out(reply.json()) == {
        "decision": False,
        "context": {"decision_id": "<id>", "reasons": ["acme.clearance_too_low"]},
    }
    reply = post_json(port, "/access/v1/evaluation", _bob_request(open_pdp_subject(clearance="top")))
    assert ids_out(reply.json()) == {
        "decision": False,
        "context": {
            "decision_id": "<id>",
            "reason_admin": {
                "en": "principal.attributes.clearance: expected one of public, internal, confidential, restricted, found 'top'"
            },
        },
    }
    reply = post_json(port, "/access/v1/evaluation", _bob_request({"type": "user", "id": "bob"}))
    assert ids_out(reply.json())["context"]["reason_admin"] == {"en": "principal.type: unknown entity type `user`"}
    # context.advice for a step-up
    merger = _bob_request(open_pdp_subject(clearance="restricted"), doc="doc-merger")
    merger["context"] = {**OFFICE, "mfa": False}
    assert ids_out(post_json(port, "/access/v1/evaluation", merger).json()) == {
        "decision": False,
        "context": {
            "decision_id": "<id>",
            "reasons": ["acme.restricted_needs_mfa_and_trusted_device"],
            "advice": [{"rule": "acme.restricted_needs_mfa_and_trusted_device", "name": "step_up", "value": "mfa"}],
        },
    }


def _batch(semantic: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": open_pdp_subject(),
        "action": {"name": "read"},
        "context": OFFICE,
        "evaluations": [
            {"resource": {"type": "Document", "id": "doc-handbook"}},  # allow (public)
            {"resource": {"type": "Document", "id": "doc-merger"}},  # deny (clearance)
            {"resource": {"type": "Document", "id": "doc-plan"}, "action": {"name": "write"}},  # deny (viewer)
        ],
    }
    if semantic:
        body["options"] = {"evaluations_semantic": semantic}
    return body


HANDBOOK = {
    "decision": True,
    "context": {
        "decision_id": "<id>",
        "reasons": ["acme.non_owner_read_masked", "acme.public_documents", "role:viewer"],
        "obligations": MASKED_READ,
    },
}
MERGER = {"decision": False, "context": {"decision_id": "<id>", "reasons": ["acme.clearance_too_low"]}}
PLAN_WRITE = {"decision": False, "context": {"decision_id": "<id>"}}


@pytest.mark.parametrize(
    ("semantic", "expected"),
    [
        (None, [HANDBOOK, MERGER, PLAN_WRITE]),
        ("execute_all", [HANDBOOK, MERGER, PLAN_WRITE]),
        ("deny_on_first_deny", [HANDBOOK, MERGER]),
        ("permit_on_first_permit", [HANDBOOK]),
    ],
)
def test_authzen_evaluations_semantics(open_pdp: Pdp, semantic: str | None, expected: list[Any]) -> None:
    reply = post_json(open_pdp.http_port, "/access/v1/evaluations", _batch(semantic))
    assert reply.status == 200, reply
    assert ids_out(reply.json()) == {"evaluations": expected}


def test_authzen_evaluations_defaults_and_overrides(open_pdp: Pdp) -> None:
    body = _batch("permit_on_first_permit")
    body["evaluations"] = [
        {"resource": {"type": "Document", "id": "doc-merger"}},  # deny: go on
        {
            "subject": open_pdp_subject("alice", clearance="restricted"),
            "resource": {"type": "Document", "id": "doc-plan"},
            "action": {"name": "write"},
        },
        {"resource": {"type": "Document", "id": "doc-handbook"}},  # never evaluated
    ]
    reply = post_json(open_pdp.http_port, "/access/v1/evaluations", body)
    assert ids_out(reply.json()) == {
        "evaluations": [
            MERGER,
            {
                "decision": True,
                "context": {
                    "decision_id": "<id>",
                    "reasons": ["acme.owner_full_access"],
                    "obligations": [{"type": "header", "name": "x-tenant", "value": "acme"}],
                },
            },
        ]
    }
    # without `evaluations` (or with an empty one) it is the single evaluation, answered as such
    single = {k: v for k, v in _batch(None).items() if k != "evaluations"} | {
        "resource": {"type": "Document", "id": "doc-handbook"}
    }
    assert ids_out(post_json(open_pdp.http_port, "/access/v1/evaluations", single).json()) == HANDBOOK
    assert (
        ids_out(post_json(open_pdp.http_port, "/access/v1/evaluations", single | {"evaluations": []}).json())
        == HANDBOOK
    )


def test_authzen_evaluations_with_a_token(pdp: Pdp) -> None:
    body: dict[str, Any] = {
        "action": {"name": "read"},
        "context": OFFICE,
        "evaluations": [{"resource": {"type": "Document", "id": d}} for d in ("doc-plan", "doc-merger")],
    }
    reply = post_json(pdp.http_port, "/access/v1/evaluations", body, bearer())
    assert [e["decision"] for e in reply.json()["evaluations"]] == [True, False]
    body["evaluations"].append(
        {"subject": {"type": "User", "id": "alice"}, "resource": {"type": "Document", "id": "doc-plan"}}
    )
    reply = post_json(pdp.http_port, "/access/v1/evaluations", body, bearer())
    assert reply.status == 401 and reply.json() == {"error": "request principal id does not match the token subject"}


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (EVAL, b"{", "the body is not valid JSON"),
        (EVAL, b"", "the body is not valid JSON"),
        (EVAL, b"[]", "the body must be a JSON object"),
        (EVAL, b'{"a": NaN}', "the body is not valid JSON"),
        (EVAL, b'{"a": 1, "a": 2}', "duplicate key `a`"),
        (EVAL, b"\xff\xfe", "the body is not valid JSON"),
        (EVAL, json.dumps({"action": {"name": "read"}, "resource": {"type": "Document", "id": "d"}}), "subject: is required (or a bearer token)"),
        (EVAL, json.dumps({"subject": {"type": "User"}, "action": {"name": "read"}, "resource": {"type": "D", "id": "d"}}), "subject.id: is required (a non-empty string)"),
        (EVAL, json.dumps({"subject": {"type": "User", "id": "b", "properties": []}, "action": {"name": "r"}, "resource": {"type": "D", "id": "d"}}), "subject.properties: must be an object"),
        (EVAL, json.dumps({"subject": {"type": "User", "id": "b"}, "action": "read", "resource": {"type": "D", "id": "d"}}), "action: is required (an object)"),
        (EVAL, json.dumps({"subject": {"type": "User", "id": "b"}, "action": {"name": ""}, "resource": {"type": "D", "id": "d"}}), "action.name: is required (a non-empty string)"),
        (EVAL, json.dumps({"subject": {"type": "User", "id": "b"}, "action": {"name": "r"}}), "resource: is required"),
        (EVAL, json.dumps({"subject": {"type": "User", "id": "b"}, "action": {"name": "r"}, "resource": {"type": 1, "id": "d"}}), "resource.type: is required (a non-empty string)"),
        (EVAL, json.dumps({"subject": {"type": "User", "id": "b"}, "action": {"name": "r"}, "resource": {"type": "D", "id": "d"}, "context": []}), "context: must be an object"),
        (EVAL, json.dumps({"subject": {"type": "U", "id": "b", "properties": {"x": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}}}), "body.subject.properties.x[0][0][0][0][0][0][0][0][0][0][0][0][0][0]: nested deeper than 16 levels"),
        (EVAL, "[" * 30000 + "]" * 30000, "the body is not valid JSON"),
        (EVALS, json.dumps({"evaluations": {}}), "evaluations: must be an array"),
        (EVALS, json.dumps({"evaluations": [{}] * 4}), "evaluations: 4 items is more than the limit of 3"),
        (EVALS, json.dumps({"options": {"evaluations_semantic": "first"}, "evaluations": [{}]}), "options.evaluations_semantic: must be one of execute_all, deny_on_first_deny, permit_on_first_permit"),
        (EVALS, json.dumps({"options": [], "evaluations": [{}]}), "options: must be an object"),
        (EVALS, json.dumps({"subject": {"type": "User", "id": "b"}, "action": {"name": "r"}, "evaluations": [{"resource": {"type": "D", "id": "d"}}, {}]}), "evaluations[1].resource: is required"),
        (EVALS, json.dumps({"evaluations": [1]}), "evaluations[0]: must be an object"),
    ],
)  # fmt: skip
def test_authzen_malformed_bodies_are_400(open_pdp: Pdp, path: str, body: bytes | str, message: str) -> None:
    reply = request(open_pdp.http_port, "POST", path, {"Content-Type": "application/json"}, body)
    assert reply.status == 400, reply
    assert reply.json() == {"error": message}


def test_authzen_http_errors(open_pdp: Pdp) -> None:
    port = open_pdp.http_port
    body = json.dumps(_bob_request(open_pdp_subject()))
    assert request(port, "POST", "/access/v1/evaluation", {"Content-Type": "text/plain"}, body).status == 415
    assert request(port, "POST", "/access/v1/evaluation", {}, body).json()["decision"] is True  # no type: JSON
    assert (
        request(port, "POST", "/access/v1/evaluation", {"Content-Type": "application/json; charset=utf-8"}, body).status
        == 200
    )
    reply = request(port, "GET", "/access/v1/evaluation")
    assert reply.status == 405 and reply.headers["allow"] == "POST"
    assert request(port, "POST", "/access/v1/search/subject", {}, "{}").status == 404
    assert request(port, "POST", "/access/v2/evaluation", {}, "{}").status == 404
