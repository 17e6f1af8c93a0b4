"""Why a request was allowed or denied: every rule considered, what it compared, what it found.

Each rule of the request's bucket is compiled again, on its own, with
`ExprCompiler(trace=True)`, so every node's value passes through `T(node_no, value)`;
the generated source goes through the same sandbox as the decision code. Node numbers
map back to AST nodes, which are printed back as policy text, and the recorded values
are shown in policy form (enum members, RFC 3339 datetimes, `15m` durations, CIDRs).

The decision is rebuilt from the traced results with the engine's rules (forbids
first, an error denies, then any permit or role grant allows); it must equal
`engine.decide(request)`. If it ever does not, the engine's decision is reported too,
under `engine_decision`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pdp.decision import Decision, DecisionError
from pdp.engine import Engine, _describe, _header_text, _json_value
from policy_lang import nodes as n
from policy_lang import printer
from policy_lang.checker import CheckedPolicySet
from policy_lang.codegen import Constants, ExprCompiler
from policy_lang.compiler import Bucket
from policy_lang.plan import location
from policy_lang.runtime import NOW, PID, RID, Scope, principal_ancestors, resource_ancestors
from policy_lang.sandbox import run
from policy_lang.schema import (
    DATETIME,
    DURATION,
    EMPTY_SET,
    ROLE,
    WINDOW,
    EntityRefType,
    EntityType,
    EnumType,
    MapOf,
    Record,
    SetOf,
    Type,
)
from policy_lang.values import IPNet, Window, format_datetime

_COMPARISON_OPS = frozenset({"==", "!=", "<", "<=", ">", ">=", "in"})
_COMPARISON_METHODS = frozenset({"contains", "contains_any", "contains_all", "starts_with", "ends_with"})
_MAX_ITEMS = 20
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
REDACTED = "<sensitive>"

Explanation = dict[str, Any]


@dataclass(slots=True)
class _Trace:
    """The `T` of traced code: records each node's value, in the order evaluation finished."""

    values: dict[int, Any] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)

    def __call__(self, node_no: int, value: Any) -> Any:
        self.values[node_no] = value
        self.order.append(node_no)
        return value


@dataclass(slots=True)
class _TracedRule:
    function: Callable[..., Any]
    nodes: dict[int, n.Expr]  # node number -> node
    numbers: dict[int, int]  # id(node) -> node number
    types: dict[int, Type]  # id(node) -> type


@dataclass(slots=True)
class _Outcome:
    matched: bool
    error: BaseException | None
    trace: _Trace


def explain(engine: Engine, request: Any, *, show_sensitive: bool = False) -> Explanation:
    """Every rule considered for `request`, what each compared, and the final decision.

    Values of attributes declared `sensitive` are shown as `<sensitive>` unless `show_sensitive`.
    """
    try:
        bucket, P, R, C, X = engine.prepare(request)
    except Exception:
        # An invalid request: the engine's answer names the field at fault; no rule was considered.
        return {
            "request": None,
            "bucket": None,
            "roles": None,
            "rules": [],
            "decision": engine.decide(request).to_json(),
        }
    ptype, rtype = request["principal"]["type"], request["resource"]["type"]
    summary = {
        "principal": f"{ptype}::{printer.quote(X[PID])}",
        "action": request["action"],
        "resource": f"{rtype}::{printer.quote(X[RID])}",
        "now": format_datetime(X[NOW]),
    }
    pinned = {**request, "now": X[NOW]}  # the engine must see the clock explain saw
    engine_decision = engine.decide(pinned)
    if bucket is None:
        result: Explanation = {
            "request": summary,
            "bucket": None,
            "roles": None,
            "rules": [],
            "decision": Decision(False, revision=engine.revision).to_json(),
        }
        return _cross_check(result, engine_decision)
    return _cross_check(_explain_bucket(engine, bucket, summary, P, R, C, X, show_sensitive), engine_decision)


def _cross_check(result: Explanation, engine_decision: Decision) -> Explanation:
    if result["decision"] != engine_decision.to_json():
        result["engine_decision"] = engine_decision.to_json()
    return result


def _explain_bucket(
    engine: Engine,
    bucket: Bucket,
    summary: dict[str, Any],
    P: dict[str, Any],
    R: dict[str, Any],
    C: dict[str, Any],
    X: Scope,
    show_sensitive: bool,
) -> Explanation:
    ptype, rtype, action = bucket.key
    policy = engine.policy
    roles_fn = policy.role_functions.get((ptype, rtype))
    t = trace_bucket(engine, bucket, P, R, C, X)
    traced, outcomes, evaluated = t.rules, t.outcomes, t.evaluated
    RL, roles_failure, G = t.roles, t.roles_failure, t.grants
    render = _Renderer(ptype, rtype, X, RL, show_sensitive)
    rules = [_rule_entry(i, bucket, traced[i], outcomes[i], evaluated[i], render, RL) for i in range(len(bucket.rules))]
    bindings = [printer.expr(b.expr) for b in policy.checked.bindings if b.principal_type == ptype and rtype in b.types]
    roles = {
        "bindings": bindings if roles_fn is not None else [],
        "held": sorted(RL),
        "declaring": sorted(bucket.grants),
        "granting": sorted(G) if G else [],
        "error": _describe(roles_failure) if roles_failure is not None else None,
    }
    if roles_failure is not None and bucket.uses_roles:
        # The compiled bucket computes the roles first, so the engine fails closed before any rule.
        message = f"internal error: {type(roles_failure).__name__}: {roles_failure}"
        decision = Decision(False, errors=(DecisionError(message),), revision=engine.revision)
    else:
        decision = _decide(engine, bucket, outcomes, evaluated, G, P, R, C, X)
    return {
        "request": summary,
        "bucket": {
            "principal_type": ptype,
            "resource_type": rtype,
            "action": action,
            "reads_clock": bucket.uses_now,
        },
        "roles": roles,
        "rules": rules,
        "decision": decision.to_json(),
    }


# ---- tracing ---------------------------------------------------------------------------


@dataclass(slots=True)
class BucketTrace:
    """Every rule of one request's bucket, evaluated by traced code (read by explain and by coverage)."""

    rules: list[_TracedRule]
    outcomes: list[_Outcome]  # per rule: matched, the error it raised, the value of each node
    evaluated: list[bool]  # whether the engine evaluates the rule: forbids always, permits if no forbid decided
    roles: frozenset[str]  # the held roles, closed under inheritance
    roles_failure: Exception | None
    grants: frozenset[str] | None  # held roles whose grant covers the bucket; None where no grant can apply
    forbids_decided: bool  # a forbid matched or failed: the request is denied, no permit or grant counts


def trace_bucket(
    engine: Engine,
    bucket: Bucket,
    P: dict[str, Any],
    R: dict[str, Any],
    C: dict[str, Any],
    X: Scope,
    traced: list[_TracedRule] | None = None,
) -> BucketTrace:
    """Evaluate every rule of `bucket` for one prepared request (`Engine.prepare`), recording node values.

    `traced` may be given to reuse the traced functions of an earlier call on the same bucket.
    """
    ptype, rtype, _ = bucket.key
    roles_fn = engine.policy.role_functions.get((ptype, rtype))
    roles_failure: Exception | None = None
    RL: frozenset[str] = frozenset()
    if roles_fn is not None:
        try:
            RL = frozenset(roles_fn(P, R, C, X))
        except Exception as exc:  # a binding fails on more than a missing key
            roles_failure = exc
    G = (RL & bucket.grants) if bucket.grants and roles_fn is not None else None

    if traced is None:
        traced = _trace_rules(engine.policy.checked, bucket)
    outcomes = []
    for rule in traced:
        trace = _Trace()
        try:
            outcomes.append(_Outcome(bool(rule.function(P, R, C, X, RL, trace)), None, trace))
        except Exception as exc:
            outcomes.append(_Outcome(False, exc, trace))

    forbids = [i for i, r in enumerate(bucket.rules) if r.effect == "forbid"]
    decided_by_forbids = any(outcomes[i].matched or outcomes[i].error for i in forbids)
    evaluated = [r.effect == "forbid" or not decided_by_forbids for r in bucket.rules]
    return BucketTrace(traced, outcomes, evaluated, RL, roles_failure, G, decided_by_forbids)


def trace_rules(checked: CheckedPolicySet, bucket: Bucket) -> list[_TracedRule]:
    """The traced functions of a bucket's rules, to pass to `trace_bucket` again (they depend on nothing else)."""
    return _trace_rules(checked, bucket)


def _constant_lookup(checked: CheckedPolicySet) -> Callable[[str], Any]:
    def lookup(name: str) -> Any:
        if name in checked.constants:
            return checked.constants[name][1]
        if name in checked.windows:
            return checked.windows[name]
        return checked.enum_members[name].rank(name)

    return lookup


def _trace_rules(checked: CheckedPolicySet, bucket: Bucket) -> list[_TracedRule]:
    """One traced function per rule: `def r<i>(P, R, C, X, RL, T): return <condition>`."""
    ptype, rtype, _ = bucket.key
    consts = Constants()
    lookup = _constant_lookup(checked)
    lines: list[str] = []
    pending: list[tuple[dict[int, int], dict[int, Type], list[n.Expr]]] = []
    for i, compiled in enumerate(bucket.rules):
        rule = compiled.checked.rule
        types = compiled.checked.types[(ptype, rtype)]
        numbers: dict[int, int] = {}
        ec = ExprCompiler(consts, types, lookup, trace=True, node_ids=numbers)
        parts = []
        if rule.roles:
            parts.append(f"(not RL.isdisjoint({consts.ref(frozenset(r.name for r in rule.roles))}))")
        for c in rule.conditions:
            code = ec.expr(c.expr)
            parts.append(code if c.kind == "when" else f"(not {code})")
        lines += [f"def r{i}(P, R, C, X, RL, T):", f"    return {' and '.join(parts) or 'True'}"]
        pending.append((numbers, types, [c.expr for c in rule.conditions]))
    namespace = run("\n".join(lines) + "\n", consts.values, {})
    traced = []
    for i, (numbers, types, roots) in enumerate(pending):
        by_id = {id(node): node for root in roots for node in printer.walk(root)}
        nodes = {no: by_id[key] for key, no in numbers.items() if key in by_id}
        traced.append(_TracedRule(namespace[f"r{i}"], nodes, numbers, types))
    return traced


# ---- per-rule report ---------------------------------------------------------------------


def _rule_entry(
    index: int,
    bucket: Bucket,
    traced: _TracedRule,
    outcome: _Outcome,
    evaluated: bool,
    render: _Renderer,
    RL: frozenset[str],
) -> dict[str, Any]:
    compiled = bucket.rules[index]
    rule = compiled.checked.rule
    values = outcome.trace.values
    role_scope = None
    if rule.roles:
        wanted = [r.name for r in rule.roles]
        role_scope = {"roles": wanted, "held": sorted(RL), "satisfied": not RL.isdisjoint(wanted)}
    conditions = []
    for c in rule.conditions:
        no = traced.numbers.get(id(c.expr))
        value = bool(values[no]) if no is not None and no in values else None
        holds = None if value is None else (value if c.kind == "when" else not value)
        conditions.append({"kind": c.kind, "text": printer.expr(c.expr), "value": value, "holds": holds})
    condition_of = {id(node): k for k, c in enumerate(rule.conditions) for node in printer.walk(c.expr)}
    comparisons = []
    for no in outcome.trace.order:
        node = traced.nodes.get(no)
        entry = _comparison(node, traced, values, render)
        if node is not None and entry is not None:
            comparisons.append({"condition": condition_of[id(node)], **entry})
    error_at = _failed_node(traced, values) if outcome.error is not None else None
    return {
        "index": index,
        "id": compiled.id,
        "effect": compiled.effect,
        "location": location(rule),
        "evaluated": evaluated,
        "matched": outcome.matched,
        "error": _describe(outcome.error) if outcome.error is not None else None,
        "error_at": printer.expr(error_at) if error_at is not None else None,
        "role_scope": role_scope,
        "conditions": conditions,
        "comparisons": comparisons,
    }


def _comparison(
    node: n.Expr | None, traced: _TracedRule, values: dict[int, Any], render: _Renderer
) -> dict[str, Any] | None:
    op: str
    right: n.Expr | None
    if isinstance(node, n.Binary) and node.op in _COMPARISON_OPS:
        op, left, right = node.op, node.left, node.right
        right_text = render.node(right, traced, values)
    elif isinstance(node, n.Like):
        op, left, right = "like", node.obj, None
        right_text = printer.quote(node.pattern)
    elif isinstance(node, n.Method) and node.name in _COMPARISON_METHODS and len(node.args) == 1:
        op, left, right = node.name, node.obj, node.args[0]
        right_text = render.node(right, traced, values)
    else:
        return None
    if isinstance(node, n.Binary) and traced.types.get(id(right)) == ROLE:
        left_text = render.roles()
    else:
        left_text = render.node(left, traced, values)
    result = values[traced.numbers[id(node)]]
    text = printer.expr(node)
    shown = "true" if result else "false"
    return {
        "text": text,
        "op": op,
        "left": left_text,
        "right": right_text,
        "result": bool(result),
        "line": f"{text}: {left_text} vs {right_text} -> {shown}",
    }


def _failed_node(traced: _TracedRule, values: dict[int, Any]) -> n.Expr | None:
    """The node whose evaluation raised: not recorded, though every traced operand of it was."""
    for no, node in sorted(traced.nodes.items()):
        if no in values:
            continue
        kids = [traced.numbers[id(k)] for k in printer.children(node) if id(k) in traced.numbers]
        if kids and all(k in values for k in kids):
            return node
    return None


# ---- rendering values in policy form ---------------------------------------------------------


class _Renderer:
    def __init__(self, ptype: str, rtype: str, X: Scope, RL: frozenset[str], show_sensitive: bool):
        self.ptype = ptype
        self.rtype = rtype
        self.X = X
        self.RL = RL
        self.show_sensitive = show_sensitive

    def roles(self) -> str:
        return "roles [" + ", ".join(sorted(self.RL)) + "]"

    def entity(self, var: str) -> str:
        if var == "principal":
            ref, ancestors = f"{self.ptype}::{printer.quote(self.X[PID])}", principal_ancestors(self.X)
        else:
            ref, ancestors = f"{self.rtype}::{printer.quote(self.X[RID])}", resource_ancestors(self.X)
        if ancestors:
            ref += " (in " + ", ".join(_entity_ref(a) for a in sorted(ancestors)) + ")"
        return ref

    def node(self, node: n.Expr, traced: _TracedRule, values: dict[int, Any]) -> str:
        if isinstance(node, n.Var) and node.name in ("principal", "resource"):
            return self.entity(node.name)
        if not self.show_sensitive and _is_sensitive(node, traced.types):
            return REDACTED
        no = traced.numbers.get(id(node))
        if no is None or no not in values:
            return "(not evaluated)"
        t = traced.types.get(id(node))
        if isinstance(node, n.Name) and t == WINDOW:
            return f"{node.name} {self.value(values[no], t)}"
        return self.value(values[no], t)

    def value(self, v: Any, t: Type | None) -> str:
        """A runtime value as policy text, guided by its type where the value alone is ambiguous."""
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(t, EnumType) and type(v) is int and 0 <= v < len(t.members):
            return t.members[v]
        if t == DATETIME and isinstance(v, (int, float)):
            return format_datetime(v)
        if t == DURATION and isinstance(v, (int, float)):
            return printer.format_duration(v)
        if t == ROLE and isinstance(v, str):
            return f"role {v}"
        if isinstance(t, EntityRefType) and isinstance(v, str):
            return _entity_ref(v)
        if isinstance(v, IPNet):
            return str(v)
        if isinstance(v, Window):
            return _window(v)
        if isinstance(v, (set, frozenset)):
            element = t.element if isinstance(t, SetOf) else None
            return _items(sorted(self.value(x, element) for x in v), "[", "]")
        if isinstance(v, dict):
            return self.mapping(v, t)
        if isinstance(v, str):
            return printer.quote(v)
        return str(v)

    def mapping(self, v: dict[str, Any], t: Type | None) -> str:
        record = t.record if isinstance(t, EntityType) else t
        if isinstance(record, Record):
            shown = []
            for key in sorted(v):
                f = record.get(key)
                if f is not None and f.sensitive and not self.show_sensitive:
                    shown.append(f"{key}: {REDACTED}")
                else:
                    shown.append(f"{key}: {self.value(v[key], f.type if f else None)}")
            return _items(shown, "{", "}")
        value_type = t.value if isinstance(t, MapOf) else None
        if t == EMPTY_SET:
            value_type = None
        return _items([f"{printer.quote(k)}: {self.value(v[k], value_type)}" for k in sorted(v)], "{", "}")


def _items(items: list[str], open_: str, close: str) -> str:
    if len(items) > _MAX_ITEMS:
        items = [*items[:_MAX_ITEMS], f"... {len(items) - _MAX_ITEMS} more"]
    return open_ + ", ".join(items) + close


def _is_sensitive(node: n.Expr, types: dict[int, Type]) -> bool:
    if not isinstance(node, n.Attr):
        return False
    t = types.get(id(node.obj))
    record = t.record if isinstance(t, EntityType) else t
    if not isinstance(record, Record):
        return False
    f = record.get(node.name)
    return f is not None and f.sensitive


def _entity_ref(ref: str) -> str:
    etype, _, eid = ref.partition("::")
    return f"{etype}::{printer.quote(eid)}"


def _window(w: Window) -> str:
    days = ",".join(_DAY_NAMES[d] for d in sorted(w.days))
    start = f"{w.start_minute // 60:02d}:{w.start_minute % 60:02d}"
    end = f"{w.end_minute // 60:02d}:{w.end_minute % 60:02d}"
    return f"({days} {start}-{end} {w.zone})"


# ---- the decision, rebuilt from the traced results ----------------------------------------------


def _decide(
    engine: Engine,
    bucket: Bucket,
    outcomes: list[_Outcome],
    evaluated: list[bool],
    G: frozenset[str] | None,
    P: dict[str, Any],
    R: dict[str, Any],
    C: dict[str, Any],
    X: Scope,
) -> Decision:
    rules = bucket.rules
    revision = engine.revision
    counted = [i for i in range(len(rules)) if evaluated[i]]
    F = [i for i in counted if rules[i].effect == "forbid" and outcomes[i].matched]
    E = [(i, err) for i in counted if (err := outcomes[i].error) is not None]
    M = [i for i in counted if rules[i].effect != "forbid" and outcomes[i].matched]
    if F or E:
        errors = tuple(DecisionError(_describe(exc), rules[i].id) for i, exc in E)
        advice: list[dict[str, Any]] = []
        for i in F:
            if rules[i].advice_names:
                try:
                    _, values = bucket.outputs[i](P, R, C, X)
                except Exception:
                    continue
                advice += [
                    {"rule": rules[i].id, "name": name, "value": _json_value(v)}
                    for name, v in zip(rules[i].advice_names, values, strict=True)
                ]
        return Decision(False, tuple(rules[i].id for i in F), (), tuple(advice), errors, revision, bucket.uses_now)
    if not M and not G:
        return Decision(False, revision=revision, time_dependent=bucket.uses_now)
    obligations: list[dict[str, Any]] = []
    for i in M:
        rule = rules[i]
        obligations += [{"type": "mask", "path": path} for path in rule.masks]
        if rule.header_names:
            try:
                header_values, _ = bucket.outputs[i](P, R, C, X)
            except Exception as exc:
                return Decision(False, (), (), (), (DecisionError(_describe(exc), rule.id),), revision)
            obligations += [
                {"type": "header", "name": name, "value": _header_text(v)}
                for name, v in zip(rule.header_names, header_values, strict=True)
            ]
    reasons = [rules[i].id for i in M] + [f"role:{role}" for role in sorted(G or ())]
    return Decision(True, tuple(reasons), tuple(obligations), (), (), revision, bucket.uses_now)


# ---- text ----------------------------------------------------------------------------------


def format_explanation(result: Explanation) -> str:
    """The human-readable form of `explain`'s result."""
    out = []
    req = result["request"]
    decision = result["decision"]
    if req is not None:
        out.append(f"request: {req['principal']} {req['action']} {req['resource']} at {req['now']}")
    out.append(f"decision: {decision['decision']}")
    if decision["reasons"]:
        out.append(f"  reasons: {', '.join(decision['reasons'])}")
    for o in decision["obligations"]:
        shown = f"mask {o['path']}" if o["type"] == "mask" else f"header {o['name']} = {o['value']}"
        out.append(f"  obligation: {shown}")
    for a in decision["advice"]:
        out.append(f"  advice: {a['name']} = {json.dumps(a['value'])} (from {a['rule']})")
    for e in decision["errors"]:
        where = e.get("rule") or e.get("field")
        out.append(f"  error: {e['message']}" + (f" ({where})" if where else ""))
    if "engine_decision" in result:
        out.append(f"  WARNING: the engine decided differently: {result['engine_decision']}")
    bucket = result["bucket"]
    if req is None:
        out.append("the request is invalid, so no rule was considered")
        return "\n".join(out) + "\n"
    if bucket is None:
        out.append("no rule or role grant applies to this principal type, resource type and action: denied")
        return "\n".join(out) + "\n"
    roles = result["roles"]
    out.append(f"reads the clock: {'yes' if bucket['reads_clock'] else 'no'}")
    if roles["bindings"]:
        out.append(f"roles: held {_list(roles['held'])} (from {'; '.join(roles['bindings'])})")
    if roles["error"]:
        out.append(f"  roles could not be computed: {roles['error']}")
    if roles["declaring"]:
        out.append(
            f"role grants for {bucket['action']} on {bucket['resource_type']}: declared by "
            f"{_list(roles['declaring'])}; granting here: {_list(roles['granting'])}"
        )
    out.append(
        f"rules for principal {bucket['principal_type']}, resource {bucket['resource_type']}, "
        f"action {bucket['action']} (forbids first):"
    )
    for rule in result["rules"]:
        out += _rule_text(rule)
    return "\n".join(out) + "\n"


def _list(items: list[str]) -> str:
    return ", ".join(items) if items else "none"


def _rule_text(rule: dict[str, Any]) -> list[str]:
    if rule["error"]:
        status = f"ERROR {rule['error']}" + (f" at `{rule['error_at']}`" if rule["error_at"] else "")
    else:
        status = "MATCHED" if rule["matched"] else "not matched"
    if not rule["evaluated"]:
        status = f"skipped, a forbid already decided (evaluated anyway: {status})"
    out = [f"  #{rule['index'] + 1} {rule['effect']} {rule['id']} ({rule['location']}): {status}"]
    scope = rule["role_scope"]
    if scope is not None:
        out.append(
            f"      role {', '.join(scope['roles'])}: held {_list(scope['held'])} -> "
            f"{'true' if scope['satisfied'] else 'false'}"
        )
    for k, c in enumerate(rule["conditions"]):
        value = "not evaluated" if c["value"] is None else ("true" if c["value"] else "false")
        out.append(f"      {c['kind']} {c['text']} -> {value}")
        out += [f"        {cmp['line']}" for cmp in rule["comparisons"] if cmp["condition"] == k]
    return out
