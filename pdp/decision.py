"""What a decision says: allowed or not, why, what the caller must do, and what went wrong."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DecisionError:
    message: str
    rule: str | None = None  # the rule that failed while evaluating
    field: str | None = None  # the request field at fault, e.g. `principal.attributes.tenant`

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.rule is not None:
            out["rule"] = self.rule
        if self.field is not None:
            out["field"] = self.field
        return out


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reasons: tuple[str, ...] = ()
    obligations: tuple[Mapping[str, Any], ...] = ()  # read-only: decisions are shared
    advice: tuple[Mapping[str, Any], ...] = ()
    errors: tuple[DecisionError, ...] = ()
    revision: str = ""
    time_dependent: bool = field(default=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "decision": "allow" if self.allowed else "deny",
            "reasons": list(self.reasons),
            "obligations": [dict(o) for o in self.obligations],
            "advice": [dict(a) for a in self.advice],
            "errors": [e.to_json() for e in self.errors],
            "revision": self.revision,
        }
