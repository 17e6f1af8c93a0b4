"""Masking and capping what a decision event logs; building events."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp import Engine
from pdp.decision import Decision, DecisionError
from pdp.decision_log import MASK, DecisionEvent, Masker, event_for, rfc3339
from tests.decision_log.strategies import entities, json_values

Request = Callable[..., dict[str, Any]]


def test_masks_nested_records_maps_and_context(masker: Masker, user_request: Request) -> None:
    request = user_request()
    out = masker.mask(request)
    p = out.request["principal"]["attributes"]
    assert p["email"] == MASK
    assert p["tenant"] == "t"
    assert p["profile"] == {"name": "Ann", "ssn": MASK, "address": {"city": "Oslo", "zip": MASK}}
    assert p["keys"] == {"k1": {"kid": "i1", "secret": MASK}, "k2": {"kid": "i2", "secret": MASK}}
    assert p["level"] == MASK
    assert out.request["resource"]["attributes"] == {"owner": "u1", "salary": MASK, "tags": ["a", "b"]}
    assert out.request["context"] == {
        "ip": "10.0.0.1",
        "session": MASK,
        "device": {"serial": "dev-1", "fingerprint": MASK},
    }
    assert out.masked == (
        "principal.attributes.email",
        "principal.attributes.profile.ssn",
        "principal.attributes.profile.address.zip",
        "principal.attributes.keys.k1.secret",
        "principal.attributes.keys.k2.secret",
        "principal.attributes.level",
        "resource.attributes.salary",
        "context.session",
        "context.device.fingerprint",
    )
    assert out.truncated == ()


def test_masks_per_entity_type(masker: Masker) -> None:
    """`token` is sensitive for a Service principal only; `email` for a User only."""
    service = {"type": "Service", "id": "s", "attributes": {"token": "tok", "name": "n", "email": "e"}}
    user = {"type": "User", "id": "u", "attributes": {"token": "tok", "email": "e"}}
    out = masker.mask({"principal": service, "resource": user, "action": "read"})
    assert out.request["principal"]["attributes"] == {"token": MASK, "name": "n", "email": "e"}
    assert out.request["resource"]["attributes"] == {"token": "tok", "email": MASK}
    assert out.masked == ("principal.attributes.token", "resource.attributes.email")


def test_whole_sensitive_value_is_masked_whatever_its_shape(masker: Masker) -> None:
    request = {"principal": {"type": "User", "id": "u", "attributes": {"email": {"deep": ["x"]}, "level": None}}}
    out = masker.mask(request)
    assert out.request["principal"]["attributes"] == {"email": MASK, "level": MASK}


@pytest.mark.parametrize(
    "request_",
    [
        {"principal": {"type": "Robot", "id": "r", "attributes": {"email": "e"}}},  # unknown type
        {"principal": {"type": "User", "id": "u", "attributes": "email=e"}},  # attributes not an object
        {"principal": {"type": "User", "id": "u", "attributes": ["email", "e"]}},
        {"principal": {"type": ["User"], "id": "u", "attributes": {"email": "e"}}},  # type not a string
        {"principal": "User::u", "context": ["session", "s"]},
        {"principal": {"type": "User", "id": "u", "attributes": {"profile": "not a record", "keys": ["x"]}}},
        {"context": {"device": "not a record"}, "extra": {"email": "e"}},
        ["not", "an", "object"],
        "just a string",
        None,
        42,
        {},
    ],
)
def test_any_request_shape_is_logged_as_is(masker: Masker, request_: Any) -> None:
    before = copy.deepcopy(request_)
    out = masker.mask(request_)
    assert out.request == before
    assert out.masked == ()
    assert request_ == before


def test_never_mutates_and_never_shares_the_request(masker: Masker, user_request: Request) -> None:
    request = user_request()
    before = copy.deepcopy(request)
    out = masker.mask(request)
    assert request == before
    out.request["principal"]["attributes"]["profile"]["address"]["city"] = "changed"
    out.request["resource"]["attributes"]["tags"].append("changed")
    assert request == before


def test_no_schema_masks_nothing_but_still_caps(user_request: Request) -> None:
    masker = Masker(None, max_string=10)
    out = masker.mask(user_request())
    assert out.masked == ()
    assert out.request["principal"]["attributes"]["email"] == "a@b.exampl...<1 more chars>"
    assert "principal.attributes.email" in out.truncated


def test_long_strings_are_cut_and_listed() -> None:
    masker = Masker(None, max_string=10)
    out = masker.mask({"context": {"blob": "y" * 1000, "ok": "short", "k" * 20: 1}})
    ctx = out.request["context"]
    assert ctx["blob"] == "yyyyyyyyyy...<990 more chars>"
    assert ctx["ok"] == "short"
    assert "kkkkkkkkkk...<10 more chars>" in ctx
    assert out.truncated == ("context.blob",)


def test_deep_nesting_is_cut() -> None:
    masker = Masker(None, max_depth=5)
    deep: Any = "bottom"
    for _ in range(50):
        deep = {"d": deep}
    out = masker.mask({"context": deep})
    text = json.dumps(out.request)
    assert "bottom" not in text
    assert "<truncated: nested deeper than 5>" in text
    assert out.truncated == ("context.d.d.d.d",)


def test_a_cyclic_python_value_does_not_raise() -> None:
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    out = Masker(None, max_depth=4).mask({"context": cyclic})
    json.dumps(out.request)


def test_long_containers_keep_their_first_items() -> None:
    masker = Masker(None, max_items=3)
    out = masker.mask({"context": {"l": list(range(10)), "m": {str(i): i for i in range(5)}}})
    assert out.request["context"]["l"] == [0, 1, 2, "<truncated: 7 more items>"]
    assert out.request["context"]["m"] == {"0": 0, "1": 1, "2": 2, "<truncated>": "2 more entries"}
    assert out.truncated == ("context.l", "context.m")


def test_total_size_is_bounded() -> None:
    masker = Masker(None, max_total=10_000)
    hostile = {"context": {f"k{i}": {"v": "z" * 900, "w": ["z" * 900] * 10} for i in range(200)}}
    out = masker.mask(hostile)
    size = len(json.dumps(out.request))
    assert size < 40_000  # about max_total, plus the markers and one container's worth of scalars
    assert out.truncated
    assert len(out.truncated) <= 65


def test_values_that_are_not_json_become_plain_data() -> None:
    class Thing:
        def __str__(self) -> str:
            return "a thing"

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    request = {
        "context": {
            "set": {3, 1, 2},
            "tuple": (1, "a"),
            "bytes": b"\x00\xff",
            "nan": math.nan,
            "inf": -math.inf,
            "big": 2**80,
            "thing": Thing(),
            "broken": Broken(),
            7: "int key",
            ("a", 1): "tuple key",
        }
    }
    out = masker_none().mask(request)
    ctx = out.request["context"]
    assert ctx["set"] == [1, 2, 3]
    assert ctx["tuple"] == [1, "a"]
    assert ctx["bytes"] == "b'\\x00\\xff'"
    assert ctx["nan"] == "nan" and ctx["inf"] == "-inf"
    assert ctx["big"] == str(2**80)
    assert ctx["thing"] == "a thing"
    assert ctx["broken"] == "<unprintable Broken>"
    assert ctx["7"] == "int key"
    assert ctx["('a', 1)"] == "tuple key"
    json.dumps(out.request, allow_nan=False)
    msgpack.packb(out.request)


def masker_none() -> Masker:
    return Masker(None)


requests = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {}, optional={"principal": entities | json_values, "resource": entities, "context": json_values}
    ),
)


@settings(max_examples=150, deadline=None)
@given(value=requests)
def test_mask_never_raises_never_mutates_and_gives_plain_data(engine: Engine, value: Any) -> None:
    masker = Masker(engine.schema, max_depth=6, max_items=4)
    before = copy.deepcopy(value)
    out = masker.mask(value)
    assert repr(value) == repr(before)  # repr: NaN != NaN
    json.dumps(out.request, allow_nan=False)
    for path in out.masked:
        assert path.startswith(("principal.attributes", "resource.attributes", "context"))


# ---- events ---------------------------------------------------------------------------------


def test_event_for(engine: Engine, masker: Masker, user_request: Request) -> None:
    request = user_request()
    decision = engine.decide(request)
    assert decision.allowed
    event = event_for(
        request,
        decision,
        decision_id="d-1",
        latency_us=12.25,
        cached=True,
        masker=masker,
        source="envoy",
        worker=2,
        unauthenticated=True,
        timestamp=1795737600.25,
    )
    assert event.decision_id == "d-1"
    assert event.timestamp == "2026-11-27T00:00:00.250000Z"
    assert event.revision == engine.revision
    assert event.allowed is True
    assert event.reasons == ("owners",)
    assert event.obligations == ({"type": "header", "name": "x-owner", "value": "u1"},)
    assert event.request["principal"]["attributes"]["email"] == MASK
    assert "context.session" in event.masked
    data = event.to_json()
    assert data["v"] == 1
    assert data["source"] == "envoy" and data["worker"] == 2 and data["unauthenticated"] is True
    assert data["latency_us"] == 12.25 and data["cached"] is True
    assert json.loads(json.dumps(data)) == data
    assert DecisionEvent.from_json(json.loads(json.dumps(data))) == event
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.allowed = False  # type: ignore[misc]


def test_event_defaults(masker: Masker) -> None:
    event = event_for({"action": "x"}, Decision(False, revision="r"), latency_us=1, masker=masker)
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", event.decision_id)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", event.timestamp)
    data = event.to_json()
    assert "source" not in data and "worker" not in data and "unauthenticated" not in data
    assert data["cached"] is False and data["masked"] == []


def test_event_without_a_schema_caps_only(user_request: Request) -> None:
    event = event_for(user_request(), Decision(False), latency_us=1, masker=None)
    assert event.request["principal"]["attributes"]["email"] == "a@b.example"


def test_error_about_a_sensitive_value_is_masked(engine: Engine, masker: Masker, user_request: Request) -> None:
    request = user_request()
    request["principal"]["attributes"]["level"] = "top-secret-value"
    decision = engine.decide(request)
    assert "top-secret-value" in decision.errors[0].message
    event = event_for(request, decision, latency_us=1, masker=masker)
    assert event.errors == ({"message": MASK, "field": "principal.attributes.level"},)
    assert "top-secret-value" not in json.dumps(event.to_json())


def test_error_about_another_value_is_kept(engine: Engine, masker: Masker, user_request: Request) -> None:
    request = user_request()
    request["principal"]["attributes"]["tenant"] = 5
    event = event_for(request, engine.decide(request), latency_us=1, masker=masker)
    assert event.errors == ({"message": "expected string, found int", "field": "principal.attributes.tenant"},)


def test_error_under_a_masked_record_is_masked(masker: Masker) -> None:
    decision = Decision(False, errors=(DecisionError("found 'x'", field="principal.attributes.email.inner"),))
    request = {"principal": {"type": "User", "id": "u", "attributes": {"email": {"inner": "x"}}}}
    event = event_for(request, decision, latency_us=1, masker=masker)
    assert event.errors[0]["message"] == MASK
    decision = Decision(False, errors=(DecisionError("found 'x'", field="principal.attributes.emails"),))
    event = event_for(request, decision, latency_us=1, masker=masker)
    assert event.errors[0]["message"] == "found 'x'"


def test_outputs_are_capped() -> None:
    masker = Masker(None, max_string=5)
    decision = Decision(
        True,
        obligations=({"type": "header", "name": "x", "value": "v" * 100},),
        advice=({"rule": "r", "name": "n", "value": 7},),
        errors=(DecisionError("m" * 100, rule="r"),),
    )
    event = event_for({}, decision, latency_us=1, masker=masker)
    assert event.obligations == ({"type": "heade...<1 more chars>", "name": "x", "value": "vvvvv...<95 more chars>"},)
    assert event.advice == ({"rule": "r", "name": "n", "value": 7},)
    assert event.errors == ({"message": "mmmmm...<95 more chars>", "rule": "r"},)


def test_rfc3339() -> None:
    assert rfc3339(0.5) == "1970-01-01T00:00:00.500000Z"
    assert rfc3339(1795737600.999999) == "2026-11-27T00:00:00.999999Z"
    assert rfc3339(1795737601.0) == "2026-11-27T00:00:01.000000Z"


def test_masker_limits_are_checked() -> None:
    with pytest.raises(ValueError):
        Masker(None, max_depth=0)
    with pytest.raises(ValueError):
        Masker(None, max_string=0)
