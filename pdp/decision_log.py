"""Decision logging: a plugin beside evaluation, never inside it (as in OPA).

Whoever runs decisions (the gRPC/HTTP decision point, a batch job) builds one `DecisionEvent`
per decision with `event_for` and hands it to a sink:

    masker = Masker(engine.schema)                       # once per policy revision
    log = DecisionLog("decisions.jsonl")                 # or NullDecisionLog() when logging is off
    ...
    t0 = time.perf_counter()
    decision = engine.decide(request)
    log.submit(event_for(request, decision, masker=masker, latency_us=(time.perf_counter() - t0) * 1e6,
                         cached=False, source="authorize"))
    ...
    log.close()                                          # flushes everything, joins the writer

A server that logs every decision queues less: `log.try_submit((outcome, masker, source, worker,
time.time()))` (a `PendingDecision`; pdp/server/recorder.py) takes the outcome as it is, and the
writer thread masks and encodes it later, in a batch, composing each record from pieces it keeps
masked and encoded: the attribute maps of principals, resources and contexts (by identity: the
server decodes equal bytes into the same dict), entities, and the obligations and advice of each
(shared) decision. The records are byte for byte those `event_for` would give; a request that does
not fit that way (another shape, one near the size limits) is masked whole, as `event_for` does.

The engine never sees the log. `submit` only appends to a bounded in-memory queue; a background
thread encodes and writes in batches. The writer wakes when a batch has gathered (a quarter of the
queue, at most 1,024 events), after `write_interval` seconds (0.1), for `flush`, `close` or a full
queue, never per event: a thread woken per event costs the event loop more in GIL hand-offs than
the event itself. When the queue is full, `on_full="block"` (the default)
makes the caller wait for room (back-pressure) and raise `DecisionLogFull` after `submit_timeout`
seconds, so a writer that keeps failing turns into a clear error instead of a hang;
`on_full="drop"` drops the event, counts it in `dropped` and logs it (at most a line every 10 s).
Nothing is lost silently: a failed write is counted in `write_errors`, logged on the
`pdp.decision_log` logger, passed to `on_error`, undone (the file is cut back, so no half record
stays) and retried with a growing pause, the events staying queued, so that a persistent failure
becomes back-pressure (then `DecisionLogFull`) or drops; `close()` retries for `close_timeout`
seconds, then gives the rest up, counted and logged. A log that is never closed is drained when
the main thread ends. Create the log in each worker process after forking (threads do not
survive a fork), on its own file: `worker_path(path, i)`.

Masking: attributes declared `sensitive` in the schema (principal and resource attributes per
entity type, context, nested records, maps and sets of records) are logged as "<masked>" and
their JSON paths listed in the event's `masked`. Every logged value is also capped (string length,
nesting depth, items per container, total size), so a hostile request cannot blow up the log; the
paths that were cut are listed in `truncated`.

File formats (one file per writer; with N worker processes use `worker_path`):

- `jsonl`: one JSON object per line, ASCII (non-ASCII escaped), `\\n`-terminated.
- `msgpack`: a plain concatenation of msgpack maps, no framing (read it with `msgpack.Unpacker`).

On opening an existing file, a torn last record (a crash mid-write) is moved aside with the file by
a rotation (or, without rotation, cut off) before appending.

Both hold the objects of `DecisionEvent.to_json()`; `"v"` is the schema version (1). Files rotate
by size like `logging.handlers.RotatingFileHandler` (`decisions.jsonl` -> `decisions.jsonl.1` ->
... -> `decisions.jsonl.<backups>`), and a record is never split between two files.

Reading: `read_events(paths)` (files, globs, rotated siblings oldest first, formats detected by
the first byte: `{` is JSON lines, anything else msgpack), `matches(event, ...)` and
`format_event(event)`; `pdp logs` (pdp/logs_cli.py) is the command line over them.
"""

from __future__ import annotations

import asyncio
import glob
import heapq
import itertools
import json
import logging
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, Self

import msgpack

from pdp.decision import Decision, DecisionError
from policy_lang.schema import EntityType, MapOf, Record, Schema, SetOf, Type

__all__ = [
    "MASK",
    "SCHEMA_VERSION",
    "DecisionEvent",
    "DecisionLog",
    "DecisionLogClosed",
    "DecisionLogError",
    "DecisionLogFull",
    "DecisionSink",
    "Masker",
    "MaskedRequest",
    "MemoryDecisionLog",
    "NullDecisionLog",
    "event_for",
    "format_event",
    "log_files",
    "matches",
    "new_decision_id",
    "open_decision_log",
    "parse_time",
    "read_events",
    "rfc3339",
    "worker_path",
]

SCHEMA_VERSION = 1
MASK = "<masked>"
Format = Literal["jsonl", "msgpack"]
OnFull = Literal["block", "drop"]

logger = logging.getLogger("pdp.decision_log")


# ---- events -----------------------------------------------------------------------------


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


# ---- masking ----------------------------------------------------------------------------


class _Each:
    """Applies `node` to every value of a map or element of a set."""

    __slots__ = ("node",)

    def __init__(self, node: _Node):
        self.node = node


class _Mask:
    __slots__ = ()


_MASK_NODE = _Mask()
# What to mask below a value: the value itself, some fields of a record, or every map value/set element.
_Node = _Mask | dict[str, Any] | _Each
_Path = str | tuple[Any, str | int]  # built lazily: (parent, key) pairs, rendered only when reported

_MAX_NOTES = 64  # listed paths per event (masked, truncated); more are summarised
_INT_MIN, _INT_END = -(2**63), 2**64  # what msgpack can hold; larger ints are logged as text


class MaskedRequest(NamedTuple):
    request: Any
    masked: tuple[str, ...]
    truncated: tuple[str, ...]


class _Notes:
    __slots__ = ("masked", "truncated", "budget", "more_masked", "more_truncated")

    def __init__(self, budget: int):
        self.masked: list[_Path] = []
        self.truncated: list[_Path] = []
        self.budget = budget
        self.more_masked = 0
        self.more_truncated = 0

    def mask(self, path: _Path) -> None:
        if len(self.masked) < _MAX_NOTES:
            self.masked.append(path)
        else:
            self.more_masked += 1

    def cut(self, path: _Path) -> None:
        if len(self.truncated) < _MAX_NOTES:
            self.truncated.append(path)
        else:
            self.more_truncated += 1


def _render(path: _Path) -> str:
    """`(("", "principal"), "attributes")...` -> `principal.attributes.email`, `x.tags[3]`."""
    parts: list[str | int] = []
    while isinstance(path, tuple):
        path, part = path
        parts.append(part)
    out = path
    for part in reversed(parts):
        if isinstance(part, int):
            out = f"{out}[{part}]"
        else:
            out = f"{out}.{part}" if out else part
    return out


def _plan(t: Type) -> _Node | None:
    """What to mask inside a value of type `t` (None: nothing)."""
    if isinstance(t, EntityType):
        t = t.record
    if isinstance(t, Record):
        fields: dict[str, Any] = {}
        for f in t.fields:
            node = _MASK_NODE if f.sensitive else _plan(f.type)
            if node is not None:
                fields[f.name] = node
        return fields or None
    if isinstance(t, (MapOf, SetOf)):
        inner = _plan(t.value if isinstance(t, MapOf) else t.element)
        return None if inner is None else _Each(inner)
    return None


class Masker:
    """Masks `sensitive` attributes and caps sizes; built once per policy revision from its schema.

    `mask(request)` never raises and never mutates `request`: it returns a fresh copy made of
    plain JSON values (dicts with string keys, lists, str, int, float, bool, None; anything else
    becomes its string form). Requests that do not fit the schema (unknown types, attributes that
    are not objects, ...) are logged as they are, capped. Limits: strings longer than `max_string`
    are cut, containers nested deeper than `max_depth` are replaced by a marker, containers keep
    their first `max_items` entries, and once about `max_total` characters have been copied the
    rest of the request is replaced by markers.
    """

    def __init__(
        self,
        schema: Schema | None,
        *,
        max_string: int = 1024,
        max_depth: int = 16,
        max_items: int = 256,
        max_total: int = 64 * 1024,
    ):
        if not (1 <= max_depth <= 200):
            raise ValueError("max_depth must be between 1 and 200")
        if max_string < 1 or max_items < 1 or max_total < 1:
            raise ValueError("max_string, max_items and max_total must be positive")
        self.max_string = max_string
        self.max_depth = max_depth
        self.max_items = max_items
        self.max_total = max_total
        self._entities: dict[str, dict[str, Any] | None] = {}
        self._context: _Node | None = None
        self._nodes: dict[tuple[str | None, str | None], dict[str, Any] | None] = {}
        if schema is not None:
            for name, entity in schema.entities.items():
                attributes = _plan(entity.record)
                self._entities[name] = None if attributes is None else {"attributes": attributes}
            self._context = _plan(schema.context)
        # Memos of the decision log's writer (see `_part` and `_outputs`); per masker, so per
        # schema revision: a new revision gets a new masker and never sees an older masking.
        self._parts: dict[str, dict[int, _Part]] = {"principal": {}, "resource": {}, "context": {}}
        self._decisions: dict[int, _Outputs] = {}
        self._entity_memo: dict[tuple[str, str, str, int], Any] = {}  # _Composer._entity's
        self._templates: dict[tuple[Any, ...], Any] = {}  # _Composer._template's

    @classmethod
    def for_engine(cls, engine: Any, **limits: int) -> Masker:
        """The masker for an `Engine`'s schema."""
        return cls(engine.schema, **limits)

    def mask(self, request: Any) -> MaskedRequest:
        notes = _Notes(self.max_total)
        node: dict[str, Any] | None = None
        if type(request) is dict:
            node = self._request_node(request)
        try:
            copied = self._copy(request, node, "", 0, notes)
        except Exception as exc:  # never raise into the decision path; say what happened instead
            copied, notes = f"<unloggable request: {type(exc).__name__}>", _Notes(0)
            notes.cut("")
        masked: tuple[str, ...] = ()
        if notes.masked:
            masked = tuple([_render(p) for p in notes.masked])
            if notes.more_masked:
                masked += (f"... {notes.more_masked} more",)
        truncated: tuple[str, ...] = ()
        if notes.truncated:
            truncated = tuple([_render(p) for p in notes.truncated])
            if notes.more_truncated:
                truncated += (f"... {notes.more_truncated} more",)
        return MaskedRequest(copied, masked, truncated)

    def _request_node(self, request: dict[Any, Any]) -> dict[str, Any] | None:
        """What to mask in a request: by its principal's and its resource's type (memoized)."""
        types = []
        for side in ("principal", "resource"):
            entity = request.get(side)
            etype = entity.get("type") if type(entity) is dict else None
            types.append(etype if type(etype) is str and etype in self._entities else None)
        key = (types[0], types[1])
        try:
            return self._nodes[key]
        except KeyError:
            pass
        built: dict[str, Any] = {}
        for side, etype in zip(("principal", "resource"), key, strict=True):
            plan = self._entities.get(etype) if etype is not None else None
            if plan is not None:
                built[side] = plan
        if self._context is not None:
            built["context"] = self._context
        node = built or None
        self._nodes[key] = node  # bounded: (schema types + None) squared
        return node

    def _part(self, slot: str, value: Any, node: _Node | None, path: _Path, depth: int) -> _Part | None:
        """`value` (one part of a request: an entity's attributes, the context) masked and capped
        on its own, as `mask` would inside a whole request if the whole request stays under
        `max_total` (the caller checks, with `consumed`). Memoized by identity: the server decodes
        equal attribute bytes into the same dict object, and nothing writes to a request's maps.
        The memo holds the value, so its id cannot be reused while the entry lives. None when the
        part alone is too large or too odd to be composed (the caller then masks the whole request)."""
        memo = self._parts[slot]
        key = id(value)
        part = memo.get(key)
        if part is not None and part.value is value and part.node is node:
            return part
        notes = _Notes(self.max_total)
        try:
            copied = self._copy(value, node, path, depth, notes)
        except Exception:
            return None
        consumed = self.max_total - notes.budget
        if consumed >= self.max_total or notes.more_masked or notes.more_truncated:
            return None
        part = _Part(
            value,
            node,
            copied,
            tuple([_render(p) for p in notes.masked]),
            tuple([_render(p) for p in notes.truncated]),
            consumed,
        )
        if consumed <= _MEMO_MAX_CHARS:
            if len(memo) >= _MEMO_ENTRIES:
                try:
                    del memo[next(iter(memo))]  # the oldest
                except (KeyError, RuntimeError, StopIteration):  # another writer thread got there
                    memo.clear()
            memo[key] = part
        return part

    def _outputs(
        self, decision: Decision, sensitive_headers: frozenset[str], sensitive_advice: frozenset[str]
    ) -> _Outputs:
        """A decision's obligations and advice as `event_for` logs them, with the values of header
        obligations and advice filled from sensitive attributes masked (memoized by identity: the
        engine shares equal decisions)."""
        key = id(decision)
        out = self._decisions.get(key)
        if (
            out is not None
            and out.decision is decision
            and out.headers is sensitive_headers
            and out.advice_names is sensitive_advice
        ):
            return out
        obligations = [self.output(o) for o in decision.obligations]
        advice = [self.output(a) for a in decision.advice]
        out = _Outputs(
            decision,
            sensitive_headers,
            sensitive_advice,
            tuple(mask_values(obligations, sensitive_headers)),
            tuple(mask_values(advice, sensitive_advice)),
        )
        if len(self._decisions) >= _MEMO_ENTRIES:
            try:
                del self._decisions[next(iter(self._decisions))]
            except (KeyError, RuntimeError, StopIteration):
                self._decisions.clear()
        self._decisions[key] = out
        return out

    def limit(self, value: Any) -> Any:
        """`value` copied with the size limits applied (no masking)."""
        try:
            return self._copy(value, None, "", 0, _Notes(self.max_total))
        except Exception as exc:
            return f"<unloggable value: {type(exc).__name__}>"

    def output(self, item: Mapping[str, Any]) -> dict[str, Any]:
        """An obligation or advice as a plain dict, capped (a header value may come from the request)."""
        max_string = self.max_string
        for x in item.values():
            if type(x) is not str or len(x) > max_string:
                return self.limit(dict(item))  # type: ignore[no-any-return]
        return dict(item)

    def error(self, error: DecisionError, masked: Sequence[str] = ()) -> dict[str, Any]:
        """An error's JSON form, capped; its message is masked when it is about a masked value."""
        out = error.to_json()
        for key, value in out.items():
            if len(value) > self.max_string:
                out[key] = self._cut_string(value)
        field = error.field
        if field and masked:
            for path in masked:
                if field == path or (field.startswith(path) and field[len(path)] in ".["):
                    out["message"] = MASK
                    break
        return out

    def _cut_string(self, s: str) -> str:
        return f"{s[: self.max_string]}...<{len(s) - self.max_string} more chars>"

    def _copy(self, v: Any, node: _Node | None, path: _Path, depth: int, notes: _Notes) -> Any:
        """A capped, masked, plain copy of `v` (the common scalars are handled inline by the
        container loops below: this is for containers and the unusual values)."""
        t = type(v)
        if t is dict or t is list:
            pass
        elif t is str:
            n = len(v)
            notes.budget -= n
            if n > self.max_string:
                notes.cut(path)
                return self._cut_string(v)
            if notes.budget < 0 and n > 16:
                notes.cut(path)
                return "<truncated>"
            return v
        elif t is bool or v is None:
            return v
        elif t is int:
            return v if _INT_MIN <= v < _INT_END else self._scalar_text(v, path, notes)
        elif t is float:
            return v if math.isfinite(v) else str(v)
        elif isinstance(v, str):  # subclasses (StrEnum, ...)
            return self._copy(str.__str__(v), node, path, depth, notes)
        elif isinstance(v, bool):
            return bool(v)
        elif isinstance(v, int):
            return self._copy(int(v), node, path, depth, notes)
        elif isinstance(v, float):
            return self._copy(float(v), node, path, depth, notes)
        elif not isinstance(v, (Mapping, tuple, list, set, frozenset)):
            return self._scalar_text(v, path, notes)
        if depth >= self.max_depth:
            notes.cut(path)
            return f"<truncated: nested deeper than {self.max_depth}>"
        if notes.budget <= 0:
            notes.cut(path)
            return "<truncated>"
        notes.budget -= 2
        if t is dict or isinstance(v, Mapping):
            return self._copy_mapping(v, node, path, depth, notes)
        return self._copy_list(v, node, path, depth, notes)

    def _copy_mapping(self, v: Any, node: _Node | None, path: _Path, depth: int, notes: _Notes) -> dict[str, Any]:
        fields = node if type(node) is dict else None
        child = node.node if type(node) is _Each else None
        max_string = self.max_string
        deepest = self.max_depth - 1  # a child container at depth + 1 must be shallower than max_depth
        out: dict[str, Any] = {}
        size = len(v)
        items: Iterable[tuple[Any, Any]] = v.items()
        if size > self.max_items:
            items = itertools.islice(items, self.max_items)
        budget = notes.budget  # kept in a local in the loop; notes.budget around recursion
        for k, x in items:
            if type(k) is not str:
                k = _safe_text(k)
            nk = len(k)
            if nk > max_string:
                k = self._cut_string(k)
            budget -= nk
            if fields is not None:
                child = fields.get(k)
            t = type(x)
            if child is None:  # the common scalars inline
                if t is str:
                    n = len(x)
                    if n <= max_string and (budget >= n or n <= 16):
                        budget -= n
                        out[k] = x
                        continue
                elif t is bool or x is None or (t is int and _INT_MIN <= x < _INT_END):
                    out[k] = x
                    continue
            elif child is _MASK_NODE:
                notes.mask((path, k))
                out[k] = MASK
                continue
            if (t is dict or t is list) and depth < deepest and budget > 0:  # containers directly
                notes.budget = budget - 2
                if t is dict:
                    out[k] = self._copy_mapping(x, child, (path, k), depth + 1, notes)
                else:
                    out[k] = self._copy_list(x, child, (path, k), depth + 1, notes)
            else:
                notes.budget = budget
                out[k] = self._copy(x, child, (path, k), depth + 1, notes)
            budget = notes.budget
        notes.budget = budget
        if size > self.max_items:
            notes.cut(path)
            out["<truncated>"] = f"{size - self.max_items} more entries"
        return out

    def _copy_list(self, v: Any, node: _Node | None, path: _Path, depth: int, notes: _Notes) -> list[Any]:
        items = _ordered(v) if isinstance(v, (set, frozenset)) else v
        child = node.node if type(node) is _Each else None
        max_string = self.max_string
        size = len(items)
        if size > self.max_items:
            items = items[: self.max_items]
        out: list[Any] = []
        append = out.append
        budget = notes.budget
        for i, x in enumerate(items):
            if child is None:
                t = type(x)
                if t is str:
                    n = len(x)
                    if n <= max_string and (budget >= n or n <= 16):
                        budget -= n
                        append(x)
                        continue
                elif t is bool or x is None or (t is int and _INT_MIN <= x < _INT_END):
                    append(x)
                    continue
            elif child is _MASK_NODE:
                notes.mask((path, i))
                append(MASK)
                continue
            notes.budget = budget
            append(self._copy(x, child, (path, i), depth + 1, notes))
            budget = notes.budget
        notes.budget = budget
        if size > self.max_items:
            notes.cut(path)
            append(f"<truncated: {size - self.max_items} more items>")
        return out

    def _scalar_text(self, v: Any, path: _Path, notes: _Notes) -> str:
        text = _safe_text(v)
        notes.budget -= len(text)
        if len(text) > self.max_string:
            notes.cut(path)
            return self._cut_string(text)
        return text


_CAP_ONLY = Masker(None)
_MEMO_ENTRIES = 256  # per memo of a masker (principal, resource, context attributes; decisions)
_MEMO_MAX_CHARS = 4096  # larger parts are masked again each time (the server does not share them either)


class _Part:
    """One part of a request masked and capped (`Masker._part`), with its encodings once made."""

    __slots__ = ("value", "node", "copy", "masked", "truncated", "consumed", "json", "packed")

    def __init__(
        self, value: Any, node: Any, copy: Any, masked: tuple[str, ...], truncated: tuple[str, ...], consumed: int
    ):
        self.value = value
        self.node = node
        self.copy = copy
        self.masked = masked
        self.truncated = truncated
        self.consumed = consumed
        self.json: str | None = None
        self.packed: bytes | None = None


class _Outputs:
    """A decision's logged obligations and advice (`Masker._outputs`), with their encodings once made."""

    __slots__ = ("decision", "headers", "advice_names", "obligations", "advice", "json", "packed")

    def __init__(
        self,
        decision: Decision,
        headers: frozenset[str],
        advice_names: frozenset[str],
        obligations: tuple[dict[str, Any], ...],
        advice: tuple[dict[str, Any], ...],
    ):
        self.decision = decision
        self.headers = headers
        self.advice_names = advice_names
        self.obligations = obligations
        self.advice = advice
        self.json: str | None = None  # revision ... advice, as JSON object members (for _Composer)
        self.packed: bytes | None = None  # the same as msgpack map entries


def mask_values(items: Iterable[dict[str, Any]], names: frozenset[str] | set[str]) -> list[dict[str, Any]]:
    """Obligations or advice with the `value` of those named in `names` replaced by "<masked>" (the
    headers and advice a policy fills from sensitive attributes)."""
    if not names:
        return list(items)
    return [{**o, "value": MASK} if o.get("name") in names else o for o in items]


def _ordered(v: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(v, key=repr)
    except Exception:
        return list(v)


def _safe_text(v: Any) -> str:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return repr(bytes(v[:4096]))
    try:
        text = str(v)
    except Exception:
        return f"<unprintable {type(v).__name__}>"
    return text if type(text) is str else f"<unprintable {type(v).__name__}>"


def _sanitize(v: Any, depth: int = 0) -> Any:
    """Any value as plain JSON/msgpack data (the writer's fallback when encoding fails)."""
    if depth > 64:
        return "<truncated>"
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, str):
        return v.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(v, int):
        return int(v) if -(2**63) <= v < 2**64 else str(v)
    if isinstance(v, float):
        return float(v) if math.isfinite(v) else str(v)
    if isinstance(v, Mapping):
        return {
            _sanitize(_safe_text(k) if not isinstance(k, str) else k, depth + 1): _sanitize(x, depth + 1)
            for k, x in v.items()
        }
    if isinstance(v, (list, tuple, set, frozenset)):
        return [_sanitize(x, depth + 1) for x in v]
    return _sanitize(_safe_text(v), depth + 1)


# ---- sinks ------------------------------------------------------------------------------


class DecisionLogError(RuntimeError):
    """The decision log cannot take an event."""


class DecisionLogFull(DecisionLogError):
    """`on_full="block"` waited `submit_timeout` seconds for room: the writer is failing or too slow."""


class DecisionLogClosed(DecisionLogError):
    """The decision log is closed."""


class DecisionSink(Protocol):
    """What a decision point needs from a decision log (DecisionLog, NullDecisionLog, MemoryDecisionLog)."""

    written: int
    dropped: int
    bytes_written: int
    rotations: int
    write_errors: int

    def submit(self, event: DecisionEvent) -> bool: ...

    async def submit_async(self, event: DecisionEvent) -> bool: ...

    def queue_depth(self) -> int: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def close(self) -> None: ...


class LogFile(Protocol):
    """What the writer needs of the file `opener` returns (the default: `open(path, "ab", buffering=0)`).

    `write` returns how many bytes it wrote (None: all of them). `truncate(size)` and `fileno()`
    are used when present (undoing a failed write; fsync and the size of an existing file)."""

    def write(self, data: bytes, /) -> int | None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class _SinkBase:
    written = 0
    dropped = 0
    bytes_written = 0
    rotations = 0
    write_errors = 0

    def stats(self) -> dict[str, int]:
        """Counters and gauges for metrics."""
        return {
            "written": self.written,
            "dropped": self.dropped,
            "bytes_written": self.bytes_written,
            "rotations": self.rotations,
            "write_errors": self.write_errors,
            "queue_depth": self.queue_depth(),
        }

    def queue_depth(self) -> int:
        return 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass


class NullDecisionLog(_SinkBase):
    """Logging off: the same interface, every event is discarded at once (and not counted)."""

    enabled = False

    def submit(self, event: DecisionEvent) -> bool:
        return True

    async def submit_async(self, event: DecisionEvent) -> bool:
        return True

    def flush(self, timeout: float | None = None) -> bool:
        return True


class MemoryDecisionLog(_SinkBase):
    """Keeps events in `events` (for tests of a decision point)."""

    enabled = True

    def __init__(self) -> None:
        self.events: list[DecisionEvent] = []
        self._lock = threading.Lock()

    def submit(self, event: DecisionEvent) -> bool:
        with self._lock:
            self.events.append(event)
            self.written += 1
        return True

    async def submit_async(self, event: DecisionEvent) -> bool:
        return self.submit(event)

    def flush(self, timeout: float | None = None) -> bool:
        return True


if TYPE_CHECKING:  # the three sinks are interchangeable

    def _sinks(a: DecisionLog, b: NullDecisionLog, c: MemoryDecisionLog) -> tuple[DecisionSink, ...]:
        return (a, b, c)


def worker_path(path: str | os.PathLike[str], worker_index: int) -> str:
    """The log file of one worker process: `decisions.jsonl` -> `decisions.w1.jsonl` (`decisions` -> `decisions.w1`)."""
    p = Path(path)
    if p.suffix:
        return str(p.with_name(f"{p.stem}.w{worker_index}{p.suffix}"))
    return str(p.with_name(f"{p.name}.w{worker_index}"))


def open_decision_log(path: str | os.PathLike[str] | None, **options: Any) -> DecisionLog | NullDecisionLog:
    """A `DecisionLog` on `path`, or a `NullDecisionLog` when `path` is None (logging off)."""
    return NullDecisionLog() if path is None else DecisionLog(path, **options)


def _open_append(path: str) -> LogFile:
    return open(path, "ab", buffering=0)


_jstr = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]  # C: a str as an ASCII JSON string
_PACKED_TRUE, _PACKED_FALSE = b"\xc3", b"\xc2"


class _Entity:
    """A principal or resource of a request with its attributes masked (`_Composer._entity`)."""

    __slots__ = ("attributes", "keys", "items", "parts", "consumed", "json", "packed")

    def __init__(
        self, attributes: Any, keys: tuple[str, ...], items: list[tuple[str, Any]], parts: list[_Part], consumed: int
    ):
        self.attributes = attributes
        self.keys = keys
        self.items = items  # (key, str or _Part), in the entity's order
        self.parts = parts
        self.consumed = consumed
        self.json: str | None = None
        self.packed: bytes | None = None


_ABSENT: Any = object()
_ENTITY_KEYS = frozenset(("type", "id", "attributes"))
_REQUEST_KEYS = frozenset(("action", "principal", "resource", "context"))
_DIGITS3 = [f"{i:03d}" for i in range(1000)]


def _latency_text(latency: float) -> str:
    """`repr(to_the_nanosecond(latency))`, the way JSON writes it, at half the cost: with at most
    12 significant digits, a number's shortest repr is its 3-decimal text without trailing zeros."""
    if 0 <= latency < 1e9:
        text = f"{latency:.3f}".rstrip("0")
        return text + "0" if text[-1] == "." else text
    return repr(to_the_nanosecond(latency))


_TYPE_ID_ATTRIBUTES = ("type", "id", "attributes")
_TYPE_ID = ("type", "id")


def _entity_key(entity: dict[Any, Any]) -> tuple[Any, Any, Any, Any]:
    """(keys, type, id, attributes) of a request's principal or resource, for `_Composer._template`."""
    return tuple(entity), entity.get("type"), entity.get("id"), entity.get("attributes", _ABSENT)


class _Template:
    """A record less its decision id, timestamp, latency and cached flag, for one request (by the
    identity of its shared maps), decision, source and worker; kept by `_Composer._template`."""

    __slots__ = (
        "decision",
        "headers",
        "advice_names",
        "worker",
        "unauthenticated",
        "json_format",
        "maps",
        "mid",
        "end",
    )

    def __init__(
        self,
        decision: Decision,
        headers: frozenset[str],
        advice_names: frozenset[str],
        worker: int | None,
        unauthenticated: bool,
        json_format: bool,
        mid: Any,
        end: Any,
    ):
        self.decision = decision  # held, as the maps are: their ids are in the template's key
        self.headers = headers
        self.advice_names = advice_names
        self.worker = worker
        self.unauthenticated = unauthenticated
        self.json_format = json_format
        self.maps: tuple[Any, ...] = ()  # the principal's and the resource's attributes, the context
        self.mid = mid  # JSON: revision ... `"latency_us":`; msgpack: revision ... key "latency_us"
        self.end = end  # JSON: `,"request":` ... `}\n`; msgpack: key "request" ... the last value


class _Composer:
    """Encodes a `PendingDecision` straight into a record, from pieces made once and reused: the
    masked parts of requests (`Masker._part`, entities), the masked outputs of decisions
    (`Masker._outputs`), and whole records less their per-event fields (`_Template`), each kept
    encoded. The record is byte for byte what encoding `event_for_outcome(item).to_json()`
    gives; whatever this cannot compose exactly (a request of another shape, one near the size
    limits, a value that needs sanitizing) gives None and the writer takes that slower way.

    Composing is exact because masking a request part by part gives what masking it whole gives
    as long as the whole stays under the masker's `max_total` budget (nothing is then cut for
    size: the other limits apply to each value alone) and under `_MAX_NOTES` paths: both are
    checked, with the budget each part used."""

    def __init__(self, encoder: json.JSONEncoder) -> None:
        self._json = encoder.encode
        self._packer = msgpack.Packer(use_bin_type=True)
        self._pack = self._packer.pack
        self._jkeys: dict[str, str] = {}
        self._pkeys: dict[str, bytes] = {}
        pack = self._pack
        self._packed_head = {
            n: self._packer.pack_map_header(n) + pack("v") + pack(SCHEMA_VERSION) for n in range(13, 18)
        }
        self._packed_decision_id = pack("decision_id")
        self._packed_timestamp = pack("timestamp")
        self._packed_cached = (pack("cached") + _PACKED_FALSE, pack("cached") + _PACKED_TRUE)
        self._packed_errors = pack("errors")
        self._packed_latency = pack("latency_us")
        self._packed_request = pack("request")
        self._packed_masked = pack("masked")
        self._tails: dict[tuple[bool, str | None, int | None], tuple[str, bytes, int]] = {}
        self._second = -1
        self._second_text = ""

    # ---- per event ------------------------------------------------------------------------------
    def jsonl(self, item: PendingDecision) -> bytes | None:
        outcome, masker, source, worker, when = item
        decision_id, latency, cached = outcome.decision_id, outcome.latency_us, outcome.cached
        if not _plain_fields(decision_id, latency, cached):
            return None
        template = self._template(masker, outcome, source, worker, True)
        if template is None:
            return None
        line = (
            f'{{"v":{SCHEMA_VERSION},"decision_id":{_jstr(decision_id)},"timestamp":"{self._timestamp(when)}",'
            f'{template.mid}{_latency_text(latency)},"cached":{"true" if cached else "false"}{template.end}'
        )
        return line.encode("ascii")

    def msgpack(self, item: PendingDecision) -> bytes | None:
        outcome, masker, source, worker, when = item
        decision_id, latency, cached = outcome.decision_id, outcome.latency_us, outcome.cached
        if not _plain_fields(decision_id, latency, cached):
            return None
        template = self._template(masker, outcome, source, worker, False)
        if template is None:
            return None
        pack = self._pack
        return b"".join(
            [
                template.mid[0],
                pack(decision_id),
                self._packed_timestamp,
                pack(self._timestamp(when)),
                template.mid[1],
                pack(float(f"{latency:.3f}")),
                self._packed_cached[cached],
                template.end,
            ]
        )

    def _timestamp(self, when: float) -> str:
        """`rfc3339(when)`, a little faster (the seconds' text is kept while they last)."""
        if when < 0:
            return rfc3339(when)
        second = int(when)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
        micros = int((when - second) * 1_000_000)
        if micros > 999_999:
            micros = 999_999
        return f"{self._second_text}{_DIGITS3[micros // 1000]}{_DIGITS3[micros % 1000]}Z"

    def _template(
        self, masker: Masker, outcome: OutcomeLike, source: Any, worker: Any, json_format: bool
    ) -> _Template | None:
        """The record's template, memoized by the request's keys and strings and the identity of
        its maps (held by the template, so that their ids stay theirs) for requests of the usual
        shape: principal, resource and context, and strings (the action, ...); entities of type, id
        and attributes (checked when a template is kept: other shapes never match a kept key)."""
        request = outcome.request
        decision = outcome.decision
        key: tuple[Any, ...] | None = None
        maps: tuple[Any, ...] = ()
        if type(request) is dict:
            # (the two entities inline, as `_entity_key` does: this runs for every event)
            pk: Any = None
            pt = pi = rk = rt = ri = None
            pa = ra = _ABSENT
            if "principal" in request:
                p = request["principal"]
                pk = tuple(p) if type(p) is dict else False
                if pk == _TYPE_ID_ATTRIBUTES:
                    pt, pi, pa = p["type"], p["id"], p["attributes"]
                elif pk:
                    pk, pt, pi, pa = _entity_key(p)
            if "resource" in request:
                r = request["resource"]
                rk = tuple(r) if type(r) is dict else False
                if rk == _TYPE_ID:
                    rt, ri = r["type"], r["id"]
                elif rk:
                    rk, rt, ri, ra = _entity_key(r)
            if pk is not False and rk is not False:
                ctx = request["context"] if "context" in request else _ABSENT
                shape = tuple(request)
                extra = None  # the values of other top-level keys than these four (strings, for a kept key)
                if not _REQUEST_KEYS.issuperset(shape):
                    extra = tuple([v for k, v in request.items() if k not in _REQUEST_KEYS])
                maps = (pa, ra, ctx)
                key = (
                    shape, request["action"] if "action" in request else None, extra, pk, pt, pi, id(pa),
                    rk, rt, ri, id(ra), id(ctx), id(decision), source,
                )  # fmt: skip
                try:
                    found = masker._templates.get(key)
                except TypeError:  # an unhashable value where a string belongs
                    key = None
                else:
                    if (
                        found is not None
                        and found.json_format is json_format
                        and found.headers is outcome.sensitive_headers
                        and found.advice_names is outcome.sensitive_advice
                        and found.worker == worker
                        and found.unauthenticated is outcome.unauthenticated
                    ):
                        return found  # type: ignore[no-any-return]
        built = self._build(masker, outcome, source, worker, json_format)
        if built is not None and key is not None and len(built.end) <= _MEMO_MAX_CHARS * 4 and self._usual(request):
            memo = masker._templates
            if len(memo) >= _MEMO_ENTRIES:
                try:
                    del memo[next(iter(memo))]  # the oldest
                except (KeyError, RuntimeError, StopIteration):  # another writer thread got there
                    memo.clear()
            built.maps = maps
            memo[key] = built
        return built

    @staticmethod
    def _usual(request: dict[Any, Any]) -> bool:
        """Every value of `request` is in a `_template` key: its strings by value, its maps by identity."""
        for k, v in request.items():
            if k not in _REQUEST_KEYS and type(v) is not str:
                return False
        for side in ("principal", "resource"):
            entity = request.get(side, _ABSENT)
            if entity is not _ABSENT and not _ENTITY_KEYS.issuperset(entity):
                return False
        return True

    # ---- building a template ----------------------------------------------------------------------
    def _build(
        self,
        masker: Masker,
        outcome: OutcomeLike,
        source: Any,
        worker: Any,
        json_format: bool,
    ) -> _Template | None:
        unauthenticated = outcome.unauthenticated
        if (
            (source is not None and type(source) is not str)
            or (worker is not None and type(worker) is not int)
            or type(unauthenticated) is not bool
        ):
            return None
        composed = self._request(masker, outcome.request, json_format)
        if composed is None:
            return None
        fields, parts = composed
        decision = outcome.decision
        headers, advice_names = outcome.sensitive_headers, outcome.sensitive_advice
        outputs = masker._outputs(decision, headers, advice_names)
        masked: tuple[str, ...] = ()
        truncated: tuple[str, ...] = ()
        for part in parts:
            if part.masked:
                masked += part.masked
            if part.truncated:
                truncated += part.truncated
        tail = self._tail(unauthenticated, source, worker)
        if json_format:
            head = outputs.json
            if head is None:
                head = outputs.json = self._json(
                    {
                        "revision": decision.revision,
                        "allowed": decision.allowed,
                        "reasons": list(decision.reasons),
                        "obligations": list(outputs.obligations),
                        "advice": list(outputs.advice),
                    }
                )[1:-1]
            errors = self._json([masker.error(e, masked) for e in decision.errors]) if decision.errors else "[]"
            rest = f',"truncated":{self._json(list(truncated))}{tail[0]}' if truncated else tail[0]
            mid = f'{head},"errors":{errors},"latency_us":'
            end = f',"request":{{{",".join(fields)}}},"masked":{self._json(list(masked))}{rest}}}\n'
            return _Template(decision, headers, advice_names, worker, unauthenticated, True, mid, end)
        pack = self._pack
        packed = outputs.packed
        if packed is None:
            packed = outputs.packed = b"".join(
                [
                    pack("revision"),
                    pack(decision.revision),
                    pack("allowed"),
                    pack(decision.allowed),
                    pack("reasons"),
                    pack(list(decision.reasons)),
                    pack("obligations"),
                    pack(list(outputs.obligations)),
                    pack("advice"),
                    pack(list(outputs.advice)),
                ]
            )
        errors_packed = pack([masker.error(e, masked) for e in decision.errors]) if decision.errors else b"\x90"
        first = self._packed_head[13 + tail[2] + (1 if truncated else 0)] + self._packed_decision_id
        second = b"".join([packed, self._packed_errors, errors_packed, self._packed_latency])
        end_parts = [self._packed_request, *fields, self._packed_masked, pack(list(masked))]
        if truncated:
            end_parts += (pack("truncated"), pack(list(truncated)))
        end_parts.append(tail[1])
        return _Template(
            decision, headers, advice_names, worker, unauthenticated, False, (first, second), b"".join(end_parts)
        )

    def _tail(self, unauthenticated: bool, source: str | None, worker: int | None) -> tuple[str, bytes, int]:
        """The last fields of a record (unauthenticated, source, worker): JSON text (with a leading
        comma), msgpack, and how many."""
        key = (unauthenticated, source, worker)
        tail = self._tails.get(key)
        if tail is None:
            rest: dict[str, Any] = {}
            if unauthenticated:
                rest["unauthenticated"] = True
            if source is not None:
                rest["source"] = source
            if worker is not None:
                rest["worker"] = worker
            text = self._json(rest)[1:-1]
            packed = b"".join([self._pack(k) + self._pack(v) for k, v in rest.items()])
            tail = ("," + text if text else "", packed, len(rest))
            if len(self._tails) < 64:
                self._tails[key] = tail
        return tail

    def _request(self, masker: Masker, request: Any, json_format: bool) -> tuple[list[Any], list[_Part]] | None:
        """The masked request's top level, encoded: for JSON the `"key":value` texts, for msgpack
        the map header then the packed keys and values; and the parts whose paths are noted.
        None unless composing is exact (see the class)."""
        if type(request) is not dict or len(request) > masker.max_items or masker.max_depth <= 2:
            return None
        max_string = masker.max_string
        used = 2  # the budget `Masker.mask` would use up
        out: list[Any] = [] if json_format else [self._packer.pack_map_header(len(request))]
        parts: list[_Part] = []
        for k, v in request.items():
            if type(k) is not str or len(k) > max_string:
                return None
            t = type(v)
            if t is str:
                if len(v) > max_string:
                    return None
                used += len(k) + len(v)
            elif t is dict:
                if k == "principal" or k == "resource":
                    v = self._entity(masker, k, v)
                    if v is None:
                        return None
                    parts += v.parts
                elif k == "context":
                    v = masker._part(k, v, masker._context, ("", k), 1)
                    if v is None:
                        return None
                    parts.append(v)
                else:
                    return None
                used += len(k) + v.consumed
            else:
                return None
            if json_format:
                out.append(self._jkey(k) + self._jvalue(v))
            else:
                out += (self._pkey(k), self._pvalue(v))
        if used >= masker.max_total:
            return None
        if len(parts) > 1 and (
            sum([len(p.masked) for p in parts]) > _MAX_NOTES or sum([len(p.truncated) for p in parts]) > _MAX_NOTES
        ):
            return None
        return out, parts

    def _entity(self, masker: Masker, side: str, entity: dict[Any, Any]) -> _Entity | None:
        """A principal or resource (`{"type", "id", "attributes"}`), memoized by its type and id
        and by the identity of its attributes (whose masking `Masker._part` memoizes)."""
        attributes = entity.get("attributes", _ABSENT)
        etype, eid = entity.get("type"), entity.get("id")
        memo = masker._entity_memo
        key = None
        if type(etype) is str and type(eid) is str:
            key = (side, etype, eid, id(attributes))
            found = memo.get(key)
            if found is not None and found.attributes is attributes and found.keys == tuple(entity):
                return found  # type: ignore[no-any-return]
        if len(entity) > masker.max_items:
            return None
        max_string = masker.max_string
        plan = masker._entities.get(etype) if type(etype) is str else None
        used = 2
        items: list[tuple[str, Any]] = []
        parts: list[_Part] = []
        for k, v in entity.items():
            if type(k) is not str or len(k) > max_string:
                return None
            t = type(v)
            if t is str:
                if len(v) > max_string:
                    return None
                used += len(k) + len(v)
            elif t is dict and k == "attributes":
                v = masker._part(side, v, plan.get(k) if plan is not None else None, (("", side), k), 2)
                if v is None:
                    return None
                parts.append(v)
                used += len(k) + v.consumed
            else:
                return None
            items.append((k, v))
        found = _Entity(attributes, tuple(entity), items, parts, used)
        if key is not None and found.keys and _ENTITY_KEYS.issuperset(found.keys):  # every value is in the key
            if len(memo) >= _MEMO_ENTRIES:
                try:
                    del memo[next(iter(memo))]  # the oldest
                except (KeyError, RuntimeError, StopIteration):  # another writer thread got there
                    memo.clear()
            memo[key] = found
        return found

    def _jkey(self, k: str) -> str:
        text = self._jkeys.get(k)
        if text is None:
            text = _jstr(k) + ":"
            if len(self._jkeys) < 256:
                self._jkeys[k] = text
        return text

    def _jvalue(self, v: Any) -> str:
        if type(v) is str:
            return _jstr(v)  # type: ignore[no-any-return]
        text = v.json
        if text is None:
            if type(v) is _Part:
                text = self._json(v.copy)
            else:
                text = "{" + ",".join([self._jkey(k) + self._jvalue(x) for k, x in v.items]) + "}"
            v.json = text
        return text  # type: ignore[no-any-return]

    def _pkey(self, k: str) -> bytes:
        packed = self._pkeys.get(k)
        if packed is None:
            packed = self._pack(k)
            if len(self._pkeys) < 256:
                self._pkeys[k] = packed
        return packed

    def _pvalue(self, v: Any) -> bytes:
        if type(v) is str:
            return self._pack(v)  # type: ignore[no-any-return]
        packed = v.packed
        if packed is None:
            if type(v) is _Part:
                packed = self._pack(v.copy)
            else:
                packed = b"".join(
                    [self._packer.pack_map_header(len(v.items))] + [self._pkey(k) + self._pvalue(x) for k, x in v.items]
                )
            v.packed = packed
        return packed  # type: ignore[no-any-return]


class DecisionLog(_SinkBase):
    """Writes decision events to a file from a background thread; see the module docstring.

    Memory: at most `queue_size` events wait in the queue, plus the batch being written (at most
    another `queue_size`). `queue_depth()` counts both: events accepted and not yet on disk.
    Events reach the file about `write_interval` seconds after they are queued (at once with
    `flush` and `close`, and as soon as a batch of them waits).
    `submit_timeout` (None: wait forever) bounds how long `submit`/`submit_async` wait for room
    with `on_full="block"`; `close_timeout` how long `close` keeps retrying a failing write before
    it gives the remaining events up (counted in `dropped`, reported). Two logs must not share a
    path (use `worker_path` for worker processes).
    """

    enabled = True
    retry_max = 1.0  # seconds between retries of a failing write, at most

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: Format | str = "jsonl",
        max_bytes: int = 100 * 1024 * 1024,
        backups: int = 5,
        queue_size: int = 10_000,
        on_full: OnFull | str = "block",
        submit_timeout: float | None = 30.0,
        close_timeout: float = 30.0,
        retry_interval: float = 0.05,
        write_interval: float = 0.1,
        fsync: bool = False,
        on_error: Callable[[BaseException], None] | None = None,
        opener: Callable[[str], LogFile] | None = None,
    ):
        if format not in ("jsonl", "msgpack"):
            raise ValueError(f"format must be 'jsonl' or 'msgpack', not {format!r}")
        if on_full not in ("block", "drop"):
            raise ValueError(f"on_full must be 'block' or 'drop', not {on_full!r}")
        if queue_size < 1 or max_bytes < 0 or backups < 0:
            raise ValueError("queue_size must be positive; max_bytes and backups must not be negative")
        if not write_interval > 0:
            raise ValueError("write_interval must be positive")
        self.path = os.fspath(path)
        self.format: Format = "jsonl" if format == "jsonl" else "msgpack"
        self.max_bytes = max_bytes
        self.backups = backups
        self.queue_size = queue_size
        self.on_full: OnFull = "block" if on_full == "block" else "drop"
        self.submit_timeout = submit_timeout
        self.close_timeout = close_timeout
        self.retry_interval = retry_interval
        self.write_interval = write_interval
        self.fsync = fsync
        self.on_error = on_error
        self._opener = opener or _open_append
        self.written = 0
        self.dropped = 0
        self.bytes_written = 0
        self.rotations = 0
        self.write_errors = 0
        self.submitted = 0
        self.last_error: BaseException | None = None
        self._next_drop_warning = 0.0

        self._rotating = max_bytes > 0 and backups > 0
        self._limit = max_bytes  # raised past a rotation that failed, so that it is not retried per batch
        # no circular check (faster): a cyclic value fails with RecursionError and is sanitised
        self._json = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False)
        self._packer = msgpack.Packer(use_bin_type=True)
        self._encode = self._encode_jsonl if format == "jsonl" else self._encode_msgpack
        composer = _Composer(self._json)
        self._compose = composer.jsonl if format == "jsonl" else composer.msgpack

        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)  # the writer waits here
        self._not_full = threading.Condition(self._lock)  # blocked producers wait here
        self._done = threading.Condition(self._lock)  # flush waits here
        self._queue: list[QueueItem] = []
        # The writer wakes when this many events wait (or every write_interval seconds, or for a
        # flush, a close or a full queue), not for each event: a thread woken per event costs the
        # event loop's thread more (GIL hand-offs) than the event itself.
        self._wake_at = max(1, min(queue_size // 4, 1024))
        self._completed = 0  # events written or given up (counted in dropped)
        self._writer_idle = False
        self._urgent = False  # a flush waits: write what is queued now
        self._blocked = 0  # producers waiting in submit
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closing = False
        self._closed = False
        self._abandon_at: float | None = None
        self._writer_dead: BaseException | None = None

        self._fh: LogFile | None = None
        self._size = 0
        self._fh = self._open()  # configuration errors (no such folder, no permission) surface here
        self._thread = threading.Thread(target=self._run, name=f"pdp-decision-log:{self.path}", daemon=False)
        self._thread.start()

    # ---- producers -------------------------------------------------------------------------
    def submit(self, event: QueueItem) -> bool:
        """Queue `event`; True once queued, False when dropped (on_full="drop", queue full).

        With on_full="block" a full queue makes this wait (back-pressure) and raise
        `DecisionLogFull` after `submit_timeout` seconds. Raises `DecisionLogClosed` after close.
        Do not call it on an event loop: use `submit_async`."""
        with self._lock:
            if self._closed or self._writer_dead is not None:
                self._check_open()
            if len(self._queue) < self.queue_size or self._make_room():
                queue = self._queue  # (a new list once the writer has taken the old one)
                queue.append(event)
                self.submitted += 1
                if self._writer_idle and len(queue) >= self._wake_at:
                    self._not_empty.notify()
                return True
            self.dropped += 1
        self._warn_dropped()
        return False

    def try_submit(self, event: QueueItem) -> bool:
        """Queue `event` if there is room now, never waiting: False when the queue is full (nothing
        is counted; call `submit_async` or `submit` then, which apply `on_full`). Raises
        `DecisionLogClosed` after close. The cheap way for an event loop: a `PendingDecision` is
        masked and encoded by the writer thread, in a batch."""
        with self._lock:
            if self._closed or self._writer_dead is not None:
                self._check_open()
            queue = self._queue
            if len(queue) < self.queue_size:
                queue.append(event)
                self.submitted += 1
                if self._writer_idle and len(queue) >= self._wake_at:
                    self._not_empty.notify()
                return True
        return False

    def _warn_dropped(self) -> None:
        """Log drops (on_full="drop"): the first at once, then at most one line every 10 s."""
        now = time.monotonic()
        if now >= self._next_drop_warning:
            self._next_drop_warning = now + 10.0
            logger.warning(
                "decision log %s: queue full (%d events), %d events dropped so far (on_full=drop)",
                self.path,
                self.queue_size,
                self.dropped,
            )

    def _make_room(self) -> bool:
        """With the lock held and the queue full: False to drop (on_full="drop"), or wait until
        the queue has room and return True; raise when closed or after `submit_timeout`."""
        if self.on_full == "drop":
            return False
        deadline = None if self.submit_timeout is None else time.monotonic() + self.submit_timeout
        self._blocked += 1
        if self._writer_idle:
            self._not_empty.notify()
        try:
            while len(self._queue) >= self.queue_size:
                self._check_open()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self.dropped += 1
                    raise self._full_error()
                self._not_full.wait(remaining)
            self._check_open()
        finally:
            self._blocked -= 1
        return True

    def _check_open(self) -> None:
        if self._closed:
            raise DecisionLogClosed(f"decision log {self.path} is closed")
        if self._writer_dead is not None:
            raise DecisionLogError(f"decision log {self.path}: the writer thread failed: {self._writer_dead!r}")

    def _full_error(self) -> DecisionLogFull:
        why = f"the writer is failing: {self.last_error}" if self.last_error is not None else "the writer is too slow"
        return DecisionLogFull(
            f"decision log {self.path}: queue full ({self.queue_size} events) for {self.submit_timeout} s; {why}"
        )

    async def submit_async(self, event: QueueItem) -> bool:
        """`submit` for asyncio code; never blocks the event loop.

        Tries a non-blocking put first. When the queue is full: with on_full="drop" drops and
        counts (False); with "block" the coroutine waits (the loop keeps running) until the writer
        takes the queue: the writer wakes it with `loop.call_soon_threadsafe`, with a 50 ms poll as
        a safety net. Raises `DecisionLogFull` after `submit_timeout` seconds without room."""
        loop = asyncio.get_running_loop()
        deadline = None if self.submit_timeout is None else loop.time() + self.submit_timeout
        waiter: asyncio.Future[None] | None = None
        while True:
            with self._lock:
                if self._closed:
                    raise DecisionLogClosed(f"decision log {self.path} is closed")
                if self._writer_dead is not None:
                    self._check_open()
                if len(self._queue) < self.queue_size:
                    self._queue.append(event)
                    self.submitted += 1
                    if self._writer_idle and len(self._queue) >= self._wake_at:
                        self._not_empty.notify()
                    return True
                if self._writer_idle:
                    self._not_empty.notify()
                if self.on_full == "drop":
                    self.dropped += 1
                    dropping = True
                else:
                    dropping = False
                    remaining = None if deadline is None else deadline - loop.time()
                    if remaining is not None and remaining <= 0:
                        self.dropped += 1
                        raise self._full_error()
                    if waiter is None or waiter.done():  # one registration at a time: the writer resolves it
                        waiter = loop.create_future()
                        self._async_waiters.append((loop, waiter))
            if dropping:
                self._warn_dropped()
                return False
            assert waiter is not None
            await asyncio.wait((waiter,), timeout=0.05 if remaining is None else min(0.05, remaining))

    # ---- state -------------------------------------------------------------------------------
    def queue_depth(self) -> int:
        """Events accepted and not yet written (queued plus the batch being written)."""
        return self.submitted - self._completed

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event submitted before this call is on disk (or given up by `close`).
        False if `timeout` seconds passed first (e.g. while a failing write is being retried)."""
        with self._lock:
            target = self.submitted
            if self._completed < target:
                self._urgent = True
                self._not_empty.notify()
            return self._done.wait_for(lambda: self._completed >= target, timeout)

    def close(self) -> None:
        """Write everything queued, stop and join the writer, close the file. Idempotent.

        A write that keeps failing is retried for `close_timeout` seconds; then the events still
        unwritten are counted in `dropped` and reported."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._closing = True
                self._abandon_at = time.monotonic() + self.close_timeout
                self._not_empty.notify_all()
                self._not_full.notify_all()  # blocked producers raise DecisionLogClosed
                waiters, self._async_waiters = self._async_waiters, []
            else:
                waiters = []
        _wake(waiters)
        if self._thread is not threading.current_thread():
            self._thread.join()

    # ---- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug: make producers fail loudly instead of waiting forever
            logger.exception("decision log %s: the writer thread failed", self.path)
            with self._lock:
                self._writer_dead = exc
                self.dropped += self.submitted - self._completed
                self._completed = self.submitted
                self._not_full.notify_all()
                self._done.notify_all()
                waiters, self._async_waiters = self._async_waiters, []
            _wake(waiters)
        finally:
            self._close_file()

    def _loop(self) -> None:
        main = threading.main_thread()
        delay = self.retry_interval
        pending: list[bytes] = []  # encoded records not yet on disk, oldest first
        while True:
            if not pending:
                with self._lock:
                    waited = False
                    while True:
                        queue = self._queue
                        if queue and (
                            waited
                            or self._closing
                            or self._urgent
                            or self._blocked
                            or self._async_waiters
                            or len(queue) >= self._wake_at
                        ):
                            break
                        if self._closing:
                            return
                        self._writer_idle = True
                        self._not_empty.wait(self.write_interval)
                        self._writer_idle = False
                        waited = True
                        if not main.is_alive():  # the program ended without close(): drain and stop
                            self._closing = True
                            self._abandon_at = time.monotonic() + self.close_timeout
                    batch, self._queue = self._queue, []
                    self._urgent = False
                    if self._blocked:
                        self._not_full.notify_all()
                    waiters, self._async_waiters = self._async_waiters, []
                _wake(waiters)
                pending = self._encode_batch(batch)
                if not pending:
                    continue
            try:
                self._write_records(pending)
                delay = self.retry_interval
            except Exception as exc:
                self._report(exc, f"write failed, {len(pending)} events kept for retry")
                abandon_at = self._abandon_at
                if abandon_at is not None and time.monotonic() >= abandon_at:
                    logger.error("decision log %s: closing with %d events unwritten (%s)", self.path, len(pending), exc)
                    self._finish(len(pending), dropped=True)
                    pending = []
                    continue
                with self._lock:
                    self._not_empty.wait(delay)  # close() wakes it
                delay = min(delay * 2, self.retry_max)

    def _finish(self, n: int, *, dropped: bool = False) -> None:
        with self._lock:
            self._completed += n
            if dropped:
                self.dropped += n
            self._done.notify_all()

    def _encode_batch(self, batch: list[QueueItem]) -> list[bytes]:
        out = []
        encode, compose = self._encode, self._compose
        for event in batch:
            try:
                if type(event) is tuple:  # a PendingDecision
                    try:
                        record = compose(event)
                    except Exception:  # composing is an optimisation: the long way says what is wrong
                        record = None
                    out.append(record if record is not None else encode(event_for_outcome(event)))
                else:
                    out.append(encode(event))  # type: ignore[arg-type]
            except Exception as exc:
                self._report(exc, f"cannot encode event {_decision_id(event)}; dropped")
                self._finish(1, dropped=True)
        return out

    def _encode_jsonl(self, event: DecisionEvent) -> bytes:
        data = event.to_json()
        try:
            text = self._json.encode(data)
        except (TypeError, ValueError, OverflowError, RecursionError):
            text = self._json.encode(_sanitize(data))
        return (text + "\n").encode("utf-8")

    def _encode_msgpack(self, event: DecisionEvent) -> bytes:
        data = event.to_json()
        try:
            return self._packer.pack(data)  # type: ignore[no-any-return]
        except (TypeError, ValueError, OverflowError, RecursionError):
            return self._packer.pack(_sanitize(data))  # type: ignore[no-any-return]

    def _write_records(self, records: list[bytes]) -> None:
        """Write `records`, removing each from the list once on disk; raises on a failed write
        (what failed is still in `records`, and nothing of it is left in the file when possible)."""
        while records:
            if self._fh is None:
                self._fh = self._open()
            fh = self._fh
            if self._rotating and self._size > 0 and self._size + len(records[0]) > self._limit:
                self._rotate()
                continue
            room = self._limit - self._size if self._rotating else math.inf
            n, total = 0, 0
            for record in records:  # as many as fit; a record larger than max_bytes gets a file of its own
                if n and total + len(record) > room:
                    break
                total += len(record)
                n += 1
            blob = records[0] if n == 1 else b"".join(records[:n])
            start = self._size
            try:
                _write_all(fh, blob)
                fh.flush()
                if self.fsync:
                    os.fsync(getattr(fh, "fileno")())  # noqa: B009 - not in the LogFile protocol
            except BaseException:
                self._undo(start)
                raise
            self._size += total
            self.bytes_written += total
            self.written += n
            del records[:n]
            self._finish(n)

    def _undo(self, size: int) -> None:
        """After a failed write: cut the file back to `size` so that no record is half written."""
        try:
            truncate = getattr(self._fh, "truncate", None)
            if truncate is None:
                raise OSError("cannot truncate")
            truncate(size)
        except Exception:
            self._close_file()  # reopened (and its tail checked) on the next attempt

    def _rotate(self) -> None:
        self._close_file()
        try:
            self._shift_files()
        except OSError as exc:
            self._report(exc, "rotation failed; appending to the current file")
            self._limit = self._size + self.max_bytes
            return
        self.rotations += 1
        self._limit = self.max_bytes
        self._size = 0

    def _shift_files(self) -> None:
        for i in range(self.backups - 1, 0, -1):
            src = f"{self.path}.{i}"
            if os.path.exists(src):
                os.replace(src, f"{self.path}.{i + 1}")
        os.replace(self.path, f"{self.path}.1")

    def _open(self) -> LogFile:
        fh = self._opener(self.path)
        try:
            size = _file_size(fh, self.path)
            if size:
                good = _complete_prefix(self.path, self.format, size)
                if good != size:
                    self._damaged_tail(good, size)
                    if self._rotating:
                        fh.close()
                        self._shift_files()
                        self.rotations += 1
                        fh = self._opener(self.path)
                        size = _file_size(fh, self.path)
                    elif good >= 0:
                        os.truncate(self.path, good)
                        size = good
                    else:
                        raise DecisionLogError(
                            f"{self.path} is not a {self.format} decision log; refusing to append to it"
                        )
        except BaseException:
            fh.close()
            raise
        self._size = size
        return fh

    def _damaged_tail(self, good: int, size: int) -> None:
        if good < 0:
            what = f"{self.path} does not hold {self.format} records"
        else:
            what = f"{self.path} ends with {size - good} bytes of an incomplete record (a crash mid-write?)"
        action = "moved aside by rotation" if self._rotating else "truncated away" if good >= 0 else "not touched"
        logger.warning("decision log: %s; %s", what, action)

    def _close_file(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except Exception as exc:
                self._report(exc, "closing the file failed")

    def _report(self, exc: BaseException, what: str) -> None:
        self.write_errors += 1
        self.last_error = exc
        logger.error("decision log %s: %s: %s", self.path, what, exc)
        if self.on_error is not None:
            try:
                self.on_error(exc)
            except Exception:
                logger.exception("decision log %s: the on_error callback failed", self.path)


def _decision_id(event: Any) -> str:
    if type(event) is tuple:
        event = event[0]
    return str(getattr(event, "decision_id", "?"))


def _wake(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
    for loop, fut in waiters:
        try:
            loop.call_soon_threadsafe(_resolve, fut)
        except RuntimeError:  # that loop is closed
            pass


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _write_all(fh: LogFile, data: bytes) -> None:
    while data:
        n = fh.write(data)
        if n is None or n == len(data):
            return
        if n <= 0:
            raise OSError(f"short write ({n} bytes)")
        data = data[n:]  # rare: copy what is left


def _file_size(fh: LogFile, path: str) -> int:
    try:
        return os.fstat(getattr(fh, "fileno")()).st_size  # noqa: B009 - not in the LogFile protocol
    except (AttributeError, OSError, ValueError):
        try:
            return os.path.getsize(path)
        except OSError:
            return 0


def _complete_prefix(path: str, format: Format, size: int) -> int:
    """How many leading bytes of an existing log are whole records (-1: not this format)."""
    with open(path, "rb") as f:
        first = f.read(1)
        if (first == b"{") != (format == "jsonl"):
            return -1
        if format == "jsonl":
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return size
            # back to the last newline
            pos = size
            while pos > 0:
                step = min(pos, 65536)
                pos -= step
                f.seek(pos)
                chunk = f.read(step)
                i = chunk.rfind(b"\n")
                if i >= 0:
                    return pos + i + 1
            return 0
        f.seek(0)
        unpacker = msgpack.Unpacker(f, raw=False, strict_map_key=False)
        start = 0
        try:
            while True:
                start = unpacker.tell()
                unpacker.skip()
        except msgpack.OutOfData:  # the end, or a record cut short: the whole ones end at `start`
            return int(start)
        except Exception:  # not msgpack, or damaged in the middle: not safe to cut
            return -1


# ---- reading ----------------------------------------------------------------------------

_ROTATED = re.compile(r"^(.*)\.(\d+)$")
_GLOB_MAGIC = re.compile(r"[*?[]")


def log_files(paths: Iterable[str | os.PathLike[str]]) -> list[list[Path]]:
    """The log files to read, one list per log (a base file and its rotated siblings), oldest first.

    A path names a log: the file and its rotated siblings (`FILE.N` ... `FILE.1`, `FILE`) are read.
    A glob (quoted, or expanded by the shell) may match bases and rotated files alike; they are
    grouped by base. Raises FileNotFoundError for a path or glob that matches no file."""
    groups: dict[Path, set[int]] = {}  # base -> rotation numbers (0: the base itself)
    for raw in paths:
        text = os.fspath(raw)
        if _GLOB_MAGIC.search(text):
            found = [Path(p) for p in sorted(glob.glob(text)) if os.path.isfile(p)]
            if not found:
                raise FileNotFoundError(f"no file matches {text}")
            for p in found:
                base, n = _split_rotated(p)
                groups.setdefault(base, set()).add(n)
            continue
        p = Path(text)
        base, n = _split_rotated(p)
        if n and not p.is_file():
            raise FileNotFoundError(f"no such file: {text}")
        numbers = groups.setdefault(base, set())
        if n:
            numbers.add(n)
            continue
        if p.is_file():
            numbers.add(0)
        siblings = _rotated_siblings(p)
        numbers.update(siblings)
        if not p.is_file() and not siblings:
            if p.is_dir():
                raise FileNotFoundError(f"{text} is a directory")
            raise FileNotFoundError(f"no such file: {text}")
    out = []
    for base in sorted(groups):
        numbers = groups[base]
        if not numbers:
            continue
        out.append([base if n == 0 else Path(f"{base}.{n}") for n in sorted(numbers, reverse=True)])
    return out


def _split_rotated(p: Path) -> tuple[Path, int]:
    m = _ROTATED.match(p.name)
    if m and m.group(1):
        return p.with_name(m.group(1)), int(m.group(2))
    return p, 0


def _rotated_siblings(p: Path) -> set[int]:
    out = set()
    for q in glob.glob(glob.escape(str(p)) + ".*"):
        base, n = _split_rotated(Path(q))
        if n and base == p and os.path.isfile(q):
            out.add(n)
    return out


def read_events(
    paths: Iterable[str | os.PathLike[str]], *, on_warning: Callable[[str], None] | None = None
) -> Iterator[dict[str, Any]]:
    """The events (as `to_json()` dicts) in the logs `paths` name (see `log_files`), in order.

    Each log is read oldest file first; several logs (worker files) are merged by timestamp.
    A damaged or truncated record (a crash mid-write) ends that file with a warning passed to
    `on_warning` (default: the `pdp.decision_log` logger). The files are resolved now (raising
    FileNotFoundError); they are read as the iterator is consumed."""
    groups = log_files(paths)
    warn = on_warning or (lambda message: logger.warning("%s", message))
    streams = [itertools.chain.from_iterable(_read_file(p, warn) for p in group) for group in groups]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=_timestamp_key)


def _timestamp_key(event: dict[str, Any]) -> str:
    ts = event.get("timestamp")
    return ts if isinstance(ts, str) else ""


def _read_file(path: Path, warn: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as f:
        first = f.read(1)
        if not first:
            return
        f.seek(0)
        if first == b"{":
            yield from _read_jsonl(f, path, warn)
        else:
            yield from _read_msgpack(f, path, warn)


def _read_jsonl(f: Any, path: Path, warn: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    offset = 0
    for lineno, line in enumerate(f, 1):
        start, offset = offset, offset + len(line)
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            if not line.endswith(b"\n"):
                warn(
                    f"{path}: truncated record at byte {start} (line {lineno}), ignored: the writer stopped mid-record"
                )
                return
            warn(f"{path}: line {lineno} is not a JSON record, skipped")
            continue
        if isinstance(event, dict):
            yield event
        else:
            warn(f"{path}: line {lineno} is not a JSON object, skipped")


def _read_msgpack(f: Any, path: Path, warn: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    unpacker = msgpack.Unpacker(f, raw=False, strict_map_key=False)
    size = os.fstat(f.fileno()).st_size
    while True:
        start = unpacker.tell()
        try:
            event = unpacker.unpack()
        except msgpack.OutOfData:  # (tell() is not meaningful after this; `start` is)
            if start < size:
                warn(f"{path}: truncated record at byte {start}, ignored: the writer stopped mid-record")
            return
        except Exception as exc:
            warn(f"{path}: damaged record at byte {start} ({type(exc).__name__}); the rest of the file is skipped")
            return
        if isinstance(event, dict):
            yield event
        else:
            warn(f"{path}: the record at byte {start} is not a map, skipped")


# ---- filtering and formatting -----------------------------------------------------------


def parse_time(text: str, *, now: float | None = None) -> datetime:
    """An RFC 3339 time (`2026-11-27T10:00:00Z`; no offset means UTC), a date (`2026-11-27`, midnight
    UTC), or a duration before now (`15m`, `1h30m`, `2d`). Raises ValueError."""
    from policy_lang.values import parse_duration

    text = text.strip()
    try:
        ago = parse_duration(text)
    except ValueError:
        pass
    else:
        return datetime.fromtimestamp(time.time() if now is None else now, UTC) - timedelta(seconds=ago)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"`{text}` is not a time such as 2026-11-27T10:00:00Z, 2026-11-27 or 15m") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    ts = event.get("timestamp")
    if not isinstance(ts, str):
        return None
    try:
        value = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _entity(request: Any, side: str) -> tuple[str, str]:
    entity = request.get(side) if isinstance(request, dict) else None
    if not isinstance(entity, dict):
        return "?", "?"
    etype, eid = entity.get("type"), entity.get("id")
    return (etype if isinstance(etype, str) else "?"), (eid if isinstance(eid, str) else "?")


def matches(
    event: Mapping[str, Any],
    *,
    decision: str | None = None,
    principal: str | None = None,
    rule: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> bool:
    """Does `event` (a `to_json()` dict) pass every filter given?

    `decision`: "allow" or "deny". `principal`: the request principal's id (or `Type:id`,
    `Type::id`). `rule`: a rule id among the reasons or the errors' rules. `since` (inclusive) and
    `until` (exclusive): aware datetimes."""
    if decision is not None and (event.get("allowed") is True) != (decision == "allow"):
        return False
    if principal is not None:
        ptype, pid = _entity(event.get("request"), "principal")
        if principal not in (pid, f"{ptype}:{pid}", f"{ptype}::{pid}"):
            return False
    if rule is not None:
        reasons = event.get("reasons")
        errors = event.get("errors")
        found = isinstance(reasons, list) and rule in reasons
        if not found and isinstance(errors, list):
            found = any(isinstance(e, dict) and e.get("rule") == rule for e in errors)
        if not found:
            return False
    if since is not None or until is not None:
        when = _event_time(event)
        if when is None:
            return False
        if since is not None and when < since:
            return False
        if until is not None and when >= until:
            return False
    return True


def _clean(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if text.isprintable() else repr(text)[1:-1]


def format_event(event: Mapping[str, Any]) -> str:
    """One line: time, decision, principal, action, resource, reasons, latency, cached (and errors,
    source, worker when present). Control characters from the request are escaped."""
    request = event.get("request")
    ptype, pid = _entity(request, "principal")
    rtype, rid = _entity(request, "resource")
    action = request.get("action") if isinstance(request, dict) else None
    reasons = event.get("reasons")
    reasons_text = ",".join(_clean(r) for r in reasons) if isinstance(reasons, list) else ""
    latency = event.get("latency_us")
    parts = [
        _clean(event.get("timestamp", "?")),
        "allow" if event.get("allowed") is True else "deny ",
        f"{_clean(ptype)}:{_clean(pid)}",
        _clean(action) if isinstance(action, str) else "?",
        f"{_clean(rtype)}:{_clean(rid)}",
        f"[{reasons_text}]",
        f"{latency:.1f}us" if isinstance(latency, (int, float)) else "?us",
    ]
    if event.get("cached") is True:
        parts.append("cached")
    errors = event.get("errors")
    if isinstance(errors, list) and errors:
        first = errors[0]
        message = first.get("message", "") if isinstance(first, dict) else first
        more = f" (+{len(errors) - 1})" if len(errors) > 1 else ""
        parts.append(f"error: {_clean(message)}{more}")
    if event.get("unauthenticated") is True:
        parts.append("unauthenticated")
    source = event.get("source")
    if isinstance(source, str):
        parts.append(f"source={_clean(source)}")
    worker = event.get("worker")
    if isinstance(worker, int):
        parts.append(f"worker={worker}")
    return " ".join(parts)


def _plain_fields(decision_id: Any, latency: Any, cached: Any) -> bool:
    """The per-decision fields are of the types the fast encoders write; otherwise the general path."""
    return (
        type(decision_id) is str
        and (type(latency) is float or type(latency) is int)
        and math.isfinite(latency)
        and type(cached) is bool
    )
