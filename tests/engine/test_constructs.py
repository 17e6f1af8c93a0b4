"""Every language construct evaluated through the engine, with allow/deny expectations.

The schema is fixed; each test adds rules to it and decides requests built from defaults
(`request(...)` below), with a fixed `now` so that time never makes a test flaky.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import math
from functools import cache
from typing import Any

import pytest

from pdp import Decision, DecisionError, Engine

SCHEMA = """
namespace t;

enum Level { low < mid < high }
enum Color { red, green, blue }

principal entity User in Group {
  tenant: string;
  roles: map<string, set<string>>;
  level: Level;
  color: Color;
  tags: set<string>;
  age: int;
  email: string;
  auth_time: datetime;
  session: duration;
  nick?: string;
  profile: { dept: string; manager?: string; };
}
entity Group in Group {}
entity Doc in Group {
  tenant: string;
  owner: string;
  level: Level;
  labels: map<string, string>;
  path: string;
  created: datetime;
  colors: set<Color>;
  ssn?: string sensitive;
}

context { ip: ip; mfa: bool; }

actions Doc { read, write, delete }
"""

NOW = "2026-11-27T10:00:00Z"  # a Friday
DROP = object()  # an override value that removes the attribute

USER: dict[str, Any] = {
    "tenant": "acme",
    "roles": {},
    "level": "mid",
    "color": "red",
    "tags": ["a", "b"],
    "age": 30,
    "email": "alice@acme.example",
    "auth_time": "2026-11-27T09:55:00Z",
    "session": "1h",
    "profile": {"dept": "eng"},
}
DOC: dict[str, Any] = {
    "tenant": "acme",
    "owner": "alice",
    "level": "mid",
    "labels": {"k": "v"},
    "path": "/public/handbook.pdf",
    "created": "2026-01-01T00:00:00Z",
    "colors": ["red", "green"],
}
CONTEXT: dict[str, Any] = {"ip": "10.1.2.3", "mfa": True}


@cache
def _engine(rules: str, data: str) -> Engine:
    return Engine.from_source(SCHEMA + rules, json.loads(data) if data else None, filename="t.pdp")


def engine(rules: str, data: dict[str, Any] | None = None) -> Engine:
    return _engine(rules, json.dumps(data, sort_keys=True) if data else "")


def _merge(base: dict[str, Any], changes: dict[str, Any] | None) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in (changes or {}).items():
        if value is DROP:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def request(
    *,
    principal: dict[str, Any] | None = None,
    resource: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    action: str = "read",
    now: Any = NOW,
    pid: str = "alice",
    rid: str = "d1",
    pparents: list[Any] | None = None,
    rparents: list[Any] | None = None,
    resource_attributes: bool = True,
) -> dict[str, Any]:
    p: dict[str, Any] = {"type": "User", "id": pid, "attributes": _merge(USER, principal)}
    r: dict[str, Any] = {"type": "Doc", "id": rid}
    if resource_attributes:
        r["attributes"] = _merge(DOC, resource)
    if pparents is not None:
        p["parents"] = pparents
    if rparents is not None:
        r["parents"] = rparents
    out = {"principal": p, "action": action, "resource": r, "context": _merge(CONTEXT, context)}
    if now is not None:
        out["now"] = now
    return out


def decide(rules: str, data: dict[str, Any] | None = None, **req: Any) -> Decision:
    return engine(rules, data).decide(request(**req))


def clean(d: Decision) -> Decision:
    assert d.errors == (), d.errors
    return d


def when(cond: str, **req: Any) -> bool:
    return clean(decide(f"permit p when {cond};", **req)).allowed


# ---- simple conditions: (condition, request changes, allowed?) ---------------------------------

CASES: list[tuple[str, dict[str, Any], bool]] = [
    # == and != on strings, ids, ints, enums and sets
    ('principal.email == "alice@acme.example"', {}, True),
    ('principal.email == "bob@acme.example"', {}, False),
    ('principal.email != "bob@acme.example"', {}, True),
    ('principal.email != "alice@acme.example"', {}, False),
    ("resource.owner == principal.id", {}, True),
    ("resource.owner == principal.id", {"pid": "bob"}, False),
    ("resource.owner != principal.id", {"pid": "bob"}, True),
    ('principal.id == "alice"', {}, True),
    ('resource.id == "d1"', {}, True),
    ('resource.id == "d2"', {}, False),
    ("principal.age == 30", {}, True),
    ("principal.age == 31", {}, False),
    ("principal.age != 30", {}, False),
    ("principal.color == red", {}, True),
    ("principal.color == blue", {}, False),
    ("principal.color != blue", {}, True),
    ("principal.level == resource.level", {}, True),
    ("principal.level == resource.level", {"resource": {"level": "high"}}, False),
    ("principal.level != resource.level", {"resource": {"level": "high"}}, True),
    ('principal.tags == ["b", "a"]', {}, True),
    ('principal.tags == ["a"]', {}, False),
    ('principal.tags != ["a"]', {}, True),
    ("principal.tags == []", {"principal": {"tags": []}}, True),
    ("principal.tags == []", {}, False),
    ("resource.colors == [green, red]", {}, True),
    ("resource.colors != [green]", {}, True),
    ("context.mfa == true", {}, True),
    ("context.mfa == false", {}, False),
    # ordering on ints (boundaries)
    ("principal.age < 30", {}, False),
    ("principal.age < 31", {}, True),
    ("principal.age <= 30", {}, True),
    ("principal.age <= 29", {}, False),
    ("principal.age > 29", {}, True),
    ("principal.age > 30", {}, False),
    ("principal.age >= 30", {}, True),
    ("principal.age >= 31", {}, False),
    ("principal.age > -1", {}, True),
    # durations (the request may send "1h", "1h30m" or seconds)
    ("principal.session < 1h30m", {}, True),
    ("principal.session < 1h", {}, False),
    ("principal.session <= 1h", {}, True),
    ("principal.session > 59m59s", {}, True),
    ("principal.session >= 2d", {}, False),
    ("principal.session == 1h30m", {"principal": {"session": 5400}}, True),
    ("principal.session == 90m", {"principal": {"session": "1h30m"}}, True),
    ("principal.session == 5400s", {"principal": {"session": "90m"}}, True),
    ("principal.session < 1s", {"principal": {"session": "500ms"}}, True),
    # datetimes (any offset, or epoch seconds)
    ("principal.auth_time > resource.created", {}, True),
    ("principal.auth_time < resource.created", {}, False),
    ('principal.auth_time >= datetime("2026-11-27T09:55:00Z")', {}, True),
    ('principal.auth_time > datetime("2026-11-27T09:55:00Z")', {}, False),
    ('principal.auth_time == datetime("2026-11-27T10:55:00+01:00")', {}, True),
    (
        'principal.auth_time == datetime("2026-11-27T09:55:00Z")',
        {"principal": {"auth_time": dt.datetime(2026, 11, 27, 9, 55, tzinfo=dt.UTC).timestamp()}},
        True,
    ),
    ("now > principal.auth_time", {}, True),
    ("now < principal.auth_time", {}, False),
    # ordered enums
    ("principal.level >= mid", {}, True),
    ("principal.level > mid", {}, False),
    ("principal.level < high", {}, True),
    ("principal.level <= low", {}, False),
    ("resource.level > principal.level", {"resource": {"level": "high"}}, True),
    ("resource.level > principal.level", {"resource": {"level": "low"}}, False),
    ("low < high", {}, True),
    # and / or / not
    ("context.mfa and principal.age > 18", {}, True),
    ("context.mfa and principal.age > 40", {}, False),
    ("context.mfa and principal.age > 18", {"context": {"mfa": False}}, False),
    ("context.mfa or principal.age > 40", {}, True),
    ("context.mfa or principal.age > 18", {"context": {"mfa": False}}, True),
    ("context.mfa or principal.age > 40", {"context": {"mfa": False}}, False),
    ("not context.mfa", {}, False),
    ("not context.mfa", {"context": {"mfa": False}}, True),
    ("not not context.mfa", {}, True),
    ("not context.mfa or principal.age > 18", {}, True),
    ("context.mfa and not (principal.age > 40)", {}, True),
    ("not (context.mfa and principal.age > 18)", {}, False),
    # short circuit: the right side is never evaluated, so its missing key is no error
    ('context.mfa or resource.labels["missing"] == "x"', {}, True),
    ('not context.mfa and resource.labels["missing"] == "x"', {}, False),
    # `in` a set
    ('"a" in principal.tags', {}, True),
    ('"z" in principal.tags', {}, False),
    ('"a" in []', {}, False),
    ("principal.color in [red, green]", {}, True),
    ("principal.color in [blue]", {}, False),
    ('principal.email in ["x", "alice@acme.example"]', {}, True),
    ("green in resource.colors", {}, True),
    ("blue in resource.colors", {}, False),
    ("principal.age in [1, 2, 30]", {}, True),
    ("principal.age in [1, 2]", {}, False),
    ("principal.id in [resource.owner]", {}, True),
    # `in` a CIDR network
    ('context.ip in ip("10.0.0.0/8")', {}, True),
    ('context.ip in ip("10.0.0.0/8")', {"context": {"ip": "11.0.0.1"}}, False),
    ('context.ip in ip("10.1.2.3")', {}, True),
    ('context.ip in ip("10.1.2.4/32")', {}, False),
    ('context.ip in ip("10.0.0.0/8")', {"context": {"ip": "10.1.0.0/16"}}, True),
    ('context.ip in ip("10.1.0.0/16")', {"context": {"ip": "10.0.0.0/8"}}, False),
    ('context.ip in ip("0.0.0.0/0")', {}, True),
    ('context.ip in ip("2001:db8::/32")', {"context": {"ip": "2001:db8::1"}}, True),
    ('context.ip in ip("2001:db8::/32")', {"context": {"ip": "2001:db9::1"}}, False),
    ('context.ip in ip("2001:db8::/32")', {}, False),
    ('context.ip in ip("::/0")', {}, False),
    # a dual-stack listener reports IPv4 clients as IPv4-mapped IPv6: judged as the IPv4 they are
    ('context.ip in ip("10.0.0.0/8")', {"context": {"ip": "::ffff:10.1.2.3"}}, True),
    ('context.ip == ip("10.1.2.3")', {"context": {"ip": "::ffff:10.1.2.3"}}, True),
    ('context.ip == ip("10.1.2.3")', {}, True),
    ('context.ip != ip("10.1.2.3")', {}, False),
    ('context.ip in [ip("192.168.0.0/16"), ip("10.1.0.0/16")]', {}, True),
    ('context.ip in [ip("192.168.0.0/16")]', {}, False),
    # `in` a map: key presence
    ('"k" in resource.labels', {}, True),
    ('"x" in resource.labels', {}, False),
    ("resource.tenant in principal.roles", {"principal": {"roles": {"acme": []}}}, True),
    ("resource.tenant in principal.roles", {"principal": {"roles": {"other": ["viewer"]}}}, False),
    # has
    ("principal has nick", {}, False),
    ("principal has nick", {"principal": {"nick": "al"}}, True),
    ("principal.profile has manager", {}, False),
    ("principal.profile has manager", {"principal": {"profile": {"dept": "eng", "manager": "bo"}}}, True),
    ('principal has nick and principal.nick == "al"', {"principal": {"nick": "al"}}, True),
    ('principal has nick and principal.nick == "al"', {}, False),
    ('not (principal has nick) or principal.nick == "al"', {}, True),
    ("resource has ssn", {"resource": {"ssn": "000"}}, True),
    ("principal has age", {}, True),
    # set methods
    ('principal.tags.contains("a")', {}, True),
    ('principal.tags.contains("z")', {}, False),
    ('principal.tags.contains_any(["z", "a"])', {}, True),
    ('principal.tags.contains_any(["z"])', {}, False),
    ("principal.tags.contains_any([])", {}, False),
    ('principal.tags.contains_all(["a", "b"])', {}, True),
    ('principal.tags.contains_all(["a", "z"])', {}, False),
    ("principal.tags.contains_all([])", {}, True),
    ("principal.tags.is_empty()", {}, False),
    ("principal.tags.is_empty()", {"principal": {"tags": []}}, True),
    ("principal.tags.size() == 2", {}, True),
    ("principal.tags.size() > 2", {}, False),
    ("principal.tags.size() == 2", {"principal": {"tags": ["a", "a", "b"]}}, True),
    ("[1, 2, 2].size() == 2", {}, True),
    ("resource.colors.contains(red)", {}, True),
    ("resource.colors.contains(blue)", {}, False),
    ("resource.colors.contains_any([blue, green])", {}, True),
    ("principal.tags.contains_all(principal.tags)", {}, True),
    # string methods (case-sensitive)
    ('resource.path.starts_with("/public/")', {}, True),
    ('resource.path.starts_with("/private/")', {}, False),
    ('resource.path.ends_with(".pdf")', {}, True),
    ('resource.path.ends_with(".doc")', {}, False),
    ('resource.path.contains("handbook")', {}, True),
    ('resource.path.contains("HANDBOOK")', {}, False),
    ('resource.path.starts_with("")', {}, True),
    # like: `*` is any run of characters, `\*` a literal star, no other magic
    ('resource.path like "/public/*"', {}, True),
    ('resource.path like "/private/*"', {}, False),
    ('resource.path like "*.pdf"', {}, True),
    ('resource.path like "*.PDF"', {}, False),
    ('resource.path like "/*/*.pdf"', {}, True),
    ('resource.path like "/pub*book*"', {}, True),
    ('resource.path like "/public/handbook.pdf"', {}, True),
    ('resource.path like "/public"', {}, False),
    ('resource.path like "*"', {}, True),
    ('resource.path like "*"', {"resource": {"path": ""}}, True),
    ('resource.path like "a*a"', {"resource": {"path": "a"}}, False),
    ('resource.path like "a*a"', {"resource": {"path": "aa"}}, True),
    ('resource.path like "/public/?andbook.pdf"', {}, False),
    ('resource.path like "/public/[h]andbook.pdf"', {}, False),
    ('resource.path like "/public/.*"', {}, False),
    (r'resource.path like "/x/\\*"', {"resource": {"path": "/x/*"}}, True),
    (r'resource.path like "/x/\\*"', {"resource": {"path": "/x/abc"}}, False),
    (r'resource.path like "*\\**"', {"resource": {"path": "a*b"}}, True),
    (r'resource.path like "*\\**"', {"resource": {"path": "ab"}}, False),
    # arithmetic on ints, durations and datetimes
    ("now - principal.auth_time < 15m", {}, True),
    ("now - principal.auth_time < 15m", {"principal": {"auth_time": "2026-11-27T09:30:00Z"}}, False),
    ("now - principal.auth_time <= 5m", {}, True),
    ("now - principal.auth_time < 5m", {}, False),
    ("principal.auth_time + 1h > now", {}, True),
    ("now - 1d < principal.auth_time", {}, True),
    ("now - resource.created > 300d", {}, True),
    ("principal.age + 1 == 31", {}, True),
    ("principal.age - 31 == -1", {}, True),
    ("-principal.age < 0", {}, True),
    ("principal.session + 30m == 90m", {}, True),
    ("principal.session - 2h < 0s", {}, True),
    ("-principal.session == 0s - 1h", {}, True),
    ("principal.age + 1 - 2 == 29", {}, True),
]


@pytest.mark.parametrize(("cond", "changes", "expected"), CASES, ids=[f"{c[0]}|{c[1]}" for c in CASES])
def test_condition(cond: str, changes: dict[str, Any], expected: bool) -> None:
    assert when(cond, **changes) is expected


def test_unless_is_the_negation_of_when() -> None:
    assert clean(decide("permit p unless context.mfa;", context={"mfa": False})).allowed
    assert not clean(decide("permit p unless context.mfa;")).allowed
    rules = "permit p when principal.age > 18 unless principal.color == blue when context.mfa;"
    assert clean(decide(rules)).allowed
    assert not clean(decide(rules, principal={"color": "blue"})).allowed
    assert not clean(decide(rules, context={"mfa": False})).allowed


# ---- named values -----------------------------------------------------------------------------


def test_constants_inline() -> None:
    rules = """
    const adult = 18;
    const fresh = 15m;
    const gold = high;
    const who = "alice@acme.example";
    permit p when principal.age >= adult and now - principal.auth_time < fresh
             and principal.level < gold and principal.email == who;
    """
    assert clean(decide(rules)).allowed
    assert not clean(decide(rules, principal={"age": 17})).allowed
    assert not clean(decide(rules, principal={"level": "high"})).allowed


def test_constant_referring_to_constants() -> None:
    rules = 'const a = "x"; const b = a; list both: string = [a, "y"]; permit p when "x" in both and b == "x";'
    assert clean(decide(rules)).allowed


INLINE_NETS = 'list nets: ip = ["10.0.0.0/8", "192.168.1.0/24", "203.0.113.7", "2001:db8::/32"];'


@pytest.mark.parametrize(
    ("ip", "inside"),
    [
        ("10.200.1.1", True),
        ("192.168.1.9", True),
        ("192.168.2.1", False),
        ("203.0.113.7", True),
        ("203.0.113.8", False),
        ("2001:db8::42", True),
        ("2001:db9::42", False),
        ("11.0.0.1", False),
        ("10.2.0.0/16", True),
        ("192.168.0.0/16", False),
        ("::ffff:192.168.1.9", True),
    ],
)
def test_in_named_ip_list_inline_and_from_data(ip: str, inside: bool) -> None:
    inline = f"{INLINE_NETS} permit p when context.ip in nets;"
    assert clean(decide(inline, context={"ip": ip})).allowed is inside
    external = "list nets: ip; permit p when context.ip in nets;"
    data = {"constants": {"nets": ["10.0.0.0/8", "192.168.1.0/24", "203.0.113.7", "2001:db8::/32"]}}
    assert clean(decide(external, data, context={"ip": ip})).allowed is inside
    negated = f"{INLINE_NETS} forbid f unless context.ip in nets; permit p;"
    assert clean(decide(negated, context={"ip": ip})).allowed is inside


def test_per_tenant_ip_lists_from_data_constants() -> None:
    rules = """
    const tenant_nets: map<string, set<ip>>;
    forbid outside when resource.tenant in tenant_nets and not (context.ip in tenant_nets[resource.tenant]);
    permit p;
    """
    data = {"constants": {"tenant_nets": {"globex": ["172.16.0.0/12", "10.20.0.0/16"]}}}
    assert clean(decide(rules, data, resource={"tenant": "acme"})).allowed  # no allow-list for acme
    assert clean(decide(rules, data, resource={"tenant": "globex"}, context={"ip": "172.20.1.1"})).allowed
    assert clean(decide(rules, data, resource={"tenant": "globex"}, context={"ip": "10.20.9.9"})).allowed
    d = clean(decide(rules, data, resource={"tenant": "globex"}, context={"ip": "10.1.2.3"}))
    assert not d.allowed and d.reasons == ("t.outside",)


def test_constant_map_of_strings() -> None:
    rules = "const owners: map<string, string>; permit p when resource.owner == owners[resource.tenant];"
    data = {"constants": {"owners": {"acme": "alice"}}}
    assert clean(decide(rules, data)).allowed
    assert not clean(decide(rules, data, resource={"owner": "bob"})).allowed


# ---- time windows -------------------------------------------------------------------------------

BERLIN = 'window office { days "mon-fri"; hours "09:00-17:00"; zone "Europe/Berlin"; } permit p when now in office;'


@pytest.mark.parametrize(
    ("now", "inside"),
    [
        ("2026-11-27T08:30:00Z", True),  # Fri 09:30 in Berlin (UTC+1 in winter)
        ("2026-11-27T07:59:59Z", False),  # Fri 08:59:59 local
        ("2026-11-27T08:00:00Z", True),  # Fri 09:00 local: the start is inside
        ("2026-11-27T15:59:00Z", True),  # Fri 16:59 local
        ("2026-11-27T16:00:00Z", False),  # Fri 17:00 local: the end is outside
        ("2026-11-28T10:00:00Z", False),  # Saturday
        ("2026-11-29T10:00:00Z", False),  # Sunday
        ("2026-11-30T10:00:00Z", True),  # Monday
        ("2026-07-10T07:30:00Z", True),  # Fri 09:30 in summer (UTC+2)
        ("2026-07-10T15:30:00Z", False),  # Fri 17:30 in summer
        ("2026-11-27T09:30:00+01:00", True),  # the same instant in another notation
        ("2026-11-28T00:30:00+09:00", True),  # Fri 16:30 in Berlin, though Saturday in Tokyo
        ("2026-11-27T00:30:00-08:00", True),  # Fri 09:30 in Berlin, 00:30 in Los Angeles
    ],
)
def test_window_weekdays_hours_and_zone(now: str, inside: bool) -> None:
    assert clean(decide(BERLIN, now=now)).allowed is inside


def test_window_with_epoch_now() -> None:
    epoch = dt.datetime(2026, 11, 27, 8, 30, tzinfo=dt.UTC).timestamp()
    assert clean(decide(BERLIN, now=epoch)).allowed
    assert clean(decide(BERLIN, now=int(epoch))).allowed


NIGHT = 'window night { days "fri"; hours "22:00-06:00"; zone "UTC"; } permit p when now in night;'


@pytest.mark.parametrize(
    ("now", "inside"),
    [
        ("2026-11-27T22:00:00Z", True),  # Fri 22:00: starts
        ("2026-11-27T23:59:00Z", True),
        ("2026-11-28T00:00:00Z", True),  # Sat 00:00 belongs to Friday's night
        ("2026-11-28T05:59:00Z", True),
        ("2026-11-28T06:00:00Z", False),  # ends
        ("2026-11-28T23:00:00Z", False),  # Saturday's own night is not listed
        ("2026-11-27T03:00:00Z", False),  # Fri 03:00 is Thursday's night
        ("2026-11-27T21:59:00Z", False),
        ("2026-11-26T23:00:00Z", False),  # Thursday
    ],
)
def test_overnight_window_belongs_to_the_day_it_starts(now: str, inside: bool) -> None:
    assert clean(decide(NIGHT, now=now)).allowed is inside


def test_window_defaults_are_always() -> None:
    rules = "window always {} permit p when now in always;"
    for now in ("2026-11-28T00:00:00Z", "2026-11-29T23:59:59Z", "2026-11-27T12:00:00Z"):
        assert clean(decide(rules, now=now)).allowed


def test_window_days_list_and_wraparound_range() -> None:
    rules = 'window w { days "sat-mon"; } permit p when now in w;'
    assert clean(decide(rules, now="2026-11-28T12:00:00Z")).allowed  # Sat
    assert clean(decide(rules, now="2026-11-29T12:00:00Z")).allowed  # Sun
    assert clean(decide(rules, now="2026-11-30T12:00:00Z")).allowed  # Mon
    assert not clean(decide(rules, now="2026-11-27T12:00:00Z")).allowed  # Fri
    rules = 'window w { days "tue,thu"; } permit p when now in w;'
    assert clean(decide(rules, now="2026-11-26T12:00:00Z")).allowed  # Thu
    assert not clean(decide(rules, now="2026-11-27T12:00:00Z")).allowed  # Fri


def test_forbid_outside_business_hours() -> None:
    rules = (
        'window bh { days "mon-fri"; hours "08:00-19:00"; zone "Europe/Berlin"; } forbid f unless now in bh; permit p;'
    )
    assert clean(decide(rules, now="2026-11-27T10:00:00Z")).allowed
    d = clean(decide(rules, now="2026-11-28T10:00:00Z"))
    assert not d.allowed and d.reasons == ("t.f",)


# ---- roles ---------------------------------------------------------------------------------------

RBAC = """
role viewer { grant read on Doc; }
role editor extends viewer { grant write on Doc; }
role owner extends editor { grant delete on Doc; }
role auditor;
roles of User from principal.roles[resource.tenant];
"""


def roles(tenant_roles: dict[str, list[str]]) -> dict[str, Any]:
    return {"roles": tenant_roles}


@pytest.mark.parametrize(
    ("held", "action", "reason"),
    [
        (["viewer"], "read", "role:viewer"),
        (["viewer"], "write", None),
        (["editor"], "read", "role:viewer"),
        (["editor"], "write", "role:editor"),
        (["editor"], "delete", None),
        (["owner"], "read", "role:viewer"),
        (["owner"], "delete", "role:owner"),
        (["auditor"], "read", None),
        (["superuser"], "read", None),  # undeclared role names confer nothing
        ([], "read", None),
    ],
)
def test_role_grants_with_inheritance(held: list[str], action: str, reason: str | None) -> None:
    d = clean(decide(RBAC, principal=roles({"acme": held}), action=action))
    assert d.allowed is (reason is not None)
    assert d.reasons == ((reason,) if reason else ())


def test_roles_held_in_one_tenant_do_not_count_in_another() -> None:
    held = roles({"acme": ["owner"], "globex": ["viewer"]})
    assert clean(decide(RBAC, principal=held, action="delete", resource={"tenant": "acme"})).allowed
    assert not clean(decide(RBAC, principal=held, action="delete", resource={"tenant": "globex"})).allowed
    assert clean(decide(RBAC, principal=held, action="read", resource={"tenant": "globex"})).allowed
    # no entry for the tenant: no roles, and no error either
    assert not clean(decide(RBAC, principal=held, action="read", resource={"tenant": "initech"})).allowed


def test_in_role_condition_and_inheritance() -> None:
    rules = RBAC + "permit p action delete when principal in role viewer and resource.owner == principal.id;"
    assert clean(decide(rules, principal=roles({"acme": ["editor"]}), action="delete")).allowed
    assert not clean(decide(rules, principal=roles({"acme": ["auditor"]}), action="delete")).allowed
    assert not clean(decide(rules, principal=roles({"globex": ["editor"]}), action="delete")).allowed
    assert not clean(decide(rules, principal=roles({"acme": ["editor"]}), action="delete", pid="bob")).allowed


def test_role_scope_on_a_rule() -> None:
    rules = RBAC + "permit owners_delete action delete role editor, auditor when resource.owner == principal.id;"
    assert clean(decide(rules, principal=roles({"acme": ["editor"]}), action="delete")).reasons == ("t.owners_delete",)
    assert clean(decide(rules, principal=roles({"acme": ["auditor"]}), action="delete")).allowed
    assert not clean(decide(rules, principal=roles({"acme": ["viewer"]}), action="delete")).allowed
    assert not clean(decide(rules, principal=roles({"globex": ["editor"]}), action="delete")).allowed
    assert not clean(decide(rules, principal=roles({"acme": ["editor"]}), action="delete", pid="bob")).allowed


def test_role_scope_on_a_forbid() -> None:
    rules = RBAC + "forbid no_auditor_writes action write role auditor; permit p;"
    assert clean(decide(rules, principal=roles({"acme": ["editor"]}), action="write")).allowed
    d = clean(decide(rules, principal=roles({"acme": ["auditor", "editor"]}), action="write"))
    assert not d.allowed and d.reasons == ("t.no_auditor_writes",)


def test_global_and_tenant_bindings_add_up() -> None:
    rules = """
    role viewer { grant read on Doc; }
    role editor { grant write on Doc; }
    roles of User from principal.roles[resource.tenant];
    roles of User from principal.tags;
    """
    assert clean(decide(rules, principal={"tags": ["editor"], "roles": {}}, action="write")).allowed
    assert clean(decide(rules, principal={"tags": [], "roles": {"acme": ["viewer"]}}, action="read")).allowed
    assert not clean(decide(rules, principal={"tags": [], "roles": {"acme": ["viewer"]}}, action="write")).allowed


def test_role_grant_and_permit_reasons_together() -> None:
    rules = RBAC + "permit own when resource.owner == principal.id;"
    d = clean(decide(rules, principal=roles({"acme": ["viewer"]})))
    assert d.allowed and d.reasons == ("t.own", "role:viewer")


def test_forbid_beats_a_role_grant() -> None:
    rules = RBAC + "forbid no_mfa unless context.mfa;"
    assert clean(decide(rules, principal=roles({"acme": ["owner"]}), action="delete")).allowed
    d = clean(decide(rules, principal=roles({"acme": ["owner"]}), action="delete", context={"mfa": False}))
    assert not d.allowed and d.reasons == ("t.no_mfa",)


# ---- entity hierarchy ------------------------------------------------------------------------------

HIERARCHY_DATA = {
    "entities": [
        {"type": "Group", "id": "all"},
        {"type": "Group", "id": "eng", "parents": [{"type": "Group", "id": "all"}]},
        {"type": "Group", "id": "backend", "parents": ["Group::eng"]},
        {"type": "Group", "id": "other"},
        {"type": "Doc", "id": "d1", "parents": [{"type": "Group", "id": "backend"}], "attributes": DOC},
        {"type": "Doc", "id": "orphan", "attributes": DOC},
    ]
}


@pytest.mark.parametrize(
    ("group", "rid", "inside"),
    [
        ("backend", "d1", True),  # direct parent
        ("eng", "d1", True),  # transitive
        ("all", "d1", True),  # transitive, two levels up
        ("other", "d1", False),
        ("all", "orphan", False),
        ("all", "unknown-doc", False),
    ],
)
def test_resource_in_group_uses_transitive_parents_from_data(group: str, rid: str, inside: bool) -> None:
    rules = f'permit p when resource in Group::"{group}";'
    assert clean(decide(rules, HIERARCHY_DATA, rid=rid)).allowed is inside


def test_parents_given_in_the_request_join_the_stored_hierarchy() -> None:
    rules = 'permit p when principal in Group::"all";'
    assert not clean(decide(rules, HIERARCHY_DATA)).allowed
    assert clean(decide(rules, HIERARCHY_DATA, pparents=[{"type": "Group", "id": "backend"}])).allowed
    assert clean(decide(rules, HIERARCHY_DATA, pparents=["Group::eng"])).allowed
    assert not clean(decide(rules, HIERARCHY_DATA, pparents=["Group::other"])).allowed
    assert not clean(decide(rules, HIERARCHY_DATA, pparents=[])).allowed
    # a stored entity's parents are the data's to say (data wins, as for attributes) ...
    rules = 'permit p when resource in Group::"other";'
    assert not clean(decide(rules, HIERARCHY_DATA, rparents=["Group::other"])).allowed
    # ... while an entity the data does not know takes the parents the request gives
    assert clean(decide(rules, HIERARCHY_DATA, rid="unknown-doc", rparents=["Group::other"])).allowed


def test_entity_reference_on_the_left_of_in() -> None:
    assert clean(decide('permit p when Doc::"d1" in Group::"all";', HIERARCHY_DATA)).allowed
    assert not clean(decide('permit p when Doc::"orphan" in Group::"all";', HIERARCHY_DATA)).allowed


def test_hierarchy_cycle_in_data_terminates() -> None:
    data = {
        "entities": [
            {"type": "Group", "id": "a", "parents": ["Group::b"]},
            {"type": "Group", "id": "b", "parents": ["Group::a"]},
        ]
    }
    assert clean(decide('permit p when Group::"a" in Group::"a";', data)).allowed
    assert clean(decide('permit p when principal in Group::"b";', data, pparents=["Group::a"])).allowed


# ---- obligations, advice and reasons ------------------------------------------------------------


def test_obligations_mask_and_headers() -> None:
    rules = """
    permit p obligations {
      mask resource.ssn, principal.email;
      header "x-level" = principal.level;
      header "x-mfa" = context.mfa;
      header "x-age" = principal.age;
      header "x-tenant" = resource.tenant;
      header "x-off" = not context.mfa;
    };
    """
    d = clean(decide(rules))
    assert d.allowed
    assert d.obligations == (
        {"type": "mask", "path": "resource.ssn"},
        {"type": "mask", "path": "principal.email"},
        {"type": "header", "name": "x-level", "value": "mid"},
        {"type": "header", "name": "x-mfa", "value": "true"},
        {"type": "header", "name": "x-age", "value": "30"},
        {"type": "header", "name": "x-tenant", "value": "acme"},
        {"type": "header", "name": "x-off", "value": "false"},
    )


def test_header_values_follow_the_request() -> None:
    rules = 'permit p obligations { header "x-level" = principal.level; header "x-who" = principal.id; };'
    e = engine(rules)
    first = e.decide(request(principal={"level": "high"}))
    second = e.decide(request(principal={"level": "low"}, pid="bob"))
    assert {"type": "header", "name": "x-level", "value": "high"} in first.obligations
    assert {"type": "header", "name": "x-level", "value": "low"} in second.obligations
    assert {"type": "header", "name": "x-who", "value": "bob"} in second.obligations


def test_obligations_of_every_matching_permit_apply_and_non_matching_ones_do_not() -> None:
    rules = """
    permit a obligations { mask resource.ssn; };
    permit b when principal.age > 100 obligations { mask principal.email; };
    permit c obligations { header "h" = 1; };
    """
    d = clean(decide(rules))
    assert d.reasons == ("t.a", "t.c")
    assert d.obligations == ({"type": "mask", "path": "resource.ssn"}, {"type": "header", "name": "h", "value": "1"})


def test_a_deny_carries_no_obligations() -> None:
    rules = "permit a obligations { mask resource.ssn; }; forbid f;"
    d = clean(decide(rules))
    assert not d.allowed and d.obligations == ()


def test_advice_on_forbids() -> None:
    rules = """
    forbid needs_mfa unless context.mfa advice { step_up = "mfa"; retry = true; level = principal.level; n = 3; };
    forbid too_young when principal.age < 18 advice { come_back = 18 - principal.age; };
    permit p advice { ignored = 1; };
    """
    d = clean(decide(rules, context={"mfa": False}, principal={"age": 15}))
    assert not d.allowed
    assert d.reasons == ("t.needs_mfa", "t.too_young")
    assert d.advice == (
        {"rule": "t.needs_mfa", "name": "step_up", "value": "mfa"},
        {"rule": "t.needs_mfa", "name": "retry", "value": True},
        {"rule": "t.needs_mfa", "name": "level", "value": "mid"},
        {"rule": "t.needs_mfa", "name": "n", "value": 3},
        {"rule": "t.too_young", "name": "come_back", "value": 3},
    )
    allowed = clean(decide(rules))
    assert allowed.allowed and allowed.advice == ()


def test_reasons_are_namespace_qualified_rule_ids() -> None:
    rules = "permit first; permit second when context.mfa; permit third when not context.mfa;"
    assert clean(decide(rules)).reasons == ("t.first", "t.second")
    d = clean(decide(rules + "forbid f1; forbid f2 when context.mfa; forbid f3 unless context.mfa;"))
    assert not d.allowed and d.reasons == ("t.f1", "t.f2")


def test_rule_ids_without_a_namespace_are_bare() -> None:
    text = SCHEMA.replace("namespace t;", "") + "permit plain;"
    d = Engine.from_source(text).decide(request())
    assert d.allowed and d.reasons == ("plain",)


def test_deny_by_default() -> None:
    d = clean(decide("permit p when principal.age > 100;"))
    assert d == Decision(False, revision=d.revision)
    assert clean(decide("")).allowed is False


def test_scopes_select_actions_and_principal_types() -> None:
    rules = "permit reads action read; permit writes action write, delete resource Doc principal User;"
    assert clean(decide(rules, action="read")).reasons == ("t.reads",)
    assert clean(decide(rules, action="write")).reasons == ("t.writes",)
    assert clean(decide(rules, action="delete")).reasons == ("t.writes",)


# ---- stored entity data wins over the request ----------------------------------------------------

STORED = {
    "entities": [
        {
            "type": "Doc",
            "id": "d1",
            "attributes": {**DOC, "owner": "alice", "level": "high"},
        }
    ]
}


def test_a_request_cannot_override_a_stored_attribute() -> None:
    rules = "permit owner when resource.owner == principal.id;"
    assert clean(decide(rules, STORED, pid="alice")).allowed
    # bob claims to own the stored document
    assert not clean(decide(rules, STORED, pid="bob", resource={"owner": "bob"})).allowed
    # an unstored document is taken as the request describes it
    assert clean(decide(rules, STORED, pid="bob", rid="d9", resource={"owner": "bob"})).allowed


def test_stored_attributes_complete_a_request_that_sends_none() -> None:
    rules = "permit p when resource.level == high and resource.owner == principal.id;"
    assert clean(decide(rules, STORED, resource_attributes=False)).allowed
    d = decide(rules, STORED, rid="not-stored", resource_attributes=False)
    assert not d.allowed
    assert d.errors == (DecisionError("missing required attribute", field="resource.attributes.tenant"),)


def test_stored_attributes_win_for_the_principal_too() -> None:
    data = {"entities": [{"type": "User", "id": "alice", "attributes": {**USER, "level": "low"}}]}
    rules = "permit p when principal.level >= mid;"
    assert not clean(decide(rules, data, principal={"level": "high"})).allowed
    assert clean(decide(rules, data, pid="carol", principal={"level": "high"})).allowed


# ---- runtime errors deny, under the rule's id ------------------------------------------------------


def test_runtime_error_in_a_permit_denies_with_the_error() -> None:
    rules = 'permit broken when resource.labels["missing"] == "x"; permit fine;'
    d = decide(rules)
    assert not d.allowed
    assert d.reasons == ()
    assert d.errors == (DecisionError("no entry `missing` in the map", rule="t.broken"),)


def test_runtime_error_in_a_forbid_denies_with_the_error() -> None:
    rules = 'forbid broken when resource.labels["missing"] == "x"; permit fine;'
    d = decide(rules)
    assert not d.allowed
    assert d.errors == (DecisionError("no entry `missing` in the map", rule="t.broken"),)


def test_runtime_error_in_an_unless_denies() -> None:
    rules = 'forbid broken unless principal.roles["acme"].contains("x"); permit fine;'
    d = decide(rules)
    assert not d.allowed
    assert d.errors == (DecisionError("no entry `acme` in the map", rule="t.broken"),)


def test_runtime_error_next_to_a_matching_forbid_reports_both() -> None:
    rules = 'forbid broken when resource.labels["missing"] == "x"; forbid always; permit fine;'
    d = decide(rules)
    assert not d.allowed
    assert d.reasons == ("t.always",)
    assert d.errors == (DecisionError("no entry `missing` in the map", rule="t.broken"),)


def test_runtime_error_only_when_the_key_is_missing() -> None:
    rules = 'permit p when resource.labels["k"] == "v";'
    assert clean(decide(rules)).allowed
    d = decide(rules, resource={"labels": {}})
    assert not d.allowed and d.errors == (DecisionError("no entry `k` in the map", rule="t.p"),)


def test_runtime_error_in_a_header_value_denies() -> None:
    rules = 'permit p obligations { header "x" = resource.labels["missing"]; };'
    d = decide(rules)
    assert not d.allowed
    assert d.errors == (DecisionError("no entry `missing` in the map", rule="t.p"),)


def test_a_rule_for_another_action_cannot_error() -> None:
    rules = 'permit broken action write when resource.labels["missing"] == "x"; permit fine action read;'
    assert clean(decide(rules, action="read")).allowed


# ---- bad requests: deny with an error naming the field ----------------------------------------------

BAD_REQUESTS: list[tuple[str, dict[str, Any], str | None, str]] = []


def _bad(label: str, req: dict[str, Any], field: str | None, message: str) -> None:
    BAD_REQUESTS.append((label, req, field, message))


_r = request()
_bad(
    "unknown entity type",
    {**_r, "principal": {**_r["principal"], "type": "Usr"}},
    "principal.type",
    "unknown entity type `Usr`",
)
_bad(
    "unknown resource type",
    {**_r, "resource": {**_r["resource"], "type": "Docs"}},
    "resource.type",
    "unknown entity type `Docs`",
)
_bad(
    "unknown attribute",
    request(principal={"agee": 1}),
    "principal.attributes.agee",
    "unknown attribute (known: age, auth_time, color, email, level, nick, profile, roles, session, tags, tenant)",
)
_bad("unknown context attribute", request(context={"zzz": 1}), "context.zzz", "unknown attribute (known: ip, mfa)")
_bad("wrong type int", request(principal={"age": "30"}), "principal.attributes.age", "expected int, found string")
_bad("wrong type bool", request(context={"mfa": "yes"}), "context.mfa", "expected bool, found string")
_bad("bool is not an int", request(principal={"age": True}), "principal.attributes.age", "expected int, found bool")
_bad(
    "wrong enum member",
    request(principal={"level": "top"}),
    "principal.attributes.level",
    "expected one of low, mid, high, found 'top'",
)
_bad(
    "wrong element in a set",
    request(principal={"tags": ["a", 1]}),
    "principal.attributes.tags[1]",
    "expected string, found int",
)
_bad(
    "wrong element in a map",
    request(principal={"roles": {"acme": ["viewer", 7]}}),
    "principal.attributes.roles.acme[1]",
    "expected string, found int",
)
_bad(
    "set given as object",
    request(principal={"tags": {"a": 1}}),
    "principal.attributes.tags",
    "expected list, found object",
)
_bad(
    "unknown attribute in a record",
    request(principal={"profile": {"dept": "x", "floor": 3}}),
    "principal.attributes.profile.floor",
    "unknown attribute (known: dept, manager)",
)
_bad(
    "missing attribute in a record",
    request(principal={"profile": {}}),
    "principal.attributes.profile.dept",
    "missing required attribute",
)
_bad(
    "missing required attribute",
    request(principal={"tenant": DROP}),
    "principal.attributes.tenant",
    "missing required attribute",
)
_bad("missing context attribute", request(context={"mfa": DROP}), "context.mfa", "missing required attribute")
_bad("bad ip", request(context={"ip": "999.1.1.1"}), "context.ip", "`999.1.1.1` is not an IP address or CIDR network")
_bad(
    "ip with host bits",
    request(context={"ip": "10.0.0.1/8"}),
    "context.ip",
    "`10.0.0.1/8` is not an IP address or CIDR network",
)
_bad("ip not a string", request(context={"ip": 10}), "context.ip", "expected ip string, found int")
_bad(
    "bad datetime",
    request(principal={"auth_time": "yesterday"}),
    "principal.attributes.auth_time",
    "`yesterday` is not an RFC 3339 datetime",
)
_bad(
    "datetime without offset",
    request(principal={"auth_time": "2026-11-27T09:55:00"}),
    "principal.attributes.auth_time",
    "datetime `2026-11-27T09:55:00` has no time zone offset",
)
_bad(
    "bad duration",
    request(principal={"session": "an hour"}),
    "principal.attributes.session",
    "`an hour` is not a duration such as `15m` or `1h30m`",
)
_bad("bad now", request(now="soon"), "now", "`soon` is not an RFC 3339 datetime")
_bad("now of a wrong type", request(now=[1]), "now", "`now` must be an RFC 3339 string or epoch seconds")
_bad("now as bool", request(now=True), "now", "`now` must be an RFC 3339 string or epoch seconds")
_bad("unknown action", request(action="fly"), "action", "action `fly` is not valid for `Doc`")
_bad("action not a string", {**_r, "action": 5}, "action", "`action` must be a string")
_bad("missing action", {k: v for k, v in _r.items() if k != "action"}, "action", "`action` must be a string")
_bad("unknown top-level field", {**_r, "subject": {}}, "subject", "unknown request field `subject`")
_bad(
    "unknown entity field",
    {**_r, "principal": {**_r["principal"], "attrs": {}}},
    "principal.attrs",
    "unknown field `attrs`",
)
_bad(
    "principal not an object",
    {**_r, "principal": "alice"},
    "principal",
    "`principal` must be an object with `type` and `id`",
)
_bad(
    "missing resource",
    {k: v for k, v in _r.items() if k != "resource"},
    "resource",
    "`resource` must be an object with `type` and `id`",
)
_bad("id not a string", {**_r, "principal": {**_r["principal"], "id": 5}}, "principal.id", "`id` must be a string")
_bad(
    "type not a string",
    {**_r, "resource": {**_r["resource"], "type": None}},
    "resource.type",
    "`type` must be a string",
)
_bad(
    "attributes not an object",
    {**_r, "principal": {**_r["principal"], "attributes": []}},
    "principal.attributes",
    "expected object, found list",
)
_bad("context not an object", {**_r, "context": "x"}, "context", "expected object, found string")
_bad(
    "parents not a list",
    request(pparents="Group::eng"),
    "principal.parents",
    "`parents` must be a list of entity references",
)
_bad("bad parent", request(rparents=[5]), "resource.parents[0]", 'expected {"type": ..., "id": ...}')
_bad("non-dict request", [], None, "a request must be an object")  # type: ignore[arg-type]


@pytest.mark.parametrize(("label", "req", "field", "message"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_request_is_denied_with_an_error_naming_the_field(
    label: str, req: dict[str, Any], field: str | None, message: str
) -> None:
    d = engine("permit anything;").decide(req)
    assert not d.allowed
    assert d.reasons == ()
    assert d.errors == (DecisionError(message, field=field),)


def test_wrong_type_of_a_string_attribute_names_the_field() -> None:
    d = engine("permit anything;").decide(request(principal={"tenant": 1}))
    assert not d.allowed
    assert len(d.errors) == 1 and d.errors[0].field == "principal.attributes.tenant"


def test_wrong_type_of_a_string_attribute_uses_the_schema_type_name() -> None:
    d = engine("permit anything;").decide(request(principal={"tenant": 1}))
    assert d.errors == (DecisionError("expected string, found int", field="principal.attributes.tenant"),)


class _Weird:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no comparing me")

    __hash__ = object.__hash__


def _cyclic() -> dict[str, Any]:
    d: dict[str, Any] = request()
    d["principal"]["attributes"]["profile"] = d["principal"]["attributes"]
    return d


def _deep(levels: int) -> dict[str, Any]:
    value: Any = "x"
    for _ in range(levels):
        value = {"dept": value}
    return request(principal={"profile": value})


GARBAGE: list[Any] = [
    None,
    [],
    {},
    "",
    "request",
    0,
    5,
    3.5,
    math.nan,
    True,
    b"bytes",
    object(),
    _Weird(),
    {"principal": 5},
    {"principal": None, "action": None, "resource": None},
    {"principal": {}, "action": "read", "resource": {}},
    {"principal": {"type": "User"}, "action": "read", "resource": {"type": "Doc", "id": "d"}},
    {1: 2},
    {None: None, "action": "read"},
    {(1, 2): "tuple key"},
    {**request(), "now": math.nan},
    {**request(), "now": math.inf},
    {**request(), "now": 10**400},
    {**request(), "now": -(10**20)},
    {**request(), "context": {"ip": "10.0.0.1", "mfa": True, 5: 6}},
    {**request(), "context": {"ip": ["10.0.0.1"], "mfa": True}},
    request(principal={"tags": [[["deep"]]]}),
    request(principal={"tags": [{"a": 1}]}),
    request(principal={"roles": {"acme": {"x": "y"}}}),
    request(principal={"roles": [["acme", ["viewer"]]]}),
    request(principal={"age": 10**100}),
    request(principal={"age": 1.5}),
    request(principal={"age": math.nan}),
    request(principal={"auth_time": math.nan}),
    request(principal={"auth_time": "9999-12-31T23:59:59+14:00"}),
    request(principal={"auth_time": "\x00"}),
    request(principal={"email": "\ud800"}),
    request(principal={"level": ["mid"]}),
    request(principal={"level": _Weird()}),
    request(principal={"tags": _Weird()}),
    request(context={"ip": "::ffff:10.0.0.1"}),
    request(context={"ip": "10.0.0.1%eth0"}),
    request(pparents=[{"type": 1, "id": 2}]),
    request(pparents=[None]),
    request(rparents={"type": "Group", "id": "x"}),
    {**request(), "principal": {**request()["principal"], "type": "User\x00"}},
    _cyclic(),
    _deep(50),
    _deep(5000),
]


@pytest.mark.parametrize("req", GARBAGE, ids=[f"garbage{i}" for i in range(len(GARBAGE))])
def test_decide_never_raises_and_never_allows_garbage(req: Any) -> None:
    e = engine("permit anything; forbid never when principal.age > 1000;")
    d = e.decide(req)
    assert isinstance(d, Decision)
    if d.allowed:
        # a few odd but valid inputs (IPv4-mapped IPv6, far-future datetimes) may be allowed
        assert d.errors == ()
    else:
        assert d.errors or d.reasons == ("t.never",), req


def test_garbage_does_not_poison_later_decisions() -> None:
    e = engine("permit anything;")
    for req in GARBAGE:
        e.decide(req)
    assert e.decide(request()).allowed


# ---- known engine defects ------------------------------------------------------------------------------


def test_mutating_one_decision_does_not_change_the_next() -> None:
    e = Engine.from_source(SCHEMA + "permit p obligations { mask resource.ssn; };")
    first = e.decide(request())
    with pytest.raises(TypeError):  # decisions are shared, so they are read-only
        first.obligations[0]["path"] = "nothing"  # type: ignore[index]
    second = e.decide(request())
    assert second.obligations == ({"type": "mask", "path": "resource.ssn"},)


def test_deny_from_a_time_window_is_marked_time_dependent() -> None:
    # a cache must not keep a deny that a later clock would turn into an allow
    rules = 'window w { hours "09:00-10:00"; } permit p when now in w;'
    outside = decide(rules, now="2026-11-27T12:00:00Z")
    inside = decide(rules, now="2026-11-27T09:30:00Z")
    assert inside.allowed and inside.time_dependent
    assert not outside.allowed and outside.time_dependent


def test_advice_with_a_set_of_enum_values_shows_member_names() -> None:
    rules = "forbid f advice { colors = resource.colors; };"
    d = decide(rules, resource={"colors": ["red", "blue"]})
    assert d.advice == ({"rule": "t.f", "name": "colors", "value": ["blue", "red"]},)


@pytest.mark.parametrize(
    "changes",
    [{"principal": {"auth_time": math.nan}}, {"now": math.nan}, {"principal": {"session": math.nan}}],
    ids=["auth_time", "now", "session"],
)
def test_nan_times_never_slip_past_a_forbid(changes: dict[str, Any]) -> None:
    rules = "forbid stale when now - principal.auth_time > 15m; forbid long when principal.session > 8h; permit p;"
    assert not decide(rules, **changes).allowed
