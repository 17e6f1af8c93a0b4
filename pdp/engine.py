"""The in-process decision point: request in, Decision out, never an exception.

Deny by default; any matching forbid denies; a rule that fails while evaluating denies
(with the error reported under its id); otherwise any matching permit or role grant allows.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pdp.decision import Decision, DecisionError
from pdp.entities import EntityStore, entity_ref
from pdp.loader import PolicySources, compile_sources, read_directory
from policy_lang.compiler import Bucket, CompiledPolicy
from policy_lang.convert import ConversionError, Converter, _cached_datetime, record_converter
from policy_lang.runtime import Scope
from policy_lang.schema import Record
from policy_lang.validators import generate

_REQUEST_KEYS = frozenset({"principal", "action", "resource", "context", "now"})
_ENTITY_KEYS = frozenset({"type", "id", "attributes", "parents"})
_EMPTY: dict[str, Any] = {}
_CONTEXT = "\0context"


class _BadRequest(Exception):
    def __init__(self, field: str | None, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


class _EntitySpec:
    """How one entity type's attributes are checked. The converters are made on first use: a
    schema of a thousand types need not build a thousand validators before deciding anything."""

    __slots__ = ("fast", "fast_full", "slow", "required", "name", "_record", "_lock", "_ready")

    def __init__(self, name: str, record: Record):
        self.name = name
        self._record = record
        self._lock = threading.Lock()
        self._ready = False
        self.required = tuple(f.name for f in record.fields if not f.optional)
        self.fast: Converter = self._build_then("fast")  # generated; raises without detail
        self.fast_full: Converter = self._build_then("fast_full")  # also requires the required attributes
        self.slow: Converter = self._build_then("slow")  # generic; names the field at fault

    def _build_then(self, which: str) -> Converter:
        def first_call(value: Any) -> Any:
            with self._lock:
                if not self._ready:
                    fast = generate({"partial": (self._record, False), "full": (self._record, True)})
                    self.fast, self.fast_full = fast["partial"], fast["full"]
                    self.slow = record_converter(self._record, partial=True)
                    self._ready = True
            converter: Converter = getattr(self, which)
            return converter(value)

        return first_call


class Engine:
    """Decides requests against one compiled policy set and its entity data."""

    def __init__(self, policy: CompiledPolicy, store: EntityStore | None = None):
        self.policy = policy
        self.store = store or EntityStore()
        schema = policy.checked.schema
        self.schema = schema
        self._entities = {name: _EntitySpec(name, t.record) for name, t in schema.entities.items()}
        self._context_fast = generate({_CONTEXT: (schema.context, True)})[_CONTEXT]
        self._context = record_converter(schema.context)
        self._buckets = policy.buckets
        self._revision = policy.revision
        # Answers are kept per bucket (Bucket.memo), by what matched and the header and advice values.
        self._keep = policy.kept.keep
        # Stored entities that carry every required attribute need nothing from the request.
        self._complete = frozenset(
            key
            for key, attrs in self.store.attributes.items()
            if key[0] in self._entities and all(name in attrs for name in self._entities[key[0]].required)
        )
        self._deny_nothing_applies = Decision(False, revision=policy.revision)
        self._actions = schema.actions
        self._stored = self.store.attributes
        self._ancestors = self.store.ancestors

    # ---- construction ------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> Engine:
        """Compile every policy and data file under `path`; raises PolicyError on any problem."""
        return cls.from_sources(read_directory(path))

    @classmethod
    def from_source(cls, text: str, data: Mapping[str, Any] | None = None, *, filename: str = "<policy>") -> Engine:
        import json

        data_files = (("<data>", json.dumps(data)),) if data else ()
        return cls.from_sources(PolicySources(((filename, "", text),), data_files))

    @classmethod
    def from_sources(cls, sources: PolicySources) -> Engine:
        policy, store = compile_sources(sources)
        return cls(policy, store)

    @property
    def revision(self) -> str:
        return self._revision

    # ---- deciding ----------------------------------------------------------------
    def decide(self, request: Any) -> Decision:
        try:
            return self._decide_plain(request)
        except Exception:  # not the plain shape, or something to report: the full path says what
            pass
        try:
            prepared = self.prepare(request)
            return self._run(*prepared)
        except _BadRequest as exc:
            return Decision(False, errors=(DecisionError(exc.message, field=exc.field),), revision=self._revision)
        except Exception as exc:  # fail closed: whatever broke, the answer is deny
            return Decision(
                False, errors=(DecisionError(f"internal error: {type(exc).__name__}: {exc}"),), revision=self._revision
            )

    def decide_batch(self, principal: Any, context: Any, items: list[tuple[Any, Any]]) -> list[Decision]:
        """One principal and context, many (resource, action) pairs: the principal and the context
        are checked once. Each answer equals `decide` on the corresponding full request."""
        try:
            ptype, pid, P = self._entity(principal, "principal")
            extra: dict[str, tuple[str, ...]] | None = None
            if "parents" in principal:
                extra = self._given_parents(None, ptype, pid, principal["parents"], "principal")
            C = self._context_of(context)
        except _BadRequest as exc:
            shared = Decision(False, errors=(DecisionError(exc.message, field=exc.field),), revision=self._revision)
            return [shared] * len(items)
        now = time.time()
        out = []
        actions, buckets, ancestors = self._actions, self._buckets, self._ancestors
        run, plain_attributes = self._run, self._plain_attributes
        last: Any = None  # the resource of the previous plain pair: its actions follow one another
        for resource, action in items:
            # The plain item first (as in decide): a stored resource named by type and id, or
            # one with valid attributes, and no parents on either side; anything else goes the
            # general way below, which gives the same answer or names the field at fault.
            if extra is None and type(action) is str:
                try:
                    if resource is not last:
                        last = None
                        if type(resource) is not dict:
                            raise LookupError
                        n = len(resource)
                        if n != 2 and (n != 3 or "attributes" not in resource):
                            raise LookupError
                        rtype = resource["type"]
                        rid = resource["id"]
                        if type(rid) is not str or type(rtype) is not str:
                            raise LookupError
                        R = plain_attributes(rtype, rid, resource.get("attributes"))
                        X: Scope = (now, pid, rid, ptype, rtype, None, ancestors)
                        last = resource
                    if action not in actions[rtype]:
                        raise LookupError
                    out.append(run(buckets.get((ptype, rtype, action)), P, R, C, X))
                    continue
                except Exception:
                    pass
            try:
                if type(action) is not str:
                    raise _BadRequest("action", "`action` must be a string")
                rtype, rid, R = self._entity(resource, "resource")
                parents = extra
                if "parents" in resource:
                    parents = self._given_parents(dict(extra or {}), rtype, rid, resource["parents"], "resource")
                if action not in self.schema.actions.get(rtype, ()):
                    raise _BadRequest("action", f"action `{action}` is not valid for `{rtype}`")
                X = (now, pid, rid, ptype, rtype, parents, self.store.ancestors)
                out.append(self._run(self._buckets.get((ptype, rtype, action)), P, R, C, X))
            except _BadRequest as exc:
                out.append(
                    Decision(False, errors=(DecisionError(exc.message, field=exc.field),), revision=self._revision)
                )
            except Exception as exc:  # fail closed, as decide does
                message = f"internal error: {type(exc).__name__}: {exc}"
                out.append(Decision(False, errors=(DecisionError(message),), revision=self._revision))
        return out

    def _decide_plain(self, request: Any) -> Decision:
        """The common shape in one pass: no `parents`, no request attributes merged into stored
        entities, every value already valid. Anything else raises, and `decide` takes the full
        path, which answers the same for what this accepts and names the field at fault otherwise."""
        if type(request) is not dict:
            raise LookupError
        principal = request["principal"]
        resource = request["resource"]
        action = request["action"]
        context = request.get("context")
        now = request.get("now")
        # Exact key sets by counting: the required keys are read above (a KeyError if absent), so
        # a length that leaves room only for the optional ones proves nothing else is there. (A
        # `context` or `now` given as null fails this and takes the full path.)
        if len(request) - 3 != (context is not None) + (now is not None):
            raise LookupError
        if type(principal) is not dict or type(resource) is not dict or type(action) is not str:
            raise LookupError
        ptype = principal["type"]
        pid = principal["id"]
        rtype = resource["type"]
        rid = resource["id"]
        n = len(principal)
        if n != 2 and (n != 3 or "attributes" not in principal):
            raise LookupError
        n = len(resource)
        if n != 2 and (n != 3 or "attributes" not in resource):
            raise LookupError
        if type(pid) is not str or type(rid) is not str or type(ptype) is not str or type(rtype) is not str:
            raise LookupError
        if action not in self._actions[rtype]:
            raise LookupError
        P = self._plain_attributes(ptype, pid, principal.get("attributes"))
        R = self._plain_attributes(rtype, rid, resource.get("attributes"))
        C = self._context_fast(_EMPTY if context is None else context)
        X: Scope = (_when(now), pid, rid, ptype, rtype, None, self._ancestors)
        return self._run(self._buckets.get((ptype, rtype, action)), P, R, C, X)

    def _plain_attributes(self, etype: str, eid: str, attrs: Any) -> dict[str, Any]:
        """An entity's attributes when the request gives valid ones for an entity the data does
        not hold, or none for one the data holds completely; raises for anything else."""
        key = (etype, eid)
        stored = self._stored.get(key)
        if stored is None:
            return self._entities[etype].fast_full(_EMPTY if attrs is None else attrs)  # type: ignore[no-any-return]
        if (attrs is None or (type(attrs) is dict and not attrs)) and key in self._complete:
            return stored
        raise LookupError

    def prepare(self, request: Any) -> tuple[Bucket | None, dict[str, Any], dict[str, Any], dict[str, Any], Scope]:
        """Validate and convert a request; raises _BadRequest naming the field at fault."""
        if type(request) is not dict:
            raise _BadRequest(None, "a request must be an object")
        if not request.keys() <= _REQUEST_KEYS:
            extra = sorted(set(request) - _REQUEST_KEYS)[0]
            raise _BadRequest(extra, f"unknown request field `{extra}`")
        action = request.get("action")
        if type(action) is not str:
            raise _BadRequest("action", "`action` must be a string")
        extra_parents: dict[str, tuple[str, ...]] | None = None
        principal: Any = request.get("principal")
        ptype, pid, P = self._entity(principal, "principal")
        if "parents" in principal:
            extra_parents = self._given_parents(None, ptype, pid, principal["parents"], "principal")
        resource: Any = request.get("resource")
        rtype, rid, R = self._entity(resource, "resource")
        if "parents" in resource:
            extra_parents = self._given_parents(extra_parents, rtype, rid, resource["parents"], "resource")
        if action not in self.schema.actions.get(rtype, ()):
            raise _BadRequest("action", f"action `{action}` is not valid for `{rtype}`")
        C = self._context_of(request.get("context"))
        scope = (_when(request.get("now")), pid, rid, ptype, rtype, extra_parents, self.store.ancestors)
        return self._buckets.get((ptype, rtype, action)), P, R, C, scope

    def _given_parents(
        self, into: dict[str, tuple[str, ...]] | None, etype: str, eid: str, given: Any, side: str
    ) -> dict[str, tuple[str, ...]] | None:
        parents = _parents(given, side)  # checked even when unused: malformed input is denied
        ref = f"{etype}::{eid}"
        if ref in self.store.parents:  # a stored entity's place in the hierarchy is the data's to say
            return into
        into = into or {}
        into[ref] = parents
        return into

    def _context_of(self, context: Any) -> dict[str, Any]:
        if context is None:
            context = _EMPTY
        try:
            return self._context_fast(context)  # type: ignore[no-any-return]
        except Exception:
            return self._convert(self._context, context, "context")  # type: ignore[no-any-return]

    @staticmethod
    def _convert(convert: Converter, value: Any, root: str) -> Any:
        try:
            return convert(value)
        except ConversionError as exc:
            raise _BadRequest(exc.path(root), exc.message) from None

    def _entity(self, value: Any, side: str) -> tuple[str, str, dict[str, Any]]:
        if type(value) is not dict:
            raise _BadRequest(side, f"`{side}` must be an object with `type` and `id`")
        if not value.keys() <= _ENTITY_KEYS:
            extra = sorted(set(value) - _ENTITY_KEYS)[0]
            raise _BadRequest(f"{side}.{extra}", f"unknown field `{extra}`")
        etype = value.get("type")
        eid = value.get("id")
        if type(etype) is not str:
            raise _BadRequest(f"{side}.type", "`type` must be a string")
        if type(eid) is not str:
            raise _BadRequest(f"{side}.id", "`id` must be a string")
        spec = self._entities.get(etype)
        if spec is None:
            raise _BadRequest(f"{side}.type", f"unknown entity type `{etype}`")
        attrs = value.get("attributes")
        stored = self.store.attributes.get((etype, eid))
        if stored is None:
            try:
                return etype, eid, spec.fast_full(_EMPTY if attrs is None else attrs)
            except Exception:
                converted = self._convert(spec.slow, _EMPTY if attrs is None else attrs, f"{side}.attributes")
        else:
            if attrs is None or (type(attrs) is dict and not attrs):
                if (etype, eid) in self._complete:
                    return etype, eid, stored  # the gateway case: only an id, the data knows the rest
                attrs = _EMPTY
            try:
                given = spec.fast(attrs)  # checked even where unused: malformed input is denied
            except Exception:
                given = self._convert(spec.slow, attrs, f"{side}.attributes")
            # The data wins: a stored entity's attributes are the data's to say. A request may only
            # fill a *required* attribute the data leaves out; an optional one the data omits stays
            # absent (absence means something: a caller must not make itself a document's owner).
            converted = dict(stored)
            for name in spec.required:
                if name not in stored and name in given:
                    converted[name] = given[name]
        for name in spec.required:
            if name not in converted:
                raise _BadRequest(f"{side}.attributes.{name}", "missing required attribute")
        return etype, eid, converted

    def _run(
        self, bucket: Bucket | None, P: dict[str, Any], R: dict[str, Any], C: dict[str, Any], X: Scope
    ) -> Decision:
        if bucket is None:
            return self._deny_nothing_applies
        found = bucket.decide(P, R, C, X)  # a kept answer, or what matched (see Compiler.emit_bucket)
        if type(found) is not tuple:
            return found  # type: ignore[no-any-return]
        return self._answer(bucket, found, P, R, C, X)

    def _answer(self, bucket: Bucket, found: tuple[Any, ...], P: Any, R: Any, C: Any, X: Scope) -> Decision:
        """The Decision for what a leaf found matching, kept in the leaf when it gave a key."""
        F, M, E, G, key = found
        if F or E:
            decision = self._denial(bucket, F, E, P, R, C, X)
        elif not M and not G:  # keeps the bucket's clock dependence: a later permit may match
            decision = Decision(False, revision=self._revision, time_dependent=bucket.uses_now)
        else:
            decision = self._permit(bucket, M, G, P, R, C, X)
        if key is not None:
            self._keep(bucket, key, decision)
        return decision

    def _denial(self, bucket: Bucket, F: int, E: Any, P: Any, R: Any, C: Any, X: Scope) -> Decision:
        rules = bucket.rules
        advised = _indices(F & bucket.advice_mask)
        advice = tuple(
            _frozen({"rule": rules[i].id, "name": name, "value": _json_value(v)})
            for i, values in zip(advised, [_outputs_or_none(bucket, i, P, R, C, X) for i in advised], strict=True)
            if values is not None
            for name, v in zip(rules[i].advice_names, values[1], strict=True)
        )
        errors = tuple(DecisionError(_describe(exc), rules[i].id) for i, exc in E)
        reasons = tuple(rules[i].id for i in _indices(F))
        return Decision(False, reasons, (), advice, errors, self._revision, bucket.uses_now)

    def _permit(self, bucket: Bucket, M: int, G: Any, P: Any, R: Any, C: Any, X: Scope) -> Decision:
        rules = bucket.rules
        matched = _indices(M)
        reasons = [rules[i].id for i in matched]
        obligations: list[Mapping[str, Any]] = []
        for i in matched:
            rule = rules[i]
            for path in rule.masks:
                obligations.append(_frozen({"type": "mask", "path": path}))
            if rule.header_names:
                try:
                    texts = [_header_text(v) for v in bucket.outputs[i](P, R, C, X)[0]]
                except Exception as exc:
                    error = (DecisionError(_describe(exc), rule.id),)
                    return Decision(False, (), (), (), error, self._revision, bucket.uses_now)
                for name, text in zip(rule.header_names, texts, strict=True):
                    obligations.append(_frozen({"type": "header", "name": name, "value": text}))
        if G:
            reasons.extend(f"role:{role}" for role in sorted(G))
        return Decision(True, tuple(reasons), tuple(obligations), (), (), self._revision, bucket.uses_now)


def _outputs_or_none(bucket: Bucket, i: int, P: Any, R: Any, C: Any, X: Scope) -> Any:
    """A rule's computed (headers, advice), or None when computing them fails."""
    try:
        return bucket.outputs[i](P, R, C, X)
    except Exception:
        return None


def _when(now: Any) -> float:
    """A request's `now` (absent: the clock) as epoch seconds; raises _BadRequest naming it."""
    if now is None:
        return time.time()
    if type(now) is str:
        try:
            return _cached_datetime(now)  # type: ignore[no-any-return]
        except ValueError as exc:
            raise _BadRequest("now", str(exc)) from None
    if type(now) in (int, float) and math.isfinite(now):
        return float(now)
    raise _BadRequest("now", "`now` must be an RFC 3339 string or epoch seconds")


def _indices(mask: int) -> tuple[int, ...]:
    """The positions of the set bits, lowest first: the rules that matched, in evaluation order."""
    found = _INDICES.get(mask)
    if found is None:
        found = tuple(i for i in range(mask.bit_length()) if mask >> i & 1)
        if len(_INDICES) < 65536:
            _INDICES[mask] = found
    return found


_INDICES: dict[int, tuple[int, ...]] = {}


def _parents(given: Any, side: str) -> tuple[str, ...]:
    if type(given) is not list:
        raise _BadRequest(f"{side}.parents", "`parents` must be a list of entity references")
    out = []
    for i, item in enumerate(given):
        parent = entity_ref(item)
        if parent is None:
            raise _BadRequest(f"{side}.parents[{i}]", 'expected {"type": ..., "id": ...}')
        out.append(parent)
    return tuple(out)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"no entry `{exc.args[0]}` in the map"
    return f"{type(exc).__name__}: {exc}"


def _frozen(item: dict[str, Any]) -> Mapping[str, Any]:
    """Decisions are shared between callers, so what they hold is read-only."""
    return MappingProxyType(item)


_UNSAFE_HEADER = frozenset("\r\n\0")


def _header_text(value: Any) -> str:
    if type(value) is str and value.isprintable():  # the common case: printable text is safe
        return value
    if value is True or value is False:
        return "true" if value else "false"
    text = str(value)
    if not _UNSAFE_HEADER.isdisjoint(text):  # would split or truncate the header at the gateway
        raise ValueError("header value contains a line break or NUL")
    return text


def _json_value(value: Any) -> Any:
    if type(value) is float:
        return value + 0.0  # -0.0 -> 0.0: the memo keys values by equality, which ignores the sign
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, frozenset):
        return sorted((_json_value(v) for v in value), key=repr)
    if isinstance(value, dict):
        return {k: _json_value(v) for k, v in value.items()}
    return str(value)
