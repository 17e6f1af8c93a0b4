"""Meaning checks over every file of a policy set, reporting all errors at once.

Builds the schema from the declarations, evaluates constants, closes the role hierarchy,
and types every rule in every (principal type, resource type) it can apply to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from policy_lang import nodes as n
from policy_lang.convert import ConversionError, converter
from policy_lang.errors import Diagnostic, PolicyCheckError
from policy_lang.routes import RouteTable, check_routes
from policy_lang.schema import (
    BOOL,
    DATETIME,
    DURATION,
    INT,
    IP,
    PRIMITIVES,
    STRING,
    EntityType,
    EnumType,
    Field,
    MapOf,
    Record,
    Schema,
    SetOf,
    Type,
)
from policy_lang.spans import Source
from policy_lang.typer import Env, Names, Typer, did_you_mean, facts_when, path_of
from policy_lang.values import Window, check_zone, parse_days, parse_hours


@dataclass(slots=True)
class CheckedRule:
    rule: n.Rule
    principal_types: tuple[str, ...]
    actions: dict[str, frozenset[str]]  # resource type -> actions this rule applies to
    types: dict[tuple[str, str], dict[int, Type]]  # (principal type, resource type) -> node types


@dataclass(slots=True)
class Binding:
    principal_type: str
    expr: n.Expr
    types: dict[str, dict[int, Type]]  # resource type -> node types, where the binding applies


@dataclass(slots=True)
class CheckedPolicySet:
    schema: Schema
    rules: tuple[CheckedRule, ...]
    roles: dict[str, n.RoleDecl]
    role_ancestors: dict[str, frozenset[str]]  # role -> itself and every role it inherits from
    grants: dict[tuple[str, str], frozenset[str]]  # (resource type, action) -> roles declaring it
    bindings: tuple[Binding, ...]
    constants: dict[str, tuple[Type, Any]]
    windows: dict[str, Window]
    enum_members: dict[str, EnumType]
    files: tuple[n.PolicyFile, ...] = ()
    sources: dict[str, Source] = field(default_factory=dict)
    routes: RouteTable = field(default_factory=RouteTable)


def check(
    files: Sequence[n.PolicyFile],
    *,
    constant_values: Mapping[str, Any] | None = None,
    sources: Mapping[str, Source] | None = None,
) -> CheckedPolicySet:
    """Check a whole policy set; raises PolicyCheckError with every problem found."""
    checker = _Checker(files, dict(constant_values or {}))
    result = checker.run()
    if checker.diagnostics:
        raise PolicyCheckError(checker.diagnostics, sources)
    result.sources = dict(sources or {})
    return result


class _Checker:
    def __init__(self, files: Sequence[n.PolicyFile], constant_values: dict[str, Any]):
        self.files = tuple(files)
        self.constant_values = constant_values
        self.diagnostics: list[Diagnostic] = []
        self.schema = Schema()
        self.names = Names()
        self.constants: dict[str, tuple[Type, Any]] = {}
        self.windows: dict[str, Window] = {}
        self.roles: dict[str, n.RoleDecl] = {}

    def items(self, kind: type) -> list[Any]:
        return [item for f in self.files for item in f.items if isinstance(item, kind)]

    def error(self, code: str, message: str, node: Any, help: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(code, message, node.span, help))

    def run(self) -> CheckedPolicySet:
        self.declare_enums()
        self.declare_entities()
        self.declare_context()
        self.declare_actions()
        self.declare_windows()
        self.declare_constants()
        ancestors = self.declare_roles()
        bindings = self.check_bindings()
        grants = self.check_grants(bindings)
        self.principal_types = self.schema.principal_types  # once: it scans every entity type
        rules = self.check_rules()
        routes = check_routes(self.items(n.RouteDecl), self.items(n.HttpDecl), self.schema, self.diagnostics)
        return CheckedPolicySet(
            self.schema,
            tuple(rules),
            self.roles,
            ancestors,
            grants,
            tuple(bindings),
            self.constants,
            self.windows,
            self.names.enum_members,
            self.files,
            routes=routes,
        )

    # ---- schema ----------------------------------------------------------------
    def claim_name(self, name: str, node: Any, taken: dict[str, Any]) -> bool:
        if name in taken:
            # Kinds of declaration are claimed in turn, not in source order: report the later one.
            first, second = sorted((taken[name], node), key=lambda d: (d.span.file, d.span.line, d.span.col))
            self.error(
                "duplicate_declaration", f"`{name}` is declared twice", second, f"first declared at {first.span}"
            )
            return False
        taken[name] = node
        return True

    def declare_enums(self) -> None:
        seen: dict[str, Any] = {}
        self.bare: dict[str, Any] = {}
        for decl in self.items(n.EnumDecl):
            if not self.claim_name(decl.name, decl, seen):
                continue
            members: dict[str, n.Ident] = {}
            for m in decl.members:
                if m.name in members:
                    self.error("duplicate_declaration", f"enum member `{m.name}` is listed twice", m)
                    continue
                members[m.name] = m
            enum = EnumType(decl.name, tuple(members), decl.ordered)
            self.schema.enums[decl.name] = enum
            for m in members.values():  # a member listed twice is reported once, above
                if self.claim_name(m.name, m, self.bare):
                    self.names.enum_members[m.name] = enum

    def resolve_type(self, t: n.TypeExpr) -> Type | None:
        if isinstance(t, n.NamedType):
            if t.name in PRIMITIVES:
                return PRIMITIVES[t.name]
            if t.name in self.schema.enums:
                return self.schema.enums[t.name]
            if t.name in self.entity_decls:
                self.error(
                    "type_error", f"entity type `{t.name}` cannot be an attribute type; store the id as a string", t
                )
                return None
            known = [*PRIMITIVES, *self.schema.enums, "set", "map"]
            self.error("unknown_type", f"unknown type `{t.name}`", t, did_you_mean(t.name, known))
            return None
        if isinstance(t, n.SetType):
            element = self.resolve_type(t.element)
            if isinstance(element, (Record, MapOf)):
                # Set members must be hashable values; a record or map in a set could never be loaded.
                kind = "a record" if isinstance(element, Record) else "a map"
                self.error("type_error", f"a set cannot hold {kind}", t.element)
                return None
            return None if element is None else SetOf(element)
        if isinstance(t, n.MapType):
            key = self.resolve_type(t.key)
            if key is not None and key != STRING:
                self.error("type_error", f"map keys must be strings, found {key}", t.key)
                return None
            value = self.resolve_type(t.value)
            return None if value is None or key is None else MapOf(value)
        return self.resolve_record(t.attrs)

    def resolve_record(self, attrs: Sequence[n.AttrDecl], into: dict[str, Field] | None = None) -> Record:
        fields: dict[str, Field] = dict(into or {})
        spans: dict[str, Any] = {}
        for a in attrs:
            if not self.claim_name(a.name, a, spans) or a.name in fields:
                if a.name in fields and a.name not in spans:
                    self.error("duplicate_declaration", f"attribute `{a.name}` is declared twice", a)
                continue
            if a.name == "id":
                self.error("duplicate_declaration", "`id` is built in; every entity has one", a)
                continue
            t = self.resolve_type(a.type)
            if t is not None:
                fields[a.name] = Field(a.name, t, a.optional, a.sensitive)
        return Record(tuple(fields.values()))

    def declare_entities(self) -> None:
        self.entity_decls: dict[str, n.EntityDecl] = {}
        for decl in self.items(n.EntityDecl):
            self.claim_name(decl.name, decl, self.entity_decls)
        for name, decl in self.entity_decls.items():
            for p in decl.parents:
                if p.name not in self.entity_decls:
                    self.error(
                        "unknown_type", f"unknown entity type `{p.name}`", p, did_you_mean(p.name, self.entity_decls)
                    )
            self.schema.entities[name] = EntityType(
                name, self.resolve_record(decl.attrs), tuple(p.name for p in decl.parents), decl.is_principal
            )

    def declare_context(self) -> None:
        fields: dict[str, Field] = {}
        for decl in self.items(n.ContextDecl):
            fields = {f.name: f for f in self.resolve_record(decl.attrs, fields).fields}
        self.schema.context = Record(tuple(fields.values()))

    def declare_actions(self) -> None:
        for decl in self.items(n.ActionsDecl):
            rtype = decl.resource_type.name
            if rtype not in self.schema.entities:
                self.error(
                    "unknown_type",
                    f"unknown entity type `{rtype}`",
                    decl.resource_type,
                    did_you_mean(rtype, self.schema.entities),
                )
                continue
            have = set(self.schema.actions.get(rtype, frozenset()))
            for a in decl.actions:
                if a.name in have:
                    self.error("duplicate_declaration", f"action `{a.name}` is declared twice for `{rtype}`", a)
                have.add(a.name)
            self.schema.actions[rtype] = frozenset(have)

    def declare_windows(self) -> None:
        for decl in self.items(n.WindowDecl):
            if not self.claim_name(decl.name, decl, self.bare):
                continue
            values = {"days": "mon-sun", "hours": "00:00-24:00", "zone": "UTC"}
            ok = True
            for f in decl.fields:
                if f.name not in values:
                    self.error(
                        "invalid_window", f"unknown window field `{f.name}`", f, "use `days`, `hours` and `zone`"
                    )
                    ok = False
                    continue
                try:
                    {"days": parse_days, "hours": parse_hours, "zone": check_zone}[f.name](f.value)  # type: ignore[operator]
                except ValueError as exc:
                    self.error("invalid_window", str(exc), f)
                    ok = False
                values[f.name] = f.value
            if ok:
                start, end = parse_hours(values["hours"])
                self.windows[decl.name] = Window(parse_days(values["days"]), start, end, values["zone"])
                self.names.windows.add(decl.name)

    # ---- constants -------------------------------------------------------------
    def declare_constants(self) -> None:
        for decl in self.items(n.ConstDecl):
            if not self.claim_name(decl.name, decl, self.bare):
                continue
            declared = self.resolve_type(decl.type) if decl.type is not None else None
            if decl.type is not None and declared is None:
                continue
            if decl.value is None:
                if declared is None:
                    self.error("type_error", f"constant `{decl.name}` needs a type or a value", decl)
                    continue
                self.external_constant(decl, declared)
                continue
            result = self.constant_value(decl.value, declared)
            if result is not None:
                self.constants[decl.name] = result
                self.names.constants[decl.name] = result[0]

    def external_constant(self, decl: n.ConstDecl, declared: Type) -> None:
        if decl.name not in self.constant_values:
            self.error(
                "missing_constant",
                f"constant `{decl.name}` has no value",
                decl,
                'give it a value here or under "constants" in a data file',
            )
            return
        try:
            value = converter(declared)(self.constant_values[decl.name])
        except ConversionError as exc:
            self.error("invalid_data", f"{exc.path('constants.' + decl.name)}: {exc.message}", decl)
            return
        self.constants[decl.name] = (declared, value)
        self.names.constants[decl.name] = declared

    def constant_value(self, expr: n.Expr, declared: Type | None) -> tuple[Type, Any] | None:
        """Evaluate a constant expression; string literals take the declared type (ip, enum...)."""
        as_json = _literal_json(expr)
        if declared is not None and as_json is not _NOT_JSON:
            try:
                return declared, converter(declared)(as_json)
            except ConversionError as exc:
                self.error("invalid_literal", exc.message, expr)
                return None
        value = self.evaluate(expr)
        if value is None:
            return None
        if declared is not None and value[0] != declared:
            self.error("type_error", f"constant is declared {declared} but its value is {value[0]}", expr)
            return None
        return value

    def evaluate(self, expr: n.Expr) -> tuple[Type, Any] | None:
        if isinstance(expr, n.Lit):
            return {"string": STRING, "int": INT, "bool": BOOL, "duration": DURATION}[expr.kind], expr.value
        if isinstance(expr, n.Name) and expr.name in self.constants:
            return self.constants[expr.name]
        if isinstance(expr, n.Name) and expr.name in self.names.enum_members:
            enum = self.names.enum_members[expr.name]
            return enum, enum.rank(expr.name)
        if isinstance(expr, n.Call) and expr.name in ("ip", "datetime", "duration") and len(expr.args) == 1:
            arg = expr.args[0]
            target = {"ip": IP, "datetime": DATETIME, "duration": DURATION}[expr.name]
            if isinstance(arg, n.Lit) and arg.kind == "string":
                try:
                    return target, converter(target)(arg.value)
                except ConversionError as exc:
                    self.error("invalid_literal", exc.message, arg)
                    return None
        if isinstance(expr, n.SetLit):
            items = [self.evaluate(i) for i in expr.items]
            if any(i is None for i in items):
                return None
            types = {i[0] for i in items if i is not None}
            if len(types) > 1:
                self.error("type_error", "set elements must share one type", expr)
                return None
            if not types:
                self.error("type_error", "an empty constant needs a type: `list name: T = [];`", expr)
                return None
            return SetOf(types.pop()), frozenset(i[1] for i in items if i is not None)
        self.error("not_constant", "a constant's value must be made of literals and other constants", expr)
        return None

    # ---- RBAC ------------------------------------------------------------------
    def declare_roles(self) -> dict[str, frozenset[str]]:
        for decl in self.items(n.RoleDecl):
            self.claim_name(decl.name, decl, self.roles)
        self.names.roles = set(self.roles)
        for decl in self.roles.values():
            for parent in decl.extends:
                if parent.name not in self.roles:
                    self.error(
                        "unknown_role", f"unknown role `{parent.name}`", parent, did_you_mean(parent.name, self.roles)
                    )
        cycle = self.find_role_cycle()
        if cycle:
            self.error("role_cycle", "role inheritance cycle: " + " -> ".join(cycle), self.roles[cycle[0]])
            return {r: frozenset({r}) for r in self.roles}
        ancestors: dict[str, frozenset[str]] = {}

        def close(role: str) -> frozenset[str]:
            if role not in ancestors:
                found = {role}
                for parent in self.roles[role].extends:
                    if parent.name in self.roles:
                        found |= close(parent.name)
                ancestors[role] = frozenset(found)
            return ancestors[role]

        for role in self.roles:
            close(role)
        return ancestors

    def find_role_cycle(self) -> list[str] | None:
        state: dict[str, int] = {}
        stack: list[str] = []

        def visit(role: str) -> list[str] | None:
            state[role] = 1
            stack.append(role)
            for parent in self.roles[role].extends:
                p = parent.name
                if p not in self.roles:
                    continue
                if state.get(p) == 1:
                    return [*stack[stack.index(p) :], p]
                if p not in state:
                    found = visit(p)
                    if found:
                        return found
            stack.pop()
            state[role] = 2
            return None

        for role in sorted(self.roles):
            if role not in state:
                found = visit(role)
                if found:
                    return found
        return None

    def check_grants(self, bindings: Sequence[Binding]) -> dict[tuple[str, str], frozenset[str]]:
        grants: dict[tuple[str, str], set[str]] = {}
        bound = {rtype for b in bindings for rtype in b.types}
        for decl in self.roles.values():
            for g in decl.grants:
                for rt in g.resource_types:
                    if not self.known_resource(rt):
                        continue
                    if bindings and rt.name not in bound:
                        # Roles are only ever held through a binding; one that does not type here confers none.
                        why = self.binding_failures.get(rt.name)
                        self.error(
                            "never_applies",
                            f"no role binding applies to `{rt.name}`, so this grant never takes effect",
                            rt,
                            f"the role binding fails for `{rt.name}`: {why.message}" if why else None,
                        )
                        continue
                    for a in g.actions:
                        if self.valid_action(a, [rt.name]):
                            grants.setdefault((rt.name, a.name), set()).add(decl.name)
        return {k: frozenset(v) for k, v in grants.items()}

    def known_resource(self, ident: n.Ident) -> bool:
        if ident.name not in self.schema.entities:
            self.error(
                "unknown_type",
                f"unknown entity type `{ident.name}`",
                ident,
                did_you_mean(ident.name, self.schema.entities),
            )
            return False
        if not self.schema.actions.get(ident.name):
            self.error(
                "never_applies",
                f"`{ident.name}` has no actions, so nothing can be done to it",
                ident,
                f"declare them: `actions {ident.name} {{ ... }}`",
            )
            return False
        return True

    def valid_action(self, action: n.Ident, resource_types: Sequence[str]) -> bool:
        if any(action.name in self.schema.actions.get(rt, ()) for rt in resource_types):
            return True
        everywhere = self.schema.all_actions()
        if action.name not in everywhere:
            self.error(
                "unknown_action", f"unknown action `{action.name}`", action, did_you_mean(action.name, everywhere)
            )
        else:
            shown = ", ".join(f"`{rt}`" for rt in resource_types)
            valid = sorted(frozenset().union(*(self.schema.actions.get(rt, frozenset()) for rt in resource_types)))
            self.error(
                "never_applies",
                f"action `{action.name}` is not valid for {shown}",
                action,
                f"valid actions: {', '.join(valid)}" if valid else None,
            )
        return False

    def check_bindings(self) -> list[Binding]:
        bindings = []
        self.binding_failures: dict[str, Diagnostic] = {}  # resource type -> why a binding does not apply
        for decl in self.items(n.BindingDecl):
            ptype = decl.principal_type.name
            if ptype not in self.schema.entities:
                self.error(
                    "unknown_type",
                    f"unknown entity type `{ptype}`",
                    decl.principal_type,
                    did_you_mean(ptype, self.schema.entities),
                )
                continue
            if ptype not in self.schema.principal_types:
                # Forbids without a principal clause would not cover the roles this binding confers.
                self.error(
                    "not_principal", f"`{ptype}` is not a principal type", decl.principal_type,
                    f"declare it `principal entity {ptype}` so that every forbid covers it",
                )  # fmt: skip
            applies: dict[str, dict[int, Type]] = {}
            first_errors: list[Diagnostic] | None = None
            for rtype in self.schema.resource_types:
                diags: list[Diagnostic] = []
                typer = Typer(
                    self.schema, self.names, Env(self.schema.entities[ptype], self.schema.entities[rtype]), diags
                )
                t = typer.check(decl.expr)
                if t is not None and t != SetOf(STRING):
                    diags.append(
                        Diagnostic("type_error", f"role bindings must be set<string>, found {t}", decl.expr.span)
                    )
                if diags:
                    first_errors = first_errors or diags
                    self.binding_failures.setdefault(rtype, diags[0])
                    continue
                applies[rtype] = typer.types
            if not applies:
                self.diagnostics.extend(first_errors or [])
                continue
            bindings.append(Binding(ptype, decl.expr, applies))
        return bindings

    # ---- rules -----------------------------------------------------------------
    def check_rules(self) -> list[CheckedRule]:
        seen: dict[str, Any] = {}
        checked = []
        for rule in self.items(n.Rule):
            if rule.qualified_id in seen:
                self.error(
                    "duplicate_rule",
                    f"rule `{rule.qualified_id}` is declared twice",
                    rule.id,
                    f"first declared at {seen[rule.qualified_id].span}",
                )
                continue
            seen[rule.qualified_id] = rule.id
            result = self.check_rule(rule)
            if result is not None:
                checked.append(result)
        return checked

    def check_rule(self, rule: n.Rule) -> CheckedRule | None:
        ok = True
        for p in rule.principals:
            if p.name not in self.schema.entities:
                self.error(
                    "unknown_type", f"unknown entity type `{p.name}`", p, did_you_mean(p.name, self.schema.entities)
                )
                ok = False
            elif p.name not in self.principal_types:
                # Forbids without a principal clause cover the principal types only; a rule
                # for another type would let its requests slip past them.
                self.error(
                    "not_principal",
                    f"`{p.name}` is not a principal type",
                    p,
                    f"declare it `principal entity {p.name}` so that every forbid covers it",
                )
                ok = False
        for r in rule.roles:
            if r.name not in self.roles:
                self.error("unknown_role", f"unknown role `{r.name}`", r, did_you_mean(r.name, self.roles))
                ok = False
        if rule.resources:
            rtypes = [r.name for r in rule.resources if self.known_resource(r)]
            if len(rtypes) != len(rule.resources):
                return None
        else:
            rtypes = [
                rt
                for rt in self.schema.resource_types
                if not rule.actions or any(a.name in self.schema.actions[rt] for a in rule.actions)
            ]
        for a in rule.actions:
            ok = self.valid_action(a, rtypes or self.schema.resource_types) and ok
        if not ok:
            return None
        wanted = {a.name for a in rule.actions}
        actions = {rt: (self.schema.actions[rt] & wanted if wanted else self.schema.actions[rt]) for rt in rtypes}
        actions = {rt: acts for rt, acts in actions.items() if acts}
        ptypes = tuple(p.name for p in rule.principals) or self.principal_types
        types: dict[tuple[str, str], dict[int, Type]] = {}
        for ptype in ptypes:
            for rtype in actions:
                env = Env(self.schema.entities[ptype], self.schema.entities[rtype])
                typed = self.type_rule(rule, env)
                if typed is None:
                    ok = False
                else:
                    types[(ptype, rtype)] = typed
        return CheckedRule(rule, ptypes, actions, types) if ok else None

    def type_rule(self, rule: n.Rule, env: Env) -> dict[int, Type] | None:
        before = len(self.diagnostics)
        typer = Typer(self.schema, self.names, env, self.diagnostics)
        facts: frozenset[tuple[str, ...]] = frozenset()
        for cond in rule.conditions:
            t = typer.check(cond.expr, facts)
            if t is not None and t != BOOL:
                article = "an" if cond.kind == "unless" else "a"
                self.error("type_error", f"{article} `{cond.kind}` condition must be bool, found {t}", cond.expr)
            facts = facts | facts_when(cond.expr, cond.kind == "when")
        for ob in rule.obligations:
            if isinstance(ob, n.Mask):
                for target in ob.targets:
                    self.check_mask_target(target, env)
            else:
                if not _HEADER_NAME.fullmatch(ob.name):
                    self.error("invalid_literal", f"`{ob.name}` is not a valid HTTP header name", ob)
                t = typer.check(ob.value, facts)
                if t is not None and not (t in (STRING, INT, BOOL) or isinstance(t, EnumType)):
                    self.error("type_error", f"a header value must be a string, int, bool or enum, found {t}", ob.value)
        for item in rule.advice:
            typer.check(item.value, facts)
        return typer.types if len(self.diagnostics) == before else None

    def check_mask_target(self, target: n.Expr, env: Env) -> None:
        path = path_of(target)
        if path is None or len(path) < 2 or path[0] == "now":
            self.error("type_error", "`mask` takes attribute paths such as `resource.ssn`", target)
            return
        record: Any = {
            "principal": env.principal.record,
            "resource": env.resource.record,
            "context": self.schema.context,
        }[path[0]]
        for name in path[1:]:
            if not isinstance(record, Record) or record.get(name) is None:
                names = [f.name for f in record.fields] if isinstance(record, Record) else []
                self.error(
                    "unknown_attribute",
                    f"no attribute `{name}` to mask in `{'.'.join(path)}`",
                    target,
                    did_you_mean(name, names),
                )
                return
            record = record.get(name).type  # type: ignore[union-attr]
            if isinstance(record, EntityType):
                record = record.record


_NOT_JSON = object()
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _literal_json(expr: n.Expr) -> Any:
    """A literal or a set of literals as the JSON a data file would carry, else _NOT_JSON."""
    if isinstance(expr, n.Lit) and expr.kind in ("string", "int", "bool"):
        return expr.value
    if isinstance(expr, n.SetLit):
        items = [_literal_json(i) for i in expr.items]
        return _NOT_JSON if any(i is _NOT_JSON for i in items) else items
    return _NOT_JSON
