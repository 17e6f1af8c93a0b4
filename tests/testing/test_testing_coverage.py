"""Coverage is exact: read from the traced evaluation, one request at a time.

Each test starts from nothing covered, records chosen requests, and checks exactly which rules,
role grants and branches became covered, and which stayed uncovered.
"""

from __future__ import annotations

from typing import Any

import pytest

from pdp.engine import Engine
from pdp.testing.coverage import Coverage, CoverageReport
from tests.testing.conftest import POLICY

LEFT = "team_read: or-left `principal.team == resource.team`"
RIGHT = "team_read: or-right `principal.admin`"
LOCKED_HELD = "locked_write: unless `principal.admin` true"
LOCKED_NOT = "locked_write: unless `principal.admin` false"
VPN_HELD = "off_vpn: unless `context.vpn` true"
VPN_NOT = "off_vpn: unless `context.vpn` false"
READER = "role:reader read on Doc"
WRITER = "role:writer write on Doc"


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine.from_source(POLICY, filename="p.pdp")


def request(
    action: str = "read",
    *,
    team: str = "red",
    admin: bool = False,
    roles: tuple[str, ...] = (),
    doc_team: str = "red",
    locked: bool = False,
    vpn: bool = True,
) -> dict[str, Any]:
    return {
        "principal": {"type": "User", "id": "u", "attributes": {"team": team, "admin": admin, "roles": list(roles)}},
        "action": action,
        "resource": {"type": "Doc", "id": "d", "attributes": {"team": doc_team, "locked": locked}},
        "context": {"vpn": vpn},
        "now": "2026-11-25T10:00:00Z",
    }


def covered(engine: Engine, *requests: dict[str, Any]) -> tuple[set[str], set[str], CoverageReport]:
    coverage = Coverage(engine)
    for r in requests:
        coverage.record(r)
    report = coverage.report()
    return (
        {t.id for t, hit in report.rules if hit},
        {t.id for t, hit in report.branches if hit},
        report,
    )


def test_the_targets(engine: Engine) -> None:
    _, _, report = covered(engine)
    assert [(t.kind, t.id, t.location) for t, _ in report.rules] == [
        ("rule", "team_read", "p.pdp:10"),
        ("rule", "locked_write", "p.pdp:15"),
        ("rule", "off_vpn", "p.pdp:20"),
        ("grant", READER, "p.pdp:6"),
        ("grant", WRITER, "p.pdp:7"),
    ]
    assert [(t.id, t.location) for t, _ in report.branches] == [
        (LEFT, "p.pdp:13"),
        (RIGHT, "p.pdp:13"),
        (LOCKED_HELD, "p.pdp:18"),
        (LOCKED_NOT, "p.pdp:18"),
        (VPN_HELD, "p.pdp:21"),
        (VPN_NOT, "p.pdp:21"),
    ]
    assert (report.rule_percent, report.branch_percent) == (0.0, 0.0)


def test_an_or_branch_uncovered_then_covered(engine: Engine) -> None:
    team_member = request(team="red")
    rules, branches, _ = covered(engine, team_member)
    assert rules == {"team_read"}
    assert branches == {LEFT, VPN_HELD}  # the left side decided; every read passes the vpn check
    assert RIGHT not in branches

    admin_elsewhere = request(team="blue", admin=True)
    rules, branches, report = covered(engine, team_member, admin_elsewhere)
    assert branches == {LEFT, RIGHT, VPN_HELD}
    assert RIGHT not in {t.id for t in report.uncovered_branches}


def test_an_admin_of_the_same_team_covers_only_the_left_side(engine: Engine) -> None:
    """`or` short-circuits: when the left side is true, the right one never decided."""
    _, branches, _ = covered(engine, request(team="red", admin=True))
    assert LEFT in branches and RIGHT not in branches


def test_a_false_or_covers_no_side(engine: Engine) -> None:
    rules, branches, _ = covered(engine, request(team="blue", admin=False))
    assert rules == set()
    assert branches == {VPN_HELD}


def test_an_unless_needs_both_values(engine: Engine) -> None:
    rules, branches, _ = covered(engine, request("write", locked=True, roles=("writer",)))
    assert rules == {"locked_write"}
    assert LOCKED_NOT in branches and LOCKED_HELD not in branches

    rules, branches, _ = covered(
        engine,
        request("write", locked=True, roles=("writer",)),
        request("write", locked=True, admin=True, roles=("writer",)),
    )
    assert {LOCKED_NOT, LOCKED_HELD} <= branches
    assert WRITER in rules  # the admin's write went through the writer grant


def test_an_unless_after_a_false_when_is_never_evaluated(engine: Engine) -> None:
    rules, branches, _ = covered(engine, request("write", locked=False, roles=("writer",)))
    assert rules == {WRITER}
    assert LOCKED_HELD not in branches and LOCKED_NOT not in branches


def test_a_permit_behind_a_deciding_forbid_is_not_covered(engine: Engine) -> None:
    """The engine never runs permits once a forbid matched: matching there proves nothing."""
    rules, branches, _ = covered(engine, request(vpn=False, roles=("reader",)))
    assert rules == {"off_vpn"}
    assert branches == {VPN_NOT}
    assert LEFT not in branches and READER not in rules


def test_grants_are_per_role_resource_type_and_action_and_follow_inheritance(engine: Engine) -> None:
    rules, _, _ = covered(engine, request("read", team="blue", roles=("writer",)))
    assert rules == {READER}  # a writer reads through the reader grant it inherits
    rules, _, _ = covered(engine, request("write", roles=("reader",)))
    assert rules == set()


def test_invalid_requests_cover_nothing(engine: Engine) -> None:
    bad = request()
    bad["principal"]["attributes"]["team"] = 3
    rules, branches, _ = covered(engine, bad, {"nonsense": True})
    assert (rules, branches) == (set(), set())


def test_full_coverage_and_the_gate(engine: Engine) -> None:
    everything = [
        request(),
        request(team="blue", admin=True, roles=("reader",)),
        request("write", locked=True, roles=("writer",)),
        request("write", locked=True, admin=True, roles=("writer",)),
        request(vpn=False),
    ]
    _, _, report = covered(engine, *everything)
    assert (report.rules_covered, len(report.rules)) == (5, 5)
    assert (report.branches_covered, len(report.branches)) == (6, 6)
    assert report.uncovered_rules == [] and report.uncovered_branches == []
    _, _, partial = covered(engine, *everything[:2])
    assert (partial.rules_covered, partial.rule_percent) == (2, 40.0)
    assert partial.meets(40) and not partial.meets(40.1)


def test_nested_or_has_a_pair_of_branches_per_or() -> None:
    engine = Engine.from_source(
        """\
principal entity U { a: bool; b: bool; c: bool; }
entity R {}
actions R { go }
permit any
  when principal.a or principal.b or principal.c;
""",
        filename="n.pdp",
    )

    def req(a: bool, b: bool, c: bool) -> dict[str, Any]:
        return {
            "principal": {"type": "U", "id": "u", "attributes": {"a": a, "b": b, "c": c}},
            "action": "go",
            "resource": {"type": "R", "id": "r"},
        }

    coverage = Coverage(engine)
    ids = [t.id for t, _ in coverage.report().branches]
    assert ids == [
        "any: or-left `principal.a or principal.b`",
        "any: or-right `principal.c`",
        "any: or-left `principal.a`",
        "any: or-right `principal.b`",
    ]
    coverage.record(req(False, True, False))
    hit = {t.id for t, ok in coverage.report().branches if ok}
    assert hit == {"any: or-left `principal.a or principal.b`", "any: or-right `principal.b`"}
    coverage.record(req(False, False, True))
    coverage.record(req(True, False, False))
    assert coverage.report().branch_percent == 100.0


def test_percent_rounds_down() -> None:
    from pdp.testing.coverage import Target

    rule = Target("rule", "r", "r", "", "x:1")
    many = tuple((Target("rule", f"r{i}", "r", "", "x:1"), i > 0) for i in range(2000))
    assert CoverageReport(many, ()).rule_percent == 99.9
    assert CoverageReport(((rule, True),), ()).rule_percent == 100.0
    assert CoverageReport((), ()).rule_percent == 100.0
