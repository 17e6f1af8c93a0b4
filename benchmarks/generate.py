"""Synthetic policy sets for the scaling benchmarks: N rules over N/10 resource types.

Every resource type `T<i>` has five actions (read, write, delete, share, admin) and exactly ten
rules built from the templates below, so a (principal, type, action) bucket holds about the same
rules at every size; what grows is the number of types and buckets. Two global forbids (no
resource scope: every bucket gets them) and three roles whose grants name every type complete the
set, so a policy "of N rules" has N + 2 rules. The conditions are the kinds real policies use:
attribute equality and ordering (enum ranks), set membership both ways, `has` guards on optional
attributes, `unless`, role scopes, role grants, CIDR lists.
"""

from __future__ import annotations

from typing import Any

SIZES = (10, 100, 1_000, 10_000)
RULES_PER_TYPE = 10
ACTIONS = ("read", "write", "delete", "share", "admin")

HEADER = """\
namespace gen;

enum Level { public < internal < confidential < restricted }

principal entity User {
  tenant: string;
  dept?: string;
  clearance: Level;
  groups: set<string>;
  suspended: bool;
  roles: map<string, set<string>>;
}

context {
  ip: ip;
  mfa: bool;
}

list blocked_networks: ip = ["203.0.113.0/24", "198.51.100.0/24", "192.0.2.128/25"];

forbid suspended_account
  when principal.suspended;

forbid blocked_network
  when context.ip in blocked_networks;

roles of User from principal.roles[resource.tenant];
"""

ENTITY = """
entity T{i} {{
  tenant: string;
  owner: string;
  level: Level;
  tags: set<string>;
  members: set<string>;
  dept?: string;
  archived: bool;
}}
actions T{i} {{ read, write, delete, share, admin }}
"""

# Ten templates per resource type: five permits, four forbids, one role-scoped permit.
TEMPLATES = (
    """permit t{i}_owner
  action read, write
  resource T{i}
  when resource.owner == principal.id;
""",
    """permit t{i}_members_read
  action read
  resource T{i}
  when principal.id in resource.members;
""",
    """permit t{i}_same_department
  action read, share
  resource T{i}
  when resource has dept and principal has dept and resource.dept == principal.dept;
""",
    """permit t{i}_tagged_public
  action read
  resource T{i}
  when resource.tags.contains("public-{tag}") and principal.tenant == resource.tenant;
""",
    """permit t{i}_group_writers
  action write, share
  resource T{i}
  when "grp-{group}" in principal.groups and resource.level <= principal.clearance;
""",
    """forbid t{i}_clearance
  resource T{i}
  when resource.level > principal.clearance;
""",
    """forbid t{i}_archived
  action write, delete
  resource T{i}
  when resource.archived;
""",
    """forbid t{i}_mfa_for_destructive
  action delete, admin
  resource T{i}
  unless context.mfa;
""",
    """permit t{i}_admins
  action admin, delete
  resource T{i}
  role admin
  when principal.clearance >= confidential and not resource.archived;
""",
    """forbid t{i}_cross_tenant
  resource T{i}
  when principal.tenant != resource.tenant
   and not (principal has dept and principal.dept == "support");
""",
)


def type_count(n_rules: int) -> int:
    return max(1, n_rules // RULES_PER_TYPE)


def policy_source(n_rules: int) -> str:
    """A policy set with `n_rules` type-scoped rules (n_rules // 10 types) plus the two global forbids."""
    types = type_count(n_rules)
    parts = [HEADER]
    for i in range(types):
        parts.append(ENTITY.format(i=i))
    names = ", ".join(f"T{i}" for i in range(types))
    parts.append(
        f"""
role reader {{
  grant read on {names};
}}

role writer extends reader {{
  grant write, share on {names};
}}

role admin extends writer {{
  grant delete, admin on {names};
}}
"""
    )
    for i in range(types):
        for template in TEMPLATES:
            parts.append(template.format(i=i, tag=i % 13, group=i % 17))
    return "\n".join(parts)


def typical_requests(n_rules: int) -> list[dict[str, Any]]:
    """Three requests on the middle type: an owner read (allow), a group write (allow), a delete
    without MFA (deny). Everything is inline; there is no data file."""
    i = type_count(n_rules) // 2
    resource = {
        "type": f"T{i}",
        "id": f"t{i}-item-42",
        "attributes": {
            "tenant": "acme",
            "owner": "alice",
            "level": "internal",
            "tags": ["finance", f"public-{(i + 1) % 13}"],
            "members": ["bob", "carol", "dan"],
            "dept": "finance",
            "archived": False,
        },
    }

    def user(uid: str, groups: list[str], roles: list[str]) -> dict[str, Any]:
        return {
            "type": "User",
            "id": uid,
            "attributes": {
                "tenant": "acme",
                "dept": "engineering",
                "clearance": "confidential",
                "groups": groups,
                "suspended": False,
                "roles": {"acme": roles},
            },
        }

    context = {"ip": "10.1.2.3", "mfa": False}
    return [
        {"principal": user("alice", [], ["reader"]), "action": "read", "resource": resource, "context": context},
        {
            "principal": user("erin", [f"grp-{i % 17}", "grp-other"], []),
            "action": "write",
            "resource": resource,
            "context": context,
        },
        {"principal": user("alice", [], ["admin"]), "action": "delete", "resource": resource, "context": context},
    ]


EXPECTED = [True, True, False]
