"""The acme policy set (policies/acme/*.pdp) encoded for two peers: Cedar (cedarpy) and pycasbin.

Both peers get the same JSON request the engine gets. Each peer offers:

* `prepare(request)`: convert the JSON request into the peer's own input (done once, outside the
  timed loop, in the "prepared" benchmarks), and
* `decide_prepared(prepared) -> bool`: the peer's authorization call only;
* `decide(request) -> bool`: both, end to end.

The engine is compared with the fastest variant of either peer, so everything moved into
`prepare` only makes the peer look faster and the comparison stays conservative.

What the peers cannot express, and is therefore computed in Python and passed in (this only
makes the peers faster):

Cedar
  * business hours (`now in business_hours`, Mon-Fri 08:00-19:00 Europe/Berlin): Cedar's datetime
    extension has no time zones or weekdays, so `context.business_hours` is computed in Python.
  * the ordered enum `Level` (`resource.classification > principal.clearance`): Cedar has no
    ordered enums, so both sides also carry the level's rank as a Long (`classification_rank`,
    `clearance_rank`).
  * tenant-scoped roles (`roles of User from principal.roles[resource.tenant]`): Cedar cannot
    index a record by a computed key, so roles are entities per tenant (`Role::"acme/editor"`,
    parent `Role::"acme/viewer"` for `extends`), the user is a member (entity parent) of the
    roles it holds, and each resource's tenant is a `Tenant` entity whose attributes name its
    roles: a grant is `principal in resource.tenant_ref.viewer`. Role inheritance is evaluated
    by Cedar.
  * CIDR membership and token age are native (`ip(...).isInRange`, `datetime`/`duration`).
  * owner and members are compared by the user's name (a string attribute), so that the batch
    variant can give each request's principal its own entity uid.

pycasbin (RBAC with domains + ABAC via `eval()` of per-line conditions)
  * datetimes: casbin has no datetime type, so `now` and `auth_time` are passed as epoch seconds.
  * business hours: passed as a precomputed boolean, as for Cedar.
  * the ordered enum: ranks, as for Cedar.
  * role assignments are casbin grouping lines (`g, bob, viewer, acme`) loaded once from the
    benchmark requests' principals (casbin keeps role assignments in its role manager; it does
    not read them from the request), and role inheritance is `g, editor, viewer, <tenant>`.
  * CIDR membership uses casbin's `ipMatch`, the path glob its `keyMatch`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import casbin
import cedarpy
from casbin import model as casbin_model

from benchmarks.baseline import (
    DATA_FILE,
    LEVEL,
    WRITE_ACTIONS,
    epoch,
    in_business_hours,
)

ROLE_EXTENDS = {"viewer": (), "editor": ("viewer",), "tenant_admin": ("editor",), "auditor": ()}
ROLE_GRANTS = {  # role -> (resource type, actions)
    "viewer": (("Document", ("read",)), ("Project", ("read",))),
    "editor": (("Document", ("write",)), ("Project", ("create",))),
    "tenant_admin": (
        ("Document", ("delete", "share")),
        ("Project", ("archive",)),
        ("AdminConsole", ("manage_users", "view_audit")),
    ),
    "auditor": (("AdminConsole", ("view_audit",)),),
}
RESOURCE_TYPES = ("Document", "Project", "AdminConsole")
DOCUMENT_ACTIONS = ("read", "write", "delete", "share")


def load_data() -> dict[str, Any]:
    return json.loads(DATA_FILE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def merged_attributes(entity: dict[str, Any], stored: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    """Request attributes with the data file's winning, as the engine does."""
    out = dict(entity.get("attributes") or {})
    out.update(stored.get((entity["type"], entity["id"]), {}))
    return out


def now_of(request: dict[str, Any]) -> float:
    return epoch(request["now"])


# =========================================================================================
# Cedar
# =========================================================================================
def _cedar_any_in(var: str, cidrs: Iterable[str]) -> str:
    return "(" + " || ".join(f'{var}.isInRange(ip("{c}"))' for c in cidrs) + ")"


def _cedar_actions(actions: Iterable[str]) -> str:
    return "[" + ", ".join(f'Action::"{a}"' for a in actions) + "]"


def cedar_policies(constants: dict[str, Any]) -> str:
    writes = _cedar_actions(sorted(WRITE_ACTIONS))
    ip = "context.ip"
    out = [
        # documents.pdp
        f'@id("acme.owner_full_access")\npermit (principal is User, action in {_cedar_actions(DOCUMENT_ACTIONS)}, '
        "resource is Document)\n  when { resource.owner == principal.name };",
        '@id("acme.non_owner_read_masked")\npermit (principal is User, action == Action::"read", resource is Document)\n'
        "  when { principal in resource.tenant_ref.viewer && resource.owner != principal.name };",
        '@id("acme.public_documents")\npermit (principal, action == Action::"read", resource is Document)\n'
        '  when { resource.classification == "public" && resource.path like "/public/*"'
        " && principal.tenant == resource.tenant };",
        '@id("acme.project_members")\npermit (principal, action == Action::"read", resource is Project)\n'
        "  when { resource.members.contains(principal.name) };",
        '@id("acme.archived_project_frozen")\nforbid (principal, action in [Action::"create", Action::"archive"], '
        "resource is Project)\n  when { resource.archived };",
        # zero_trust.pdp
        '@id("acme.suspended_account")\nforbid (principal, action, resource)\n  when { principal.suspended };',
        f'@id("acme.blocked_network")\nforbid (principal, action, resource)\n'
        f"  when {{ {_cedar_any_in(ip, constants['blocked_networks'])} }};",
    ]
    for tenant, cidrs in sorted(constants["tenant_networks"].items()):
        out.append(
            f'@id("acme.outside_tenant_network")\nforbid (principal, action, resource)\n'
            f'  when {{ resource.tenant == "{tenant}" && !{_cedar_any_in(ip, cidrs)} }};'
        )
    out += [
        '@id("acme.clearance_too_low")\nforbid (principal, action, resource is Document)\n'
        "  when { resource.classification_rank > principal.clearance_rank };",
        '@id("acme.restricted_needs_mfa_and_trusted_device")\nforbid (principal, action, resource is Document)\n'
        '  when { resource.classification == "restricted" }\n  unless { context.mfa && context.device_trusted };',
        f'@id("acme.stale_token_write")\nforbid (principal, action in {writes}, resource)\n'
        '  when { context.now.durationSince(principal.auth_time) > duration("15m") };',
        f'@id("acme.external_read_only")\nforbid (principal, action in {writes}, resource)\n'
        "  when { principal.external };",
        # business hours precomputed in Python: Cedar datetimes have no time zone or weekday
        '@id("acme.admin_outside_business_hours")\nforbid (principal, action, resource is AdminConsole)\n'
        "  unless { context.business_hours };",
        '@id("acme.admin_off_corporate_network")\nforbid (principal, action, resource is AdminConsole)\n'
        f"  unless {{ {_cedar_any_in(ip, constants['corporate_network'])} }};",
    ]
    # rbac.pdp: one permit per role grant; inheritance is the Role entity hierarchy
    for role, grants in ROLE_GRANTS.items():
        for rtype, actions in grants:
            out.append(
                f'@id("role:{role}")\npermit (principal, action in {_cedar_actions(actions)}, resource is {rtype})\n'
                f"  when {{ principal in resource.tenant_ref.{role} }};"
            )
    return "\n\n".join(out) + "\n"


def _cedar_uid(etype: str, eid: str) -> dict[str, Any]:
    return {"__entity": {"type": etype, "id": eid}}


def _cedar_datetime(text: str) -> dict[str, Any]:
    # Cedar accepts `Z` or `+hhmm`; RFC 3339 writes `+hh:mm`
    if len(text) > 6 and text[-3] == ":" and text[-6] in "+-":
        text = text[:-3] + text[-2:]
    return {"__extn": {"fn": "datetime", "arg": text}}


def _cedar_resource_attrs(etype: str, attrs: dict[str, Any]) -> dict[str, Any]:
    out = dict(attrs)
    if "tenant" in out:
        out["tenant_ref"] = _cedar_uid("Tenant", out["tenant"])
    if etype == "Document" and "classification" in out:
        out["classification_rank"] = LEVEL[out["classification"]]
    return out


class CedarPeer:
    def __init__(self, tenants: Iterable[str] = ()) -> None:
        data = load_data()
        self.stored = {(e["type"], e["id"]): e.get("attributes") or {} for e in data["entities"]}
        self.policy_text = cedar_policies(data["constants"])
        self.policies = cedarpy.PolicySet.from_str(self.policy_text)
        known: set[str] = {a["tenant"] for a in self.stored.values() if a.get("tenant")}
        known |= set(data["constants"]["tenant_networks"]) | set(tenants)
        self.tenants = sorted(known)
        self.base_entities: list[dict[str, Any]] = []
        for e in data["entities"]:
            self.base_entities.append(
                {
                    "uid": {"type": e["type"], "id": e["id"]},
                    "attrs": _cedar_resource_attrs(e["type"], e.get("attributes") or {}),
                    "parents": [{"type": p["type"], "id": p["id"]} for p in e.get("parents") or []],
                }
            )
        for tenant in self.tenants:
            self.base_entities.append(
                {
                    "uid": {"type": "Tenant", "id": tenant},
                    "attrs": {role: _cedar_uid("Role", f"{tenant}/{role}") for role in ROLE_EXTENDS},
                    "parents": [],
                }
            )
            for role, parents in ROLE_EXTENDS.items():
                self.base_entities.append(
                    {
                        "uid": {"type": "Role", "id": f"{tenant}/{role}"},
                        "attrs": {},
                        "parents": [{"type": "Role", "id": f"{tenant}/{p}"} for p in parents],
                    }
                )
        self.entities = cedarpy.Entities.from_json_str(json.dumps(self.base_entities))

    # ---- conversion --------------------------------------------------------------------
    def principal_entity(self, principal: dict[str, Any], uid: str) -> dict[str, Any]:
        attrs = merged_attributes(principal, self.stored)
        roles = attrs["roles"]
        return {
            "uid": {"type": "User", "id": uid},
            "attrs": {
                "name": principal["id"],
                "tenant": attrs["tenant"],
                "clearance_rank": LEVEL[attrs["clearance"]],
                "external": attrs["external"],
                "suspended": attrs["suspended"],
                "auth_time": _cedar_datetime(attrs["auth_time"]),
            },
            "parents": [
                {"type": "Role", "id": f"{tenant}/{role}"}
                for tenant, held in roles.items()
                for role in held
                if role in ROLE_EXTENDS
            ],
        }

    def cedar_request(self, request: dict[str, Any], uid: str) -> dict[str, Any]:
        context = request["context"]
        resource = request["resource"]
        return {
            "principal": {"type": "User", "id": uid},
            "action": {"type": "Action", "id": request["action"]},
            "resource": {"type": resource["type"], "id": resource["id"]},
            "context": {
                "ip": {"__extn": {"fn": "ip", "arg": context["ip"]}},
                "mfa": context["mfa"],
                "device_trusted": context["device_trusted"],
                "now": _cedar_datetime(request["now"]),
                "business_hours": in_business_hours(now_of(request)),  # precomputed: see module docstring
            },
        }

    # ---- deciding ----------------------------------------------------------------------
    def decide(self, request: dict[str, Any]) -> bool:
        """End to end: convert, add the principal to the stored entities, authorize."""
        uid = request["principal"]["id"]
        entities = self.entities.with_added_json_str(json.dumps([self.principal_entity(request["principal"], uid)]))
        return cedarpy.is_authorized(self.cedar_request(request, uid), self.policies, entities).allowed  # type: ignore[no-any-return]

    def prepare_all(self, requests: Iterable[dict[str, Any]]) -> tuple[list[dict[str, Any]], cedarpy.Entities]:
        """Every request converted, and one entity set holding every request's principal under its own uid."""
        cedar_requests, principals = [], []
        for i, request in enumerate(requests):
            uid = f"{i}/{request['principal']['id']}"
            principals.append(self.principal_entity(request["principal"], uid))
            cedar_requests.append(self.cedar_request(request, uid))
        return cedar_requests, self.entities.with_added_json_str(json.dumps(principals))

    def decide_prepared(self, cedar_request: dict[str, Any], entities: cedarpy.Entities) -> bool:
        return cedarpy.is_authorized(cedar_request, self.policies, entities).allowed  # type: ignore[no-any-return]

    def decide_batch(self, cedar_requests: list[dict[str, Any]], entities: cedarpy.Entities) -> list[bool]:
        return [r.allowed for r in cedarpy.is_authorized_batch(cedar_requests, self.policies, entities)]

    def reasons(self, request: dict[str, Any]) -> list[str]:
        """The @id of every policy that determined the decision (for checking, not timed)."""
        uid = request["principal"]["id"]
        entities = self.entities.with_added_json_str(json.dumps([self.principal_entity(request["principal"], uid)]))
        result = cedarpy.is_authorized(self.cedar_request(request, uid), self.policies, entities)
        names = result.diagnostics.id_annotations_by_reason
        return sorted(names.get(r, r) for r in result.diagnostics.reasons)


# =========================================================================================
# pycasbin
# =========================================================================================
CASBIN_MODEL = """
[request_definition]
r = sub, obj, act, env

[policy_definition]
p = rule, role, otype, act, cond, eft

[role_definition]
g = _, _, _

[policy_effect]
e = some(where (p.eft == allow)) && !some(where (p.eft == deny))

[matchers]
m = p.otype == r.obj.type && (p.act == "*" || p.act == r.act) && (p.role == "*" || g(r.sub.id, p.role, r.obj.tenant)) && eval(p.cond)
"""


def _casbin_any_in(cidrs: Iterable[str]) -> str:
    return "(" + " or ".join(f"ipMatch(r.env.ip, '{c}')" for c in cidrs) + ")"


def casbin_policy_lines(constants: dict[str, Any]) -> list[list[str]]:
    """(rule, role, resource type, action, condition, effect); forbids first, so a deny ends the scan early."""
    lines: list[list[str]] = []

    def add(rule: str, role: str, rtypes: Iterable[str], actions: Iterable[str], cond: str, eft: str) -> None:
        for rtype in rtypes:
            for action in actions:
                lines.append(["acme." + rule if role == "*" else rule, role, rtype, action, cond, eft])

    writes = sorted(WRITE_ACTIONS)
    add("archived_project_frozen", "*", ["Project"], ["create", "archive"], "r.obj.archived", "deny")
    add("suspended_account", "*", RESOURCE_TYPES, ["*"], "r.sub.suspended", "deny")
    add("blocked_network", "*", RESOURCE_TYPES, ["*"], _casbin_any_in(constants["blocked_networks"]), "deny")
    for tenant, cidrs in sorted(constants["tenant_networks"].items()):
        cond = f"r.obj.tenant == '{tenant}' and not {_casbin_any_in(cidrs)}"
        add("outside_tenant_network", "*", RESOURCE_TYPES, ["*"], cond, "deny")
    add("clearance_too_low", "*", ["Document"], ["*"], "r.obj.classification_rank > r.sub.clearance_rank", "deny")
    cond = "r.obj.classification == 'restricted' and not (r.env.mfa and r.env.device_trusted)"
    add("restricted_needs_mfa_and_trusted_device", "*", ["Document"], ["*"], cond, "deny")
    for rtype in RESOURCE_TYPES:  # only the write-type actions valid for the type
        valid = [a for a in writes if a in _VALID_ACTIONS[rtype]]
        add("stale_token_write", "*", [rtype], valid, "r.env.now - r.sub.auth_time > 900", "deny")
        add("external_read_only", "*", [rtype], valid, "r.sub.external", "deny")
    add("admin_outside_business_hours", "*", ["AdminConsole"], ["*"], "not r.env.business_hours", "deny")
    cond = f"not {_casbin_any_in(constants['corporate_network'])}"
    add("admin_off_corporate_network", "*", ["AdminConsole"], ["*"], cond, "deny")
    add("owner_full_access", "*", ["Document"], DOCUMENT_ACTIONS, "r.obj.owner == r.sub.id", "allow")
    add("non_owner_read_masked", "viewer", ["Document"], ["read"], "r.obj.owner != r.sub.id", "allow")
    cond = "r.obj.classification == 'public' and keyMatch(r.obj.path, '/public/*') and r.sub.tenant == r.obj.tenant"
    add("public_documents", "*", ["Document"], ["read"], cond, "allow")
    add("project_members", "*", ["Project"], ["read"], "r.sub.id in r.obj.members", "allow")
    for role, grants in ROLE_GRANTS.items():
        for rtype, actions in grants:
            add(f"role:{role}", role, [rtype], actions, "True", "allow")
    return lines


_VALID_ACTIONS = {
    "Document": frozenset(DOCUMENT_ACTIONS),
    "Project": frozenset({"read", "create", "archive"}),
    "AdminConsole": frozenset({"manage_users", "view_audit"}),
}


class CasbinPeer:
    def __init__(self, requests: Iterable[dict[str, Any]]) -> None:
        data = load_data()
        self.stored = {(e["type"], e["id"]): e.get("attributes") or {} for e in data["entities"]}
        model = casbin_model.Model()
        model.load_model_from_text(CASBIN_MODEL)
        self.enforcer = casbin.Enforcer(model)
        self.lines = casbin_policy_lines(data["constants"])
        self.enforcer.add_policies(self.lines)
        tenants = {a["tenant"] for a in self.stored.values() if "tenant" in a} | set(
            data["constants"]["tenant_networks"]
        )
        grouping: set[tuple[str, str, str]] = set()
        for request in requests:  # role assignments live in casbin, loaded once
            principal = request["principal"]
            for tenant, held in merged_attributes(principal, self.stored)["roles"].items():
                tenants.add(tenant)
                grouping.update((principal["id"], role, tenant) for role in held)
        for tenant in sorted(tenants):
            for role, parents in ROLE_EXTENDS.items():
                grouping.update((role, parent, tenant) for parent in parents)
        self.enforcer.add_grouping_policies([list(g) for g in sorted(grouping)])

    def prepare(self, request: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str, dict[str, Any]]:
        principal, resource, context = request["principal"], request["resource"], request["context"]
        p = merged_attributes(principal, self.stored)
        r = merged_attributes(resource, self.stored)
        now = now_of(request)
        sub = {
            "id": principal["id"],
            "tenant": p["tenant"],
            "clearance_rank": LEVEL[p["clearance"]],
            "external": p["external"],
            "suspended": p["suspended"],
            "auth_time": epoch(p["auth_time"]),
        }
        obj = dict(r, type=resource["type"], id=resource["id"])
        if "classification" in obj:
            obj["classification_rank"] = LEVEL[obj["classification"]]
        env = {
            "ip": context["ip"],
            "mfa": context["mfa"],
            "device_trusted": context["device_trusted"],
            "now": now,
            "business_hours": in_business_hours(now),  # precomputed: see module docstring
        }
        return sub, obj, request["action"], env

    def decide_prepared(self, prepared: tuple[dict[str, Any], dict[str, Any], str, dict[str, Any]]) -> bool:
        return self.enforcer.enforce(*prepared)  # type: ignore[no-any-return]

    def decide(self, request: dict[str, Any]) -> bool:
        return self.enforcer.enforce(*self.prepare(request))  # type: ignore[no-any-return]

    def reasons(self, request: dict[str, Any]) -> list[str]:
        """The rule of the line that ended the scan (casbin explains one line), for checking only."""
        allowed, explain = self.enforcer.enforce_ex(*self.prepare(request))
        return [explain[0]] if explain else []
