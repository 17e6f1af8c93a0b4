"""Authorize, AuthorizeBatch, Status, limits and health against a real server process."""

from __future__ import annotations

import json

import grpc
import msgpack
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from pdp.v1 import authorization_pb2 as pb
from tests.server.conftest import CONTEXT, Server, authorize_request, entity, user


def test_allow_with_reasons_and_obligations(shared_server: Server) -> None:
    r = shared_server.stub().Authorize(authorize_request())
    assert r.allowed
    assert list(r.reasons) == ["acme.non_owner_read_masked", "role:viewer"]
    assert [(o.type, o.path, o.name, o.value) for o in r.obligations] == [
        ("mask", "resource.ssn", "", ""),
        ("mask", "resource.salary", "", ""),
        ("header", "", "x-tenant", "acme"),
    ]
    assert r.revision and r.decision_id and not r.unauthenticated


def test_deny_by_forbid_with_advice(shared_server: Server) -> None:
    r = shared_server.stub().Authorize(
        authorize_request(
            user("alice", clearance="restricted"),
            resource={"type": "Document", "id": "doc-merger"},
            context={**CONTEXT, "mfa": False},
        )
    )
    assert not r.allowed
    assert list(r.reasons) == ["acme.restricted_needs_mfa_and_trusted_device"]
    assert [(a.rule, a.name, json.loads(a.value_json)) for a in r.advice] == [
        ("acme.restricted_needs_mfa_and_trusted_device", "step_up", "mfa")
    ]


def test_schema_errors_deny_and_name_the_field(shared_server: Server) -> None:
    r = shared_server.stub().Authorize(authorize_request(user(clearance="top-secret")))
    assert not r.allowed
    assert [(e.field, e.message) for e in r.errors] == [
        (
            "principal.attributes.clearance",
            "expected one of public, internal, confidential, restricted, found 'top-secret'",
        )
    ]


def test_json_attributes_are_accepted_too(shared_server: Server) -> None:
    msg = authorize_request()
    msg.principal.attributes_json = json.dumps(user()["attributes"])
    msg.context_json = json.dumps(CONTEXT)
    assert shared_server.stub().Authorize(msg).allowed


def test_second_identical_call_is_a_cache_hit(shared_server: Server) -> None:
    stub = shared_server.stub()
    msg = authorize_request(user("carol", roles={"acme": ["editor"]}), action="read")
    first, second = stub.Authorize(msg), stub.Authorize(msg)
    assert not first.cached and second.cached
    assert first.decision_id != second.decision_id
    assert (first.allowed, list(first.reasons)) == (second.allowed, list(second.reasons))
    assert first.cache_ttl_ms > 0


def test_clock_dependent_decisions_are_not_cached(shared_server: Server) -> None:
    stub = shared_server.stub()
    msg = authorize_request(
        user("erin", roles={"acme": ["tenant_admin"]}),
        action="view_audit",
        resource={"type": "AdminConsole", "id": "acme-console"},
    )
    first, second = stub.Authorize(msg), stub.Authorize(msg)
    assert not first.cached and not second.cached
    assert first.cache_ttl_ms == 0


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda m: m.ClearField("action"), "action: is required"),
        (lambda m: m.ClearField("resource"), "resource: is required"),
        (lambda m: m.resource.ClearField("type"), "resource.type: is required"),
        (lambda m: setattr(m.principal, "attributes", b"\xc1"), "principal.attributes: not valid msgpack"),
        (
            lambda m: setattr(m.principal, "attributes", msgpack.packb([1, 2])),
            "principal.attributes: must encode a map",
        ),
        (lambda m: setattr(m, "context_json", "{nope"), "context_json: not valid JSON"),
    ],
)
def test_malformed_requests_are_invalid_argument(shared_server: Server, mutate: object, field: str) -> None:
    msg = authorize_request()
    mutate(msg)  # type: ignore[operator]
    with pytest.raises(grpc.RpcError) as err:
        shared_server.stub().Authorize(msg)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(field)


def test_nesting_and_string_limits(shared_server: Server) -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(40):
        node["x"] = {}
        node = node["x"]  # type: ignore[assignment]
    stub = shared_server.stub()
    for attrs, message in (
        (deep, "nested deeper than 16 levels"),
        ({"email": "x" * 10_000}, "string longer than 8192 characters"),
    ):
        msg = authorize_request()
        msg.principal.attributes = msgpack.packb(attrs)
        with pytest.raises(grpc.RpcError) as err:
            stub.Authorize(msg)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert message in err.value.details()


def test_message_size_limit(start_server: object) -> None:
    server = start_server("policies", "--port", "0", "--max-message-bytes", "2048")  # type: ignore[operator]
    msg = authorize_request()
    msg.context_json = json.dumps({"ip": "10.0.0.1", "pad": "y" * 4000})
    with pytest.raises(grpc.RpcError) as err:
        server.stub().Authorize(msg)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().endswith("bytes is larger than the limit of 2048")
    huge = authorize_request()
    huge.context_json = json.dumps({"ip": "10.0.0.1", "pad": "y" * 100_000})
    with pytest.raises(grpc.RpcError) as err:  # far beyond: gRPC refuses before reading it all
        server.stub().Authorize(huge)
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_batch_of_items_answers_in_order(shared_server: Server) -> None:
    principal = user("dana", roles={"acme": ["editor"]})
    request = pb.AuthorizeBatchRequest(
        principal=entity(principal),
        context=msgpack.packb(CONTEXT),
        items=[
            pb.ResourceActions(
                resource=entity({"type": "Document", "id": "doc-plan"}), actions=["read", "write", "delete"]
            ),
            pb.ResourceActions(resource=entity({"type": "Project", "id": "proj-apollo"}), actions=["read"]),
        ],
    )
    results = shared_server.stub().AuthorizeBatch(request).results
    assert [(r.allowed, list(r.reasons)) for r in results] == [
        (True, ["acme.non_owner_read_masked", "role:viewer"]),
        (True, ["role:editor"]),
        (False, []),
        (True, ["role:viewer"]),
    ]


def test_batch_of_full_requests(shared_server: Server) -> None:
    request = pb.AuthorizeBatchRequest(
        requests=[authorize_request(), authorize_request(user(suspended=True)), authorize_request(action="delete")]
    )
    results = shared_server.stub().AuthorizeBatch(request).results
    assert [(r.allowed, list(r.reasons)) for r in results] == [
        (True, ["acme.non_owner_read_masked", "role:viewer"]),
        (False, ["acme.suspended_account"]),
        (False, []),
    ]


def test_batch_larger_than_the_cap_is_rejected(start_server: object) -> None:
    server = start_server("policies", "--port", "0", "--max-batch", "3")  # type: ignore[operator]
    ok = pb.AuthorizeBatchRequest(requests=[authorize_request()] * 3)
    assert len(server.stub().AuthorizeBatch(ok).results) == 3
    with pytest.raises(grpc.RpcError) as err:
        server.stub().AuthorizeBatch(pb.AuthorizeBatchRequest(requests=[authorize_request()] * 4))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details() == "batch of 4 decisions is larger than the limit of 3"


def test_health_serving_and_status(shared_server: Server) -> None:
    health = health_pb2_grpc.HealthStub(shared_server.channel())
    for service in ("", "pdp.v1.AuthorizationService"):
        status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
        assert status == health_pb2.HealthCheckResponse.SERVING
    status = shared_server.stub().Status(pb.StatusRequest())
    assert status.revision and status.reloads == 1 and not status.last_reload_error


def test_reflection_lists_the_services(shared_server: Server) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(shared_server.channel())
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"pdp.v1.AuthorizationService", "grpc.health.v1.Health"} <= names
