"""What compiled decision code may call at run time, besides its constants."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from policy_lang.values import IPNet

EMPTY: frozenset[str] = frozenset()


class Scope:
    """Per-request facts the generated code reads through `X`: ids, the clock, hierarchies.

    Hierarchies are only walked when a rule asks (`principal in Group::"x"`).
    """

    __slots__ = ("now", "pid", "rid", "_pref", "_rref", "_extra", "_graph", "_panc", "_ranc")

    def __init__(
        self,
        now: float,
        pid: str,
        rid: str,
        ptype: str,
        rtype: str,
        extra_parents: Mapping[str, tuple[str, ...]] | None,
        graph: Mapping[str, frozenset[str]],
    ):
        self.now = now
        self.pid = pid
        self.rid = rid
        self._pref = ptype  # the types; refs are built only if a hierarchy is asked about
        self._rref = rtype
        self._extra = extra_parents
        self._graph = graph
        self._panc: frozenset[str] | None = None
        self._ranc: frozenset[str] | None = None

    def _close(self, ref: str) -> frozenset[str]:
        direct = self._graph.get(ref, EMPTY)
        if not self._extra or ref not in self._extra:
            return direct
        found = set(direct)
        for p in self._extra[ref]:
            found.add(p)
            found |= self._graph.get(p, EMPTY)
        return frozenset(found)

    def panc(self) -> frozenset[str]:
        if self._panc is None:
            self._panc = self._close(f"{self._pref}::{self.pid}")
        return self._panc

    def ranc(self) -> frozenset[str]:
        if self._ranc is None:
            self._ranc = self._close(f"{self._rref}::{self.rid}")
        return self._ranc

    def ancestors(self, ref: str) -> frozenset[str]:
        return self._graph.get(ref, EMPTY)

    @staticmethod
    def ip_in_any(ip: IPNet, nets: Iterable[IPNet]) -> bool:
        return any(net.contains(ip) for net in nets)


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
