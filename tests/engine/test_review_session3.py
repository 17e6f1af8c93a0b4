"""Review of session 3's fast paths: answers kept per leaf (keyed by what matched and the raw
header and advice values), counting validators, `like` as string methods, and batch reuse."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp import Engine
from policy_lang.convert import record_converter
from policy_lang.schema import BOOL, DATETIME, INT, IP, STRING, EnumType, Field, Record, SetOf
from policy_lang.validators import generate

ADVISED = """
principal entity User { seen: datetime; wait: duration; }
entity Doc { tenant: string; }
actions Doc { read }
forbid early
  action read
  when principal.seen < datetime("1970-01-01T00:00:01Z")
  advice { seen = principal.seen; wait = principal.wait; };
permit p action read;
"""


def _advised(seen: float, wait: float) -> dict[str, Any]:
    return {
        "principal": {"type": "User", "id": "u", "attributes": {"seen": seen, "wait": wait}},
        "action": "read",
        "resource": {"type": "Doc", "id": "d", "attributes": {"tenant": "t"}},
    }


@pytest.mark.parametrize("field", ["seen", "wait"])
def test_advice_of_minus_zero_answers_as_a_fresh_engine_does(field: str) -> None:
    """-0.0 == 0.0 and they hash alike, so they share a memo key: advice therefore carries floats
    without their sign (0.0), and a kept answer equals what a fresh engine answers."""
    engine = Engine.from_source(ADVISED)
    first = {"seen": 0.0, "wait": 0.0}
    second = {**first, field: -0.0}
    engine.decide(_advised(**first))  # keeps the answer with +0.0
    got = engine.decide(_advised(**second))
    fresh = Engine.from_source(ADVISED)
    assert not any(bucket.memo for bucket in fresh.policy.buckets.values())
    want = fresh.decide(_advised(**second))  # nothing kept: the general answer
    values = {a["name"]: a["value"] for a in want.advice}
    assert math.copysign(1, values[field]) == 1, want.advice
    assert json.dumps(got.to_json()) == json.dumps(want.to_json())


# ---- generated validators (unknown keys found by counting) against the general converter -------

_ENUM = EnumType("E", ("a", "b"), False)
_TYPES = [STRING, INT, BOOL, IP, DATETIME, _ENUM, SetOf(STRING)]
_NAMES = ["f", "g", "h", "i"]
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["a", "b", "10.0.0.1", "2020-01-01T00:00:00Z", "x"]),
    st.lists(st.sampled_from(["a", 1]), max_size=2),
)
_KEYS = st.one_of(st.sampled_from([*_NAMES, "zz"]), st.integers(0, 2), st.none())


@settings(max_examples=400, deadline=None)
@given(
    fields=st.lists(
        st.tuples(st.sampled_from(_NAMES), st.integers(0, len(_TYPES) - 1), st.booleans()),
        max_size=4,
        unique_by=lambda f: f[0],
    ),
    full=st.booleans(),
    value=st.dictionaries(_KEYS, _VALUES, max_size=5),
)
def test_counting_validators_accept_only_what_the_converter_accepts(
    fields: list[tuple[str, int, bool]], full: bool, value: dict[Any, Any]
) -> None:
    record = Record(tuple(Field(name, _TYPES[t], optional) for name, t, optional in fields))
    fast = generate({"r": (record, full)})["r"]
    slow = record_converter(record, partial=not full)
    try:
        got = fast(value)
    except Exception:
        return  # the caller falls back to the converter, which decides
    assert got == slow(value), (fields, full, value)


# ---- decide_batch: a resource's consecutive pairs share its check ------------------------------

BATCH = """
principal entity User { tier: int; }
entity Doc { owner: string; }
actions Doc { read, write }
permit own action read, write when resource.owner == principal.id;
forbid low action write when principal.tier < 1;
"""


def test_batch_reuse_survives_bad_actions_and_failing_resources_in_between() -> None:
    engine = Engine.from_source(BATCH)
    principal = {"type": "User", "id": "u", "attributes": {"tier": 0}}
    good = {"type": "Doc", "id": "d", "attributes": {"owner": "u"}}
    other = {"type": "Doc", "id": "e", "attributes": {"owner": "v"}}
    broken = {"type": "Doc", "id": "x", "attributes": {"owner": 5}}
    items: list[tuple[Any, Any]] = [
        (good, "read"),
        (good, 7),  # not a string: the general way, between two plain pairs of the same resource
        (good, "nope"),
        (good, "write"),
        (broken, "read"),
        (broken, "read"),
        (good, "read"),
        (other, "read"),
        (good, "read"),
        ("not an object", "read"),
        (good, "write"),
    ]
    batch = engine.decide_batch(principal, None, items)
    for (resource, action), got in zip(items, batch, strict=True):
        want = engine.decide({"principal": principal, "action": action, "resource": resource})
        assert (got.allowed, got.reasons, got.errors) == (want.allowed, want.reasons, want.errors), (
            resource,
            action,
        )


def test_a_header_that_cannot_be_sent_denies_and_the_denial_keeps_the_clock_dependence() -> None:
    """A header value with a line break denies with the error under the rule; in a leaf that
    reads the clock the denial is time dependent (the server then never caches it)."""
    source = """
    principal entity User { label: string; }
    entity Doc {}
    actions Doc { read }
    permit labelled
      action read
      when now > datetime("1970-01-01T00:00:00Z")
      obligations { header "x-label" = principal.label; };
    """
    engine = Engine.from_source(source)
    request = {
        "principal": {"type": "User", "id": "u", "attributes": {"label": "a\r\nb"}},
        "action": "read",
        "resource": {"type": "Doc", "id": "d"},
    }
    for _ in range(2):  # the second answer is the kept one
        got = engine.decide(request)
        assert not got.allowed and [e.rule for e in got.errors] == ["labelled"]
        assert got.time_dependent
