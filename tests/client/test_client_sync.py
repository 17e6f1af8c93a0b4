"""pdp.client.Client against a real `pdp serve` (and a scripted stand-in for failure modes)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from typing import Any

import grpc
import pytest

from pdp.client import (
    Client,
    ClientDecision,
    PdpDeadlineExceeded,
    PdpError,
    PdpInvalidRequest,
    PdpServerError,
    PdpUnavailable,
    _LocalCache,
)
from pdp.decision import DecisionError
from pdp.v1 import authorization_pb2 as pb

AUTHORIZE = "/pdp.v1.AuthorizationService/Authorize"
BATCH = "/pdp.v1.AuthorizationService/AuthorizeBatch"


def ask(client: Client, request: dict[str, Any], **kwargs: Any) -> ClientDecision:
    return client.authorize(
        request["principal"], request["action"], request["resource"], request.get("context"), **kwargs
    )


# ---- decisions ---------------------------------------------------------------------------


def test_allow_with_reasons_and_obligations(pdp_server: Any, acme: Any) -> None:
    with Client(pdp_server.target) as client:
        decision = ask(client, acme("bob-reads-plan"))
    assert decision.allowed
    assert decision.reasons == ("acme.non_owner_read_masked", "role:viewer")
    assert decision.obligations == (
        {"type": "mask", "path": "resource.ssn"},
        {"type": "mask", "path": "resource.salary"},
        {"type": "header", "name": "x-tenant", "value": "acme"},
    )
    assert decision.advice == () and decision.errors == ()
    assert decision.revision == pdp_server.revision
    assert decision.decision_id
    assert decision.cache_ttl_ms > 0 and not decision.cached_locally and not decision.unauthenticated
    assert decision.to_json()["decision"] == "allow"


def test_owner_gets_only_the_tenant_header(pdp_server: Any, acme: Any) -> None:
    with Client(pdp_server.target) as client:
        decision = ask(client, acme("gus-reads-globex-runbook"))
    assert decision.allowed
    assert {"type": "header", "name": "x-tenant", "value": "globex"} in decision.obligations


def test_deny_suspended_account(pdp_server: Any, acme: Any) -> None:
    with Client(pdp_server.target) as client:
        decision = ask(client, acme("dave-suspended-reads-handbook"))
    assert not decision.allowed
    assert decision.reasons == ("acme.suspended_account",)
    assert decision.obligations == ()


def test_deny_with_advice_decoded(pdp_server: Any, acme: Any) -> None:
    with Client(pdp_server.target) as client:
        decision = ask(client, acme("alice-reads-merger-without-mfa"))
    assert not decision.allowed
    assert decision.reasons == ("acme.restricted_needs_mfa_and_trusted_device",)
    assert decision.advice == (
        {"rule": "acme.restricted_needs_mfa_and_trusted_device", "name": "step_up", "value": "mfa"},
    )


def test_token_age_is_judged_by_the_server_clock(pdp_server: Any, acme: Any) -> None:
    with Client(pdp_server.target) as client:
        fresh = ask(client, acme("alice-writes-plan", auth_age=dt.timedelta(minutes=1)))
        stale = ask(client, acme("alice-writes-plan", auth_age=dt.timedelta(hours=1)))
    assert fresh.allowed and fresh.reasons == ("acme.owner_full_access",)
    assert fresh.cache_ttl_ms == 0  # reads `now`: not reusable
    assert not stale.allowed
    assert stale.reasons == ("acme.stale_token_write",)
    assert stale.advice == ({"rule": "acme.stale_token_write", "name": "reauthenticate", "value": True},)


def test_datetimes_sets_and_parents_are_encoded(pdp_server: Any, acme: Any) -> None:
    request = acme("alice-writes-plan")
    request["principal"]["attributes"]["auth_time"] = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)
    request["resource"]["parents"] = [("Group", "finance")]
    bob = acme("bob-reads-plan")
    bob["principal"]["attributes"]["roles"] = {}  # no viewer role: only membership lets bob in

    def project(members: set[str]) -> dict[str, Any]:
        return {"type": "Project", "id": "p", "attributes": {"tenant": "acme", "members": members, "archived": False}}

    with Client(pdp_server.target) as client:
        assert ask(client, request).allowed
        member = client.authorize(bob["principal"], "read", project({"carol", "bob"}), bob["context"])
        outsider = client.authorize(bob["principal"], "read", project({"carol"}), bob["context"])
    assert member.allowed and member.reasons == ("acme.project_members",)
    assert not outsider.allowed


def test_request_errors_come_back_as_decision_errors(pdp_server: Any, acme: Any) -> None:
    request = acme("bob-reads-plan")
    request["principal"]["attributes"]["nickname"] = "bobby"
    with Client(pdp_server.target) as client:
        decision = ask(client, request)
    assert not decision.allowed
    assert len(decision.errors) == 1
    assert isinstance(decision.errors[0], DecisionError)
    assert decision.errors[0].field == "principal.attributes.nickname"


def test_server_side_invalid_argument(pdp_server: Any, acme: Any, attempts: Any) -> None:
    request = acme("bob-reads-plan")
    request["principal"]["attributes"]["department"] = "x" * 10_000  # over --max-string
    with Client(pdp_server.target, interceptors=[attempts]) as client:
        with pytest.raises(PdpInvalidRequest) as info:
            ask(client, request)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "principal.attributes" in info.value.details
    assert attempts.methods == [AUTHORIZE]  # never retried


@pytest.mark.parametrize(
    ("principal", "action", "resource", "context", "message"),
    [
        ({"type": "User", "id": "bob", "attrs": {}}, "read", {"type": "Document", "id": "d"}, None, "unknown keys"),
        ({"id": "bob"}, "read", {"type": "Document", "id": "d"}, None, "principal.type"),
        ({"type": "User", "id": "bob"}, "", {"type": "Document", "id": "d"}, None, "action"),
        (None, "read", {"type": "Document", "id": "d"}, None, "principal: required unless a token"),
        (
            {"type": "User", "id": "bob"},
            "read",
            {"type": "Document", "id": "d"},
            {"t": dt.datetime(2026, 1, 1)},
            "time zone",
        ),
        ({"type": "User", "id": "bob"}, "read", {"type": "Document", "id": "d"}, {"x": object()}, "cannot encode"),
        ({"type": "User", "id": "bob"}, "read", {"type": "Document", "id": "d", "parents": "g"}, None, "parents"),
    ],
)
def test_client_side_validation(
    dead_target: str, principal: Any, action: Any, resource: Any, context: Any, message: str
) -> None:
    with Client(dead_target) as client:
        with pytest.raises(PdpInvalidRequest) as info:
            client.authorize(principal, action, resource, context)
    assert info.value.code is None  # found before anything was sent
    assert message in str(info.value)


def test_status(pdp_server: Any) -> None:
    with Client(pdp_server.target) as client:
        status = client.status()
    assert status.revision == pdp_server.revision
    assert status.policy_dir == "policies"
    assert status.last_reload_error == "" and status.reloads >= 1


def test_closed_client_refuses_calls(pdp_server: Any, acme: Any) -> None:
    client = Client(pdp_server.target)
    with client:
        client.status()
    with pytest.raises(ValueError):
        client.status()


def test_server_cache_flag(pdp_server: Any, acme: Any) -> None:
    request = acme("dave-suspended-reads-handbook")
    request["context"]["ip"] = "10.9.9.9"  # unlike any other test's request
    with Client(pdp_server.target) as client:
        first, second = ask(client, request), ask(client, request)
    assert (first.cached, second.cached) == (False, True)
    assert not second.cached_locally and first.decision_id != second.decision_id


# ---- batches -----------------------------------------------------------------------------


def test_batch_of_items(pdp_server: Any, acme: Any, attempts: Any) -> None:
    bob = acme("bob-reads-plan")
    with Client(pdp_server.target, interceptors=[attempts]) as client:
        results = client.authorize_batch(
            bob["principal"],
            [
                ({"type": "Document", "id": "doc-plan"}, ["read", "write"]),
                ({"type": "Project", "id": "proj-apollo"}, "read"),
                ({"type": "Document", "id": "doc-merger"}, ["read"]),
            ],
            bob["context"],
        )
    assert attempts.methods == [BATCH]
    assert [r.allowed for r in results] == [True, False, True, False]
    assert results[0].reasons == ("acme.non_owner_read_masked", "role:viewer")
    assert results[2].reasons == ("acme.project_members", "role:viewer")
    assert results[3].reasons == ("acme.clearance_too_low",)  # bob is confidential, the merger restricted
    assert len({r.decision_id for r in results}) == 4


def test_batch_of_requests_keeps_order(pdp_server: Any, acme: Any) -> None:
    names = [
        "dave-suspended-reads-handbook",
        "bob-reads-plan",
        "alice-reads-merger-without-mfa",
        "gus-reads-globex-runbook",
    ]
    with Client(pdp_server.target) as client:
        results = client.authorize_batch([acme(name) for name in names])
        singles = [ask(client, acme(name)) for name in names]
    assert [r.allowed for r in results] == [False, True, False, True]
    assert [r.reasons for r in results] == [s.reasons for s in singles]
    assert results[2].advice[0]["value"] == "mfa"


def test_batch_request_form_rejects_now(dead_target: str, acme: Any) -> None:
    request = acme("bob-reads-plan") | {"now": "2026-11-27T10:00:00Z"}
    with Client(dead_target) as client, pytest.raises(PdpInvalidRequest, match="own clock"):
        client.authorize_batch([request])


def test_empty_batch_makes_no_call(dead_target: str, attempts: Any) -> None:
    with Client(dead_target, interceptors=[attempts]) as client:
        assert client.authorize_batch([]) == []
    assert attempts.methods == []


def test_batch_cap(small_batch_server: Any, acme: Any, attempts: Any) -> None:
    bob = acme("bob-reads-plan")
    doc = {"type": "Document", "id": "doc-plan"}
    with Client(small_batch_server.target, interceptors=[attempts]) as client:
        assert len(client.authorize_batch(bob["principal"], [(doc, ["read", "write", "delete"])], bob["context"])) == 3
        with pytest.raises(PdpInvalidRequest) as info:
            client.authorize_batch(bob["principal"], [(doc, ["read", "write"]), (doc, ["delete", "share"])])
        with pytest.raises(PdpInvalidRequest):
            client.authorize_batch([bob] * 4)
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details == "batch of 4 decisions is larger than the limit of 3"
    assert attempts.methods == [BATCH] * 3  # INVALID_ARGUMENT is not retried


# ---- retries and deadlines ---------------------------------------------------------------


def test_unreachable_is_retried_then_unavailable(dead_target: str, attempts: Any) -> None:
    started = time.monotonic()
    with Client(dead_target, retries=2, interceptors=[attempts]) as client:
        with pytest.raises(PdpUnavailable) as info:
            client.authorize({"type": "User", "id": "bob"}, "read", {"type": "Document", "id": "doc-plan"})
    elapsed = time.monotonic() - started
    assert attempts.methods == [AUTHORIZE] * 3
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert isinstance(info.value, PdpError) and isinstance(info.value.__cause__, grpc.RpcError)
    assert elapsed >= 0.05 / 2 + 0.1 / 2  # two backoffs, jitter at most halves each
    assert elapsed < 3.0  # (generous: a loaded machine)


def test_no_retries(dead_target: str, attempts: Any) -> None:
    with Client(dead_target, retries=0, interceptors=[attempts]) as client, pytest.raises(PdpUnavailable):
        client.status()
    assert len(attempts.methods) == 1


def test_timeout_bounds_the_retries(dead_target: str, attempts: Any) -> None:
    started = time.monotonic()
    with Client(dead_target, retries=10, timeout=0.3, backoff_base=0.1, interceptors=[attempts]) as client:
        with pytest.raises(PdpUnavailable):
            client.status()
    assert time.monotonic() - started < 1.5
    assert 1 < len(attempts.methods) < 11


def test_retry_then_success(fake_pdp: Any, attempts: Any) -> None:
    fake_pdp.script = ["unavailable", "unavailable", "ok"]
    with Client(fake_pdp.target, retries=2, interceptors=[attempts]) as client:
        decision = client.authorize({"type": "User", "id": "u"}, "read", {"type": "Document", "id": "d"})
    assert decision.allowed and decision.decision_id == "fake-3"
    assert fake_pdp.calls == 3 and len(attempts.methods) == 3


def test_metadata_goes_with_every_attempt(fake_pdp: Any) -> None:
    fake_pdp.script = ["unavailable", "ok"]
    with Client(fake_pdp.target, metadata=[("x-api-key", "k1")]) as client:
        client.authorize({"type": "User", "id": "u"}, "read", {"type": "Document", "id": "d"})
    assert [m.get("x-api-key") for m in fake_pdp.metadata] == ["k1", "k1"]


@pytest.mark.parametrize(("step", "error"), [("invalid", PdpInvalidRequest), ("internal", PdpServerError)])
def test_other_codes_are_not_retried(fake_pdp: Any, step: str, error: type[PdpError]) -> None:
    fake_pdp.script = [step, "ok"]
    with Client(fake_pdp.target, retries=5) as client, pytest.raises(error) as info:
        client.authorize({"type": "User", "id": "u"}, "read", {"type": "Document", "id": "d"})
    assert fake_pdp.calls == 1
    assert info.value.details in ("action: is required", "boom")


def test_deadline_exceeded_on_a_slow_server(fake_pdp: Any) -> None:
    fake_pdp.script = ["slow"]
    started = time.monotonic()
    with Client(fake_pdp.target, timeout=0.1, retries=3) as client, pytest.raises(PdpDeadlineExceeded) as info:
        client.authorize({"type": "User", "id": "u"}, "read", {"type": "Document", "id": "d"})
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 1.5  # the server would take 2 s
    assert fake_pdp.calls == 1


def test_deadline_exceeded_against_the_real_server(pdp_server: Any, acme: Any, attempts: Any) -> None:
    with Client(pdp_server.target, interceptors=[attempts]) as client:
        assert ask(client, acme("bob-reads-plan")).allowed  # connected
        os.kill(pdp_server.proc.pid, signal.SIGSTOP)  # a hung decision point
        try:
            started = time.monotonic()
            with pytest.raises(PdpDeadlineExceeded):
                ask(client, acme("bob-reads-plan"), timeout=0.2)
            assert time.monotonic() - started < 1.5
        finally:
            os.kill(pdp_server.proc.pid, signal.SIGCONT)
        assert ask(client, acme("bob-reads-plan")).allowed  # the per-call timeout did not stick
    assert len(attempts.methods) == 3


def test_spent_budget_makes_no_call(pdp_server: Any, acme: Any, attempts: Any) -> None:
    with Client(pdp_server.target, interceptors=[attempts]) as client:
        with pytest.raises(PdpDeadlineExceeded):
            ask(client, acme("bob-reads-plan"), timeout=0)
    assert attempts.methods == []


# ---- the local cache ---------------------------------------------------------------------


def test_local_cache_hit(pdp_server: Any, acme: Any, attempts: Any) -> None:
    request = acme("bob-reads-plan", auth_age=dt.timedelta(minutes=3))
    with Client(pdp_server.target, local_cache_size=16, interceptors=[attempts]) as client:
        first = ask(client, request)
        second = ask(client, request)
        assert len(attempts.methods) == 1
        assert not first.cached_locally and second.cached_locally
        assert second.decision_id == first.decision_id
        assert second.obligations == first.obligations and second.obligations is not first.obligations
        other = ask(client, request, token="some-token")  # the token is part of the key
        assert not other.cached_locally and other.unauthenticated
        client.clear_cache()
        third = ask(client, request)
    assert not third.cached_locally and len(attempts.methods) == 3


def test_no_local_caching_of_clock_dependent_decisions(pdp_server: Any, acme: Any, attempts: Any) -> None:
    # The admin console rules read `now` (business hours): whatever the answer, it is not reusable.
    request = acme("erin-manages-users")
    with Client(pdp_server.target, local_cache_size=16, interceptors=[attempts]) as client:
        first = ask(client, request)
        second = ask(client, request)
    assert first.cache_ttl_ms == 0 and second.cache_ttl_ms == 0
    assert not second.cached_locally and not second.cached
    assert first.decision_id != second.decision_id
    assert len(attempts.methods) == 2


def test_local_cache_ttl_caps_the_server_ttl(pdp_server: Any, acme: Any, attempts: Any) -> None:
    request = acme("bob-reads-plan", auth_age=dt.timedelta(minutes=4))
    with Client(pdp_server.target, local_cache_size=16, local_cache_ttl=0.5, interceptors=[attempts]) as client:
        assert not ask(client, request).cached_locally
        assert ask(client, request).cached_locally
        time.sleep(0.6)
        assert not ask(client, request).cached_locally
    assert len(attempts.methods) == 2


def test_local_cache_is_off_by_default(pdp_server: Any, acme: Any, attempts: Any) -> None:
    request = acme("bob-reads-plan", auth_age=dt.timedelta(minutes=5))
    with Client(pdp_server.target, interceptors=[attempts]) as client:
        assert not ask(client, request).cached_locally
        assert not ask(client, request).cached_locally
    assert len(attempts.methods) == 2


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_local_cache_expires_each_entry_by_its_own_ttl() -> None:
    clock = FakeClock()
    cache = _LocalCache(maxsize=2, max_ttl=60, timer=clock)
    cache.put(b"short", pb.AuthorizeResponse(allowed=True, cache_ttl_ms=1_000))
    cache.put(b"long", pb.AuthorizeResponse(allowed=True, cache_ttl_ms=30_000))
    cache.put(b"never", pb.AuthorizeResponse(allowed=True, cache_ttl_ms=0))
    assert len(cache) == 2 and cache.get(b"never") is None
    clock.now += 1.5
    assert cache.get(b"short") is None
    assert cache.get(b"long") is not None
    clock.now += 29
    assert cache.get(b"long") is None


def test_local_cache_is_bounded_and_capped() -> None:
    clock = FakeClock()
    cache = _LocalCache(maxsize=2, max_ttl=5, timer=clock)
    for key in (b"a", b"b", b"c"):
        cache.put(key, pb.AuthorizeResponse(allowed=True, cache_ttl_ms=60_000))
    assert len(cache) == 2 and cache.get(b"a") is None
    clock.now += 5.5  # past max_ttl although the server allowed 60 s
    assert cache.get(b"c") is None
