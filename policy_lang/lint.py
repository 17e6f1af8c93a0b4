"""Static findings over a checked policy set: policy that compiles but cannot mean what it says.

Pure: `lint(checked)` takes the `CheckedPolicySet` of a policy set that compiled (the type
checker has run; nothing here re-checks types) and returns findings as `Diagnostic`s, sorted
by place. Every finding has a stable code:

- `shadowed_permit`: a permit that never allows, because unconditional forbids (no `when`,
  no `unless`, no `role` clause) cover every (principal type, resource type, action) it
  applies to.
- `shadowed_grant`: the same for one action of a role grant: every principal type whose role
  binding applies to the resource type is covered by an unconditional forbid.
- `never_applies`: a rule whose conditions contradict each other. The `when` conditions and the
  negated `unless` conditions are split into a conjunction of atoms (through `and`, `not`, and
  `not (a or b)`); atoms that compare one term (an attribute path or any other expression)
  with literal values (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in [..]`, a bare or negated boolean)
  are solved per term: `x == 1 and x == 2`, `x == "a" and x != "a"`, `x < 3 and x > 5`,
  `not x and x`, `x in []`, `x != x`, `1 == 2`. Also a rule with a `role` clause when no role
  binding applies to any of its principal and resource types.
- `redundant_condition`: an atom that is always true (`x == x`, `1 == 1`, `true`,
  `unless false`) or that repeats an earlier atom of the same rule.
- `identical_rule`: a rule with the same effect, scope, conditions, obligations and advice as
  an earlier one (the later one is reported).
- `duplicate_role`: a role with the same parents and the same closed grant set (its grants and
  those of every role it extends, not empty) as an earlier role, where no rule tells the two
  apart (each `role` clause names both or neither, and no `in role` names either).
- `empty_role`: a role that has no effect: it grants nothing, directly or through the roles it
  extends, and no rule requires it or a role it extends (`role` clause or `in role`).
- `unused_role`: a role that can never be held: the policy declares no role binding
  (`roles of T from ...;`), so no principal ever has a role.
- `unused_constant`: a `const`, `list` or `window` that no rule, binding, obligation, advice or
  other constant refers to.
- `route_without_id`: an HTTP route (the default route included) that never sets `resource.id`,
  so every request it matches is decided for one entity whose id is `""`. Set it from the path
  (`resource.id = path.id;`), or name the one entity meant (`resource.id = "console";`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from policy_lang import nodes as n
from policy_lang import printer
from policy_lang.checker import CheckedPolicySet, CheckedRule
from policy_lang.errors import Diagnostic
from policy_lang.schema import BOOL, DURATION, INT, STRING, EnumType, SetOf, Type
from policy_lang.spans import UNKNOWN_SPAN, Span

CODES: dict[str, str] = {
    "shadowed_permit": "a permit that unconditional forbids always override",
    "shadowed_grant": "a role grant that unconditional forbids always override",
    "never_applies": "a rule whose conditions contradict each other, or whose role clause no binding can satisfy",
    "redundant_condition": "a condition that is always true or repeats another",
    "identical_rule": "a rule that repeats an earlier one",
    "duplicate_role": "a role with the same parents and grants as an earlier one",
    "empty_role": "a role that grants nothing and that no rule requires",
    "unused_role": "a role no principal can hold, as no role binding is declared",
    "unused_constant": "a constant, list or window nothing refers to",
    "route_without_id": "an HTTP route that never sets `resource.id`",
}


def lint(checked: CheckedPolicySet) -> list[Diagnostic]:
    """Every finding for a compiled policy set, sorted by file, line, column and code."""
    found: list[Diagnostic] = []
    found += _shadowed(checked)
    found += _conditions(checked)
    found += _identical_rules(checked)
    found += _roles(checked)
    found += _unused_constants(checked)
    found += _routes(checked)
    return sorted(set(found), key=lambda d: (d.span.file, d.span.line, d.span.col, d.code, d.message))


def _place(span: Span) -> tuple[str, int, int]:
    return (span.file, span.line, span.col)


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(f"`{x}`" for x in sorted(set(names)))


def _plural(word: str, count: int) -> str:
    return word if count == 1 else word + "s"


# ---- shadowing -------------------------------------------------------------------------------


def _combinations(cr: CheckedRule) -> list[tuple[str, str, str]]:
    return [(p, rt, a) for p in cr.principal_types for rt, acts in cr.actions.items() for a in sorted(acts)]


def _shadowed(checked: CheckedPolicySet) -> Iterator[Diagnostic]:
    always: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for cr in checked.rules:
        r = cr.rule
        if r.effect == "forbid" and not r.conditions and not r.roles:
            for combo in _combinations(cr):
                always[combo].add(r.qualified_id)
    if not always:
        return
    for cr in checked.rules:
        r = cr.rule
        combos = _combinations(cr)
        if r.effect != "permit" or not combos or not all(c in always for c in combos):
            continue
        forbids = {f for c in combos for f in always[c]}
        yield Diagnostic(
            "shadowed_permit",
            f"permit `{r.qualified_id}` never allows: unconditional {_plural('forbid', len(forbids))} "
            f"{_quoted(forbids)} {'denies' if len(forbids) == 1 else 'deny'} every request it applies to",
            r.id.span,
        )
    for role, decl in checked.roles.items():
        for g in decl.grants:
            for rt in g.resource_types:
                holders = [b.principal_type for b in checked.bindings if rt.name in b.types]
                for a in g.actions:
                    combos = [(p, rt.name, a.name) for p in holders]
                    if not combos or not all(c in always for c in combos):
                        continue
                    forbids = {f for c in combos for f in always[c]}
                    yield Diagnostic(
                        "shadowed_grant",
                        f"role `{role}` grants `{a.name}` on `{rt.name}` in vain: unconditional "
                        f"{_plural('forbid', len(forbids))} {_quoted(forbids)} "
                        f"{'denies' if len(forbids) == 1 else 'deny'} it to every holder",
                        a.span,
                    )


# ---- conditions: a conjunction of atoms, solved per term --------------------------------------------


@dataclass(frozen=True, slots=True)
class _Atom:
    expr: n.Expr
    positive: bool  # False: the rule applies only where `expr` is false
    span: Span = field(default=UNKNOWN_SPAN, compare=False)  # where it is written, its `not` included

    def text(self) -> str:
        return printer.expr(self.expr if self.positive else n.Not(self.expr))


@dataclass(frozen=True, slots=True)
class _Value:
    kind: str  # string, int, bool, duration, or an enum's name
    key: Any
    order: float | None = None  # for < <= > >=: the number, or an ordered enum member's rank


@dataclass(frozen=True, slots=True)
class _Fact:
    """What one atom says: `term op value`, `term in values`, `term not in values`, or a constant truth."""

    op: str  # == != < <= > >= in notin true false
    term: n.Expr | None = None
    value: _Value | None = None
    values: frozenset[_Value] = frozenset()


_NEGATE = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">", "in": "notin", "notin": "in"}
_FLIP = {"==": "==", "!=": "!=", "<": ">", ">": "<", "<=": ">=", ">=": "<="}
_TRUE, _FALSE = _Fact("true"), _Fact("false")


def atoms(rule: n.Rule) -> list[_Atom]:
    """The rule's conditions as one conjunction: `when` parts as they are, `unless` parts negated."""
    out: list[_Atom] = []
    for cond in rule.conditions:
        stack: list[tuple[n.Expr, bool, Span]] = [(cond.expr, cond.kind == "when", cond.expr.span)]
        while stack:
            e, positive, span = stack.pop()
            if isinstance(e, n.Not):
                stack.append((e.operand, not positive, span))
            elif (isinstance(e, n.And) and positive) or (isinstance(e, n.Or) and not positive):
                stack.append((e.right, positive, e.right.span))
                stack.append((e.left, positive, e.left.span))
            else:
                out.append(_Atom(e, positive, span))
    return out


class _Facts:
    def __init__(self, checked: CheckedPolicySet):
        self.checked = checked

    def value(self, e: n.Expr) -> _Value | None:
        if isinstance(e, n.Lit):
            return _Value(e.kind, e.value, None if e.kind in ("string", "bool") else float(e.value))
        if isinstance(e, n.Neg) and isinstance(e.operand, n.Lit) and e.operand.kind in ("int", "duration"):
            inner = self.value(e.operand)
            assert inner is not None
            return _Value(inner.kind, -inner.key, -float(inner.key))
        if isinstance(e, n.Name):
            enum = self.checked.enum_members.get(e.name)
            if enum is not None:
                return self.member(enum, e.name)
            if e.name in self.checked.constants:
                t, v = self.checked.constants[e.name]
                return self.scalar(t, v)
        return None

    def member(self, enum: EnumType, name: str) -> _Value:
        return _Value(enum.name, name, float(enum.rank(name)) if enum.ordered else None)

    def scalar(self, t: Type, v: Any) -> _Value | None:
        if (t == STRING and isinstance(v, str)) or (t == BOOL and isinstance(v, bool)):
            return _Value(str(t), v)
        if t in (INT, DURATION) and isinstance(v, (int, float)) and not isinstance(v, bool):
            return _Value(str(t), v, float(v))
        if isinstance(t, EnumType) and isinstance(v, int) and 0 <= v < len(t.members):
            return self.member(t, t.members[v])
        return None

    def values(self, e: n.Expr) -> frozenset[_Value] | None:
        """A set of plain values (compared by equality; never ips, which `in` treats as networks)."""
        if isinstance(e, n.SetLit):
            items = [self.value(i) for i in e.items]
            return None if any(i is None for i in items) else frozenset(i for i in items if i is not None)
        if isinstance(e, n.Name) and e.name in self.checked.constants:
            t, v = self.checked.constants[e.name]
            if isinstance(t, SetOf):
                items = [self.scalar(t.element, x) for x in v]
                return None if any(i is None for i in items) else frozenset(i for i in items if i is not None)
        return None

    def fact(self, atom: _Atom) -> _Fact:
        fact = self.positive_fact(atom.expr)
        if atom.positive:
            return fact
        if fact.op in ("true", "false"):
            return _FALSE if fact.op == "true" else _TRUE
        return _Fact(_NEGATE[fact.op], fact.term, fact.value, fact.values)

    def positive_fact(self, e: n.Expr) -> _Fact:
        if isinstance(e, n.Lit) and e.kind == "bool":
            return _TRUE if e.value else _FALSE
        if isinstance(e, n.Binary) and e.op in _FLIP:
            left, right = self.value(e.left), self.value(e.right)
            if left is not None and right is not None:
                return _TRUE if _holds(e.op, left, right) else _FALSE
            if e.left == e.right:
                return _TRUE if e.op in ("==", "<=", ">=") else _FALSE
            if right is not None:
                return _Fact(e.op, e.left, right)
            if left is not None:
                return _Fact(_FLIP[e.op], e.right, left)
            if e.op == "!=":  # between two terms: the same term as their `==`, which must be false
                return _Fact("==", n.Binary("==", e.left, e.right), _Value("bool", False))
        if isinstance(e, n.Binary) and e.op == "in":
            if isinstance(e.right, n.SetLit) and not e.right.items:
                return _FALSE
            members = self.values(e.right)
            if members is not None:
                left = self.value(e.left)
                if left is not None:
                    return _TRUE if left in members else _FALSE
                return _Fact("in", e.left, values=members)
        return _Fact("==", e, _Value("bool", True))  # any other boolean: the term itself must be true

    def domain(self, value: _Value) -> frozenset[_Value] | None:
        """Every value of the value's type, when there are few; None for the infinite ones."""
        if value.kind == "bool":
            return frozenset({_Value("bool", True), _Value("bool", False)})
        enum = None if value.kind in ("string", "int", "duration") else self.checked.schema.enums.get(value.kind)
        return None if enum is None else frozenset(self.member(enum, m) for m in enum.members)

    def satisfiable(self, facts: list[_Fact]) -> bool:
        """Whether some value of the one term these facts are about meets them all."""
        if any(f.op == "false" for f in facts):
            return False
        candidates: frozenset[_Value] | None = None
        excluded: set[_Value] = set()
        low: tuple[float, bool] | None = None  # (bound, strict)
        high: tuple[float, bool] | None = None
        integral = any(v.kind == "int" for f in facts for v in (*f.values, *((f.value,) if f.value else ())))
        for f in facts:
            if f.op == "==" and f.value is not None:
                candidates = _meet(candidates, frozenset({f.value}))
            elif f.op == "in":
                candidates = _meet(candidates, f.values)
            elif f.op == "!=" and f.value is not None:
                excluded.add(f.value)
            elif f.op == "notin":
                excluded |= f.values
            elif f.op in ("<", "<=", ">", ">=") and f.value is not None and f.value.order is not None:
                bound = (f.value.order, f.op in ("<", ">"))
                if f.op in ("<", "<="):
                    high = bound if high is None or _tighter_high(bound, high) else high
                else:
                    low = bound if low is None or _tighter_low(bound, low) else low
        if candidates is None:
            sample = next((f.value for f in facts if f.value is not None), None)
            if sample is None:
                sample = next((v for f in facts for v in f.values), None)
            candidates = self.domain(sample) if sample is not None else None
        if candidates is not None:
            return any(v not in excluded and _within(v, low, high) for v in candidates)
        if low is None or high is None:
            return True
        lo, lo_strict = low
        hi, hi_strict = high
        if integral:
            lo = lo + 1 if lo_strict else lo
            hi = hi - 1 if hi_strict else hi
            if lo > hi:
                return False
            if hi - lo < 64:
                points = {_Value("int", int(lo) + k, float(int(lo) + k)) for k in range(int(hi - lo) + 1)}
                return bool(points - excluded)
            return True
        if lo > hi or (lo == hi and (lo_strict or hi_strict)):
            return False
        return True


def _meet(a: frozenset[_Value] | None, b: frozenset[_Value]) -> frozenset[_Value]:
    return b if a is None else a & b


def _tighter_high(new: tuple[float, bool], old: tuple[float, bool]) -> bool:
    return new[0] < old[0] or (new[0] == old[0] and new[1])


def _tighter_low(new: tuple[float, bool], old: tuple[float, bool]) -> bool:
    return new[0] > old[0] or (new[0] == old[0] and new[1])


def _within(v: _Value, low: tuple[float, bool] | None, high: tuple[float, bool] | None) -> bool:
    if v.order is None:
        return low is None and high is None
    if low is not None and (v.order < low[0] or (v.order == low[0] and low[1])):
        return False
    return not (high is not None and (v.order > high[0] or (v.order == high[0] and high[1])))


def _holds(op: str, left: _Value, right: _Value) -> bool:
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if left.order is None or right.order is None:
        return True  # not an ordering this linter knows: assume it can hold
    a, b = left.order, right.order
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _conditions(checked: CheckedPolicySet) -> Iterator[Diagnostic]:
    solver = _Facts(checked)
    for cr in checked.rules:
        r = cr.rule
        what = f"{r.effect} `{r.qualified_id}`"
        if r.roles and not _roles_reachable(checked, cr):
            yield Diagnostic(
                "never_applies",
                f"{what} never applies: it requires {_plural('role', len(r.roles))} {_quoted(i.name for i in r.roles)}, "
                f"but no role binding applies to {_quoted(cr.principal_types)} with {_quoted(cr.actions)}",
                r.roles[0].span,
            )
        seen: set[_Atom] = set()
        by_term: dict[n.Expr, list[tuple[_Atom, _Fact]]] = defaultdict(list)
        for atom in atoms(r):
            fact = solver.fact(atom)
            if fact.op == "false":
                yield Diagnostic("never_applies", f"{what} never applies: `{atom.text()}` is always false", atom.span)
                break
            if fact.op == "true":
                yield Diagnostic("redundant_condition", f"`{atom.text()}` is always true", atom.span)
                continue
            if atom in seen:
                yield Diagnostic(
                    "redundant_condition",
                    f"`{atom.text()}` repeats a condition of {what}",
                    atom.span,
                )
                continue
            seen.add(atom)
            assert fact.term is not None
            earlier = by_term[fact.term]
            if not solver.satisfiable([*(f for _, f in earlier), fact]):
                partner = next((a for a, f in earlier if not solver.satisfiable([f, fact])), None)
                against = (
                    f"`{partner.text()}`"
                    if partner is not None
                    else f"the conditions before it on `{printer.expr(fact.term)}`"
                )
                yield Diagnostic(
                    "never_applies", f"{what} never applies: `{atom.text()}` contradicts {against}", atom.span
                )
                break
            earlier.append((atom, fact))


def _roles_reachable(checked: CheckedPolicySet, cr: CheckedRule) -> bool:
    """Can a principal this rule applies to hold any role, for some resource type it applies to?"""
    return any(
        b.principal_type == p and rt in b.types
        for b in checked.bindings
        for p in cr.principal_types
        for rt in cr.actions
    )


# ---- rules repeated -----------------------------------------------------------------------------


def _identical_rules(checked: CheckedPolicySet) -> Iterator[Diagnostic]:
    first: dict[tuple[Any, ...], n.Rule] = {}
    rules = sorted((cr.rule for cr in checked.rules), key=lambda r: _place(r.span))
    for r in rules:
        key = (r.effect, r.principals, r.actions, r.resources, r.roles, r.conditions, r.obligations, r.advice)
        if key in first:
            yield Diagnostic(
                "identical_rule",
                f"{r.effect} `{r.qualified_id}` repeats `{first[key].qualified_id}`: same scope, conditions, "
                "obligations and advice",
                r.id.span,
            )
        else:
            first[key] = r


# ---- roles --------------------------------------------------------------------------------------


def _rule_exprs(rule: n.Rule) -> Iterator[n.Expr]:
    for c in rule.conditions:
        yield c.expr
    for o in rule.obligations:
        if isinstance(o, n.Mask):
            yield from o.targets
        else:
            yield o.value
    for a in rule.advice:
        yield a.value


def _roles(checked: CheckedPolicySet) -> Iterator[Diagnostic]:
    roles = checked.roles
    direct = {
        name: frozenset((a.name, rt.name) for g in d.grants for a in g.actions for rt in g.resource_types)
        for name, d in roles.items()
    }
    closed = {
        name: frozenset().union(
            *(direct[r] for r in checked.role_ancestors.get(name, frozenset({name})) if r in direct)
        )
        for name in roles
    }
    clauses = [frozenset(i.name for i in cr.rule.roles) for cr in checked.rules if cr.rule.roles]
    tested = {
        e.name
        for cr in checked.rules
        for root in _rule_exprs(cr.rule)
        for e in printer.walk(root)
        if isinstance(e, n.RoleRef)
    }
    required = tested | {name for clause in clauses for name in clause}

    for name, decl in roles.items():
        if not checked.bindings:
            yield Diagnostic(
                "unused_role",
                f"role `{name}` can never be held: no role binding (`roles of T from ...;`) is declared",
                decl.span,
            )
        ancestors = checked.role_ancestors.get(name, frozenset({name}))
        if not closed[name] and not (ancestors & required):
            yield Diagnostic(
                "empty_role",
                f"role `{name}` has no effect: it grants nothing, directly or through the roles it extends, "
                "and no rule requires it",
                decl.span,
            )

    ordered = sorted(roles.values(), key=lambda d: _place(d.span))
    for i, later in enumerate(ordered):
        parents = frozenset(p.name for p in later.extends)
        for earlier in ordered[:i]:
            if (
                closed[later.name]
                and closed[later.name] == closed[earlier.name]
                and parents == frozenset(p.name for p in earlier.extends)
                and not ({later.name, earlier.name} & tested)
                and all((later.name in c) == (earlier.name in c) for c in clauses)
            ):
                yield Diagnostic(
                    "duplicate_role",
                    f"role `{later.name}` duplicates role `{earlier.name}`: same parents, same grants, "
                    "and no rule tells them apart",
                    later.span,
                )
                break


# ---- constants ----------------------------------------------------------------------------------


def _unused_constants(checked: CheckedPolicySet) -> Iterator[Diagnostic]:
    roots: list[n.Expr] = []
    declared: list[n.ConstDecl | n.WindowDecl] = []
    for f in checked.files:
        for item in f.items:
            if isinstance(item, n.Rule):
                roots += _rule_exprs(item)
            elif isinstance(item, n.BindingDecl):
                roots.append(item.expr)
            elif isinstance(item, (n.ConstDecl, n.WindowDecl)):
                declared.append(item)
                if isinstance(item, n.ConstDecl) and item.value is not None:
                    roots.append(item.value)
    used = {e.name for root in roots for e in printer.walk(root) if isinstance(e, n.Name)}
    for d in declared:
        if d.name not in used:
            yield Diagnostic("unused_constant", f"{_kind(checked, d)} `{d.name}` is never used", d.span)


def _kind(checked: CheckedPolicySet, d: n.ConstDecl | n.WindowDecl) -> str:
    if isinstance(d, n.WindowDecl):
        return "window"
    source = checked.sources.get(d.span.file)
    if source is not None and source.text.startswith("list", d.span.start):
        return "list"
    return "constant"


# ---- HTTP routes -------------------------------------------------------------------------------


def _routes(checked: CheckedPolicySet) -> Iterator[Diagnostic]:
    for f in checked.files:
        for item in f.items:
            if not isinstance(item, n.RouteDecl):
                continue
            if any(a.root == "resource" and a.target.name == "id" for a in item.assigns):
                continue
            what = (
                "the default route"
                if item.is_default
                else f"route `{printer.names(item.methods) or '*'} {item.pattern}`"
            )
            yield Diagnostic(
                "route_without_id",
                f"{what} never sets `resource.id`: every request it matches is decided for the same "
                f'{item.resource_type.name}, with id ""',
                item.span,
                'set it from the path (`resource.id = path.id;`) or name the entity (`resource.id = "name";`)',
            )
