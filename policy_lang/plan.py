"""The compiled decision tree for one resource type and action, as text.

One section per principal type: the role grants that can allow (the roles declaring the
grant and every role that confers them through inheritance), then the forbids, which are
evaluated first, and the permits, in the order the generated code evaluates them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from policy_lang import nodes as n
from policy_lang import printer
from policy_lang.typer import did_you_mean

if TYPE_CHECKING:
    from policy_lang.checker import CheckedPolicySet
    from policy_lang.compiler import Bucket, CompiledPolicy, CompiledRule


class PlanError(ValueError):
    """The resource type or action named is not in the schema."""


def render_plan(compiled: CompiledPolicy, resource_type: str, action: str) -> str:
    checked = compiled.checked
    schema = checked.schema
    if resource_type not in schema.entities:
        hint = did_you_mean(resource_type, schema.entities)
        known = ", ".join(sorted(schema.resource_types)) or "none"
        raise PlanError(
            f"unknown resource type `{resource_type}`" + (f"; {hint}" if hint else "") + f" (resource types: {known})"
        )
    actions = schema.actions.get(resource_type, frozenset())
    if not actions:
        raise PlanError(f"`{resource_type}` has no actions, so nothing can be done to it")
    if action not in actions:
        hint = did_you_mean(action, actions)
        raise PlanError(
            f"action `{action}` is not valid for `{resource_type}`"
            + (f"; {hint}" if hint else "")
            + f" (valid actions: {', '.join(sorted(actions))})"
        )
    out = [f"plan for {resource_type}.{action} (revision {compiled.revision})"]
    for ptype in schema.principal_types:
        out.append("")
        bucket = compiled.buckets.get((ptype, resource_type, action))
        out += _bucket_lines(compiled, ptype, resource_type, action, bucket)
    return "\n".join(out) + "\n"


def _bucket_lines(compiled: CompiledPolicy, ptype: str, rtype: str, action: str, bucket: Bucket | None) -> list[str]:
    out = [f"principal {ptype}, resource {rtype}, action {action}"]
    if bucket is None:
        out.append("  no rule or role grant applies: always denied")
        return out
    out.append(f"  reads the clock: {'yes' if bucket.uses_now else 'no'}")
    out += _grant_lines(compiled, ptype, rtype, bucket)
    forbids = [(i, r) for i, r in enumerate(bucket.rules) if r.effect == "forbid"]
    permits = [(i, r) for i, r in enumerate(bucket.rules) if r.effect != "forbid"]
    out.append("  forbids (evaluated first; a match or an error denies):")
    out += [line for i, r in forbids for line in _rule_lines(compiled.checked, ptype, rtype, i, r)] or ["    none"]
    out.append("  permits (evaluated when no forbid matched; a match allows):")
    out += [line for i, r in permits for line in _rule_lines(compiled.checked, ptype, rtype, i, r)] or ["    none"]
    return out


def conferring_roles(checked: CheckedPolicySet, role: str) -> list[str]:
    """`role` and every role that inherits it, so holding any of them confers it."""
    return sorted(r for r, ancestors in checked.role_ancestors.items() if role in ancestors)


def _grant_lines(compiled: CompiledPolicy, ptype: str, rtype: str, bucket: Bucket) -> list[str]:
    checked = compiled.checked
    if not bucket.grants:
        return ["  role grants: none"]
    out = ["  role grants (a held role allows unless a forbid matches):"]
    for role in sorted(bucket.grants):
        others = [r for r in conferring_roles(checked, role) if r != role]
        via = f"; also conferred by {', '.join(others)}" if others else ""
        out.append(f"    {role}: declares the grant{via}")
    bindings = [b for b in checked.bindings if b.principal_type == ptype and rtype in b.types]
    if (ptype, rtype) in compiled.role_functions and bindings:
        for b in bindings:
            out.append(f"    held roles come from: roles of {ptype} from {printer.expr(b.expr)};")
    else:
        out.append(f"    no `roles of {ptype}` binding applies here, so these grants never allow")
    return out


def location(rule: n.Rule) -> str:
    """`file:line` of the rule's `permit`/`forbid` line."""
    span = rule.id.span if rule.id.span.line else rule.span
    return f"{span.file}:{span.line}"


def _rule_lines(checked: CheckedPolicySet, ptype: str, rtype: str, index: int, compiled: CompiledRule) -> list[str]:
    rule = compiled.checked.rule
    out = [f"    #{index + 1} {compiled.id}  {location(rule)}"]
    if rule.roles:
        holders = sorted({h for r in rule.roles for h in conferring_roles(checked, r.name)})
        out.append(f"         role {', '.join(r.name for r in rule.roles)} (held through {', '.join(holders)})")
    for c in rule.conditions:
        out.append(f"         {printer.condition(c)}")
    if not rule.roles and not rule.conditions:
        out.append("         always")
    for o in rule.obligations:
        out.append(f"         obligation: {printer.obligation(o).rstrip(';')}")
    for a in rule.advice:
        out.append(f"         advice: {a.name} = {printer.expr(a.value)}")
    return out
