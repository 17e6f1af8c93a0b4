"""Hot reload: new revisions swap in atomically, broken ones never do, the cache follows."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

from grpc_health.v1 import health_pb2, health_pb2_grpc

from pdp.v1 import authorization_pb2 as pb
from tests.server.conftest import Server, authorize_request, user


def wait_for(condition: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def status(server: Server) -> pb.StatusResponse:
    return server.stub().Status(pb.StatusRequest())


NEW_RULE = "\npermit contractors_read action read resource Document when principal.external;\n"
BROKEN = "\npermit broken action read resource Document when resource.ownr == principal.id;\n"


def test_a_changed_policy_is_picked_up_and_clears_the_cache(start_server: Any, policy_dir: Path) -> None:
    server: Server = start_server(str(policy_dir), "--port", "0", "--reload-interval", "0.2")
    stub = server.stub()
    external = authorize_request(user("xavier", roles={}, external=True))
    before = status(server).revision
    assert not stub.Authorize(external).allowed
    assert stub.Authorize(external).cached  # cached deny under the old revision
    (policy_dir / "acme" / "documents.pdp").write_text((policy_dir / "acme" / "documents.pdp").read_text() + NEW_RULE)
    wait_for(lambda: status(server).revision != before)
    r = stub.Authorize(external)
    assert r.allowed and not r.cached
    assert list(r.reasons) == ["acme.contractors_read"]
    assert r.revision == status(server).revision


def test_a_broken_policy_keeps_the_last_good_revision(start_server: Any, policy_dir: Path) -> None:
    server: Server = start_server(str(policy_dir), "--port", "0", "--reload-interval", "0.2")
    good = status(server).revision
    docs = policy_dir / "acme" / "documents.pdp"
    docs.write_text(docs.read_text() + BROKEN)
    wait_for(lambda: status(server).reload_errors >= 1)
    st = status(server)
    assert st.revision == good
    assert "documents.pdp" in st.last_reload_error and "unknown_attribute" in st.last_reload_error
    assert "did you mean `owner`?" in st.last_reload_error
    r = server.stub().Authorize(authorize_request())
    assert r.allowed and r.revision == good
    health = health_pb2_grpc.HealthStub(server.channel())
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    # fixing it recovers
    docs.write_text(docs.read_text().replace(BROKEN, ""))
    wait_for(lambda: status(server).last_reload_error == "")


def test_sighup_reloads_when_polling_is_off(start_server: Any, policy_dir: Path) -> None:
    server: Server = start_server(str(policy_dir), "--port", "0", "--reload-interval", "0")
    before = status(server).revision
    docs = policy_dir / "acme" / "documents.pdp"
    docs.write_text(docs.read_text() + NEW_RULE)
    time.sleep(0.5)
    assert status(server).revision == before  # nothing polls
    server.signal(signal.SIGHUP)
    wait_for(lambda: status(server).revision != before)


def test_a_server_started_on_broken_policies_denies_and_is_not_serving(start_server: Any, policy_dir: Path) -> None:
    docs = policy_dir / "acme" / "documents.pdp"
    docs.write_text(docs.read_text() + BROKEN)
    server: Server = start_server(str(policy_dir), "--port", "0", "--reload-interval", "0.2")
    health = health_pb2_grpc.HealthStub(server.channel())
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    r = server.stub().Authorize(authorize_request())
    assert not r.allowed and "no policy is loaded" in r.errors[0].message
    docs.write_text(docs.read_text().replace(BROKEN, ""))
    wait_for(lambda: health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING)
    assert server.stub().Authorize(authorize_request()).allowed
