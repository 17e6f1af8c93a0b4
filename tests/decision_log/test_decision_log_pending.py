"""Decisions queued as they were made (`PendingDecision`) and encoded by the writer from memoized
pieces: the records must be byte for byte those of `event_for` + `to_json()`, whatever the request."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp import Engine
from pdp.decision import Decision, DecisionError
from pdp.decision_log import (
    MASK,
    DecisionLog,
    DecisionLogClosed,
    Masker,
    MemoryDecisionLog,
    event_for_outcome,
    read_events,
)
from tests.decision_log.strategies import entities, json_values

FORMATS = ("jsonl", "msgpack")


@dataclass(frozen=True)
class Outcome:  # what pdp.server.service.Outcome carries for the log
    decision: Decision
    request: Any
    decision_id: str = "d-1"
    cached: bool = False
    unauthenticated: bool = False
    latency_us: float = 12.5
    sensitive_headers: frozenset[str] = field(default_factory=frozenset)
    sensitive_advice: frozenset[str] = field(default_factory=frozenset)
    schema: Any = None


WHEN = 1795737600.123456


def pending(outcome: Outcome, masker: Masker, source: str | None = "authorize", worker: int | None = 0) -> Any:
    return (outcome, masker, source, worker, WHEN)


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One log per format, only for their encoders (nothing is submitted)."""
    folder = tmp_path_factory.mktemp("encoders")
    opened = {fmt: DecisionLog(folder / f"unused.{fmt}", format=fmt) for fmt in FORMATS}
    yield opened
    for log in opened.values():
        log.close()


def composed(log: DecisionLog, item: Any) -> bytes | None:
    """What the writer composes; None where it takes the long way (it also does when composing raises)."""
    try:
        return log._compose(item)
    except Exception:
        return None


def the_long_way(log: DecisionLog, item: Any) -> bytes:
    return log._encode(event_for_outcome(item))


def check(log: DecisionLog, item: Any, *, expect_composed: bool = True) -> bytes:
    """The composed record equals the long way's; returns it (or the long way's when not composed)."""
    expected = the_long_way(log, item)
    got = composed(log, item)
    if expect_composed:
        assert got is not None, "this request should be composed from memoized pieces"
    if got is not None:
        assert got == expected
    twice = composed(log, item)  # from the memos this time
    assert twice is None or twice == expected
    return expected


def decode(fmt: str, record: bytes) -> dict[str, Any]:
    return json.loads(record) if fmt == "jsonl" else msgpack.unpackb(record, raw=False)  # type: ignore[no-any-return]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_masked_request_is_composed_exactly(
    logs: dict[str, DecisionLog], fmt: str, engine: Engine, masker: Masker, user_request: Any
) -> None:
    request = user_request()
    decision = engine.decide(request)
    record = check(logs[fmt], pending(Outcome(decision, request), masker))
    event = decode(fmt, record)
    assert event["request"]["principal"]["attributes"]["email"] == MASK
    assert event["masked"][0] == "principal.attributes.email" and "context.session" in event["masked"]
    assert event["obligations"] == [{"type": "header", "name": "x-owner", "value": "u1"}]
    assert event["timestamp"] == "2026-11-27T00:00:00.123456Z" and event["source"] == "authorize"


@pytest.mark.parametrize("fmt", FORMATS)
def test_shared_attribute_maps_hit_the_memo_and_stay_exact(
    logs: dict[str, DecisionLog], fmt: str, engine: Engine, masker: Masker, user_request: Any
) -> None:
    first = user_request()
    attributes, context = first["principal"]["attributes"], first["context"]
    for i, action in enumerate(["read", "read", "write"]):
        request = {
            "action": action,
            "principal": {"type": "User", "id": "u1", "attributes": attributes},
            "resource": {"type": "Doc", "id": f"d{i % 2}", "attributes": first["resource"]["attributes"]},
            "context": context,
        }
        outcome = Outcome(engine.decide(request), request, decision_id=f"d-{i}", cached=i == 1)
        check(logs[fmt], pending(outcome, masker))
    assert masker._parts["principal"][id(attributes)].value is attributes


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "request_",
    [
        {"action": "read"},
        {},
        {"principal": {"type": "Robot", "id": "r", "attributes": {"email": "e"}}, "action": "read"},  # unknown type
        {"resource": {"type": "Doc", "id": "d"}, "principal": {"id": "u", "type": "User"}},  # no attributes, odd order
        {"principal": "User::u", "context": "not an object", "action": "read"},
        {"principal": {"type": "User", "id": "u", "attributes": {}}, "context": {}},
        {"principal": {"type": "User", "id": "u", "attributes": {"profile": "not a record", "keys": ["x"]}}},
        {"principal": {"type": "User", "id": "u", "attributes": {"nick": "n" * 5000}}},  # cut to max_string
        {"context": {"ip": "10.0.0.1", "tags": list(range(300)), "deep": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}},
        {"context": {7: "int key", "set": {3, 1, 2}, "nan": math.nan, "big": 2**80, "bytes": b"\x00"}},
        {"context": {f"k{i}": i for i in range(300)}, "principal": {"type": "User", "id": "u"}},  # cut to max_items
        {"principal": {"type": "Service", "id": "s", "attributes": {"token": "t", "name": "n"}}, "action": "é✓"},
    ],
)
def test_request_shapes_are_composed_exactly(
    logs: dict[str, DecisionLog], fmt: str, masker: Masker, request_: Any
) -> None:
    check(logs[fmt], pending(Outcome(Decision(False, revision="r1"), request_), masker))


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "request_",
    [
        ["not", "an", "object"],
        "text",
        {"principal": {"type": "User", "id": "u", "parents": [{"type": "Group", "id": "g"}]}},
        {"principal": {"type": "User", "id": 5}},
        {"action": 5},
        {"extra": {"email": "e"}},
        {"action": "x" * 2000},
        {"context": {"a": "x" * 1000} | {f"k{i}": "v" * 1000 for i in range(70)}},  # over max_total
    ],
)
def test_other_shapes_take_the_long_way(logs: dict[str, DecisionLog], fmt: str, masker: Masker, request_: Any) -> None:
    """Not composed (None) where composing could differ; the writer then encodes the long way."""
    item = pending(Outcome(Decision(True, revision="r1"), request_), masker)
    assert composed(logs[fmt], item) is None
    check(logs[fmt], item, expect_composed=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_size_budget_is_shared_across_parts(logs: dict[str, DecisionLog], fmt: str, masker: Masker) -> None:
    """Each part fits alone, the whole does not: the whole request is masked in one pass."""
    big = {f"k{i}": "v" * 900 for i in range(40)}  # ~36 KB each, 64 KB in all
    request = {
        "principal": {"type": "User", "id": "u", "attributes": {"nick": "n", **big}},
        "context": dict(big),
    }
    item = pending(Outcome(Decision(False), request), masker)
    assert composed(logs[fmt], item) is None
    event = decode(fmt, check(logs[fmt], item, expect_composed=False))
    assert event["truncated"]  # cut for size: masking part by part would not have cut it


@pytest.mark.parametrize("fmt", FORMATS)
def test_many_masked_paths_across_parts(logs: dict[str, DecisionLog], fmt: str, masker: Masker) -> None:
    keys = {f"k{i}": {"kid": "i", "secret": "s"} for i in range(40)}
    request = {
        "principal": {"type": "User", "id": "u", "attributes": {"keys": keys}},
        "resource": {"type": "User", "id": "v", "attributes": {"keys": dict(keys)}},
    }
    item = pending(Outcome(Decision(False), request), masker)
    event = decode(fmt, check(logs[fmt], item, expect_composed=False))
    assert event["masked"][-1] == "... 16 more"


@pytest.mark.parametrize("fmt", FORMATS)
def test_outcome_fields(logs: dict[str, DecisionLog], fmt: str, masker: Masker, user_request: Any) -> None:
    request = user_request()
    decision = Decision(
        True,
        reasons=("r1", "r2"),
        obligations=({"type": "header", "name": "x-mail", "value": "a@b.example"}, {"type": "mask", "path": "p"}),
        advice=(
            {"rule": "r", "name": "hint", "value": {"email": "a@b.example"}},
            {"rule": "r", "name": "ok", "value": 1},
        ),
        revision="rev-9",
    )
    outcome = Outcome(
        decision,
        request,
        cached=True,
        unauthenticated=True,
        latency_us=3,
        sensitive_headers=frozenset({"x-mail"}),
        sensitive_advice=frozenset({"hint"}),
    )
    for source, worker in (("envoy", 3), (None, None)):
        event = decode(fmt, check(logs[fmt], pending(outcome, masker, source, worker)))
        assert event["obligations"][0] == {"type": "header", "name": "x-mail", "value": MASK}
        assert event["advice"] == [
            {"rule": "r", "name": "hint", "value": MASK},
            {"rule": "r", "name": "ok", "value": 1},
        ]
        assert event["unauthenticated"] is True and event["cached"] is True and event["latency_us"] == 3.0
        assert ("source" in event) == (source is not None) and event.get("worker") == worker
    # the same decision object without sensitive names: not the memoized masking
    event = decode(fmt, check(logs[fmt], pending(replace(outcome, sensitive_headers=frozenset()), masker)))
    assert event["obligations"][0]["value"] == "a@b.example"


@pytest.mark.parametrize("fmt", FORMATS)
def test_errors_about_masked_values_are_masked(
    logs: dict[str, DecisionLog], fmt: str, engine: Engine, masker: Masker, user_request: Any
) -> None:
    request = user_request()
    request["principal"]["attributes"]["level"] = "top-secret-value"
    decision = engine.decide(request)
    assert decision.errors
    record = check(logs[fmt], pending(Outcome(decision, request), masker))
    assert b"top-secret-value" not in record
    assert decode(fmt, record)["errors"] == [{"message": MASK, "field": "principal.attributes.level"}]
    other = Decision(False, errors=(DecisionError("boom", rule="x"), DecisionError("m", field="context.ip")))
    check(logs[fmt], pending(Outcome(other, request), masker))


@pytest.mark.parametrize("fmt", FORMATS)
def test_odd_scalars_take_the_long_way(logs: dict[str, DecisionLog], fmt: str, masker: Masker) -> None:
    request = {"action": "read"}
    for outcome in (
        Outcome(Decision(True), request, latency_us=math.inf),
        Outcome(Decision(True), request, decision_id=None),  # type: ignore[arg-type]
    ):
        check(logs[fmt], pending(outcome, masker), expect_composed=False)
    surrogate = {"action": "read", "context": {"bad": "\udc80"}}
    record = check(logs[fmt], pending(Outcome(Decision(True), surrogate), masker), expect_composed=fmt == "jsonl")
    decode(fmt, record)


def test_the_memos_are_per_masker_so_per_schema_revision(logs: dict[str, DecisionLog]) -> None:
    """The same attribute map, once masked under a revision where `email` is sensitive, is not
    reused under one where it is not (and the other way round)."""
    schemas = [
        Engine.from_source(f"principal entity User {{ email: string{s}; }}\nentity Doc {{}}\nactions Doc {{ read }}")
        for s in (" sensitive", "")
    ]
    attributes = {"email": "a@b.example"}
    request = {"principal": {"type": "User", "id": "u", "attributes": attributes}, "action": "read"}
    seen = []
    for engine in schemas + schemas:
        masker = Masker(engine.schema)
        for _ in range(2):
            record = composed(logs["jsonl"], pending(Outcome(Decision(True), request), masker))
            assert record is not None
            seen.append(json.loads(record)["request"]["principal"]["attributes"]["email"])
    assert seen == [MASK, MASK, "a@b.example", "a@b.example"] * 2


def test_memos_are_bounded(logs: dict[str, DecisionLog], masker: Masker) -> None:
    fresh = Masker(None)
    for i in range(1000):
        request = {"principal": {"type": "User", "id": f"u{i}", "attributes": {"n": i}}, "context": {"i": i}}
        assert composed(logs["jsonl"], pending(Outcome(Decision(True, revision=str(i)), request), fresh)) is not None
    assert all(len(memo) <= 256 for memo in fresh._parts.values())
    assert len(fresh._entity_memo) <= 256 and len(fresh._decisions) <= 256 and len(fresh._templates) <= 256


requests = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "action": st.text(max_size=5),
            "principal": entities | json_values,
            "resource": entities,
            "context": json_values,
        },
    ),
)


@settings(max_examples=200, deadline=None)
@given(value=requests, small=st.booleans())
def test_any_request_is_encoded_exactly(logs: dict[str, DecisionLog], engine: Engine, value: Any, small: bool) -> None:
    """With small limits too, so that cutting happens; each request twice (the second from the memos)."""
    if small:
        masker = Masker(engine.schema, max_depth=6, max_items=4, max_string=12, max_total=300)
    else:
        masker = Masker(engine.schema)
    for fmt in FORMATS:
        item = pending(Outcome(Decision(True, revision="r"), value), masker)
        check(logs[fmt], item, expect_composed=False)


# ---- through the log ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_pending_decisions_reach_the_file_in_order(
    tmp_path: Path, fmt: str, engine: Engine, masker: Masker, user_request: Any
) -> None:
    request = user_request()
    decision = engine.decide(request)
    items = [pending(Outcome(decision, request, decision_id=f"e{i}", cached=i % 2 == 0), masker) for i in range(500)]
    path = tmp_path / f"decisions.{fmt}"
    with DecisionLog(path, format=fmt, queue_size=64, max_bytes=20_000, backups=100) as log:
        for item in items:
            if not log.try_submit(item):
                assert log.submit(item)
    assert log.written == 500 and log.dropped == 0 and log.rotations > 5
    assert list(read_events([path])) == [event_for_outcome(item).to_json() for item in items]


def test_try_submit_never_waits_and_counts_nothing(tmp_path: Path, control: Any, masker: Masker) -> None:
    control.hold()
    log = DecisionLog(tmp_path / "d.jsonl", queue_size=2, opener=control.opener)
    item = pending(Outcome(Decision(True), {"action": "read"}), masker)
    assert log.try_submit(item)
    assert control.entered.wait(5)  # the writer holds the first one
    assert log.try_submit(item) and log.try_submit(item)
    assert log.try_submit(item) is False and log.dropped == 0

    async def blocked() -> bool:
        return await log.submit_async(item)

    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(blocked())))
    thread.start()
    thread.join(0.2)
    assert thread.is_alive()  # back-pressure: waits for room
    control.gate.set()
    thread.join(5)
    assert result == [True]
    log.close()
    assert log.written == 4
    with pytest.raises(DecisionLogClosed):
        log.try_submit(item)


def test_the_writer_waits_for_a_batch_but_flush_and_close_do_not(tmp_path: Path, masker: Masker) -> None:
    item = pending(Outcome(Decision(True), {"action": "read"}), masker)
    log = DecisionLog(tmp_path / "d.jsonl", write_interval=60)
    log.submit(item)
    assert log.flush(timeout=5) and log.written == 1
    for _ in range(log._wake_at):  # a batch's worth wakes the writer at once
        log.submit(item)
    assert log.flush(timeout=5)
    log.submit(item)
    log.close()  # at once, not after write_interval
    assert log.written == log._wake_at + 2


def test_recorder_on_another_sink_builds_events(masker: Masker, user_request: Any, engine: Engine) -> None:
    from pdp.server.recorder import LogRecorder

    sink = MemoryDecisionLog()
    recorder = LogRecorder(sink, 1)
    request = user_request()
    outcome = Outcome(engine.decide(request), request, sensitive_headers=frozenset({"x-owner"}))
    recorder._last = masker
    asyncio.run(recorder.record(outcome, "http"))  # type: ignore[arg-type]
    (event,) = sink.events
    assert event.obligations == ({"type": "header", "name": "x-owner", "value": MASK},)
    assert event.source == "http" and event.worker == 1


@settings(max_examples=300, deadline=None)
@given(
    when=st.floats(min_value=-1e9, max_value=4e9) | st.sampled_from([0.0, 0.5, -0.5, 1795737600.9999999, 1.0 - 2**-53])
)
def test_timestamps_are_rfc3339s(logs: dict[str, DecisionLog], when: float) -> None:
    from pdp.decision_log import rfc3339

    composer = logs["jsonl"]._compose.__self__  # type: ignore[attr-defined]
    assert composer._timestamp(when) == rfc3339(when)
    assert composer._timestamp(when + 0.25) == rfc3339(when + 0.25)  # in the same second, or not


@settings(max_examples=500, deadline=None)
@given(latency=st.floats(min_value=0, max_value=2e9) | st.integers(min_value=0, max_value=10**10) | st.floats())
def test_latencies_are_written_as_json_writes_them(latency: float) -> None:
    from pdp.decision_log import _latency_text, to_the_nanosecond

    if not math.isfinite(latency):
        return
    assert _latency_text(latency) == repr(to_the_nanosecond(latency)) == json.dumps(to_the_nanosecond(latency))
