"""Table-driven tests for the example policy set in policies/acme/ (a multi-tenant document API).

Each table covers one practice the policies apply. A case is a request built by `req()` (a sane,
fresh, in-office acme user unless the case says otherwise) and the exact outcome expected:
allowed or not, the reasons (rule ids and `role:<name>` grants), obligations and advice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pdp import Engine

POLICIES = Path(__file__).resolve().parent.parent / "policies"
REQUESTS = POLICIES / "requests"

# Wednesday 2026-11-25, 11:00 in Berlin (CET = UTC+1): inside business hours.
NOW = "2026-11-25T10:00:00Z"

CORP_IP = "10.1.2.3"  # corporate network (10.0.0.0/8); not in globex's allow-list
CORP_WIFI_IP = "192.168.10.25"  # corporate network (192.168.10.0/24)
HOME_IP = "192.0.2.44"  # the internet: not corporate, not blocked
GLOBEX_IP = "172.16.4.20"  # globex allow-list (172.16.0.0/12); not corporate
GLOBEX_OFFICE_IP = "10.20.7.9"  # globex allow-list (10.20.0.0/16), and corporate (10.0.0.0/8)

PLAN = "Document::doc-plan"  # acme, internal, owner alice, has a salary field
MERGER = "Document::doc-merger"  # acme, restricted, owner alice
ROADMAP = "Document::doc-roadmap"  # acme, confidential, owner alice
HANDBOOK = "Document::doc-handbook"  # acme, public, /public/handbook.pdf, owner hr-bot
RUNBOOK = "Document::doc-globex"  # globex, internal, owner gina, has an ssn field
APOLLO = "Project::proj-apollo"  # acme, members bob and carol
OLD_PROJECT = "Project::proj-old"  # acme, members bob, archived
ACME_CONSOLE = "AdminConsole::acme-console"
GLOBEX_CONSOLE = "AdminConsole::globex-console"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def acme(*roles: str) -> dict[str, list[str]]:
    return {"acme": list(roles)}


def globex(*roles: str) -> dict[str, list[str]]:
    return {"globex": list(roles)}


def req(
    action: str,
    resource: str,
    *,
    user: str = "bob",
    tenant: str = "acme",
    roles: dict[str, list[str]] | None = None,
    clearance: str = "confidential",
    external: bool = False,
    suspended: bool = False,
    token_age: timedelta = timedelta(minutes=5),
    ip: str = CORP_IP,
    mfa: bool = True,
    device_trusted: bool = True,
    now: str = NOW,
    resource_attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A request as a PEP would send it; `resource` is "Type::id". The user logged in `token_age` ago."""
    rtype, rid = resource.split("::")
    target: dict[str, Any] = {"type": rtype, "id": rid}
    if resource_attributes is not None:
        target["attributes"] = resource_attributes
    return {
        "principal": {
            "type": "User",
            "id": user,
            "attributes": {
                "tenant": tenant,
                "roles": roles or {},
                "clearance": clearance,
                "external": external,
                "suspended": suspended,
                "email": f"{user}@{tenant}.example",
                "auth_time": rfc3339(utc(now) - token_age),
            },
        },
        "action": action,
        "resource": target,
        "context": {"ip": ip, "mfa": mfa, "device_trusted": device_trusted},
        "now": now,
    }


@dataclass(frozen=True)
class Outcome:
    allowed: bool
    reasons: tuple[str, ...] = ()
    obligations: tuple[dict[str, Any], ...] = ()
    advice: tuple[dict[str, Any], ...] = ()


def allow(*reasons: str, obligations: tuple[dict[str, Any], ...] = ()) -> Outcome:
    return Outcome(True, reasons, obligations)


def deny(*reasons: str, advice: tuple[dict[str, Any], ...] = ()) -> Outcome:
    return Outcome(False, reasons, (), advice)


def mask(path: str) -> dict[str, Any]:
    return {"type": "mask", "path": path}


def tenant_header(tenant: str) -> dict[str, Any]:
    return {"type": "header", "name": "x-tenant", "value": tenant}


OWNER = "acme.owner_full_access"
MASKED = "acme.non_owner_read_masked"
PUBLIC = "acme.public_documents"
MEMBERS = "acme.project_members"
FROZEN = "acme.archived_project_frozen"
SUSPENDED = "acme.suspended_account"
BLOCKED = "acme.blocked_network"
OUTSIDE_TENANT_NET = "acme.outside_tenant_network"
CLEARANCE = "acme.clearance_too_low"
RESTRICTED = "acme.restricted_needs_mfa_and_trusted_device"
STALE = "acme.stale_token_write"
EXTERNAL = "acme.external_read_only"
AFTER_HOURS = "acme.admin_outside_business_hours"
OFF_NETWORK = "acme.admin_off_corporate_network"

ACME_HEADER = (tenant_header("acme"),)
ACME_MASKED = (mask("resource.ssn"), mask("resource.salary"), tenant_header("acme"))
GLOBEX_MASKED = (mask("resource.ssn"), mask("resource.salary"), tenant_header("globex"))
STEP_UP = ({"rule": RESTRICTED, "name": "step_up", "value": "mfa"},)
REAUTH = ({"rule": STALE, "name": "reauthenticate", "value": True},)

# The usual outcome of a non-owner reading a document through the viewer grant.
VIEWER_READ = allow(MASKED, "role:viewer", obligations=ACME_MASKED)


def case(case_id: str, request: dict[str, Any], expected: Outcome) -> Any:
    return pytest.param(request, expected, id=case_id)


@pytest.fixture(scope="module")
def engine() -> Engine:
    # One engine for the whole module, as in production: its decision memo is exercised across cases.
    return Engine.load(POLICIES)


def check(engine: Engine, request: dict[str, Any], expected: Outcome) -> None:
    decision = engine.decide(request)
    assert decision.errors == ()
    assert Outcome(decision.allowed, decision.reasons, decision.obligations, decision.advice) == expected


# ---- tenant-scoped RBAC with inheritance ------------------------------------------------------

RBAC = [
    case("viewer-reads-doc", req("read", PLAN, roles=acme("viewer")), VIEWER_READ),
    case("viewer-cannot-write", req("write", PLAN, roles=acme("viewer")), deny()),
    case("viewer-reads-project", req("read", APOLLO, user="dave", roles=acme("viewer")), allow("role:viewer")),
    case("editor-writes", req("write", PLAN, roles=acme("editor")), allow("role:editor")),
    case("editor-reads-via-viewer", req("read", PLAN, roles=acme("editor")), VIEWER_READ),
    case("editor-creates-in-project", req("create", APOLLO, roles=acme("editor")), allow("role:editor")),
    case("editor-cannot-delete", req("delete", PLAN, roles=acme("editor")), deny()),
    case("editor-cannot-share", req("share", PLAN, roles=acme("editor")), deny()),
    case("editor-cannot-archive-project", req("archive", APOLLO, roles=acme("editor")), deny()),
    case("tenant-admin-deletes", req("delete", PLAN, roles=acme("tenant_admin")), allow("role:tenant_admin")),
    case("tenant-admin-shares", req("share", PLAN, roles=acme("tenant_admin")), allow("role:tenant_admin")),
    case(
        "tenant-admin-archives-project", req("archive", APOLLO, roles=acme("tenant_admin")), allow("role:tenant_admin")
    ),
    case("tenant-admin-writes-via-editor", req("write", PLAN, roles=acme("tenant_admin")), allow("role:editor")),
    case(
        "tenant-admin-manages-users",
        req("manage_users", ACME_CONSOLE, roles=acme("tenant_admin")),
        allow("role:tenant_admin"),
    ),
    case(
        "tenant-admin-views-audit",
        req("view_audit", ACME_CONSOLE, roles=acme("tenant_admin")),
        allow("role:tenant_admin"),
    ),
    case("auditor-views-audit", req("view_audit", ACME_CONSOLE, roles=acme("auditor")), allow("role:auditor")),
    case("auditor-cannot-manage-users", req("manage_users", ACME_CONSOLE, roles=acme("auditor")), deny()),
    case("auditor-cannot-read-docs", req("read", PLAN, roles=acme("auditor")), deny()),
    case("unknown-role-confers-nothing", req("read", PLAN, roles=acme("superuser")), deny()),
    case(
        "globex-viewer-reads-globex-doc",
        req("read", RUNBOOK, user="gus", tenant="globex", roles=globex("viewer"), ip=GLOBEX_IP),
        allow(MASKED, "role:viewer", obligations=GLOBEX_MASKED),
    ),
    case(
        "acme-admin-cannot-read-globex-doc",
        req("read", RUNBOOK, roles=acme("tenant_admin"), ip=GLOBEX_IP),
        deny(),
    ),
    case(
        "acme-editor-cannot-write-globex-doc",
        req("write", RUNBOOK, roles=acme("editor"), ip=GLOBEX_IP),
        deny(),
    ),
    case(
        "acme-admin-cannot-manage-globex-users",
        req("manage_users", GLOBEX_CONSOLE, roles=acme("tenant_admin"), ip=GLOBEX_OFFICE_IP),
        deny(),
    ),
    case(
        "globex-role-does-not-count-on-acme-doc",
        req("read", PLAN, user="gus", tenant="globex", roles=globex("tenant_admin")),
        deny(),
    ),
]


@pytest.mark.parametrize(("request_", "expected"), RBAC)
def test_tenant_scoped_rbac(engine: Engine, request_: dict[str, Any], expected: Outcome) -> None:
    check(engine, request_, expected)


# ---- owners -------------------------------------------------------------------------------------

OWNERS = [
    case("owner-writes-without-role", req("write", PLAN, user="alice"), allow(OWNER, obligations=ACME_HEADER)),
    case("owner-deletes-without-role", req("delete", PLAN, user="alice"), allow(OWNER, obligations=ACME_HEADER)),
    case("owner-shares-without-role", req("share", PLAN, user="alice"), allow(OWNER, obligations=ACME_HEADER)),
    case(
        "owner-with-role-gets-both-reasons",
        req("write", PLAN, user="alice", roles=acme("editor")),
        allow(OWNER, "role:editor", obligations=ACME_HEADER),
    ),
    case("non-owner-without-role-cannot-read", req("read", PLAN, user="dave"), deny()),
    case("non-owner-without-role-cannot-write", req("write", PLAN, user="dave"), deny()),
    case("non-owner-without-role-cannot-delete", req("delete", PLAN, user="dave"), deny()),
    case("non-owner-without-role-cannot-share", req("share", PLAN, user="dave"), deny()),
]


@pytest.mark.parametrize(("request_", "expected"), OWNERS)
def test_owners(engine: Engine, request_: dict[str, Any], expected: Outcome) -> None:
    check(engine, request_, expected)


# ---- classification vs clearance ----------------------------------------------------------------

CLEARANCE_CASES = [
    case(
        "internal-viewer-cannot-read-confidential",
        req("read", ROADMAP, roles=acme("viewer"), clearance="internal"),
        deny(CLEARANCE),
    ),
    case(
        "internal-admin-cannot-read-confidential",
        req("read", ROADMAP, roles=acme("tenant_admin"), clearance="internal"),
        deny(CLEARANCE),
    ),
    case("confidential-viewer-reads-confidential", req("read", ROADMAP, roles=acme("viewer")), VIEWER_READ),
    case("internal-viewer-reads-internal", req("read", PLAN, roles=acme("viewer"), clearance="internal"), VIEWER_READ),
    case(
        "public-clearance-cannot-read-internal",
        req("read", PLAN, roles=acme("viewer"), clearance="public"),
        deny(CLEARANCE),
    ),
    case(
        "owner-with-low-clearance-cannot-read-own-doc",
        req("read", ROADMAP, user="alice", clearance="internal"),
        deny(CLEARANCE),
    ),
    case("confidential-viewer-cannot-read-restricted", req("read", MERGER, roles=acme("viewer")), deny(CLEARANCE)),
]


@pytest.mark.parametrize(("request_", "expected"), CLEARANCE_CASES)
def test_classification_vs_clearance(engine: Engine, request_: dict[str, Any], expected: Outcome) -> None:
    check(engine, request_, expected)


# ---- restricted data needs MFA and a trusted device ---------------------------------------------

RESTRICTED_CASES = [
    case(
        "restricted-without-mfa",
        req("read", MERGER, user="alice", clearance="restricted", mfa=False),
        deny(RESTRICTED, advice=STEP_UP),
    ),
    case(
        "restricted-from-untrusted-device",
        req("read", MERGER, user="alice", clearance="restricted", device_trusted=False),
        deny(RESTRICTED, advice=STEP_UP),
    ),
    case(
        "restricted-without-mfa-or-trusted-device",
        req("read", MERGER, user="alice", clearance="restricted", mfa=False, device_trusted=False),
        deny(RESTRICTED, advice=STEP_UP),
    ),
    case(
        "restricted-write-without-mfa",
        req("write", MERGER, user="alice", clearance="restricted", mfa=False),
        deny(RESTRICTED, advice=STEP_UP),
    ),
    case(
        "restricted-owner-with-mfa-and-device",
        req("read", MERGER, user="alice", clearance="restricted"),
        allow(OWNER, obligations=ACME_HEADER),
    ),
    case(
        "restricted-viewer-with-mfa-and-device",
        req("read", MERGER, user="carol", roles=acme("viewer"), clearance="restricted"),
        VIEWER_READ,
    ),
    case(
        "restricted-low-clearance-without-mfa-reports-both",
        req("read", MERGER, user="alice", clearance="confidential", mfa=False),
        deny(CLEARANCE, RESTRICTED, advice=STEP_UP),
    ),
    case(
        "mfa-not-needed-below-restricted",
        req("read", PLAN, roles=acme("viewer"), mfa=False, device_trusted=False),
        VIEWER_READ,
    ),
]


@pytest.mark.parametrize(("request_", "expected"), RESTRICTED_CASES)
def test_restricted_needs_mfa_and_trusted_device(engine: Engine, request_: dict[str, Any], expected: Outcome) -> None:
    check(engine, request_, expected)


# ---- per-tenant allow-lists and the global deny-list --------------------------------------------

GINA: dict[str, Any] = {"user": "gina", "tenant": "globex"}  # owner of the globex runbook

NETWORK_CASES = [
    case(
        "globex-doc-from-172.16/12",
        req("read", RUNBOOK, **GINA, ip=GLOBEX_IP),
        allow(OWNER, obligations=(tenant_header("globex"),)),
    ),
    case(
        "globex-doc-from-top-of-172.16/12",
        req("write", RUNBOOK, **GINA, ip="172.31.255.254"),
        allow(OWNER, obligations=(tenant_header("globex"),)),
    ),
    case(
        "globex-doc-from-10.20/16",
        req("write", RUNBOOK, **GINA, ip=GLOBEX_OFFICE_IP),
        allow(OWNER, obligations=(tenant_header("globex"),)),
    ),
    case("globex-doc-from-172.32-denied", req("read", RUNBOOK, **GINA, ip="172.32.0.1"), deny(OUTSIDE_TENANT_NET)),
    case("globex-doc-from-10.21-denied", req("read", RUNBOOK, **GINA, ip="10.21.0.1"), deny(OUTSIDE_TENANT_NET)),
    case("globex-doc-from-home-denied", req("read", RUNBOOK, **GINA, ip=HOME_IP), deny(OUTSIDE_TENANT_NET)),
    case("globex-doc-from-ipv6-denied", req("read", RUNBOOK, **GINA, ip="2001:db8::7"), deny(OUTSIDE_TENANT_NET)),
    case(
        "globex-console-outside-allow-list",
        req("view_audit", GLOBEX_CONSOLE, **GINA, roles=globex("auditor"), ip=CORP_WIFI_IP),
        deny(OUTSIDE_TENANT_NET),
    ),
    case("acme-has-no-allow-list", req("write", PLAN, user="alice", ip=HOME_IP), allow(OWNER, obligations=ACME_HEADER)),
    case("blocked-/24-denies-owner", req("write", PLAN, user="alice", ip="203.0.113.77"), deny(BLOCKED)),
    case("blocked-/32-denies-owner", req("read", PLAN, user="alice", ip="198.51.100.66"), deny(BLOCKED)),
    case(
        "neighbour-of-blocked-/32-allowed",
        req("read", PLAN, user="alice", ip="198.51.100.67"),
        allow(OWNER, obligations=ACME_HEADER),
    ),
    case("blocked-denies-public-handbook", req("read", HANDBOOK, ip="203.0.113.1"), deny(BLOCKED)),
    case("blocked-denies-project-member", req("read", APOLLO, ip="203.0.113.1"), deny(BLOCKED)),
    case(
        "blocked-and-stale-reports-both",
        req("write", PLAN, user="alice", ip="203.0.113.77", token_age=timedelta(hours=1)),
        deny(BLOCKED, STALE, advice=REAUTH),
    ),
]


@pytest.mark.parametrize(("request_", "expected"), NETWORK_CASES)
def test_network_allow_and_deny_lists(engine: Engine, request_: dict[str, Any], expected: Outcome) -> None:
    check(engine, request_, expected)


def test_ipv4_mapped_address_is_still_blocked(engine: Engine) -> None:
    check(engine, req("write", PLAN, user="alice", ip="::ffff:203.0.113.77"), deny(BLOCKED))


# ---- admin console: business hours (Europe/Berlin) and the corporate network ------------------

ADMIN: dict[str, Any] = {"user": "erin", "roles": acme("tenant_admin")}

ADMIN_CASES = [
    # Winter (CET = UTC+1).
    case(
        "winter-friday-18:59-berlin",
        req("manage_users", ACME_CONSOLE, **ADMIN, now="2026-11-27T17:59:00Z"),
        allow("role:tenant_admin"),
    ),
    case(
        "winter-friday-19:00-berlin",
        req("manage_users", ACME_CONSOLE, **ADMIN, now="2026-11-27T18:00:00Z"),
        deny(AFTER_HOURS),
    ),
    case(
        "winter-friday-07:59-berlin",
        req("manage_users", ACME_CONSOLE, **ADMIN, now="2026-11-27T06:59:00Z"),
        deny(AFTER_HOURS),
    ),
    case(
        "winter-monday-08:00-berlin",
        req("manage_users", ACME_CONSOLE, **ADMIN, now="2026-11-23T07:00:00Z"),
        allow("role:tenant_admin"),
    ),
    case(
        "saturday-11:00-berlin",
        req("manage_users", ACME_CONSOLE, **ADMIN, now="2026-11-28T10:00:00Z"),
        deny(AFTER_HOURS),
    ),
    # Summer (CEST = UTC+2): the same UTC times mean an hour later locally.
    case(
        "summer-friday-18:59-berlin",
        req("manage_users", ACME_CONSOLE, **ADMIN, now="2026-07-03T16:59:00Z"),
        allow("role:tenant_admin"),
    ),
    case(
        "summer-friday-19:00-berlin",
        req("manage_users", ACME_CONSOLE, **ADMIN, now="2026-07-03T17:00:00Z"),
        deny(AFTER_HOURS),
    ),
    case(
        "summer-17:59-utc-is-19:59-berlin",
        req("manage_users", ACME_CONSOLE, **ADMIN, now="2026-07-03T17:59:00Z"),
        deny(AFTER_HOURS),
    ),
    case(
        "first-cest-monday-06:00-utc-is-08:00-berlin",
        req("manage_users", ACME_CONSOLE, **ADMIN, now="2026-03-30T06:00:00Z"),
        allow("role:tenant_admin"),
    ),
    case(
        "last-cet-friday-06:30-utc-is-07:30-berlin",
        req("manage_users", ACME_CONSOLE, **ADMIN, now="2026-03-27T06:30:00Z"),
        deny(AFTER_HOURS),
    ),
    case(
        "auditor-on-saturday",
        req("view_audit", ACME_CONSOLE, roles=acme("auditor"), now="2026-11-28T10:00:00Z"),
        deny(AFTER_HOURS),
    ),
    # Corporate network.
    case(
        "admin-from-corporate-wifi",
        req("manage_users", ACME_CONSOLE, **ADMIN, ip=CORP_WIFI_IP),
        allow("role:tenant_admin"),
    ),
    case(
        "admin-from-192.168.11-denied",
        req("manage_users", ACME_CONSOLE, **ADMIN, ip="192.168.11.25"),
        deny(OFF_NETWORK),
    ),
    case("admin-from-home-denied", req("manage_users", ACME_CONSOLE, **ADMIN, ip=HOME_IP), deny(OFF_NETWORK)),
    case(
        "auditor-from-home-denied",
        req("view_audit", ACME_CONSOLE, roles=acme("auditor"), ip=HOME_IP),
        deny(OFF_NETWORK),
    ),
    case(
        "admin-from-home-after-hours-reports-both",
        req("manage_users", ACME_CONSOLE, **ADMIN, ip=HOME_IP, now="2026-11-27T18:00:00Z"),
        deny(AFTER_HOURS, OFF_NETWORK),
    ),
    case(
        "globex-admin-from-globex-office",
        req(
            "manage_users",
            GLOBEX_CONSOLE,
            user="gary",
            tenant="globex",
            roles=globex("tenant_admin"),
            ip=GLOBEX_OFFICE_IP,
        ),
        allow("role:tenant_admin"),
    ),
    case(
        "globex-admin-from-globex-net-but-not-corporate",
        req("manage_users", GLOBEX_CONSOLE, user="gary", tenant="globex", roles=globex("tenant_admin"), ip=GLOBEX_IP),
        deny(OFF_NETWORK),
    ),
]


@pytest.mark.parametrize(("request_", "expected"), ADMIN_CASES)
def test_admin_console_hours_and_network(engine: Engine, request_: dict[str, Any], expected: Outcome) -> None:
    check(engine, request_, expected)


# ---- external users are read-only ---------------------------------------------------------------

EXTERNAL_CASES = [
    case("external-editor-cannot-write", req("write", PLAN, roles=acme("editor"), external=True), deny(EXTERNAL)),
    case("external-editor-reads", req("read", PLAN, roles=acme("editor"), external=True), VIEWER_READ),
    case("external-owner-cannot-write", req("write", PLAN, user="alice", external=True), deny(EXTERNAL)),
    case(
        "external-editor-cannot-create-in-project",
        req("create", APOLLO, roles=acme("editor"), external=True),
        deny(EXTERNAL),
    ),
    case(
        "external-admin-cannot-manage-users",
        req("manage_users", ACME_CONSOLE, roles=acme("tenant_admin"), external=True),
        deny(EXTERNAL),
    ),
    case(
        "external-auditor-views-audit",
        req("view_audit", ACME_CONSOLE, roles=acme("auditor"), external=True),
        allow("role:auditor"),
    ),
]


@pytest.mark.parametrize(("request_", "expected"), EXTERNAL_CASES)
def test_external_users_are_read_only(engine: Engine, request_: dict[str, Any], expected: Outcome) -> None:
    check(engine, request_, expected)


# ---- suspended accounts -------------------------------------------------------------------------

SUSPENDED_CASES = [
    case("suspended-owner-cannot-write", req("write", PLAN, user="alice", suspended=True), deny(SUSPENDED)),
    case("suspended-owner-cannot-read", req("read", PLAN, user="alice", suspended=True), deny(SUSPENDED)),
    case(
        "suspended-admin-cannot-manage-users",
        req("manage_users", ACME_CONSOLE, roles=acme("tenant_admin"), suspended=True),
        deny(SUSPENDED),
    ),
    case(
        "suspended-admin-cannot-delete",
        req("delete", PLAN, roles=acme("tenant_admin"), suspended=True),
        deny(SUSPENDED),
    ),
    case("suspended-cannot-read-public-handbook", req("read", HANDBOOK, suspended=True), deny(SUSPENDED)),
    case("suspended-member-cannot-read-project", req("read", APOLLO, suspended=True), deny(SUSPENDED)),
]


@pytest.mark.parametrize(("request_", "expected"), SUSPENDED_CASES)
def test_suspended_accounts(engine: Engine, request_: dict[str, Any], expected: Outcome) -> None:
    check(engine, request_, expected)


# ---- writes need a token at most 15 minutes old ----------------------------------------------

TOKEN_CASES = [
    case(
        "write-token-14m59s",
        req("write", PLAN, user="alice", token_age=timedelta(minutes=14, seconds=59)),
        allow(OWNER, obligations=ACME_HEADER),
    ),
    case(
        "write-token-exactly-15m",
        req("write", PLAN, user="alice", token_age=timedelta(minutes=15)),
        allow(OWNER, obligations=ACME_HEADER),
    ),
    case(
        "write-token-15m01s",
        req("write", PLAN, user="alice", token_age=timedelta(minutes=15, seconds=1)),
        deny(STALE, advice=REAUTH),
    ),
    case(
        "delete-token-15m01s",
        req("delete", PLAN, roles=acme("tenant_admin"), token_age=timedelta(minutes=15, seconds=1)),
        deny(STALE, advice=REAUTH),
    ),
    case(
        "share-token-1h",
        req("share", PLAN, user="alice", token_age=timedelta(hours=1)),
        deny(STALE, advice=REAUTH),
    ),
    case(
        "create-in-project-token-15m01s",
        req("create", APOLLO, roles=acme("editor"), token_age=timedelta(minutes=15, seconds=1)),
        deny(STALE, advice=REAUTH),
    ),
    case(
        "manage-users-token-15m01s",
        req("manage_users", ACME_CONSOLE, roles=acme("tenant_admin"), token_age=timedelta(minutes=15, seconds=1)),
        deny(STALE, advice=REAUTH),
    ),
    case("read-token-8h", req("read", PLAN, roles=acme("viewer"), token_age=timedelta(hours=8)), VIEWER_READ),
    case(
        "owner-read-token-8h",
        req("read", PLAN, user="alice", token_age=timedelta(hours=8)),
        allow(OWNER, obligations=ACME_HEADER),
    ),
    case("project-read-token-8h", req("read", APOLLO, token_age=timedelta(hours=8)), allow(MEMBERS)),
    case(
        "view-audit-token-8h",
        req("view_audit", ACME_CONSOLE, roles=acme("auditor"), token_age=timedelta(hours=8)),
        allow("role:auditor"),
    ),
]


@pytest.mark.parametrize(("request_", "expected"), TOKEN_CASES)
def test_token_freshness(engine: Engine, request_: dict[str, Any], expected: Outcome) -> None:
    check(engine, request_, expected)


# ---- sensitive fields masked for non-owners -----------------------------------------------------

MASKING_CASES = [
    case("viewer-read-masks-ssn-and-salary", req("read", PLAN, roles=acme("viewer")), VIEWER_READ),
    case("owner-read-gets-only-header", req("read", PLAN, user="alice"), allow(OWNER, obligations=ACME_HEADER)),
    case(
        "owner-holding-viewer-still-unmasked",
        req("read", PLAN, user="alice", roles=acme("viewer")),
        allow(OWNER, "role:viewer", obligations=ACME_HEADER),
    ),
    case("tenant-admin-read-is-masked", req("read", PLAN, roles=acme("tenant_admin")), VIEWER_READ),
    case(
        "globex-viewer-read-is-masked",
        req("read", RUNBOOK, user="gus", tenant="globex", roles=globex("viewer"), ip=GLOBEX_OFFICE_IP),
        allow(MASKED, "role:viewer", obligations=GLOBEX_MASKED),
    ),
]


@pytest.mark.parametrize(("request_", "expected"), MASKING_CASES)
def test_sensitive_fields_masked_for_non_owners(engine: Engine, request_: dict[str, Any], expected: Outcome) -> None:
    check(engine, request_, expected)


# ---- public documents, project members, archived projects -------------------------------------

SHARING_CASES = [
    case("tenant-user-without-role-reads-handbook", req("read", HANDBOOK, user="dave"), allow(PUBLIC)),
    case("external-tenant-user-reads-handbook", req("read", HANDBOOK, user="pat", external=True), allow(PUBLIC)),
    case(
        "viewer-reads-handbook",
        req("read", HANDBOOK, user="dave", roles=acme("viewer")),
        allow(MASKED, PUBLIC, "role:viewer", obligations=ACME_MASKED),
    ),
    case("other-tenant-user-cannot-read-handbook", req("read", HANDBOOK, user="gus", tenant="globex"), deny()),
    case("handbook-is-not-writable-without-role", req("write", HANDBOOK, user="dave"), deny()),
    case("member-reads-project", req("read", APOLLO, user="carol"), allow(MEMBERS)),
    case("non-member-without-role-cannot-read-project", req("read", APOLLO, user="dave"), deny()),
    case("member-reads-archived-project", req("read", OLD_PROJECT), allow(MEMBERS)),
    case("editor-cannot-create-in-archived-project", req("create", OLD_PROJECT, roles=acme("editor")), deny(FROZEN)),
    case(
        "admin-cannot-archive-archived-project", req("archive", OLD_PROJECT, roles=acme("tenant_admin")), deny(FROZEN)
    ),
    case(
        "viewer-reads-archived-project",
        req("read", OLD_PROJECT, user="dave", roles=acme("viewer")),
        allow("role:viewer"),
    ),
]


@pytest.mark.parametrize(("request_", "expected"), SHARING_CASES)
def test_public_documents_and_projects(engine: Engine, request_: dict[str, Any], expected: Outcome) -> None:
    check(engine, request_, expected)


# ---- the data files win over what the request claims --------------------------------------------

DATA_WINS_CASES = [
    case(
        "claimed-owner-cannot-write",
        req("write", PLAN, user="mallory", resource_attributes={"owner": "mallory"}),
        deny(),
    ),
    case(
        "claimed-owner-read-still-masked",
        req("read", PLAN, user="mallory", roles=acme("viewer"), resource_attributes={"owner": "mallory"}),
        VIEWER_READ,
    ),
    case(
        "claimed-public-path-does-not-publish",
        req(
            "read", PLAN, user="mallory", resource_attributes={"classification": "public", "path": "/public/plan.xlsx"}
        ),
        deny(),
    ),
    case(
        "claimed-lower-classification-does-not-declassify",
        req("read", MERGER, roles=acme("viewer"), resource_attributes={"classification": "internal"}),
        deny(CLEARANCE),
    ),
    case(
        "claimed-tenant-does-not-escape-allow-list",
        req("read", RUNBOOK, user="gina", tenant="globex", ip=CORP_IP, resource_attributes={"tenant": "acme"}),
        deny(OUTSIDE_TENANT_NET),
    ),
    case(
        "claimed-membership-does-not-count",
        req("read", APOLLO, user="mallory", resource_attributes={"members": ["mallory"]}),
        deny(),
    ),
    case(
        "claimed-unarchived-project-stays-frozen",
        req("create", OLD_PROJECT, roles=acme("editor"), resource_attributes={"archived": False}),
        deny(FROZEN),
    ),
]


@pytest.mark.parametrize(("request_", "expected"), DATA_WINS_CASES)
def test_data_files_win_over_request(engine: Engine, request_: dict[str, Any], expected: Outcome) -> None:
    check(engine, request_, expected)


# ---- the example requests in policies/requests/ -------------------------------------------------

EXAMPLE_REQUESTS = {
    "bob-reads-plan.json": VIEWER_READ,
    "alice-writes-plan.json": allow(OWNER, obligations=ACME_HEADER),
    "alice-reads-merger-without-mfa.json": deny(RESTRICTED, advice=STEP_UP),
    "dave-suspended-reads-handbook.json": deny(SUSPENDED),
    "erin-manages-users.json": allow("role:tenant_admin"),
    "erin-manages-users-after-hours.json": deny(AFTER_HOURS),
    "gus-reads-globex-runbook.json": allow(MASKED, "role:viewer", obligations=GLOBEX_MASKED),
}


def test_every_example_request_has_an_expected_outcome() -> None:
    assert sorted(p.name for p in REQUESTS.glob("*.json")) == sorted(EXAMPLE_REQUESTS)


@pytest.mark.parametrize(("name", "expected"), EXAMPLE_REQUESTS.items(), ids=list(EXAMPLE_REQUESTS))
def test_example_request_files(engine: Engine, name: str, expected: Outcome) -> None:
    check(engine, json.loads((REQUESTS / name).read_text(encoding="utf-8")), expected)
