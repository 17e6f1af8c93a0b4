"""The decision event: what one logged decision holds (`DecisionEvent`, schema version
`SCHEMA_VERSION`), how it is made from a decision (`event_for`) or from a decision queued as it
was made (`PendingDecision`, `event_for_outcome`), and the ids and timestamps it carries
(`new_decision_id`, `rfc3339`). Masking is pdp.decision_log.masking's; events only ask it."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from pdp.decision import Decision
from pdp.decision_log.masking import _CAP_ONLY, Masker, mask_values

SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    """One logged decision (schema version 1). `request` is already masked and capped."""

    decision_id: str
    timestamp: str  # RFC 3339, UTC, microseconds: 2026-11-27T10:00:00.123456Z
    revision: str
    request: Any
    allowed: bool
    reasons: tuple[str, ...]
    obligations: tuple[dict[str, Any], ...]
    advice: tuple[dict[str, Any], ...]
    errors: tuple[dict[str, Any], ...]  # DecisionError.to_json() forms: message, rule?, field?
    latency_us: float  # rounded to the nanosecond (more digits are noise, and cost to print)
    cached: bool
    masked: tuple[str, ...] = ()  # JSON paths in `request` replaced by "<masked>"
    truncated: tuple[str, ...] = ()  # JSON paths in `request` cut to the logging limits
    unauthenticated: bool = False
    source: str | None = None  # which API decided: "authorize", "batch", "envoy", "http", ...
    worker: int | None = None  # the server worker process that decided

    def to_json(self) -> dict[str, Any]:
        """A plain dict of JSON/msgpack values (the request is shared, not copied)."""
        out: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "decision_id": self.decision_id,
            "timestamp": self.timestamp,
            "revision": self.revision,
            "allowed": self.allowed,
            "reasons": list(self.reasons),
            "obligations": [dict(o) for o in self.obligations],
            "advice": [dict(a) for a in self.advice],
            "errors": [dict(e) for e in self.errors],
            "latency_us": self.latency_us,
            "cached": self.cached,
            "request": self.request,
            "masked": list(self.masked),
        }
        if self.truncated:
            out["truncated"] = list(self.truncated)
        if self.unauthenticated:
            out["unauthenticated"] = True
        if self.source is not None:
            out["source"] = self.source
        if self.worker is not None:
            out["worker"] = self.worker
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DecisionEvent:
        """The event a `to_json()` dict (as read back from a log) stands for."""
        version = data.get("v", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ValueError(f"decision event schema version {version!r} (this reader knows {SCHEMA_VERSION})")
        return cls(
            decision_id=str(data["decision_id"]),
            timestamp=str(data["timestamp"]),
            revision=str(data.get("revision", "")),
            request=data.get("request"),
            allowed=bool(data["allowed"]),
            reasons=tuple(data.get("reasons", ())),
            obligations=tuple(dict(o) for o in data.get("obligations", ())),
            advice=tuple(dict(a) for a in data.get("advice", ())),
            errors=tuple(dict(e) for e in data.get("errors", ())),
            latency_us=float(data.get("latency_us", 0.0)),
            cached=bool(data.get("cached", False)),
            masked=tuple(data.get("masked", ())),
            truncated=tuple(data.get("truncated", ())),
            unauthenticated=bool(data.get("unauthenticated", False)),
            source=data.get("source"),
            worker=data.get("worker"),
        )


_ts_cache: tuple[int, str] = (-1, "")  # (second, its formatted prefix), replaced as one object


def rfc3339(when: float | None = None) -> str:
    """Epoch seconds (default: now) as `2026-11-27T10:00:00.123456Z`."""
    global _ts_cache
    t = time.time() if when is None else when
    second = math.floor(t)
    micros = min(int((t - second) * 1_000_000), 999_999)
    cached_second, prefix = _ts_cache
    if second != cached_second:  # one strftime per second, not per event (a racing thread just redoes it)
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _ts_cache = (second, prefix)
    return f"{prefix}.{micros:06d}Z"


_ids = random.Random()  # seeded from os.urandom; reseeded in a forked child (see below)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ids.seed)


def new_decision_id() -> str:
    """A random (version 4) UUID string; a third of the cost of `str(uuid.uuid4())`, which reads
    os.urandom each time. Unique, not unpredictable: do not use it as a secret."""
    h = f"{_ids.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def event_for(
    request: Any,
    decision: Decision,
    *,
    latency_us: float,
    masker: Masker | None,
    cached: bool = False,
    decision_id: str | None = None,
    source: str | None = None,
    unauthenticated: bool = False,
    worker: int | None = None,
    timestamp: float | None = None,
    sensitive_headers: frozenset[str] | set[str] = frozenset(),
    sensitive_advice: frozenset[str] | set[str] = frozenset(),
) -> DecisionEvent:
    """The event for one decision: the request masked and capped by `masker` (never mutated).

    `masker` is the `Masker` of the schema of the revision that decided; None when no schema is
    known (no policy loaded): the request is then only capped, nothing can be masked.

    `decision_id` defaults to a new UUID4; `timestamp` (epoch seconds) to now. Error messages about
    a masked attribute are masked too (an enum error quotes the value it found). The values of the
    obligations named in `sensitive_headers` and of the advice named in `sensitive_advice` (those a
    policy fills from sensitive attributes) are logged as "<masked>"."""
    if masker is None:
        masker = _CAP_ONLY
    masked = masker.mask(request)
    errors = tuple(masker.error(e, masked.masked) for e in decision.errors) if decision.errors else ()
    obligations: tuple[dict[str, Any], ...] = ()
    if decision.obligations:
        obligations = tuple(mask_values([masker.output(o) for o in decision.obligations], sensitive_headers))
    advice: tuple[dict[str, Any], ...] = ()
    if decision.advice:
        advice = tuple(mask_values([masker.output(a) for a in decision.advice], sensitive_advice))
    return DecisionEvent(
        decision_id=new_decision_id() if decision_id is None else decision_id,
        timestamp=rfc3339(timestamp),
        revision=decision.revision,
        request=masked.request,
        allowed=decision.allowed,
        reasons=decision.reasons,
        obligations=obligations,
        advice=advice,
        errors=errors,
        latency_us=to_the_nanosecond(latency_us),
        cached=cached,
        masked=masked.masked,
        truncated=masked.truncated,
        unauthenticated=unauthenticated,
        source=source,
        worker=worker,
    )


def to_the_nanosecond(latency_us: float) -> float:
    """Microseconds rounded to 3 decimals, as a decision event keeps them."""
    return float(f"{latency_us:.3f}")


class OutcomeLike(Protocol):
    """What `DecisionLog.try_submit` needs of a decision point's outcome (pdp.server.service.Outcome)."""

    @property
    def decision(self) -> Decision: ...
    @property
    def decision_id(self) -> str: ...
    @property
    def cached(self) -> bool: ...
    @property
    def unauthenticated(self) -> bool: ...
    @property
    def request(self) -> Any: ...
    @property
    def latency_us(self) -> float: ...
    @property
    def sensitive_headers(self) -> frozenset[str]: ...
    @property
    def sensitive_advice(self) -> frozenset[str]: ...


# A decision queued as it was made, masked and encoded later by the writer thread (in a batch):
# (outcome, masker of the deciding revision, source, worker, epoch seconds when it was recorded).
# The request must not change afterwards (the server never writes to a request's maps).
PendingDecision = tuple[OutcomeLike, "Masker", str | None, int | None, float]
QueueItem = DecisionEvent | PendingDecision


def event_for_outcome(item: PendingDecision) -> DecisionEvent:
    """The `DecisionEvent` a pending decision stands for (what the writer encodes it as)."""
    outcome, masker, source, worker, when = item
    return event_for(
        outcome.request,
        outcome.decision,
        decision_id=outcome.decision_id,
        latency_us=outcome.latency_us,
        cached=outcome.cached,
        masker=masker,
        source=source,
        unauthenticated=outcome.unauthenticated,
        worker=worker,
        timestamp=when,
        sensitive_headers=outcome.sensitive_headers,
        sensitive_advice=outcome.sensitive_advice,
    )
