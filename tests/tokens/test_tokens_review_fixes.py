"""merge_principal: every attribute the claim map can fill comes from the token only."""

from __future__ import annotations

from typing import Any

from tokenkit import Kit

from pdp import Engine
from pdp.tokens import merge_principal


def test_claim_map_targets_are_token_only(kit: Kit) -> None:
    verifier = kit.verifier(claim_map={"roles": "roles", "suspended": "suspended", "tenant": "tenant"})
    verified = verifier.verify(kit.token(drop=("roles", "suspended")))
    assert verified.claim_attributes == frozenset({"roles", "suspended", "tenant"})
    given: dict[str, Any] = {
        "attributes": {"roles": {"acme": ["tenant_admin"]}, "suspended": False, "tenant": "globex", "department": "x"}
    }
    merged = merge_principal(given, verified)
    # absent claims stay absent, the caller's values for them are dropped; the rest passes through
    assert merged["attributes"] == {"tenant": "acme", "department": "x"}


def test_a_missing_required_claim_fails_closed_in_the_engine(kit: Kit, engine: Engine) -> None:
    verified = kit.verifier().verify(kit.token(drop=("suspended",)))
    merged = merge_principal({"attributes": {"suspended": False}}, verified)
    assert "suspended" not in merged["attributes"]
    decision = engine.decide(
        {
            "principal": merged,
            "action": "read",
            "resource": {"type": "Document", "id": "doc-plan"},
            "context": {"ip": "10.1.2.3", "mfa": True, "device_trusted": True},
        }
    )
    assert not decision.allowed
