"""A real nginx (Debian's package) in front of an echo upstream, asking the decision point through
`auth_request` with the configuration the README shows (tests/gateway/nginx_support.py).

Allowed requests reach the upstream with the decision id and the tenant the decision point
added; denied ones get 401 or 403 and never reach it; with the decision point down, nginx
answers 500 and still never reaches it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.gateway.http_fixtures import Pdp, Reply, bearer, request, token
from tests.gateway.nginx_support import AUTH_LOCATION, PROTECTED_LOCATION, Nginx, Upstream, nginx_binary
from tests.server.conftest import ROOT

DOC_PLAN = "/tenants/acme/documents/doc-plan"
DECISION_ID = re.compile(r"^[0-9a-f]{12}-[0-9]{10}$")


@pytest.fixture(scope="module")
def binary() -> str:
    found, why = nginx_binary()
    if found is None:
        pytest.skip(why)
    return found


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    app = Upstream()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def pdp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pdp]:
    # nginx reaches the decision point from 127.0.0.1; 127.0.0.3 plays a load balancer in front of nginx
    server = Pdp(tmp_path_factory.mktemp("pdp"), "--trusted-proxies", "127.0.0.1/32,127.0.0.3/32")
    yield server
    assert server.stop() == 0, server.server.output()


@pytest.fixture(scope="module")
def nginx(binary: str, pdp: Pdp, upstream: Upstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    proxy = Nginx(binary, tmp_path_factory.mktemp("nginx"), pdp.http_port, upstream.port)
    yield proxy
    proxy.stop()
    # no upstream errors, no refused or broken keep-alive connections to the decision point
    problems = [line for line in proxy.output().splitlines() if re.search(r"\[(error|crit|alert|emerg|warn)\]", line)]
    assert not problems, "\n".join(problems)


def through(nginx: Nginx, method: str, target: str, headers: dict[str, str] | None = None, **kw: object) -> Reply:
    return request(nginx.port, method, target, headers, **kw)  # type: ignore[arg-type]


def test_allowed_requests_reach_the_upstream_with_the_decision(nginx: Nginx, upstream: Upstream) -> None:
    before = upstream.hits
    spoofed = {"X-Tenant": "evil", "X-Pdp-Decision-Id": "forged", **bearer()}
    reply = through(nginx, "GET", DOC_PLAN + "?v=2", spoofed)
    assert reply.status == 200, (reply, nginx.output())
    seen = reply.json()
    assert seen["method"] == "GET" and seen["path"] == DOC_PLAN + "?v=2"
    assert DECISION_ID.match(seen["headers"]["x-pdp-decision-id"]), seen  # the decision point's, not the client's
    assert seen["headers"]["x-tenant"] == "acme"
    assert seen["headers"]["x-pdp-mask"] == "resource.ssn, resource.salary"
    assert upstream.hits == before + 1


def test_a_decision_without_the_header_obligation_strips_the_clients_header(nginx: Nginx) -> None:
    spoofed = {"X-Tenant": "evil", "X-Pdp-Mask": "nothing", **bearer()}
    reply = through(nginx, "GET", "/tenants/acme/projects/proj-apollo", spoofed)
    assert reply.status == 200, reply
    assert "x-tenant" not in reply.json()["headers"]  # empty auth_request_set value: header not sent
    assert "x-pdp-mask" not in reply.json()["headers"]


def test_the_body_reaches_the_upstream_and_the_method_is_decided(nginx: Nginx, upstream: Upstream) -> None:
    body = b'{"share_with": "carol"}' * 500  # larger than nginx's in-memory client body buffer
    reply = through(
        nginx, "POST", DOC_PLAN + "/share", {"Content-Type": "application/json", **bearer("alice")}, body=body
    )
    assert reply.status == 200, (reply, nginx.output())
    seen = reply.json()
    assert seen["method"] == "POST" and seen["body"] == body.decode() and seen["headers"]["x-tenant"] == "acme"
    before = upstream.hits
    assert through(nginx, "POST", DOC_PLAN + "/share", bearer("bob"), body=body).status == 403  # bob is no owner
    assert through(nginx, "DELETE", DOC_PLAN, bearer("bob")).status == 403
    assert upstream.hits == before


@pytest.mark.parametrize(
    ("method", "target", "headers", "status"),
    [
        ("GET", "/tenants/acme/documents/doc-merger", "bob", 403),  # clearance too low
        ("PUT", DOC_PLAN, "bob", 403),
        ("GET", "/tenants/acme/admin/audit", "bob", 403),
        ("GET", "/tenants/acme/nothing-here", "bob", 403),
        ("GET", "/tenants/acme/documents/%2e%2e/%2e%2e/admin/audit", "bob", 403),
        ("GET", "/tenants/acme/documents/doc-plan%2f..%2f..%2fadmin%2faudit", "bob", 403),
        ("GET", "/tenants/acme/documents/doc-plan/../../../acme/admin/audit", "bob", 403),
        ("GET", DOC_PLAN, None, 401),
        ("GET", DOC_PLAN, "expired", 401),
        ("GET", "/_pdp_check", "bob", 404),  # the auth location is internal
    ],
)
def test_denied_requests_never_reach_the_upstream(
    nginx: Nginx, upstream: Upstream, method: str, target: str, headers: str | None, status: int
) -> None:
    sent: dict[str, str] = {}
    if headers == "expired":
        sent = {"Authorization": f"Bearer {token(exp=int(time.time()) - 300)}"}
    elif headers:
        sent = bearer(headers)
    before = upstream.hits
    reply = through(nginx, method, target, sent)
    assert reply.status == status, (reply, nginx.output())
    if status == 401:
        expected = 'Bearer realm="pdp"'
        if sent:
            expected += ', error="invalid_token", error_description="token expired"'
        assert reply.headers["www-authenticate"] == expected  # nginx passes the challenge on
    assert upstream.hits == before


def test_the_client_cannot_claim_facts_the_routes_read_from_headers(nginx: Nginx, upstream: Upstream) -> None:
    """alice may read the restricted merger document only after MFA on a trusted device; those
    facts come from headers that the auth location clears, so a client cannot simply send them."""
    before = upstream.hits
    claims = {"X-Auth-Mfa": "true", "X-Device-Trusted": "true", **bearer("alice")}
    assert through(nginx, "GET", "/tenants/acme/documents/doc-merger", claims).status == 403
    assert upstream.hits == before


GLOBEX_DOC = "/tenants/globex/documents/doc-globex"  # globex admits only 172.16.0.0/12 and 10.20.0.0/16


def test_the_client_address_survives_the_proxy_chain(nginx: Nginx, upstream: Upstream) -> None:
    """nginx appends the client to X-Forwarded-For; the decision point believes what trusted hops say."""
    claim = {"X-Forwarded-For": "10.20.0.5", **bearer("gina")}
    # from the load balancer (trusted): the address it reports is the client's
    assert through(nginx, "GET", GLOBEX_DOC, claim, source="127.0.0.3").status == 200
    # from an ordinary client: its own X-Forwarded-For claim is not believed
    before = upstream.hits
    assert through(nginx, "GET", GLOBEX_DOC, claim, source="127.0.0.4").status == 403
    assert through(nginx, "GET", GLOBEX_DOC, bearer("gina"), source="127.0.0.4").status == 403
    assert upstream.hits == before


def test_concurrent_requests(nginx: Nginx, upstream: Upstream) -> None:
    good, bad = bearer(), bearer("bob")
    jobs = [(DOC_PLAN, good, 200) if i % 3 else ("/tenants/acme/documents/doc-merger", bad, 403) for i in range(150)]
    before = upstream.hits
    with ThreadPoolExecutor(12) as pool:
        statuses = list(pool.map(lambda job: through(nginx, "GET", job[0], job[1]).status, jobs))
    assert statuses == [status for _, _, status in jobs]
    assert upstream.hits == before + sum(1 for _, _, status in jobs if status == 200)


def test_with_the_decision_point_down_nothing_reaches_the_upstream(binary: str, tmp_path: Path) -> None:
    app = Upstream()
    pdp = Pdp(tmp_path)
    proxy = Nginx(binary, tmp_path / "nginx", pdp.http_port, app.port)
    try:
        assert through(proxy, "GET", DOC_PLAN, bearer()).status == 200
        assert pdp.stop() == 0
        for _ in range(3):
            reply = through(proxy, "GET", DOC_PLAN, bearer())
            assert 500 <= reply.status < 600, reply
        assert app.hits == 1
        assert "auth request unexpected status: 502" in proxy.output()
    finally:
        proxy.stop()
        pdp.stop()
        app.stop()


def test_the_readme_shows_the_configuration_tested_here() -> None:
    readme = (ROOT / "README.md").read_text()
    for block in (PROTECTED_LOCATION, AUTH_LOCATION):
        assert block in readme, "README's nginx snippet differs from tests/gateway/nginx_support.py"
