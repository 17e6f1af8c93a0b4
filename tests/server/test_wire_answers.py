"""The servicer in process: answers put together as bytes equal the messages they stand for,
batches read their items in one pass and still report problems in the old order, and the
metrics read as prometheus_client's Counter and Histogram would."""

from __future__ import annotations

import asyncio
import difflib
import itertools
import re
from collections.abc import Iterator
from typing import Any

import grpc
import msgpack
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from pdp.cache import DecisionCache
from pdp.decision import Decision, DecisionError
from pdp.server.convert import BadRequest, Decoder, Limits, ResponseBuilder, batch_result
from pdp.server.metrics import _LATENCY_BUCKETS, Metrics
from pdp.server.policy_store import PolicyStore
from pdp.server.service import DecisionIds, DecisionService, Outcome
from pdp.server.servicer import AuthorizationServicer
from pdp.v1 import authorization_pb2 as pb
from tests.server.conftest import ROOT, authorize_request, entity, user


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str):
        super().__init__(code, details)
        self.code, self.details = code, details


class Context:
    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[Outcome, str]] = []

    async def record(self, outcome: Outcome, source: str) -> None:
        self.seen.append((outcome, source))


def make_servicer(cache_size: int = 0, **limits: Any) -> tuple[AuthorizationServicer, Recorder]:
    store = PolicyStore(ROOT / "policies")
    service = DecisionService(store, cache=DecisionCache(cache_size, 60), metrics=Metrics())
    store._on_swap = service.on_swap  # noqa: SLF001
    store.reload(force=True)
    recorder = Recorder()
    return AuthorizationServicer(service, recorder, Limits(**limits)), recorder


@pytest.fixture(scope="module")
def servicer() -> Iterator[AuthorizationServicer]:
    yield make_servicer()[0]


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def without_ids(message: Any) -> Any:
    copy = type(message)()
    copy.CopyFrom(message)
    for result in getattr(copy, "results", [copy]):
        result.decision_id = ""
        result.cached = False
    return copy


# ---- responses -------------------------------------------------------------------------------

DECISIONS = [
    Decision(True, ("r1", "role:viewer"), ({"type": "header", "name": "x-tenant", "value": "acme"},), revision="abc"),
    Decision(False, errors=(DecisionError("boom", rule="r", field="f"),), revision="abc"),
    Decision(False, ("x" * 300,), advice=({"rule": "r", "name": "mfa", "value": {"level": 2}},) * 3),
    Decision(False),
]


def test_encoded_answers_are_the_messages_serialized() -> None:
    builder = ResponseBuilder()
    outcomes = []
    for decision, cached, unauthenticated, ttl, decision_id in itertools.product(
        DECISIONS, [False, True], [False, True], [0, 1, 127, 128, 300_000, 2**32 - 1], ["", "a", "0" * 23, "é" * 70]
    ):
        expected = builder.build(
            decision, decision_id, cached=cached, unauthenticated=unauthenticated, cache_ttl_ms=ttl
        ).SerializeToString()
        assert builder.encode(decision, decision_id, cached, unauthenticated, ttl) == expected
        outcomes.append(Outcome(decision, decision_id, cached, unauthenticated, ttl, {}, 1.0))
    batch = pb.AuthorizeBatchResponse(
        results=[
            builder.build(o.decision, o.decision_id, cached=o.cached, unauthenticated=o.unauthenticated,
                          cache_ttl_ms=o.cache_ttl_ms)
            for o in outcomes
        ]
    )  # fmt: skip
    assert b"".join(builder.encode_results(outcomes)) == batch.SerializeToString()
    assert b"".join(batch_result(builder.encode(*o[:5])) for o in outcomes) == batch.SerializeToString()


def test_a_ttl_protobuf_cannot_carry_fails_as_before() -> None:
    with pytest.raises(ValueError):
        ResponseBuilder().encode(DECISIONS[0], "id", False, False, 2**32)


# ---- Authorize -------------------------------------------------------------------------------


def test_authorize_bytes_and_message_calls_answer_alike(servicer: AuthorizationServicer) -> None:
    for msg in (
        authorize_request(user("bob")),
        authorize_request(user("bob"), action="delete"),
        authorize_request(user("bob", clearance="bogus")),  # a schema error: a deny naming the field
        authorize_request(user("bob"), resource={"type": "Nope", "id": "x"}),
    ):
        raw = run(servicer.authorize(msg.SerializeToString(), Context()))
        answer = pb.AuthorizeResponse.FromString(raw)
        assert answer.decision_id
        assert without_ids(answer) == without_ids(run(servicer.Authorize(msg, Context())))


def test_authorize_size_limit_counts_the_message() -> None:
    servicer, _ = make_servicer(max_message=64)
    msg = authorize_request(user("bob"))
    with pytest.raises(Aborted) as err:
        run(servicer.authorize(msg.SerializeToString(), Context()))
    assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details == f"request of {msg.ByteSize()} bytes is larger than the limit of 64"


def test_internal_errors_deny_with_an_id(servicer: AuthorizationServicer, caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        async def record(self, outcome: Outcome, source: str) -> None:
            raise OSError("disk full")

    broken = AuthorizationServicer(servicer.service, Broken(), servicer.limits)
    answer = pb.AuthorizeResponse.FromString(
        run(broken.authorize(authorize_request(user("bob")).SerializeToString(), Context()))
    )
    assert not answer.allowed and answer.decision_id and answer.errors[0].message == "internal error: OSError"
    assert "internal error while deciding; denying" in caplog.text


# ---- AuthorizeBatch --------------------------------------------------------------------------


def batch(*items: pb.ResourceActions, principal: dict[str, Any] | None = None, **more: Any) -> pb.AuthorizeBatchRequest:
    probe = authorize_request(principal or user("bob"))
    return pb.AuthorizeBatchRequest(principal=probe.principal, context=probe.context, items=items, **more)


def doc(doc_id: str, *actions: str, **extra: Any) -> pb.ResourceActions:
    return pb.ResourceActions(resource=pb.Entity(type="Document", id=doc_id, **extra), actions=actions)


@pytest.mark.parametrize("cache_size", [0, 1000])
def test_batch_answers_each_decision_as_authorize_does(cache_size: int) -> None:
    servicer, recorder = make_servicer(cache_size)
    request = batch(
        doc("doc-plan", "read", "write"),
        doc("doc-merger", "read"),
        doc("doc-handbook", "read", "delete"),
        pb.ResourceActions(
            resource=pb.Entity(type="Document", id="doc-plan", attributes_json="{}"), actions=["read"]
        ),  # the general path, not the type-and-id shortcut
        pb.ResourceActions(resource=entity({"type": "Document", "id": "doc-x", "attributes": {}}), actions=["read"]),
        requests=[authorize_request(user("bob"), action="write")],
    )
    pairs = [("doc-plan", "read"), ("doc-plan", "write"), ("doc-merger", "read"), ("doc-handbook", "read"),
             ("doc-handbook", "delete"), ("doc-plan", "read"), ("doc-x", "read"), ("doc-plan", "write")]  # fmt: skip
    for _ in range(2):  # with the cache on, the second time from the cache
        recorder.seen.clear()
        answer = pb.AuthorizeBatchResponse.FromString(
            run(servicer.authorize_batch(request.SerializeToString(), Context()))
        )
        assert len(answer.results) == len(pairs) == len(recorder.seen)
        assert len({r.decision_id for r in answer.results}) == len(pairs)
        seen = list(recorder.seen)
        for (doc_id, action), result, (outcome, source) in zip(pairs, answer.results, seen, strict=True):
            single = authorize_request(user("bob"), action=action, resource={"type": "Document", "id": doc_id})
            alone = pb.AuthorizeResponse.FromString(run(servicer.authorize(single.SerializeToString(), Context())))
            assert (result.allowed, list(result.reasons), list(result.errors)) == (
                alone.allowed, list(alone.reasons), list(alone.errors),
            ), doc_id  # fmt: skip
            assert result.decision_id == outcome.decision_id and source == "batch"
            assert outcome.request["resource"]["id"] == doc_id and outcome.request["action"] == action
        message = run(servicer.AuthorizeBatch(request, Context()))
        assert without_ids(message) == without_ids(answer)
    assert servicer.service.metrics is not None
    if cache_size:
        assert servicer.service.metrics.cache_hits >= 7


@pytest.mark.parametrize(
    ("request_", "details"),
    [
        # the size of the batch is checked before anything in it
        (batch(doc("a", "read", "read", "read"), pb.ResourceActions(resource=pb.Entity(id="x"), actions=["read"])),
         "batch of 4 decisions is larger than the limit of 3"),
        (batch(doc("a", "read", "read"), doc("b", "read", "read"), principal={"type": "", "id": "x"}),
         "batch of 4 decisions is larger than the limit of 3"),
        # then the principal and the context, then the items in order
        (batch(pb.ResourceActions(resource=pb.Entity(id="x"), actions=["read"]), principal={"type": "", "id": "x"}),
         "principal.type: is required"),
        (batch(doc("a", "read"), pb.ResourceActions(resource=pb.Entity(id="x"), actions=["read"]), doc("b")),
         "items[1].resource.type: is required"),
        (batch(doc("a", "read"), doc("b"), pb.ResourceActions(resource=pb.Entity(id="x"), actions=["read"])),
         "items[1].actions: at least one action is required"),
        (batch(doc("a", "read"), pb.ResourceActions(actions=["read"])), "items[1].resource: is required"),
        (batch(doc("a", "read", attributes=b"\xc1")), "items[0].resource.attributes: not valid msgpack: FormatError"),
        (batch(doc("a", "read", attributes=msgpack.packb({"k": [[[[1]]]]}))),
         "items[0].resource.attributes.k[0][0]: nested deeper than 2 levels"),
    ],
)  # fmt: skip
def test_batch_problems_are_reported_in_order(request_: pb.AuthorizeBatchRequest, details: str) -> None:
    servicer, recorder = make_servicer(max_batch=3, max_depth=2)
    with pytest.raises(Aborted) as err:
        run(servicer.authorize_batch(request_.SerializeToString(), Context()))
    assert (err.value.code, err.value.details) == (grpc.StatusCode.INVALID_ARGUMENT, details)
    assert not recorder.seen  # nothing was decided


def test_batch_item_shortcut_reads_entities_as_the_decoder_does() -> None:
    servicer, _ = make_servicer()
    decoder = Decoder(Limits())
    cases = [
        pb.Entity(type="Document", id="d"),
        pb.Entity(type="Document"),
        pb.Entity(type="Document", id="d", attributes=msgpack.packb({"a": 1})),
        pb.Entity(type="Document", id="d", attributes_json='{"a": 1}'),
        pb.Entity(type="Document", id="d", parents=[pb.EntityRef(type="Folder", id="f")]),
    ]
    request = pb.AuthorizeBatchRequest(items=[pb.ResourceActions(resource=e, actions=["read"]) for e in cases])
    pairs, keys, size, problem = servicer._items(request)  # noqa: SLF001
    assert problem is None and keys is None and size == len(cases)
    assert [resource for resource, _ in pairs] == [decoder.entity(e, "resource") for e in cases]


# ---- pieces ----------------------------------------------------------------------------------


def test_decoder_keeps_good_maps_only() -> None:
    decoder = Decoder(Limits(max_depth=1), cache_size=2)
    good = msgpack.packb({"a": 1})
    assert decoder.entity(pb.Entity(type="T", id="i", attributes=good), "p") == {
        "type": "T", "id": "i", "attributes": {"a": 1},
    }  # fmt: skip
    deep = msgpack.packb({"a": {"b": {"c": 1}}})
    for _ in range(2):
        with pytest.raises(BadRequest, match=r"^p\.attributes\.a\.b: nested deeper than 1 levels$"):
            decoder.entity(pb.Entity(type="T", id="i", attributes=deep), "p")
    for i in range(5):  # a full cache starts over
        assert decoder.context(pb.AuthorizeRequest(context=msgpack.packb({"n": i}))) == {"n": i}
    assert decoder.context(pb.AuthorizeRequest(context_json='{"n": 1}')) == {"n": 1}
    assert decoder.context(pb.AuthorizeRequest()) is None
    with pytest.raises(BadRequest, match=r"^context: not valid msgpack"):
        decoder.context(pb.AuthorizeRequest(context=b""))


def test_outcomes_are_immutable_and_ids_unique() -> None:
    outcome = Outcome(DECISIONS[0], "d-1", False, False, 0, {}, 1.0)
    with pytest.raises(AttributeError):
        outcome.cached = True  # type: ignore[misc]
    assert outcome.schema is None and outcome.sensitive_headers == frozenset()
    ids = DecisionIds()
    taken = [ids.next(), *ids.take(3), ids.next()]
    assert len(set(taken)) == 5 and all(re.fullmatch(r"[0-9a-f]{12}-\d{10}", i) for i in taken)
    assert [int(i.split("-")[1]) for i in taken] == [1, 2, 3, 4, 5]


def test_metrics_read_as_prometheus_counters_and_histograms_would() -> None:
    """The families the old Counter/Histogram objects exposed, value for value."""
    registry = CollectorRegistry()
    decisions = Counter("pdp_decisions", "Decisions by result", ["result"], registry=registry)
    latency = Histogram(
        "pdp_decision_latency_seconds", "Time to decide, cache included", buckets=_LATENCY_BUCKETS, registry=registry
    )
    hits = Counter("pdp_cache_hits", "Decision cache hits", registry=registry)
    misses = Counter("pdp_cache_misses", "Decision cache misses", registry=registry)
    for result in ("allow", "deny", "error"):
        decisions.labels(result)
    metrics = Metrics()
    for allowed, errored, seconds in [
        (True, False, 3e-5),
        (False, False, 0.0001),
        (False, True, 0.3),
        (True, False, 9),
    ]:
        metrics.observe(allowed, errored, seconds)
        decisions.labels("error" if errored else "allow" if allowed else "deny").inc()
        latency.observe(seconds)
    metrics.observe_many(3, 2, 1, 0.002)
    for result, n in (("allow", 3), ("deny", 2), ("error", 1)):
        decisions.labels(result).inc(n)
        for _ in range(n):
            latency.observe(0.002)
    metrics.count_cache(2, 5)
    hits.inc(2)
    misses.inc(5)

    def text(registry: CollectorRegistry) -> str:
        out = re.sub(r"^(\w+_created(?:\{[^}]*\})?) \S+$", r"\1 T", generate_latest(registry).decode(), flags=re.M)
        # a batch adds its latencies in one multiplication: the sum may differ in the last digits
        return re.sub(r"^(\w+_sum) (\S+)$", lambda m: f"{m[1]} {float(m[2]):.9f}", out, flags=re.M)

    ours, theirs = text(metrics.registry), text(registry)
    assert ours.startswith(theirs), "\n".join(difflib.unified_diff(theirs.splitlines(), ours.splitlines()))
    assert 'pdp_decisions_total{result="allow"} 5.0' in ours and "pdp_decision_latency_seconds_count 10.0" in ours
