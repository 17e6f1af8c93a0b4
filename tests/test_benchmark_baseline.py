"""The hand-written baseline of benchmarks/ must decide exactly like the engine on the benchmark requests."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level package of the repository, not an installed one
    sys.path.insert(0, str(ROOT))

from benchmarks.baseline import decide  # noqa: E402
from benchmarks.requests import CASES, Case  # noqa: E402
from pdp import Engine  # noqa: E402


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.load(ROOT / "policies")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_baseline_and_engine_agree(engine: Engine, case: Case) -> None:
    decision = engine.decide(case.request)
    allowed, reasons = decide(case.request)
    assert decision.errors == ()
    assert decision.allowed is case.allowed
    assert allowed is case.allowed
    assert decision.allowed is allowed
    assert tuple(reasons) == case.reasons
    assert sorted(decision.reasons) == sorted(reasons)


def test_the_set_covers_allow_and_deny() -> None:
    assert len(CASES) >= 12
    assert {c.allowed for c in CASES} == {True, False}
    assert len({c.name for c in CASES}) == len(CASES)


def test_baseline_fails_closed_on_bad_requests() -> None:
    good = CASES[0].request
    assert decide(good)[0] is True
    assert decide({**good, "context": {"ip": "10.1.2.3"}}) == (False, [])
    assert decide({**good, "now": "2026-11-27T10:00:00"}) == (False, [])
    assert decide({**good, "action": "manage_users"}) == (False, [])
    assert decide({**good, "principal": {**good["principal"], "type": "Document"}}) == (False, [])


# ---- a wider differential check: random requests around every rule's edges --------------------------
_IPS = (
    "10.1.2.3", "203.0.113.7", "198.51.100.66", "198.51.100.67", "172.16.5.4", "10.20.1.1", "192.168.10.5",
    "192.168.11.5", "8.8.8.8", "2001:db8::1", "::ffff:10.1.2.3", "::ffff:203.0.113.9", "10.0.0.0/8",
)  # fmt: skip
_TIMES = (
    "2026-11-27T10:00:00Z", "2026-11-28T10:00:00Z", "2026-11-27T06:59:59Z", "2026-11-27T07:00:00Z",
    "2026-11-27T17:59:59Z", "2026-11-27T18:00:00Z", "2026-07-01T05:59:00Z", "2026-07-01T06:00:00Z",
    "2026-07-01T16:59:00Z", "2026-07-01T17:00:00Z", "2026-11-27T11:00:00+01:00", "2026-11-27T09:45:00Z",
    "2026-11-27T09:44:59Z", 1795773600,
)  # fmt: skip
_ROLES: tuple[list[str], ...] = (
    [],
    ["viewer"],
    ["editor"],
    ["tenant_admin"],
    ["auditor"],
    ["no-such-role"],
    ["viewer", "auditor"],
)
_RESOURCES = (
    ("Document", "doc-plan"), ("Document", "doc-merger"), ("Document", "doc-handbook"), ("Document", "doc-globex"),
    ("Project", "proj-apollo"), ("Project", "proj-old"), ("AdminConsole", "acme-console"),
    ("AdminConsole", "globex-console"), ("Document", "doc-inline"),
)  # fmt: skip
_ACTIONS = {
    "Document": ("read", "write", "delete", "share"),
    "Project": ("read", "create", "archive"),
    "AdminConsole": ("manage_users", "view_audit"),
}


def _random_request(rnd: random.Random) -> dict[str, Any]:
    rtype, rid = rnd.choice(_RESOURCES)
    resource: dict[str, Any] = {"type": rtype, "id": rid}
    if rid == "doc-inline":  # not in data.json: the request's attributes are used
        resource["attributes"] = {
            "tenant": rnd.choice(["acme", "globex", "initech"]),
            "owner": rnd.choice(["bob", "zed"]),
            "classification": rnd.choice(["public", "internal", "restricted"]),
            "tags": [],
            "path": rnd.choice(["/public/a.pdf", "/publicity.pdf", "/public/"]),
        }
    roles = {rnd.choice(["acme", "globex"]): rnd.choice(_ROLES)}
    if rnd.random() < 0.5:
        roles["acme"] = rnd.choice(_ROLES)
    return {
        "principal": {
            "type": "User",
            "id": rnd.choice(["alice", "bob", "carol", "gina", "zed", "hr-bot"]),
            "attributes": {
                "tenant": rnd.choice(["acme", "globex"]),
                "roles": roles,
                "clearance": rnd.choice(["public", "internal", "confidential", "restricted"]),
                "external": rnd.random() < 0.2,
                "suspended": rnd.random() < 0.1,
                "email": "someone@example.com",
                "auth_time": rnd.choice(_TIMES),
            },
        },
        "action": rnd.choice(_ACTIONS[rtype]),
        "resource": resource,
        "context": {"ip": rnd.choice(_IPS), "mfa": rnd.random() < 0.7, "device_trusted": rnd.random() < 0.7},
        "now": rnd.choice(_TIMES),
    }


def test_baseline_and_engine_agree_on_random_requests(engine: Engine) -> None:
    rnd = random.Random(20261127)
    for _ in range(400):
        request = _random_request(rnd)
        decision = engine.decide(request)
        allowed, reasons = decide(request)
        assert (decision.allowed, sorted(decision.reasons)) == (allowed, sorted(reasons)), request
