"""policy_lang.lint on conjunctions of comparisons with literals: `never_applies` exactly when nothing satisfies them.

Random `when`/`unless` comparisons over a few attributes are linted, and the verdict is checked
by trying every value of a domain wide enough to hold a witness when there is one. Sound (no
false alarm) and, for these atoms, complete (every contradiction is found).
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from policy_lang.checker import check
from policy_lang.lint import lint
from policy_lang.parser import parse

SCHEMA = """\
enum Level { low < mid < high }
principal entity User { age: int; level: Level; tenant: string; mfa: bool; }
entity Doc {}
actions Doc { read }
"""
LEVELS = ["low", "mid", "high"]
DOMAINS: dict[str, list[Any]] = {
    "age": list(range(-1, 8)),
    "level": LEVELS,
    "tenant": ["a", "b", "c", "zz"],  # "zz" is no literal: it stands for every other string
    "mfa": [True, False],
}
OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
Atom = tuple[str, Callable[[dict[str, Any]], bool]]


def _rank(attr: str, v: Any) -> Any:
    return LEVELS.index(v) if attr == "level" else v


@st.composite
def atoms(draw: st.DrawFn) -> Atom:
    attr = draw(st.sampled_from(["age", "level", "tenant", "mfa"]))
    if attr == "mfa":
        negated = draw(st.booleans())
        return ("not principal.mfa" if negated else "principal.mfa"), (lambda env: env["mfa"] != negated)
    if draw(st.integers(0, 4)) == 0:
        # The ends of the int domain stand for every value beyond them, so a list must not name them.
        pool = {"tenant": DOMAINS["tenant"][:-1], "age": DOMAINS["age"][1:-1]}.get(attr, DOMAINS[attr])
        members = draw(st.lists(st.sampled_from(pool), max_size=3))
        shown = ", ".join(f'"{m}"' if attr == "tenant" else str(m) for m in members)
        return f"principal.{attr} in [{shown}]", (lambda env: env[attr] in members)
    ops = ["==", "!="] if attr == "tenant" else list(OPS)
    op = draw(st.sampled_from(ops))
    value = draw(st.sampled_from(DOMAINS[attr][:-1] if attr == "tenant" else DOMAINS[attr][1:-1]))
    literal = f'"{value}"' if attr == "tenant" else str(value)
    return f"principal.{attr} {op} {literal}", (lambda env: OPS[op](_rank(attr, env[attr]), _rank(attr, value)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(atoms(), st.booleans()), min_size=1, max_size=5))
def test_never_applies_exactly_when_unsatisfiable(parts: list[tuple[Atom, bool]]) -> None:
    conditions = " ".join(f"{'unless' if negated else 'when'} {text}" for (text, _), negated in parts)
    checked = check([parse(SCHEMA, filename="schema.pdp"), parse(f"permit p {conditions};", filename="p.pdp")])
    codes = {d.code for d in lint(checked)}
    witnesses = (dict(zip(DOMAINS, values, strict=True)) for values in itertools.product(*DOMAINS.values()))
    satisfiable = any(all(holds(env) != negated for (_, holds), negated in parts) for env in witnesses)
    assert ("never_applies" in codes) == (not satisfiable), conditions
