"""Property tests: random small policy sets over a fixed schema, random requests.

Rules are drawn from a few condition templates (combined with and/or/not), random effects,
action and role scopes. Each template has a Python twin, so besides the metamorphic
properties (a forbid never grants, removing a permit never grants, an error never grants)
the engine is also checked against a straightforward reference evaluator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pdp import Decision, DecisionError, Engine

SCHEMA = """
namespace t;

enum Level { low < mid < high }

principal entity User {
  level: Level;
  age: int;
  dept: string;
  tags: set<string>;
  roles: set<string>;
  labels: map<string, string>;
  nick?: string;
}
entity Doc {
  owner: string;
  level: Level;
  tags: set<string>;
}
context { mfa: bool; ip: ip; }
actions Doc { read, write }

role viewer { grant read on Doc; }
role editor extends viewer { grant write on Doc; }
role auditor;
roles of User from principal.roles;
"""

RANK = {"low": 0, "mid": 1, "high": 2}
ROLE_CLOSURE = {"viewer": {"viewer"}, "editor": {"editor", "viewer"}, "auditor": {"auditor"}}
GRANTS = {"read": "viewer", "write": "editor"}  # the role whose grant covers each action

PROFILE = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


# ---- requests ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    pid: str
    level: str
    age: int
    dept: str
    tags: frozenset[str]
    roles: frozenset[str]
    nick: str | None
    owner: str
    rlevel: str
    rtags: frozenset[str]
    mfa: bool
    ip: str
    action: str

    def effective_roles(self) -> set[str]:
        out: set[str] = set()
        for r in self.roles:
            out |= ROLE_CLOSURE.get(r, set())
        return out

    def to_json(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "level": self.level,
            "age": self.age,
            "dept": self.dept,
            "tags": sorted(self.tags),
            "roles": sorted(self.roles),
            "labels": {"k": "v"},
        }
        if self.nick is not None:
            attrs["nick"] = self.nick
        return {
            "principal": {"type": "User", "id": self.pid, "attributes": attrs},
            "action": self.action,
            "resource": {
                "type": "Doc",
                "id": "d",
                "attributes": {"owner": self.owner, "level": self.rlevel, "tags": sorted(self.rtags)},
            },
            "context": {"mfa": self.mfa, "ip": self.ip},
            "now": "2026-11-27T10:00:00Z",
        }


TAGS = ["a", "b", "c"]
levels = st.sampled_from(list(RANK))
tag_sets = st.frozensets(st.sampled_from(TAGS))

requests = st.builds(
    Req,
    pid=st.sampled_from(["alice", "bob"]),
    level=levels,
    age=st.integers(0, 6),
    dept=st.sampled_from(["eng", "ops"]),
    tags=tag_sets,
    roles=st.frozensets(st.sampled_from(["viewer", "editor", "auditor", "ghost"])),
    nick=st.sampled_from([None, "x", "y"]),
    owner=st.sampled_from(["alice", "bob"]),
    rlevel=levels,
    rtags=tag_sets,
    mfa=st.booleans(),
    ip=st.sampled_from(["10.1.2.3", "192.168.1.1", "::ffff:10.9.9.9"]),
    action=st.sampled_from(["read", "write"]),
)

# ---- conditions: policy text and a Python twin --------------------------------------------------


@dataclass(frozen=True)
class Cond:
    text: str
    holds: Callable[[Req], bool]

    def __repr__(self) -> str:
        return self.text


def _leaf(text: str, holds: Callable[[Req], bool]) -> Cond:
    return Cond(text, holds)


leaves = st.one_of(
    st.integers(0, 6).map(lambda n: _leaf(f"principal.age > {n}", lambda q: q.age > n)),
    levels.map(lambda lv: _leaf(f"principal.level >= {lv}", lambda q: RANK[q.level] >= RANK[lv])),
    st.just(_leaf("resource.level <= principal.level", lambda q: RANK[q.rlevel] <= RANK[q.level])),
    st.sampled_from(TAGS).map(lambda t: _leaf(f'"{t}" in principal.tags', lambda q: t in q.tags)),
    st.just(_leaf("resource.tags.contains_any(principal.tags)", lambda q: bool(q.tags & q.rtags))),
    st.just(_leaf("principal.tags.contains_all(resource.tags)", lambda q: q.rtags <= q.tags)),
    st.just(_leaf("context.mfa", lambda q: q.mfa)),
    st.just(_leaf("resource.owner == principal.id", lambda q: q.owner == q.pid)),
    st.sampled_from(["eng", "ops"]).map(lambda d: _leaf(f'principal.dept == "{d}"', lambda q: q.dept == d)),
    st.just(_leaf('context.ip in ip("10.0.0.0/8")', lambda q: q.ip != "192.168.1.1")),
    st.sampled_from(["viewer", "editor", "auditor"]).map(
        lambda r: _leaf(f"principal in role {r}", lambda q: r in q.effective_roles())
    ),
    st.just(_leaf("principal has nick", lambda q: q.nick is not None)),
    st.just(_leaf('principal has nick and principal.nick == "x"', lambda q: q.nick == "x")),
)


def _combine(children: st.SearchStrategy[Cond]) -> st.SearchStrategy[Cond]:
    def not_(a: Cond) -> Cond:
        return Cond(f"not ({a.text})", lambda q: not a.holds(q))

    def and_(ab: tuple[Cond, Cond]) -> Cond:
        a, b = ab
        return Cond(f"({a.text}) and ({b.text})", lambda q: a.holds(q) and b.holds(q))

    def or_(ab: tuple[Cond, Cond]) -> Cond:
        a, b = ab
        return Cond(f"({a.text}) or ({b.text})", lambda q: a.holds(q) or b.holds(q))

    return st.one_of(
        children.map(not_), st.tuples(children, children).map(and_), st.tuples(children, children).map(or_)
    )


conditions = st.recursive(leaves, _combine, max_leaves=3)


# ---- rules and policy sets -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    id: str
    effect: str
    actions: tuple[str, ...]  # empty: every action
    roles: tuple[str, ...]  # empty: no role clause
    conds: tuple[tuple[str, Cond], ...]  # ("when" | "unless", condition)

    def text(self) -> str:
        out = f"{self.effect} {self.id}"
        if self.actions:
            out += " action " + ", ".join(self.actions)
        if self.roles:
            out += " role " + ", ".join(self.roles)
        for kind, c in self.conds:
            out += f"\n  {kind} {c.text}"
        return out + ";"

    def applies(self, q: Req) -> bool:
        if self.actions and q.action not in self.actions:
            return False
        if self.roles and not (set(self.roles) & q.effective_roles()):
            return False
        return all(c.holds(q) == (kind == "when") for kind, c in self.conds)


@st.composite
def rule_bodies(draw: st.DrawFn) -> tuple[str, tuple[str, ...], tuple[str, ...], tuple[tuple[str, Cond], ...]]:
    effect = draw(st.sampled_from(["permit", "forbid"]))
    actions = draw(st.sampled_from([(), ("read",), ("write",), ("read", "write")]))
    roles = draw(st.sampled_from([(), (), (), ("viewer",), ("editor",), ("auditor", "editor")]))
    conds = tuple(draw(st.lists(st.tuples(st.sampled_from(["when", "unless"]), conditions), max_size=2)))
    return effect, actions, roles, conds


@st.composite
def policies(draw: st.DrawFn, min_size: int = 0, max_size: int = 5) -> tuple[Rule, ...]:
    bodies = draw(st.lists(rule_bodies(), min_size=min_size, max_size=max_size))
    return tuple(Rule(f"r{i}", *body) for i, body in enumerate(bodies))


_ENGINES: dict[str, Engine] = {}


def engine(rules: tuple[Rule, ...]) -> Engine:
    text = SCHEMA + "\n".join(r.text() for r in rules)
    if text not in _ENGINES:
        if len(_ENGINES) > 2000:
            _ENGINES.clear()
        _ENGINES[text] = Engine.from_source(text, filename="prop.pdp")
    return _ENGINES[text]


def expected(rules: tuple[Rule, ...], q: Req) -> tuple[bool, tuple[str, ...]]:
    """The reference semantics: deny by default, any forbid denies, else a permit or a grant allows."""
    forbids = tuple(f"t.{r.id}" for r in rules if r.effect == "forbid" and r.applies(q))
    if forbids:
        return False, forbids
    permits = tuple(f"t.{r.id}" for r in rules if r.effect == "permit" and r.applies(q))
    grant = GRANTS[q.action]
    grants = (f"role:{grant}",) if grant in q.effective_roles() else ()
    return bool(permits or grants), permits + grants


# ---- properties ---------------------------------------------------------------------------------------


@PROFILE
@given(policies(), st.lists(requests, min_size=1, max_size=6))
def test_engine_agrees_with_the_reference_semantics(rules: tuple[Rule, ...], reqs: list[Req]) -> None:
    e = engine(rules)
    for q in reqs:
        d = e.decide(q.to_json())
        assert d.errors == ()
        assert (d.allowed, d.reasons) == expected(rules, q), (q, [r.text() for r in rules])


@PROFILE
@given(policies(), rule_bodies(), st.lists(requests, min_size=1, max_size=6))
def test_an_applicable_forbid_always_denies(rules: tuple[Rule, ...], body: tuple[Any, ...], reqs: list[Req]) -> None:
    forbid = Rule("f", "forbid", *body[1:])
    e = engine((*rules, forbid))
    for q in reqs:
        d = e.decide(q.to_json())
        if forbid.applies(q):
            assert not d.allowed
            assert "t.f" in d.reasons
        for r in rules:
            if r.effect == "forbid" and r.applies(q):
                assert not d.allowed and f"t.{r.id}" in d.reasons


@PROFILE
@given(policies(), rule_bodies(), st.lists(requests, min_size=1, max_size=6))
def test_adding_a_forbid_never_turns_deny_into_allow(
    rules: tuple[Rule, ...], body: tuple[Any, ...], reqs: list[Req]
) -> None:
    before, after = engine(rules), engine((*rules, Rule("added", "forbid", *body[1:])))
    for q in reqs:
        if after.decide(q.to_json()).allowed:
            assert before.decide(q.to_json()).allowed


@PROFILE
@given(policies(min_size=1), st.data(), st.lists(requests, min_size=1, max_size=6))
def test_removing_a_permit_never_grants(rules: tuple[Rule, ...], data: st.DataObject, reqs: list[Req]) -> None:
    index = data.draw(st.integers(0, len(rules) - 1))
    as_permit = replace(rules[index], effect="permit")
    with_permit = (*rules[:index], as_permit, *rules[index + 1 :])
    without = (*rules[:index], *rules[index + 1 :])
    before, after = engine(with_permit), engine(without)
    for q in reqs:
        if after.decide(q.to_json()).allowed:
            assert before.decide(q.to_json()).allowed


ERROR = DecisionError("no entry `zz` in the map", rule="t.err")


@PROFILE
@given(
    policies(),
    st.sampled_from(["permit", "forbid"]),
    st.sampled_from([(), ("read",), ("write",)]),
    st.sampled_from(["when", "unless"]),
    st.sampled_from([None, *range(6)]),
    st.lists(requests, min_size=1, max_size=6),
)
def test_an_erroring_rule_never_allows(
    rules: tuple[Rule, ...],
    effect: str,
    actions: tuple[str, ...],
    kind: str,
    position: int | None,
    reqs: list[Req],
) -> None:
    # `principal.labels` never has "zz": evaluating this rule always fails
    failing = Rule("err", effect, actions, (), ((kind, Cond('principal.labels["zz"] == "v"', lambda q: False)),))
    with_error = list(rules)
    with_error.insert(len(rules) if position is None else min(position, len(rules)), failing)
    e, plain = engine(tuple(with_error)), engine(rules)
    for q in reqs:
        d = e.decide(q.to_json())
        if actions and q.action not in actions:
            # the failing rule does not apply to this action, so it changes nothing
            assert _outcome(d) == _outcome(plain.decide(q.to_json()))
            continue
        assert not d.allowed, (q, [r.text() for r in with_error])
        # forbids are always evaluated; permits only when no forbid matched
        if effect == "forbid" or not any(r.effect == "forbid" and r.applies(q) for r in rules):
            assert ERROR in d.errors
        else:
            assert d.errors == ()


def _outcome(d: Decision) -> tuple[bool, tuple[str, ...], tuple[DecisionError, ...]]:
    return d.allowed, d.reasons, d.errors
