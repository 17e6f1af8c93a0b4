"""Checked policy set -> decision tree.

The tree's first level is a hash index on (principal type, resource type, action);
each leaf is one generated function that evaluates only the rules that can apply
there, forbids first. Role hierarchies and constant sets are closed here, once.

A leaf's code is generated when the leaf is first used (or when `warm()` asks for all of
them, as the server does before it swaps a new policy in): a policy of thousands of
rules over many types then loads without generating code nobody calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from policy_lang import nodes as n
from policy_lang.checker import CheckedPolicySet, CheckedRule
from policy_lang.codegen import Constants, ExprCompiler
from policy_lang.printer import walk
from policy_lang.runtime import role_closer
from policy_lang.sandbox import run
from policy_lang.schema import EnumType, MapOf, Record, SetOf, Type
from policy_lang.spans import Span
from policy_lang.typer import path_of

BucketKey = tuple[str, str, str]  # principal type, resource type, action


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    effect: str
    span: Span
    masks: tuple[str, ...]
    header_names: tuple[str, ...]
    advice_names: tuple[str, ...]
    checked: CheckedRule = field(compare=False, repr=False)


class Bucket:
    """One leaf of the tree: the rules that can decide (principal type, resource type, action)."""

    __slots__ = (
        "key", "rules", "decide", "_outputs", "grants", "uses_now", "uses_roles", "header_mask", "advice_mask",
        "source", "_build", "_lock", "_failure", "memo",
    )  # fmt: skip

    def __init__(
        self,
        key: BucketKey,
        rules: tuple[CompiledRule, ...],
        grants: frozenset[str],
        uses_now: bool,
        uses_roles: bool,
        build: Callable[[Bucket], tuple[Callable[..., Any], dict[int, Callable[..., Any]], str]],
    ):
        self.key = key
        self.rules = rules  # forbids first; indices match the generated code
        self.grants = grants  # roles whose grants cover this resource type and action
        self.uses_now = uses_now
        self.uses_roles = uses_roles
        self.header_mask = sum(1 << i for i, r in enumerate(rules) if r.header_names)
        self.advice_mask = sum(1 << i for i, r in enumerate(rules) if r.advice_names)
        self.source = ""
        self._build = build
        self._lock = threading.Lock()
        self._outputs: dict[int, Callable[..., Any]] | None = None
        self._failure: Exception | None = None
        # The decider's answers by outcome key (see `emit_bucket`), looked up by the generated code
        # itself; the decider fills and bounds it.
        self.memo: dict[Any, Any] = {}
        # Until first used, `decide` builds the real function and puts it in its own place.
        self.decide: Callable[..., Any] = self._first_decide

    def _first_decide(self, P: Any, R: Any, C: Any, X: Any) -> Any:
        self.materialize()
        return self.decide(P, R, C, X)

    def materialize(self) -> None:
        """Generate this leaf's code. A failure is remembered: it is raised again, not rebuilt, each time."""
        with self._lock:
            if self._failure is not None:
                raise self._failure.with_traceback(None)
            if self._outputs is None:
                try:
                    decide, outputs, source = self._build(self)
                except Exception as exc:
                    self._failure = exc
                    self.decide = self._failed
                    raise
                self.source = source
                self._outputs = outputs
                self.decide = decide

    def _failed(self, P: Any, R: Any, C: Any, X: Any) -> Any:
        assert self._failure is not None
        raise self._failure.with_traceback(None)  # a fresh traceback: none piles up

    @property
    def outputs(self) -> dict[int, Callable[..., Any]]:
        """Rule index -> function giving that rule's header and advice values."""
        if self._outputs is None:
            self.materialize()
        assert self._outputs is not None
        return self._outputs


class KeptAnswers:
    """Bounds the answers kept in all of one policy's bucket memos together: past the limit,
    every memo is emptied (a policy of thousands of leaves must not keep thousands of answers
    in each). Whoever decides fills the memos through `keep`."""

    __slots__ = ("limit", "_lock", "_holding", "_size")

    def __init__(self, limit: int = 4096):
        self.limit = limit
        self._lock = threading.Lock()
        self._holding: list[Bucket] = []
        self._size = 0

    def keep(self, bucket: Bucket, key: Any, answer: Any) -> None:
        with self._lock:
            if self._size >= self.limit:
                for held in self._holding:
                    held.memo.clear()
                self._holding.clear()
                self._size = 0
            if not bucket.memo:
                self._holding.append(bucket)
            bucket.memo[key] = answer
            self._size += 1


@dataclass(slots=True)
class CompiledPolicy:
    revision: str
    checked: CheckedPolicySet
    buckets: dict[BucketKey, Bucket]
    role_functions: dict[tuple[str, str], Callable[..., Any]]
    role_source: str = ""
    # Headers some rule fills from a `sensitive` attribute: their values are masked in decision logs.
    sensitive_headers: frozenset[str] = frozenset()
    sensitive_advice: frozenset[str] = frozenset()  # the same, for advice
    kept: KeptAnswers = field(default_factory=KeptAnswers)

    def warm(self) -> None:
        """Generate every leaf's code now, e.g. before a server starts serving this policy."""
        for bucket in self.buckets.values():
            bucket.materialize()

    @property
    def source(self) -> str:
        """All the generated code (generating what is still missing)."""
        self.warm()
        return self.role_source + "".join(b.source for b in self.buckets.values())

    def plan(self, resource_type: str, action: str) -> str:
        from policy_lang.plan import render_plan

        return render_plan(self, resource_type, action)


def enum_renderer(t: Type) -> Callable[[Any], Any] | None:
    """A function turning enum ranks inside a value of type `t` back into member names."""
    if isinstance(t, EnumType):
        members = t.members
        return lambda rank: members[rank]
    if isinstance(t, SetOf):
        element = enum_renderer(t.element)
        if element is None:
            return None
        return lambda s: frozenset(element(v) for v in s)
    if isinstance(t, MapOf):
        value = enum_renderer(t.value)
        if value is None:
            return None
        return lambda m: {k: value(v) for k, v in m.items()}
    if isinstance(t, Record):
        fields = {f.name: r for f in t.fields if (r := enum_renderer(f.type)) is not None}
        if not fields:
            return None
        return lambda rec: {k: (fields[k](v) if k in fields else v) for k, v in rec.items()}
    return None


def compile_policy(checked: CheckedPolicySet, revision: str) -> CompiledPolicy:
    return _Compiler(checked).build(revision)


class _Compiler:
    def __init__(self, checked: CheckedPolicySet):
        self.checked = checked
        self.k = Constants()
        self.lines: list[str] = []
        self.close_roles = self.k.ref(role_closer(checked.role_ancestors))
        self._codegen_lock = threading.Lock()
        self._facts: dict[int, tuple[CompiledRule, bool, bool]] = {}

    def constant_value(self, name: str) -> Any:
        c = self.checked
        if name in c.constants:
            return c.constants[name][1]
        if name in c.windows:
            return c.windows[name]
        return c.enum_members[name].rank(name)

    def expr_compiler(self, types: dict[int, Type]) -> ExprCompiler:
        return ExprCompiler(self.k, types, self.constant_value)

    def build(self, revision: str) -> CompiledPolicy:
        role_fn_names = self.emit_role_functions()
        role_source = "\n".join(self.lines) + "\n"
        namespace = run(role_source, self.k.values, {})
        role_functions = {env: namespace[name] for env, name in role_fn_names.items()}
        role_globals = {name: namespace[name] for name in role_fn_names.values()}
        buckets = {}
        for number, (key, rules) in enumerate(sorted(self.index().items())):
            buckets[key] = self.plan_bucket(number, key, rules, role_fn_names, role_globals)
        headers, advice = self.sensitive_outputs()
        return CompiledPolicy(revision, self.checked, buckets, role_functions, role_source, headers, advice)

    def sensitive_outputs(self) -> tuple[frozenset[str], frozenset[str]]:
        """Header obligations and advice whose value reads an attribute declared `sensitive` anywhere
        (by name: the same attribute name may be sensitive on one type and not another; mask either way)."""
        schema = self.checked.schema
        sensitive = {f.name for e in schema.entities.values() for f in e.record.fields if f.sensitive}
        sensitive |= {f.name for f in schema.context.fields if f.sensitive}
        headers: set[str] = set()
        advice: set[str] = set()

        def reads_sensitive(e: n.Expr) -> bool:
            return any(isinstance(node, n.Attr) and node.name in sensitive for node in walk(e))

        for rule in self.checked.rules:
            for ob in rule.rule.obligations:
                if isinstance(ob, n.SetHeader) and reads_sensitive(ob.value):
                    headers.add(ob.name)
            advice.update(item.name for item in rule.rule.advice if reads_sensitive(item.value))
        return frozenset(headers), frozenset(advice)

    def plan_bucket(
        self,
        number: int,
        key: BucketKey,
        rules: list[CheckedRule],
        role_fns: dict[tuple[str, str], str],
        role_globals: dict[str, Any],
    ) -> Bucket:
        """What is known without generating code; the code comes on first use (`build`)."""
        ptype, rtype, action = key
        grants = self.checked.grants.get((rtype, action), frozenset())
        uses_now = uses_roles = False
        compiled = []
        for rule in rules:
            facts = self.rule_facts(rule)
            uses_now |= facts[1]
            uses_roles |= facts[2]
            compiled.append(facts[0])
        uses_roles |= bool(grants) and (ptype, rtype) in role_fns

        def build(bucket: Bucket) -> tuple[Callable[..., Any], dict[int, Callable[..., Any]], str]:
            with self._codegen_lock:  # emit_bucket writes to self.k and self.lines
                self.k, self.lines = Constants(), []
                outputs = self.emit_bucket(number, bucket, rules, role_fns)
                source, constants = "\n".join(self.lines) + "\n", self.k.values
            namespace = run(source, constants, role_globals)
            return namespace[f"b{number}"], {i: namespace[name] for i, name in outputs.items()}, source

        return Bucket(key, tuple(compiled), grants, uses_now, uses_roles, build)

    def index(self) -> dict[BucketKey, list[CheckedRule]]:
        """Every (principal type, resource type, action) that some rule or grant can decide."""
        index: dict[BucketKey, list[CheckedRule]] = {}
        for rule in self.checked.rules:
            for rtype, actions in rule.actions.items():
                for ptype in rule.principal_types:
                    for action in actions:
                        index.setdefault((ptype, rtype, action), []).append(rule)
        for rtype, action in self.checked.grants:
            for binding in self.checked.bindings:
                if rtype in binding.types:
                    index.setdefault((binding.principal_type, rtype, action), [])
        for rules in index.values():
            rules.sort(key=lambda r: r.rule.effect != "forbid")
        return index

    # ---- roles -------------------------------------------------------------------
    def emit_role_functions(self) -> dict[tuple[str, str], str]:
        by_env: dict[tuple[str, str], list[tuple[n.Expr, dict[int, Type]]]] = {}
        for binding in self.checked.bindings:
            for rtype, types in binding.types.items():
                by_env.setdefault((binding.principal_type, rtype), []).append((binding.expr, types))
        names = {}
        for number, (env, exprs) in enumerate(sorted(by_env.items())):
            name = f"ROLES{number}"
            names[env] = name
            self.lines.append(f"def {name}(P, R, C, X):")
            # A missing key (no roles in this tenant) confers nothing rather than failing.
            if len(exprs) == 1:
                expr, types = exprs[0]
                self.lines += [
                    "    try:",
                    f"        return {self.close_roles}({self.binding(expr, types)})",
                    "    except LookupError:",
                    f"        return {self.k.ref(frozenset())}",
                ]
                continue
            self.lines.append("    H = set()")
            for expr, types in exprs:
                self.lines += [
                    "    try:",
                    f"        H.update({self.binding(expr, types)})",
                    "    except LookupError:",
                    "        pass",
                ]
            self.lines.append(f"    return {self.close_roles}(frozenset(H))")
        return names

    def binding(self, expr: n.Expr, types: dict[int, Type]) -> str:
        """A role binding's held roles. The usual binding picks a tenant's roles from a map
        (`principal.roles[resource.tenant]`); a tenant the principal has no roles in is read with
        `get`, because raising and catching a KeyError costs more than the rest of a decision."""
        ec = self.expr_compiler(types)
        if isinstance(expr, n.Index):
            return f"{ec.expr(expr.obj)}.get({ec.expr(expr.key)}, {self.k.ref(frozenset())})"
        return ec.expr(expr)

    # ---- buckets -----------------------------------------------------------------
    def emit_bucket(
        self, number: int, bucket: Bucket, rules: list[CheckedRule], role_fns: dict[tuple[str, str], str]
    ) -> dict[int, str]:
        """The leaf's function into self.lines; returns rule index -> name of its output function.

        The function returns the decider's kept answer for this outcome when there is one (see
        `Bucket.memo`), else `(F, M, E, G, K)`: bit masks of the matching forbids and permits, the
        errors, the granting roles held, and the key to keep the answer under (None: do not keep)."""
        ptype, rtype, _ = bucket.key
        grants = bucket.grants
        body: list[str] = []
        outputs: dict[int, str] = {}
        memo = self.k.ref(bucket.memo)
        permits_started = False
        for i, rule in enumerate(rules):
            r = rule.rule
            ec = self.expr_compiler(rule.types[(ptype, rtype)])
            if r.effect == "permit" and not permits_started:  # forbids come first
                permits_started = True
                body += self.deny_exit(bucket.rules, outputs, memo)
            cond = self.condition(r, ec)
            target = "F" if r.effect == "forbid" else "M"
            # Matches are bits of an int: cheap to set, and a ready-made key for the memo.
            body += [
                "    try:",
                f"        if {cond}:",
                f"            {target} |= {1 << i}",
                "    except Exception as e:",
                f"        E.append(({i}, e))",
            ]
            out_name = self.emit_outputs(number, i, r, ec)
            if out_name:
                outputs[i] = out_name
        if not permits_started:
            body += self.deny_exit(bucket.rules, outputs, memo)
        # RL is closed under inheritance, so it meets the declaring roles whenever any held role
        # confers them. Each granting role held is a bit of the key above the rules' bits.
        grant_code = "None"
        body.append("    K = M")
        if grants and (ptype, rtype) in role_fns:
            grant_code = f"(RL & {self.k.ref(grants)})"
            for j, role in enumerate(sorted(grants)):
                body += [f"    if {self.k.ref(role)} in RL:", f"        K |= {1 << (len(rules) + j)}"]
        miss = f"F, M, E, {grant_code}"
        body += ["    if E:", f"        return {miss}, None"]
        # Header values are part of the key: the answer carries them. Computing one may fail;
        # the decider then reports the failure under its rule.
        with_headers = [(i, name) for i, name in outputs.items() if bucket.rules[i].header_names]
        body += self.keyed_lookup(with_headers, 0, miss, memo)
        head = [f"def b{number}(P, R, C, X):", "    F = 0", "    E = []"]
        if bucket.uses_roles:  # planned from the rules (rule_facts): role scopes, `in role`, grants
            fn = role_fns.get((ptype, rtype))
            head.append(f"    RL = {fn}(P, R, C, X)" if fn else f"    RL = {self.k.ref(frozenset())}")
        self.lines += head + body
        return outputs

    def deny_exit(self, compiled: tuple[CompiledRule, ...], outputs: dict[int, str], memo: str) -> list[str]:
        """After the forbids: a matching forbid or an error ends the decision here."""
        miss = "F, 0, E, None"
        lines = ["    if F or E:", "        if E:", f"            return {miss}, None", "        K = F"]
        # Advice values are part of the key, as header values are for permits.
        with_advice = [(i, name) for i, name in outputs.items() if compiled[i].advice_names]  # forbids' only, so far
        lines += ["    " + line for line in self.keyed_lookup(with_advice, 1, miss, memo)]
        return [*lines, "    M = 0"]

    @staticmethod
    def keyed_lookup(outputs: list[tuple[int, str]], part: int, miss: str, memo: str) -> list[str]:
        """Extend K with the `part` (0: headers, 1: advice) of each matched rule's outputs, then
        answer from the memo or return the miss with its key."""
        lines = []
        if outputs:
            lines.append("    try:")
            mask = "F" if part else "M"
            for i, name in outputs:
                lines += [f"        if {mask} & {1 << i}:", f"            K = (K, {name}(P, R, C, X)[{part}])"]
            lines += ["    except Exception:", f"        return {miss}, None"]
        return [
            *lines,
            "    try:",
            f"        D = {memo}.get(K)",
            "    except Exception:",  # a value that cannot be a key (a record, a list): not kept
            f"        return {miss}, None",
            "    if D is not None:",
            "        return D",
            f"    return {miss}, K",
        ]

    def condition(self, rule: n.Rule, ec: ExprCompiler) -> str:
        parts = []
        if rule.roles:
            parts.append(f"(not RL.isdisjoint({self.k.ref(frozenset(r.name for r in rule.roles))}))")
        for c in rule.conditions:
            code = ec.expr(c.expr)
            parts.append(code if c.kind == "when" else f"(not {code})")
        return " and ".join(parts) or "True"

    def emit_outputs(self, number: int, index: int, rule: n.Rule, ec: ExprCompiler) -> str | None:
        headers = [h for h in rule.obligations if isinstance(h, n.SetHeader)]
        if not headers and not rule.advice:
            return None
        name = f"o{number * 100000 + index}"
        values = [self.named(ec, h.value) for h in headers]
        advice = [self.named(ec, a.value) for a in rule.advice]
        self.lines.append(f"def {name}(P, R, C, X):")
        self.lines.append(
            "    return (" + "".join(v + ", " for v in values) + "), (" + "".join(a + ", " for a in advice) + ")"
        )
        return name

    def named(self, ec: ExprCompiler, e: n.Expr) -> str:
        """Enum values leave the engine as member names, not ranks, however deep they sit."""
        code = ec.expr(e)
        render = enum_renderer(ec.type_of(e))
        return code if render is None else f"{self.k.ref(render)}({code})"

    def rule_facts(self, rule: CheckedRule) -> tuple[CompiledRule, bool, bool]:
        """A rule's compiled form, whether it reads the clock, whether it needs roles (kept per rule:
        a rule without an action or resource clause sits in many leaves)."""
        found = self._facts.get(id(rule))
        if found is None:
            r = rule.rule
            exprs = [c.expr for c in r.conditions]
            exprs += [h.value for h in r.obligations if isinstance(h, n.SetHeader)] + [a.value for a in r.advice]
            nodes = [node for e in exprs for node in walk(e)]
            compiled = CompiledRule(
                r.qualified_id,
                r.effect,
                r.span,
                self.masks(r),
                tuple(h.name for h in r.obligations if isinstance(h, n.SetHeader)),
                tuple(a.name for a in r.advice),
                rule,
            )
            uses_now = any(isinstance(node, n.Var) and node.name == "now" for node in nodes)
            uses_roles = bool(r.roles) or any(isinstance(node, n.RoleRef) for node in nodes)
            found = self._facts[id(rule)] = (compiled, uses_now, uses_roles)
        return found

    @staticmethod
    def masks(rule: n.Rule) -> tuple[str, ...]:
        out = []
        for ob in rule.obligations:
            if isinstance(ob, n.Mask):
                for target in ob.targets:
                    path = path_of(target)
                    if path:
                        out.append(".".join(path))
        return tuple(out)
