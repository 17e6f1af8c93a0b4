"""pdp.tokens: claims become the principal's attributes, and decide real requests."""

from __future__ import annotations

import time
from typing import Any

import pytest
from tokenkit import Kit

from pdp import Engine
from pdp.tokens import TokenError, VerifiedPrincipal, merge_principal


def reason(kit: Kit, token: str, **settings: Any) -> str:
    with pytest.raises(TokenError) as info:
        kit.verifier(**settings).verify(token)
    return info.value.reason


def request(principal: dict[str, Any], action: str, now: float) -> dict[str, Any]:
    return {
        "principal": principal,
        "action": action,
        "resource": {"type": "Document", "id": "doc-plan"},
        "context": {"ip": "10.1.2.3", "mfa": True, "device_trusted": True},
        "now": now,
    }


def test_default_claim_map_is_the_declared_attributes(kit: Kit) -> None:
    verifier = kit.verifier()
    assert dict(verifier.claim_map) == {
        name: name
        for name in ("tenant", "roles", "clearance", "external", "suspended", "email", "auth_time", "department")
    }
    p = verifier.verify(kit.token(department="finance", unrelated={"x": 1}))
    assert dict(p.attributes) == {
        "tenant": "acme",
        "roles": {"acme": ["editor"]},
        "clearance": "confidential",
        "external": False,
        "suspended": False,
        "email": "alice@acme.example",
        "auth_time": p.claims["auth_time"],
        "department": "finance",
    }
    assert "unrelated" not in p.attributes and p.claims["unrelated"] == {"x": 1}


def test_explicit_claim_map(kit: Kit) -> None:
    verifier = kit.verifier(claim_map={"https://acme.example/roles": "roles", "org": "tenant"})
    claims: dict[str, Any] = {"https://acme.example/roles": {"acme": ["viewer"]}, "org": "globex"}
    p = verifier.verify(kit.token(**claims))
    assert dict(p.attributes) == {"roles": {"acme": ["viewer"]}, "tenant": "globex"}


def test_null_and_absent_claims_set_nothing(kit: Kit) -> None:
    p = kit.verifier().verify(kit.token(drop=("email",), department=None))
    assert "email" not in p.attributes and "department" not in p.attributes


def test_datetime_claims_numeric_or_rfc3339(kit: Kit) -> None:
    assert kit.verifier().verify(kit.token(auth_time=1_780_000_000)).attributes["auth_time"] == 1_780_000_000
    text = "2026-11-27T09:55:00Z"
    assert kit.verifier().verify(kit.token(auth_time=text)).attributes["auth_time"] == text


def test_wrong_claim_types(kit: Kit) -> None:
    assert (
        reason(kit, kit.token(roles=["editor"]))
        == "claim `roles` does not fit attribute `roles`: expected object, found list"
    )
    assert (
        reason(kit, kit.token(roles={"acme": "editor"}))
        == "claim `roles` does not fit attribute `roles`: roles.acme: expected list, found string"
    )
    assert (
        reason(kit, kit.token(clearance="top"))
        == "claim `clearance` does not fit attribute `clearance`: expected one of public, internal, confidential, restricted, found 'top'"
    )
    assert (
        reason(kit, kit.token(auth_time="yesterday"))
        == "claim `auth_time` does not fit attribute `auth_time`: `yesterday` is not an RFC 3339 datetime"
    )
    assert (
        reason(kit, kit.token(suspended="false"))
        == "claim `suspended` does not fit attribute `suspended`: expected bool, found string"
    )
    long = reason(kit, kit.token(clearance="x" * 500))
    assert long.startswith("claim `clearance` does not fit attribute `clearance`:") and len(long) < 250


def test_token_attributes_win_over_the_request(kit: Kit) -> None:
    verified = kit.verifier().verify(kit.token())
    given: dict[str, Any] = {
        "type": "User",
        "id": "alice",
        "attributes": {"roles": {"acme": ["tenant_admin"]}, "suspended": False, "department": "board"},
        "parents": [{"type": "Group", "id": "finance"}],
    }
    merged = merge_principal(given, verified)
    assert merged["attributes"]["roles"] == {"acme": ["editor"]}  # the token's, not the request's
    # `department` is a claim-map target the token does not carry: the caller's value is dropped
    assert "department" not in merged["attributes"]
    assert merged["parents"] == [{"type": "Group", "id": "finance"}]
    assert given["attributes"]["roles"] == {"acme": ["tenant_admin"]}  # nothing given was changed
    merged["attributes"]["roles"]["acme"].append("tenant_admin")
    assert verified.attributes["roles"] == {"acme": ["editor"]}  # nor the (cached) verified principal


def test_merge_without_a_request_principal(kit: Kit) -> None:
    verified = kit.verifier().verify(kit.token())
    merged = merge_principal(None, verified)
    assert merged == {"type": "User", "id": "alice", "attributes": dict(verified.attributes)}
    assert merge_principal({"attributes": None}, verified)["id"] == "alice"


def test_merge_refuses_another_identity(kit: Kit) -> None:
    verified = kit.verifier().verify(kit.token())
    for given, message in [
        ({"type": "User", "id": "bob"}, "request principal id does not match the token subject"),
        ({"type": "Robot", "id": "alice"}, "request principal type does not match the token"),
        ({"attributes": ["x"]}, "request principal attributes are not an object"),
        ("alice", "request principal is not an object"),
    ]:
        with pytest.raises(TokenError) as info:
            merge_principal(given, verified)  # type: ignore[arg-type]
        assert info.value.reason == message


def test_verified_principal_is_read_only(kit: Kit) -> None:
    p: VerifiedPrincipal = kit.verifier().verify(kit.token())
    with pytest.raises(TypeError):
        p.attributes["roles"] = {}  # type: ignore[index]
    with pytest.raises(AttributeError):
        p.id = "root"  # type: ignore[misc]


def test_numeric_auth_time_decides_a_real_request(kit: Kit, engine: Engine) -> None:
    verifier = kit.verifier()
    now = int(time.time())
    fresh = verifier.verify(kit.token(auth_time=now - 60))
    assert isinstance(fresh.attributes["auth_time"], int)
    decision = engine.decide(request(merge_principal({"type": "User", "id": "alice"}, fresh), "write", now))
    assert decision.errors == ()
    assert decision.allowed
    assert decision.reasons == ("acme.owner_full_access", "role:editor")

    stale = verifier.verify(kit.token(auth_time=now - 3600))
    decision = engine.decide(request(merge_principal(None, stale), "write", now))
    assert not decision.allowed
    assert decision.reasons == ("acme.stale_token_write",)
    assert [dict(a) for a in decision.advice] == [
        {"rule": "acme.stale_token_write", "name": "reauthenticate", "value": True}
    ]
    # reading does not need a fresh login
    assert engine.decide(request(merge_principal(None, stale), "read", now)).allowed


def test_request_cannot_override_signed_roles_in_a_decision(kit: Kit, engine: Engine) -> None:
    now = int(time.time())
    viewer = kit.verifier().verify(kit.token(sub="bob", roles={"acme": ["viewer"]}))
    claimed = {"type": "User", "id": "bob", "attributes": {"roles": {"acme": ["tenant_admin"]}}}
    decision = engine.decide(request(merge_principal(claimed, viewer), "write", now))
    assert not decision.allowed  # bob is a viewer per the token, whatever the request says


def test_suspended_claim_denies(kit: Kit, engine: Engine) -> None:
    now = int(time.time())
    p = kit.verifier().verify(kit.token(suspended=True))
    decision = engine.decide(request(merge_principal(None, p), "read", now))
    assert not decision.allowed and decision.reasons == ("acme.suspended_account",)
