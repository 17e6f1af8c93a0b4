"""The engine's fast paths (the plain request shape, generated validators, the decision memo keyed
by raw header and advice values) answer exactly what the general path answers."""

from __future__ import annotations

import copy
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pdp import Engine
from policy_lang.values import IPNet, IPSet, Window, glob_match, parse_ip

ROOT = Path(__file__).resolve().parents[2]


def _general(engine: Engine, request: Any) -> tuple[Any, ...]:
    """The full path, with no answer kept: prepare then run."""
    for bucket in engine.policy.buckets.values():
        bucket.memo.clear()
    fresh = Engine(engine.policy, engine.store)
    try:
        decision = fresh._run(*fresh.prepare(request))
    except Exception:
        decision = fresh.decide(request)
    return decision.allowed, decision.reasons, decision.obligations, decision.advice, decision.errors


def _variants(request: dict[str, Any]) -> list[dict[str, Any]]:
    out = [request]
    attrs = request["principal"].get("attributes", {})
    for name in attrs:
        bad = copy.deepcopy(request)
        bad["principal"]["attributes"][name] = [1]  # the wrong type for every attribute
        out.append(bad)
        gone = copy.deepcopy(request)
        del gone["principal"]["attributes"][name]
        out.append(gone)
    for name in request.get("context", {}):
        bad = copy.deepcopy(request)
        bad["context"][name] = {"x": 1}
        out.append(bad)
    with_attrs = copy.deepcopy(request)
    with_attrs["resource"]["attributes"] = {"owner": request["principal"]["id"]}  # data wins
    out.append(with_attrs)
    with_parents = copy.deepcopy(request)
    with_parents["principal"]["parents"] = [{"type": "Group", "id": "finance"}]
    out.append(with_parents)
    return out


REQUESTS = [json.loads(p.read_text()) for p in sorted((ROOT / "policies" / "requests").glob("*.json"))]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: f"{r['principal']['id']}-{r['action']}")
def test_decide_equals_the_general_path(request_: dict[str, Any]) -> None:
    engine = Engine.load(ROOT / "policies")
    for variant in _variants(request_):
        for _ in range(2):  # the second answer comes from the memo
            got = engine.decide(variant)
            assert (got.allowed, got.reasons, got.obligations, got.advice, got.errors) == _general(engine, variant)


SOURCE = """
principal entity User { roles: map<string, set<string>>; seen: datetime; label?: string; flag?: bool; }
entity Doc { tenant: string; }
context { ip: ip; }
actions Doc { read }
permit labelled
  action read
  when principal has label
  obligations { header "x-label" = principal.label; };
permit flagged
  action read
  when principal has flag
  obligations { header "x-flag" = principal.flag; };
forbid late
  action read
  when principal.seen < datetime("1970-01-01T00:00:01Z")
  advice { seen = principal.seen; };
"""


def _request(**principal: Any) -> dict[str, Any]:
    return {
        "principal": {"type": "User", "id": "u", "attributes": {"roles": {}, "seen": 10, **principal}},
        "action": "read",
        "resource": {"type": "Doc", "id": "d", "attributes": {"tenant": "t"}},
        "context": {"ip": "10.0.0.1"},
    }


def test_a_map_key_that_is_not_a_string_is_denied_naming_the_map() -> None:
    engine = Engine.from_source(SOURCE)
    decision = engine.decide(_request(roles={1: ["admin"]}))
    assert not decision.allowed
    assert [e.field for e in decision.errors] == ["principal.attributes.roles"]
    assert "string key" in decision.errors[0].message


def test_sets_inside_maps_are_checked_element_by_element() -> None:
    engine = Engine.from_source(SOURCE)
    decision = engine.decide(_request(roles={"t": ["a", 2]}))
    assert [e.field for e in decision.errors] == ["principal.attributes.roles.t[1]"]
    assert engine.decide(_request(roles={"t": ["a", "b"]}, label="x")).allowed


def test_datetimes_and_ips_as_text_numbers_or_nonsense() -> None:
    engine = Engine.from_source(SOURCE)
    assert engine.decide(_request(seen="2026-01-01T00:00:00Z", label="x")).allowed
    assert engine.decide(_request(seen=1.5, label="x")).allowed
    bad = engine.decide(_request(seen="yesterday", label="x"))
    assert [e.field for e in bad.errors] == ["principal.attributes.seen"]
    request = _request(label="x")
    request["context"]["ip"] = "10.0.0.300"
    assert [e.field for e in engine.decide(request).errors] == ["context.ip"]


def test_header_values_of_equal_hash_stay_apart_in_the_memo() -> None:
    engine = Engine.from_source(SOURCE)
    first = engine.decide(_request(flag=True))
    second = engine.decide(_request(label="1"))
    assert [o["value"] for o in first.obligations] == ["true"]
    assert [o["value"] for o in second.obligations] == ["1"]
    again = engine.decide(_request(label="a"))
    assert [o["value"] for o in again.obligations] == ["a"]


def test_advice_values_are_part_of_the_memo_key() -> None:
    engine = Engine.from_source(SOURCE)
    one = engine.decide(_request(seen=-5))
    two = engine.decide(_request(seen=-7))
    assert not one.allowed and not two.allowed
    assert [a["value"] for a in one.advice] != [a["value"] for a in two.advice]


@settings(max_examples=300, deadline=None)
@given(
    start=st.integers(0, 24 * 60),
    end=st.integers(0, 24 * 60),
    days=st.frozensets(st.integers(0, 6), min_size=1),
    zone=st.sampled_from(["Europe/Berlin", "America/St_Johns", "Asia/Kathmandu", "UTC"]),
    seconds=st.lists(st.floats(-1e9, 4e9, allow_nan=False), min_size=1, max_size=6),
    fractions=st.lists(st.sampled_from([0.0, 0.25, 0.9999, 0.9999994, 0.9999995, 0.99999999]), min_size=1),
)
def test_time_windows_answer_by_the_second_as_the_local_clock_says(
    start: int, end: int, days: frozenset[int], zone: str, seconds: list[float], fractions: list[float]
) -> None:
    window = Window(days, start, end, zone)
    for whole in seconds:
        for fraction in fractions:  # the same second again and again, up to its last microsecond
            epoch = (whole // 1) + fraction
            assert window.contains(epoch) == Window(days, start, end, zone)._local_contains(epoch)


def test_a_time_window_kept_by_the_second_still_rounds_as_the_clock_does() -> None:
    window = Window(frozenset(range(7)), 8 * 60, 19 * 60, "UTC")
    before = 1_764_403_199.0  # 2025-11-29 07:59:59 UTC
    assert not window.contains(before + 0.2)  # keeps "no" for that second
    # fromtimestamp rounds to the microsecond: this is 08:00:00.000000, inside the window
    assert window.contains(before + 0.9999996)
    assert not window.contains(before + 0.999)


_ADDRESSES = st.one_of(
    st.builds(lambda v, p: f"{ipaddress.IPv4Address(v)}/{p}", st.integers(0, 2**32 - 1), st.integers(0, 32)),
    st.builds(lambda v, p: f"{ipaddress.IPv6Address(v)}/{p}", st.integers(0, 2**128 - 1), st.integers(0, 128)),
    st.sampled_from(["10.1.2.3", "10.0.0.0/8", "::ffff:10.1.2.3", "0.0.0.0/0", "::/0", "2001:db8::/32"]),
)


def _net(text: str) -> IPNet:
    net = ipaddress.ip_network(text, strict=False)  # host bits cleared, as a policy must write them
    return parse_ip(str(net) if "/" in text else text)


@settings(max_examples=300, deadline=None)
@given(networks=st.lists(_ADDRESSES, max_size=6), asked=st.lists(_ADDRESSES, min_size=1, max_size=8))
def test_ip_sets_keep_answers_per_address_exactly(networks: list[str], asked: list[str]) -> None:
    nets = frozenset(_net(t) for t in networks)
    kept = IPSet(nets)
    for text in asked + asked:  # every address twice: the second answer is the kept one
        ip = _net(text)
        assert (ip in kept) == any(net.contains(ip) for net in nets)


_GLOB_ALPHABET = "ab*/.\\"  # with the backslash: `\*` is a literal star


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.one_of(
        st.text(alphabet=_GLOB_ALPHABET, max_size=6),
        st.sampled_from([r"a\*", r"\*a", r"\*", r"a\*b*", r"*a\*", r"a\\*", r"a\*\*", r"*\*", r"\**"]),
    ),
    texts=st.lists(st.text(alphabet=_GLOB_ALPHABET, max_size=8), min_size=1, max_size=5),
)
def test_like_compiled_to_string_methods_matches_the_glob_rules(pattern: str, texts: list[str]) -> None:
    source = f"""
    principal entity User {{}}
    entity Doc {{ path: string; }}
    actions Doc {{ read }}
    permit globbed action read when resource.path like {json.dumps(pattern)};
    """
    engine = Engine.from_source(source)
    for text in texts:
        request = {
            "principal": {"type": "User", "id": "u"},
            "action": "read",
            "resource": {"type": "Doc", "id": "d", "attributes": {"path": text}},
        }
        decision = engine.decide(request)
        assert decision.errors == ()
        assert decision.allowed == glob_match(pattern, text), (pattern, text)


def test_kept_answers_stay_bounded_across_all_leaves() -> None:
    engine = Engine.from_source(SOURCE)
    limit = engine.policy.kept.limit
    for i in range(limit + 500):  # each label is a header value of its own: an answer of its own
        assert engine.decide(_request(label=f"l{i}")).allowed
    kept = sum(len(bucket.memo) for bucket in engine.policy.buckets.values())
    assert 0 < kept <= limit
    again = engine.decide(_request(label="l1"))
    assert [o["value"] for o in again.obligations] == ["l1"]
