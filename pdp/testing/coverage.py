"""Which rules, role grants and condition branches the policy tests exercised.

Coverage is read from the evaluator itself, not from lines: each test request is prepared by
the engine and every rule of its bucket is evaluated again by the traced code of
`pdp.explain.trace_bucket`, which records the value of every expression node. Only the rules
the engine itself evaluates for that request count: every forbid, and the permits when no
forbid matched or failed (a permit behind a deciding forbid is never run by the engine).

Targets, each with the `file:line` it was written at:

- rule: covered when some test evaluated it to a match (without an error).
- role grant, one per (role, resource type, action) that a `grant` declares: covered when some
  test was allowed through it, that is, a held role conferred it (directly or through
  `extends`) and no forbid decided. Its reason in a decision reads `role:<name>`.
- branches, only where a rule has `or` or `unless`:
  - each `or` (at any depth of a condition) has two: its left side is covered when the `or`
    evaluated to true with the left side true (the left side decided); its right side when
    the `or` evaluated to true with the left side false and the right side true;
  - each `unless` condition has two: covered when it was evaluated true (the exception
    applied) and when it was evaluated false. A condition after a false `when` is not
    evaluated (short-circuit), so an `unless` is seen only where the rule otherwise applied.

Percentages: covered rules and grants over all rules and grants (what `--min-coverage`
checks), and covered branches over all branches; 100% when there is nothing to cover.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from pdp.engine import Engine
from pdp.explain import BucketTrace, trace_bucket, trace_rules
from policy_lang import nodes as n
from policy_lang import printer
from policy_lang.compiler import BucketKey
from policy_lang.plan import location

Kind = Literal["rule", "grant", "branch"]


@dataclass(frozen=True, slots=True)
class Target:
    kind: Kind
    id: str  # rule id, `role:viewer read on Document`, or `<rule id>: <branch>`
    owner: str  # the rule id or `role:<name>` it belongs to
    description: str  # what no test did, while it is uncovered
    location: str  # file:line

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "location": self.location, "description": self.description}


@dataclass(frozen=True, slots=True)
class CoverageReport:
    rules: tuple[tuple[Target, bool], ...]  # rules and role grants
    branches: tuple[tuple[Target, bool], ...]

    @property
    def rules_covered(self) -> int:
        return sum(1 for _, hit in self.rules if hit)

    @property
    def branches_covered(self) -> int:
        return sum(1 for _, hit in self.branches if hit)

    @property
    def rule_percent(self) -> float:
        return _percent(self.rules_covered, len(self.rules))

    @property
    def branch_percent(self) -> float:
        return _percent(self.branches_covered, len(self.branches))

    def meets(self, minimum: float) -> bool:
        """Whether covered rules and grants are at least `minimum` percent of them (exactly, no rounding)."""
        return self.rules_covered * 100 >= minimum * len(self.rules)

    @property
    def uncovered_rules(self) -> list[Target]:
        return [t for t, hit in self.rules if not hit]

    @property
    def uncovered_branches(self) -> list[Target]:
        return [t for t, hit in self.branches if not hit]

    def to_json(self) -> dict[str, Any]:
        return {
            "rules": {"covered": self.rules_covered, "total": len(self.rules), "percent": self.rule_percent},
            "branches": {
                "covered": self.branches_covered,
                "total": len(self.branches),
                "percent": self.branch_percent,
            },
            "targets": [{**t.to_json(), "covered": hit} for t, hit in (*self.rules, *self.branches)],
        }


def _percent(covered: int, total: int) -> float:
    """Rounded down to one decimal, so that 99.96% never shows as 100.0%."""
    return 100.0 if total == 0 else math.floor(covered * 1000 / total) / 10


@dataclass(slots=True)
class _RuleTargets:
    rule: Target
    # per branch: (node, which) -> branch target; which is "left"/"right" for `or`, True/False for `unless`
    ors: list[n.Or] = field(default_factory=list)
    unless: list[n.Expr] = field(default_factory=list)
    branches: dict[tuple[int, Any], Target] = field(default_factory=dict)


class Coverage:
    """Collects coverage over the requests of a test run (`record` each one), then `report()`."""

    def __init__(self, engine: Engine):
        self.engine = engine
        checked = engine.policy.checked
        self._rules: dict[int, _RuleTargets] = {}  # id(rule AST) -> targets
        for c in checked.rules:
            self._rules[id(c.rule)] = _targets_of(c.rule)
        self._grants: dict[tuple[str, str, str], Target] = {}
        for (rtype, action), roles in sorted(checked.grants.items()):
            for role in sorted(roles):
                self._grants[(role, rtype, action)] = _grant_target(checked.roles[role], role, rtype, action)
        self._hit: set[Target] = set()
        self._traced: dict[BucketKey, Any] = {}

    def record(self, request: Any) -> None:
        """Evaluate `request` traced and mark what it exercised; invalid requests exercise nothing."""
        engine = self.engine
        try:
            bucket, P, R, C, X = engine.prepare(request)
        except Exception:
            return
        if bucket is None:
            return
        traced = self._traced.get(bucket.key)
        if traced is None:
            traced = self._traced[bucket.key] = trace_rules(engine.policy.checked, bucket)
        result = trace_bucket(engine, bucket, P, R, C, X, traced)
        if result.roles_failure is not None and bucket.uses_roles:
            return  # the engine fails closed before any rule
        for i, compiled in enumerate(bucket.rules):
            if result.evaluated[i]:
                self._mark_rule(self._rules[id(compiled.checked.rule)], result, i)
        if result.grants and not result.forbids_decided:
            _, rtype, action = bucket.key
            for role in result.grants:
                self._hit.add(self._grants[(role, rtype, action)])

    def _mark_rule(self, targets: _RuleTargets, result: BucketTrace, i: int) -> None:
        outcome = result.outcomes[i]
        numbers = result.rules[i].numbers
        values = outcome.trace.values
        if outcome.matched and outcome.error is None:
            self._hit.add(targets.rule)
        for expr in targets.unless:
            no = numbers.get(id(expr))
            if no is not None and no in values:
                self._hit.add(targets.branches[(id(expr), bool(values[no]))])
        for node in targets.ors:
            no = numbers.get(id(node))
            if no is None or no not in values or not values[no]:
                continue
            left = numbers.get(id(node.left))
            side = "left" if left is not None and left in values and values[left] else "right"
            self._hit.add(targets.branches[(id(node), side)])

    def report(self) -> CoverageReport:
        rules: list[tuple[Target, bool]] = []
        branches: list[tuple[Target, bool]] = []
        for targets in self._rules.values():
            rules.append((targets.rule, targets.rule in self._hit))
            branches += [(t, t in self._hit) for t in targets.branches.values()]
        grants = sorted(self._grants.values(), key=lambda t: (_file_line(t.location), t.id))
        rules += [(t, t in self._hit) for t in grants]
        return CoverageReport(tuple(rules), tuple(branches))


def _file_line(location: str) -> tuple[str, int]:
    file, _, line = location.rpartition(":")
    return file, int(line) if line.isdigit() else 0


def _line_of(node: n.Expr | n.Condition, fallback: str) -> str:
    span = node.span
    return f"{span.file}:{span.line}" if span.line else fallback


def _targets_of(rule: n.Rule) -> _RuleTargets:
    rid = rule.qualified_id
    at = location(rule)
    targets = _RuleTargets(Target("rule", rid, rid, "never matched in a test", at))

    def add(key: tuple[int, Any], name: str, missing: str, where: str) -> None:
        targets.branches[key] = Target("branch", f"{rid}: {name}", rid, missing, where)

    for c in rule.conditions:
        text = printer.expr(c.expr)
        where = _line_of(c, at)
        if c.kind == "unless":
            targets.unless.append(c.expr)
            add((id(c.expr), True), f"unless `{text}` true", f"`unless {text}` never held", where)
            add((id(c.expr), False), f"unless `{text}` false", f"`unless {text}` never failed to hold", where)
        for node in printer.walk(c.expr):
            if isinstance(node, n.Or):
                targets.ors.append(node)
                for side, part in (("left", node.left), ("right", node.right)):
                    shown = printer.expr(part)
                    add(
                        (id(node), side),
                        f"or-{side} `{shown}`",
                        f"`{shown}`, the {side} side of an `or`, was never the true side that decided it",
                        _line_of(part, where),
                    )
    return targets


def _grant_target(decl: n.RoleDecl, role: str, rtype: str, action: str) -> Target:
    where = f"{decl.span.file}:{decl.span.line}"
    for g in decl.grants:
        if any(t.name == rtype for t in g.resource_types) and any(a.name == action for a in g.actions):
            where = f"{g.span.file}:{g.span.line}"
            break
    tid = f"role:{role} {action} on {rtype}"
    return Target("grant", tid, f"role:{role}", "no test was allowed through this grant", where)
