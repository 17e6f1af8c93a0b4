"""The acme policy set (policies/acme/*.pdp) hand-coded in plain Python, as the speed reference.

`decide(request) -> (allowed, reasons)` takes the same JSON request the engine gets (IPs and
datetimes as strings) and applies exactly the rules of policies/acme, in the engine's order so
that the reasons match too:

* deny by default; any matching forbid denies (all matching forbids are reported);
* otherwise a matching permit or a role grant allows; roles come from
  `principal.roles[resource.tenant]`, closed over `extends` by hand below;
* entity attributes from policies/acme/data.json win over the ones the request carries.

It is written the way one would hand-code it for speed: data.json is loaded and converted once
at import, IP networks are pre-shifted integers, IP and datetime strings are parsed with an LRU
cache (as the engine's converters do), role closure and grants are dict/set lookups, and work
is done only where a rule needs it (the login time is parsed only for write-type actions).
Whole decisions are never cached.

What it does NOT do, compared with the engine (each of these makes the baseline faster, so the
engine/baseline ratio is conservative): it does not type-check request attributes or reject
unknown fields (a missing field used by a rule simply fails closed), and it returns only
(allowed, reasons), not a Decision with obligations (masks, headers) and advice.
"""

from __future__ import annotations

import ipaddress
import json
import time
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

DATA_FILE = Path(__file__).resolve().parents[1] / "policies" / "acme" / "data.json"

# ---- schema.pdp ----------------------------------------------------------------------
LEVEL = {"public": 0, "internal": 1, "confidential": 2, "restricted": 3}
PUBLIC, RESTRICTED = LEVEL["public"], LEVEL["restricted"]
ACTIONS = {
    "Document": frozenset({"read", "write", "delete", "share"}),
    "Project": frozenset({"read", "create", "archive"}),
    "AdminConsole": frozenset({"manage_users", "view_audit"}),
}

# ---- rbac.pdp: role -> itself and every role it extends; (type, action) -> roles granting it
ROLE_CLOSURE = {
    "viewer": frozenset({"viewer"}),
    "editor": frozenset({"editor", "viewer"}),
    "tenant_admin": frozenset({"tenant_admin", "editor", "viewer"}),
    "auditor": frozenset({"auditor"}),
}
GRANTS = {
    ("Document", "read"): frozenset({"viewer"}),
    ("Project", "read"): frozenset({"viewer"}),
    ("Document", "write"): frozenset({"editor"}),
    ("Project", "create"): frozenset({"editor"}),
    ("Document", "delete"): frozenset({"tenant_admin"}),
    ("Document", "share"): frozenset({"tenant_admin"}),
    ("Project", "archive"): frozenset({"tenant_admin"}),
    ("AdminConsole", "manage_users"): frozenset({"tenant_admin"}),
    ("AdminConsole", "view_audit"): frozenset({"tenant_admin", "auditor"}),
}
_NO_ROLES: frozenset[str] = frozenset()

# ---- zero_trust.pdp ------------------------------------------------------------------
MAX_WRITE_TOKEN_AGE = 15 * 60.0
WRITE_ACTIONS = frozenset({"write", "delete", "share", "create", "archive", "manage_users"})
BERLIN = ZoneInfo("Europe/Berlin")
HOURS_START, HOURS_END = 8 * 60, 19 * 60  # 08:00-19:00, end exclusive

# ---- rule ids, in the engine's order (forbids of documents.pdp, then zero_trust.pdp) --------
NS = "acme."
ARCHIVED = NS + "archived_project_frozen"
SUSPENDED = NS + "suspended_account"
BLOCKED = NS + "blocked_network"
OUTSIDE_TENANT = NS + "outside_tenant_network"
CLEARANCE = NS + "clearance_too_low"
RESTRICTED_MFA = NS + "restricted_needs_mfa_and_trusted_device"
STALE_TOKEN = NS + "stale_token_write"
EXTERNAL = NS + "external_read_only"
OFF_HOURS = NS + "admin_outside_business_hours"
OFF_NETWORK = NS + "admin_off_corporate_network"
OWNER = NS + "owner_full_access"
NON_OWNER_READ = NS + "non_owner_read_masked"
PUBLIC_DOCS = NS + "public_documents"
PROJECT_MEMBERS = NS + "project_members"


# ---- values --------------------------------------------------------------------------
@lru_cache(maxsize=8192)
def parse_ip(text: str) -> tuple[int, int, int]:
    """`"10.1.2.3"` -> (version, integer, prefix length); a CIDR keeps its prefix; an IPv4-mapped
    IPv6 address (`::ffff:10.1.2.3`, as dual-stack listeners report IPv4 clients) is its IPv4."""
    if "/" in text:
        net = ipaddress.ip_network(text, strict=True)
        return net.version, int(net.network_address), net.prefixlen
    addr = ipaddress.ip_address(text)
    if addr.version == 6 and addr.ipv4_mapped is not None:  # type: ignore[union-attr]
        addr = addr.ipv4_mapped  # type: ignore[union-attr]
    return addr.version, int(addr), addr.max_prefixlen


def networks(texts: list[str]) -> tuple[tuple[int, int, int, int], ...]:
    """CIDRs -> (version, prefix, shift, network bits) for integer-only membership tests."""
    out = []
    for text in texts:
        version, value, prefix = parse_ip(text)
        shift = (32 if version == 4 else 128) - prefix
        out.append((version, prefix, shift, value >> shift))
    return tuple(out)


def in_networks(ip: tuple[int, int, int], nets: tuple[tuple[int, int, int, int], ...]) -> bool:
    version, value, prefix = ip
    for nversion, nprefix, shift, bits in nets:
        if version == nversion and prefix >= nprefix and value >> shift == bits:
            return True
    return False


@lru_cache(maxsize=8192)
def parse_datetime(text: str) -> float:
    """RFC 3339 with an offset -> epoch seconds."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"datetime `{text}` has no time zone offset")
    return value.timestamp()


def epoch(value: Any) -> float:
    if type(value) is str:
        return parse_datetime(value)
    if type(value) in (int, float):
        return float(value)
    raise ValueError("expected a datetime")


def in_business_hours(when: float) -> bool:
    local = datetime.fromtimestamp(when, BERLIN)
    return local.weekday() < 5 and HOURS_START <= local.hour * 60 + local.minute < HOURS_END


# ---- data.json, loaded and converted once ---------------------------------------------
def convert_attributes(etype: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """JSON attributes -> the values the rules compare: ranks for levels, frozensets for sets."""
    out = dict(attrs)
    if etype == "Document" and "classification" in out:
        out["classification"] = LEVEL[out["classification"]]
    for name in ("tags", "members"):
        if name in out:
            out[name] = frozenset(out[name])
    return out


def _load(path: Path) -> tuple[dict[tuple[str, str], dict[str, Any]], Any, Any, dict[str, Any]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    constants = data["constants"]
    stored = {(e["type"], e["id"]): convert_attributes(e["type"], e.get("attributes") or {}) for e in data["entities"]}
    tenant_nets = {tenant: networks(nets) for tenant, nets in constants["tenant_networks"].items()}
    return stored, networks(constants["corporate_network"]), networks(constants["blocked_networks"]), tenant_nets


STORED, CORPORATE, BLOCKED_NETS, TENANT_NETS = _load(DATA_FILE)

_DENY: tuple[bool, list[str]] = (False, [])


def _attributes(entity: dict[str, Any], etype: str) -> dict[str, Any]:
    given = entity.get("attributes")
    stored = STORED.get((etype, entity["id"]))
    if not given:
        return stored if stored is not None else {}
    converted = convert_attributes(etype, given)
    if stored:
        converted.update(stored)  # the data file wins
    return converted


# ---- the decision --------------------------------------------------------------------
def decide(request: dict[str, Any]) -> tuple[bool, list[str]]:
    try:
        return _decide(request)
    except (KeyError, TypeError, ValueError, AttributeError):
        return False, []  # a malformed or incomplete request fails closed, as in the engine


def _decide(request: dict[str, Any]) -> tuple[bool, list[str]]:
    principal = request["principal"]
    resource = request["resource"]
    action = request["action"]
    if principal["type"] != "User":
        return _DENY
    rtype = resource["type"]
    if action not in ACTIONS.get(rtype, ()):
        return _DENY
    pid = principal["id"]
    P = _attributes(principal, "User")
    R = _attributes(resource, rtype)
    context = request["context"]
    ip = parse_ip(context["ip"])
    mfa = context["mfa"]
    device_trusted = context["device_trusted"]
    now_value = request.get("now")
    now = time.time() if now_value is None else epoch(now_value)

    tenant = R["tenant"]
    forbids = []
    if rtype == "Project" and (action == "create" or action == "archive") and R["archived"]:
        forbids.append(ARCHIVED)
    if P["suspended"]:
        forbids.append(SUSPENDED)
    if in_networks(ip, BLOCKED_NETS):
        forbids.append(BLOCKED)
    allow_list = TENANT_NETS.get(tenant)
    if allow_list is not None and not in_networks(ip, allow_list):
        forbids.append(OUTSIDE_TENANT)
    if rtype == "Document":
        classification = R["classification"]
        if classification > LEVEL[P["clearance"]]:
            forbids.append(CLEARANCE)
        if classification == RESTRICTED and not (mfa and device_trusted):
            forbids.append(RESTRICTED_MFA)
    if action in WRITE_ACTIONS:
        if now - epoch(P["auth_time"]) > MAX_WRITE_TOKEN_AGE:
            forbids.append(STALE_TOKEN)
        if P["external"]:
            forbids.append(EXTERNAL)
    if rtype == "AdminConsole":
        if not in_business_hours(now):
            forbids.append(OFF_HOURS)
        if not in_networks(ip, CORPORATE):
            forbids.append(OFF_NETWORK)
    if forbids:
        return False, forbids

    held = P["roles"].get(tenant)
    if held:
        roles: set[str] = set()
        for name in held:
            roles |= ROLE_CLOSURE.get(name, _NO_ROLES)
    else:
        roles = set()
    reasons = []
    if rtype == "Document":
        owner = R["owner"]
        if owner == pid:
            reasons.append(OWNER)
        if action == "read":
            if owner != pid and "viewer" in roles:
                reasons.append(NON_OWNER_READ)
            if R["classification"] == PUBLIC and R["path"].startswith("/public/") and P["tenant"] == tenant:
                reasons.append(PUBLIC_DOCS)
    elif rtype == "Project" and action == "read" and pid in R["members"]:
        reasons.append(PROJECT_MEMBERS)
    granted = roles.intersection(GRANTS[(rtype, action)])
    if granted:
        reasons.extend("role:" + role for role in sorted(granted))
    return bool(reasons), reasons
