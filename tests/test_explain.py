"""explain(): every rule considered, the values compared, and a decision equal to decide()'s."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from pdp.engine import Engine
from pdp.explain import REDACTED, explain, format_explanation

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
BOB: dict[str, Any] = json.loads((POLICIES / "requests" / "bob-reads-plan.json").read_text())


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(POLICIES)


def request(
    *,
    principal: str = "bob",
    action: str = "read",
    resource: tuple[str, str] = ("Document", "doc-plan"),
    attrs: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    now: Any = "2026-11-27T10:00:00Z",
) -> dict[str, Any]:
    r = copy.deepcopy(BOB)
    r["principal"]["id"] = principal
    r["principal"]["attributes"].update(attrs or {})
    r["action"] = action
    r["resource"] = {"type": resource[0], "id": resource[1]}
    r["context"].update(context or {})
    r["now"] = now
    return r


ADMIN = ("AdminConsole", "acme-console")
FRESH = {"auth_time": "2026-11-27T09:58:00Z"}

TABLE: dict[str, Any] = {
    "bob reads the plan (role, masked)": BOB,
    "owner reads": request(principal="alice"),
    "owner writes with a fresh token": request(principal="alice", action="write", attrs=FRESH),
    "owner writes with a stale token": request(principal="alice", action="write", now="2026-11-27T12:00:00Z"),
    "suspended": request(attrs={"suspended": True}),
    "blocked network": request(context={"ip": "203.0.113.7"}),
    "globex document from outside its networks": request(
        resource=("Document", "doc-globex"), attrs={"roles": {"globex": ["viewer"]}}
    ),
    "globex document from inside": request(
        resource=("Document", "doc-globex"), attrs={"roles": {"globex": ["editor"]}}, context={"ip": "10.20.1.1"}
    ),
    "restricted without mfa (advice)": request(
        resource=("Document", "doc-merger"), attrs={"clearance": "restricted"}, context={"mfa": False}
    ),
    "restricted with mfa, not owner, no role": request(
        resource=("Document", "doc-merger"), attrs={"clearance": "restricted", "roles": {}}
    ),
    "clearance too low": request(resource=("Document", "doc-merger")),
    "public handbook without roles": request(resource=("Document", "doc-handbook"), attrs={"roles": {}}),
    "roles only in another tenant": request(attrs={"roles": {"globex": ["tenant_admin"]}}),
    "editor writes someone else's document": request(action="write", attrs={"roles": {"acme": ["editor"]}, **FRESH}),
    "external user writes": request(principal="alice", action="write", attrs={"external": True, **FRESH}),
    "admin console on a weekend": request(
        action="view_audit", resource=ADMIN, attrs={"roles": {"acme": ["auditor"]}}, now="2026-11-29T10:00:00Z"
    ),
    "admin console on a weekday": request(
        action="view_audit", resource=ADMIN, attrs={"roles": {"acme": ["tenant_admin"]}}
    ),
    "admin console from home": request(
        action="manage_users",
        resource=ADMIN,
        attrs={"roles": {"acme": ["tenant_admin"]}, **FRESH},
        context={"ip": "8.8.8.8"},
    ),
    "archive an archived project": request(
        action="archive", resource=("Project", "proj-old"), attrs={"roles": {"acme": ["tenant_admin"]}, **FRESH}
    ),
    "project member reads": request(resource=("Project", "proj-apollo"), attrs={"roles": {}}),
    "epoch seconds for now": request(now=1795780800),
    "invalid action": request(action="fly"),
    "invalid attribute": request(attrs={"clearance": "cosmic"}),
    "not an object": [],
}


@pytest.mark.parametrize("name", list(TABLE))
def test_explain_decision_equals_decide(engine: Engine, name: str) -> None:
    req = TABLE[name]
    result = explain(engine, req)
    assert result["decision"] == engine.decide(req).to_json()
    assert "engine_decision" not in result
    json.dumps(result)  # JSON all the way down
    assert format_explanation(result)


@pytest.mark.parametrize("path", sorted((POLICIES / "requests").glob("*.json")), ids=lambda p: p.name)
def test_explain_agrees_on_every_example_request(engine: Engine, path: Path) -> None:
    req = json.loads(path.read_text())
    result = explain(engine, req)
    assert result["decision"] == engine.decide(req).to_json()
    assert "engine_decision" not in result


def test_every_rule_of_the_bucket_in_order(engine: Engine) -> None:
    result = explain(engine, BOB)
    bucket = engine.policy.buckets[("User", "Document", "read")]
    assert [r["id"] for r in result["rules"]] == [r.id for r in bucket.rules]
    effects = [r["effect"] for r in result["rules"]]
    assert effects == sorted(effects, key=lambda e: e != "forbid")  # forbids first
    assert result["bucket"] == {
        "principal_type": "User",
        "resource_type": "Document",
        "action": "read",
        "reads_clock": False,
    }
    matched = [r["id"] for r in result["rules"] if r["matched"]]
    assert matched == ["acme.non_owner_read_masked"]
    assert all(r["evaluated"] and r["error"] is None for r in result["rules"])
    assert result["rules"][0]["location"] == f"{POLICIES / 'acme' / 'zero_trust.pdp'}:15"


def comparison_lines(result: dict[str, Any], rule_id: str) -> list[str]:
    (rule,) = [r for r in result["rules"] if r["id"] == rule_id]
    return [c["line"] for c in rule["comparisons"]]


def test_values_are_shown_in_policy_form(engine: Engine) -> None:
    result = explain(engine, BOB)
    assert comparison_lines(result, "acme.clearance_too_low") == [
        "resource.classification > principal.clearance: internal vs confidential -> false"
    ]
    assert comparison_lines(result, "acme.outside_tenant_network") == [
        'resource.tenant in tenant_networks: "acme" vs {"globex": [10.20.0.0/16, 172.16.0.0/12]} -> false'
    ]
    (masked,) = [r for r in result["rules"] if r["id"] == "acme.non_owner_read_masked"]
    assert masked["role_scope"] == {"roles": ["viewer"], "held": ["viewer"], "satisfied": True}
    assert masked["conditions"] == [
        {"kind": "when", "text": "resource.owner != principal.id", "value": True, "holds": True}
    ]
    (cmp,) = masked["comparisons"]
    assert (cmp["left"], cmp["op"], cmp["right"], cmp["result"]) == ('"alice"', "!=", '"bob"', True)


def test_durations_and_datetimes(engine: Engine) -> None:
    result = explain(engine, TABLE["owner writes with a stale token"])
    assert result["request"]["now"] == "2026-11-27T12:00:00Z"
    assert comparison_lines(result, "acme.stale_token_write") == [
        "now - principal.auth_time > max_write_token_age: 2h5m vs 15m -> true"
    ]
    assert result["decision"]["reasons"] == ["acme.stale_token_write"]
    assert result["decision"]["advice"] == [{"rule": "acme.stale_token_write", "name": "reauthenticate", "value": True}]
    # permits are not evaluated by the engine once a forbid matched; explain says so
    (owner,) = [r for r in result["rules"] if r["id"] == "acme.owner_full_access"]
    assert owner["evaluated"] is False and owner["matched"] is True
    assert "skipped, a forbid already decided (evaluated anyway: MATCHED)" in format_explanation(result)


def test_windows_and_unless(engine: Engine) -> None:
    result = explain(engine, TABLE["admin console on a weekend"])
    (rule,) = [r for r in result["rules"] if r["id"] == "acme.admin_outside_business_hours"]
    assert rule["matched"] is True
    assert rule["conditions"] == [{"kind": "unless", "text": "now in business_hours", "value": False, "holds": True}]
    assert rule["comparisons"][0]["line"] == (
        "now in business_hours: 2026-11-29T10:00:00Z vs "
        "business_hours (mon,tue,wed,thu,fri 08:00-19:00 Europe/Berlin) -> false"
    )
    assert result["bucket"]["reads_clock"] is True


def test_role_grants_after_inheritance(engine: Engine) -> None:
    result = explain(engine, TABLE["admin console on a weekday"])
    assert result["roles"]["held"] == ["editor", "tenant_admin", "viewer"]
    assert result["roles"]["declaring"] == ["auditor", "tenant_admin"]
    assert result["roles"]["granting"] == ["tenant_admin"]
    assert result["roles"]["bindings"] == ["principal.roles[resource.tenant]"]
    assert result["decision"]["reasons"] == ["role:tenant_admin"]
    other = explain(engine, TABLE["roles only in another tenant"])
    assert other["roles"]["held"] == [] and other["decision"]["allowed"] is False


def test_invalid_request_has_errors_and_no_rules(engine: Engine) -> None:
    result = explain(engine, TABLE["invalid action"])
    assert result["rules"] == [] and result["bucket"] is None
    assert result["decision"]["errors"] == [{"message": "action `fly` is not valid for `Document`", "field": "action"}]
    assert "the request is invalid" in format_explanation(result)


SMALL = """
enum Tier { bronze < silver < gold }
principal entity User { tier: Tier; limits: map<string, int>; email: string sensitive; groups: set<string>; }
entity Folder {}
entity Doc in Folder { size: int; }
context { ip: ip; }
actions Doc { read, write, archive }
forbid too_big action read when resource.size > principal.limits["read"];
permit gold action read when principal.tier >= gold or principal.email like "*@corp.example";
permit in_folder action read, write when resource in Folder::"f1" and principal.groups.contains("eng") and context.ip in ip("10.0.0.0/8");
"""
SMALL_DATA = {
    "entities": [
        {"type": "Folder", "id": "f1"},
        {"type": "Doc", "id": "d", "parents": [{"type": "Folder", "id": "f1"}], "attributes": {"size": 3}},
    ]
}


@pytest.fixture(scope="module")
def small() -> Engine:
    return Engine.from_source(SMALL, SMALL_DATA, filename="small.pdp")


def small_request(action: str = "read", limits: dict[str, int] | None = None) -> dict[str, Any]:
    attrs = {"tier": "silver", "limits": limits or {}, "email": "u@corp.example", "groups": ["eng"]}
    return {
        "principal": {"type": "User", "id": "u", "attributes": attrs},
        "action": action,
        "resource": {"type": "Doc", "id": "d"},
        "context": {"ip": "10.2.3.4"},
        "now": 0,
    }


def test_a_failing_rule_denies_and_shows_where(small: Engine) -> None:
    req = small_request()
    result = explain(small, req)
    assert result["decision"] == small.decide(req).to_json()
    (too_big, gold, in_folder) = result["rules"]
    assert too_big["error"] == "no entry `read` in the map"
    assert too_big["error_at"] == 'principal.limits["read"]'
    assert too_big["matched"] is False
    assert too_big["conditions"][0]["value"] is None
    assert result["decision"]["errors"] == [{"message": "no entry `read` in the map", "rule": "too_big"}]
    assert not gold["evaluated"] and not in_folder["evaluated"]
    assert 'ERROR no entry `read` in the map at `principal.limits["read"]`' in format_explanation(result)


def test_sensitive_values_are_redacted_unless_asked(small: Engine) -> None:
    req = small_request(limits={"read": 10})
    hidden = comparison_lines(explain(small, req), "gold")
    assert hidden == [
        "principal.tier >= gold: silver vs gold -> false",
        f'principal.email like "*@corp.example": {REDACTED} vs "*@corp.example" -> true',
    ]
    shown = comparison_lines(explain(small, req, show_sensitive=True), "gold")
    assert shown[1] == 'principal.email like "*@corp.example": "u@corp.example" vs "*@corp.example" -> true'


def test_hierarchy_sets_and_networks(small: Engine) -> None:
    req = small_request(action="write")
    result = explain(small, req)
    assert result["decision"] == small.decide(req).to_json()
    assert result["decision"]["reasons"] == ["in_folder"]
    assert comparison_lines(result, "in_folder") == [
        'resource in Folder::"f1": Doc::"d" (in Folder::"f1") vs Folder::"f1" -> true',
        'principal.groups.contains("eng"): ["eng"] vs "eng" -> true',
        'context.ip in ip("10.0.0.0/8"): 10.2.3.4 vs 10.0.0.0/8 -> true',
    ]
    assert result["roles"]["bindings"] == [] and result["roles"]["declaring"] == []


def test_nothing_applies(small: Engine) -> None:
    req = small_request(action="archive")
    result = explain(small, req)
    assert result["bucket"] is None and result["rules"] == []
    assert result["decision"] == small.decide(req).to_json()
    assert result["decision"]["allowed"] is False
    assert "no rule or role grant applies" in format_explanation(result)
