"""What compiled decision code may call at run time, besides its constants."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Final

from policy_lang.values import IPNet

EMPTY: frozenset[str] = frozenset()


# Per-request facts the generated code reads through `X`: the clock, the ids, and what the
# hierarchies need. A plain tuple, because one is built for every decision and a tuple costs a
# fifth of an object with slots; the generated code reads it by position (NOW, PID, RID). EXTRA
# holds the hierarchy edges a request adds for entities the data does not place.
Scope = tuple[float, str, str, str, str, Mapping[str, tuple[str, ...]] | None, Mapping[str, frozenset[str]]]
NOW: Final = 0
PID: Final = 1
RID: Final = 2
PTYPE: Final = 3
RTYPE: Final = 4
EXTRA: Final = 5
GRAPH: Final = 6


def _close(X: Scope, ref: str) -> frozenset[str]:
    graph, extra = X[GRAPH], X[EXTRA]
    direct = graph.get(ref, EMPTY)
    if not extra or ref not in extra:
        return direct
    found = set(direct)
    for p in extra[ref]:
        found.add(p)
        found |= graph.get(p, EMPTY)
    return frozenset(found)


# Hierarchies are only walked when a rule asks (`principal in Group::"x"`).
def principal_ancestors(X: Scope) -> frozenset[str]:
    return _close(X, f"{X[PTYPE]}::{X[PID]}")


def resource_ancestors(X: Scope) -> frozenset[str]:
    return _close(X, f"{X[RTYPE]}::{X[RID]}")


def ancestors(X: Scope, ref: str) -> frozenset[str]:
    return X[GRAPH].get(ref, EMPTY)


def ip_in_any(ip: IPNet, nets: Iterable[IPNet]) -> bool:
    for net in nets:
        if net.contains(ip):
            return True
    return False


def role_closer(
    ancestors: Mapping[str, frozenset[str]], memo_size: int = 4096
) -> Callable[[frozenset[str]], frozenset[str]]:
    """Held role names -> every role they confer; unknown names confer nothing.

    The same few sets of held roles come back request after request, so answers are kept.
    """
    memo: dict[frozenset[str], frozenset[str]] = {}

    def close(held: frozenset[str]) -> frozenset[str]:
        found = memo.get(held)
        if found is None:
            out: set[str] = set()
            for role in held:
                out |= ancestors.get(role, EMPTY)
            found = frozenset(out)
            if len(memo) >= memo_size:
                memo.clear()
            memo[held] = found
        return found

    return close
