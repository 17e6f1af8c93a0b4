"""A fixed, realistic set of requests over `policies/` (the acme policy set), with the expected outcome.

Every request is plain JSON (strings for IPs and datetimes), exactly what a caller would send the
engine. Resources are the entities of `policies/acme/data.json`, so the request names them only by
type and id and the data file supplies their attributes. Each user id keeps one role assignment
across the whole set (the casbin peer stores role assignments, see `benchmarks/peers.py`).

Times: 2026-11-27 is a Friday; 10:00Z is 11:00 in Berlin (CET), inside business hours (Mon-Fri
08:00-19:00 Europe/Berlin); 2026-11-28 is a Saturday.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FRIDAY = "2026-11-27T10:00:00Z"
FRIDAY_FRESH_LOGIN = "2026-11-27T09:55:00Z"  # 5 minutes before: fresh enough to write (limit 15m)
FRIDAY_STALE_LOGIN = "2026-11-27T09:00:00Z"  # an hour before: too old to write
SATURDAY = "2026-11-28T10:00:00Z"
SATURDAY_FRESH_LOGIN = "2026-11-28T09:58:00Z"

OFFICE_IP = "10.1.2.3"  # corporate network 10.0.0.0/8; not in globex's allow-list
BLOCKED_IP = "203.0.113.7"  # blocked_networks 203.0.113.0/24
HOME_IP = "198.18.0.5"  # neither corporate nor blocked
GLOBEX_IP = "172.16.5.4"  # globex allow-list 172.16.0.0/12
GLOBEX_OFFICE_IP = "10.20.1.1"  # globex allow-list 10.20.0.0/16, and corporate


@dataclass(frozen=True)
class Case:
    name: str
    request: dict[str, Any]
    allowed: bool
    reasons: tuple[str, ...]  # the engine's reasons, in its order (forbids on deny; permits then roles on allow)


def _user(
    uid: str,
    tenant: str,
    roles: dict[str, list[str]],
    clearance: str,
    *,
    auth_time: str = FRIDAY_FRESH_LOGIN,
    external: bool = False,
    suspended: bool = False,
) -> dict[str, Any]:
    return {
        "type": "User",
        "id": uid,
        "attributes": {
            "tenant": tenant,
            "roles": roles,
            "clearance": clearance,
            "external": external,
            "suspended": suspended,
            "email": f"{uid}@{tenant}.example",
            "auth_time": auth_time,
        },
    }


def _request(
    principal: dict[str, Any],
    action: str,
    rtype: str,
    rid: str,
    *,
    ip: str = OFFICE_IP,
    mfa: bool = True,
    device_trusted: bool = True,
    now: str = FRIDAY,
) -> dict[str, Any]:
    return {
        "principal": principal,
        "action": action,
        "resource": {"type": rtype, "id": rid},
        "context": {"ip": ip, "mfa": mfa, "device_trusted": device_trusted},
        "now": now,
    }


def _users() -> dict[str, dict[str, Any]]:
    return {
        "alice": _user("alice", "acme", {"acme": ["viewer"]}, "restricted"),  # owns doc-plan and doc-merger
        "bob": _user("bob", "acme", {"acme": ["viewer"]}, "confidential"),
        "carol": _user("carol", "acme", {"acme": ["editor"]}, "confidential"),
        "carol_stale": _user("carol", "acme", {"acme": ["editor"]}, "confidential", auth_time=FRIDAY_STALE_LOGIN),
        "dave": _user("dave", "acme", {"acme": ["viewer"]}, "internal", suspended=True),
        "erin": _user("erin", "acme", {"acme": ["viewer"]}, "restricted"),
        "tina": _user("tina", "acme", {"acme": ["tenant_admin"]}, "confidential"),
        "tina_saturday": _user(
            "tina", "acme", {"acme": ["tenant_admin"]}, "confidential", auth_time=SATURDAY_FRESH_LOGIN
        ),
        "xavier": _user("xavier", "acme", {"acme": ["editor"]}, "internal", external=True),
        "gus": _user("gus", "acme", {}, "internal"),
        "hank": _user("hank", "globex", {"globex": ["viewer"]}, "internal"),
    }


def _cases() -> tuple[Case, ...]:
    u = _users()
    A = "acme."
    return (
        Case("owner_write", _request(u["alice"], "write", "Document", "doc-plan"), True, (A + "owner_full_access",)),
        Case(
            "viewer_read_masked",
            _request(u["bob"], "read", "Document", "doc-plan"),
            True,
            (A + "non_owner_read_masked", "role:viewer"),
        ),
        Case("editor_write", _request(u["carol"], "write", "Document", "doc-plan"), True, ("role:editor",)),
        Case(
            "stale_token_write_denied",
            _request(u["carol_stale"], "write", "Document", "doc-plan"),
            False,
            (A + "stale_token_write",),
        ),
        Case(
            "suspended_denied", _request(u["dave"], "read", "Document", "doc-plan"), False, (A + "suspended_account",)
        ),
        Case(
            "blocked_ip_denied",
            _request(u["bob"], "read", "Document", "doc-plan", ip=BLOCKED_IP),
            False,
            (A + "blocked_network",),
        ),
        Case(
            "restricted_without_mfa_denied",
            _request(u["erin"], "read", "Document", "doc-merger", mfa=False),
            False,
            (A + "restricted_needs_mfa_and_trusted_device",),
        ),
        Case(
            "restricted_with_mfa_and_clearance",
            _request(u["erin"], "read", "Document", "doc-merger"),
            True,
            (A + "non_owner_read_masked", "role:viewer"),
        ),
        Case(
            "admin_console_in_hours",
            _request(u["tina"], "manage_users", "AdminConsole", "acme-console"),
            True,
            ("role:tenant_admin",),
        ),
        Case(
            "admin_console_out_of_hours_denied",
            _request(u["tina_saturday"], "manage_users", "AdminConsole", "acme-console", now=SATURDAY),
            False,
            (A + "admin_outside_business_hours",),
        ),
        Case(
            "admin_console_off_network_denied",
            _request(u["tina"], "view_audit", "AdminConsole", "acme-console", ip=HOME_IP),
            False,
            (A + "admin_off_corporate_network",),
        ),
        Case(
            "external_write_denied",
            _request(u["xavier"], "write", "Document", "doc-plan"),
            False,
            (A + "external_read_only",),
        ),
        Case(
            "public_handbook_read",
            _request(u["gus"], "read", "Document", "doc-handbook"),
            True,
            (A + "public_documents",),
        ),
        Case(
            "project_member_read",
            _request(u["carol"], "read", "Project", "proj-apollo"),
            True,
            (A + "project_members", "role:viewer"),
        ),
        Case(
            "cross_tenant_read_denied",
            _request(u["bob"], "read", "Document", "doc-globex", ip=GLOBEX_OFFICE_IP),
            False,
            (),  # bob holds no role in globex and nothing permits: deny by default
        ),
        Case(
            "globex_allow_listed_network",
            _request(u["hank"], "read", "Document", "doc-globex", ip=GLOBEX_IP),
            True,
            (A + "non_owner_read_masked", "role:viewer"),
        ),
        Case(
            "globex_outside_network_denied",
            _request(u["hank"], "read", "Document", "doc-globex", ip=OFFICE_IP),
            False,
            (A + "outside_tenant_network",),
        ),
    )


CASES: tuple[Case, ...] = _cases()
REQUESTS: tuple[dict[str, Any], ...] = tuple(c.request for c in CASES)
