"""Protocol buffers <-> the engine's request and decision, with the size limits.

Anything malformed raises `BadRequest` naming the field, which the servicer answers with
INVALID_ARGUMENT. Decisions that carry no per-call data are turned into a response once
and copied after that (decisions are immutable and the engine shares equal ones).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgpack

from pdp.decision import Decision
from pdp.v1 import authorization_pb2 as pb


class BadRequest(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class Limits:
    max_depth: int = 16
    max_string: int = 8192
    max_batch: int = 100
    max_items: int = 10_000  # keys and values in one checked value, all levels together
    max_message: int = 4 * 1024 * 1024  # bytes of one request message


def _decode_map(raw: bytes | str, field: str, limits: Limits, *, as_json: bool) -> dict[str, Any]:
    """Decode and check one attribute map. The same principal and context come back call after
    call, byte for byte, so good answers are kept by their bytes (nothing downstream writes to a
    request's maps); a bad one is decoded again to name its field."""
    if len(raw) <= _CACHEABLE:
        try:
            return _decoded(raw, limits, as_json)
        except BadRequest:
            pass
    return _decode_uncached(raw, field, limits, as_json=as_json)


_CACHEABLE = 4096  # bytes; larger maps are decoded each time


@lru_cache(maxsize=4096)
def _decoded(raw: bytes | str, limits: Limits, as_json: bool) -> dict[str, Any]:
    return _decode_uncached(raw, "", limits, as_json=as_json)


def _decode_uncached(raw: bytes | str, field: str, limits: Limits, *, as_json: bool) -> dict[str, Any]:
    try:
        if as_json:
            value = json.loads(raw)
        else:
            # Sizes are bounded by the message size limit; check_limits names the field at fault.
            value = msgpack.unpackb(raw, raw=False, strict_map_key=True)
    except Exception as exc:  # any decoding failure is the caller's error
        kind = "JSON" if as_json else "msgpack"
        raise BadRequest(field, f"not valid {kind}: {type(exc).__name__}") from None
    if not isinstance(value, dict):
        raise BadRequest(field, "must encode a map")
    check_limits(value, field, limits)
    return value


def check_limits(value: Any, field: str, limits: Limits) -> None:
    """Nesting depth, string length and the number of keys and values, iteratively (no
    recursion for a hostile depth).

    The walk that passes builds no paths; only a value over a limit is walked again to name
    the field at fault. Too many values is reported for the whole field.
    """
    if not _within(value, limits.max_depth, limits.max_string, limits.max_items, field):
        _name_the_violation(value, field, limits)


def _within(value: Any, max_depth: int, max_string: int, max_items: int, field: str) -> bool:
    stack: list[tuple[Any, int]] = [(value, 0)]
    count = 0
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return False
        count += len(item)
        if count > max_items:
            raise BadRequest(field, f"too many values (more than {max_items})")
        items = item.items() if type(item) is dict else enumerate(item)
        for k, v in items:
            if type(k) is str and len(k) > max_string:
                return False
            t = type(v)
            if t is str:
                if len(v) > max_string:
                    return False
            elif t is dict or t is list:
                stack.append((v, depth + 1))
    return True


def _name_the_violation(value: Any, field: str, limits: Limits) -> None:
    stack: list[tuple[Any, str, int]] = [(value, field, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > limits.max_depth and type(item) in (dict, list):  # containers make the depth
            raise BadRequest(path, f"nested deeper than {limits.max_depth} levels")
        if isinstance(item, str):
            if len(item) > limits.max_string:
                raise BadRequest(path, f"string longer than {limits.max_string} characters")
        elif isinstance(item, dict):
            for k, v in item.items():
                if isinstance(k, str) and len(k) > limits.max_string:
                    raise BadRequest(path, f"key longer than {limits.max_string} characters")
                stack.append((v, f"{path}.{k}", depth + 1))
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item))


def entity(e: pb.Entity, field: str, limits: Limits, *, required: bool = True) -> dict[str, Any] | None:
    if not e.type and not e.id and not e.WhichOneof("attributes_encoding") and not e.parents:
        if required:
            raise BadRequest(field, "is required")
        return None
    if not e.type:
        raise BadRequest(f"{field}.type", "is required")
    out: dict[str, Any] = {"type": e.type, "id": e.id}
    which = e.WhichOneof("attributes_encoding")
    if which == "attributes":
        out["attributes"] = _decode_map(e.attributes, f"{field}.attributes", limits, as_json=False)
    elif which == "attributes_json":
        out["attributes"] = _decode_map(e.attributes_json, f"{field}.attributes_json", limits, as_json=True)
    if e.parents:
        out["parents"] = [{"type": p.type, "id": p.id} for p in e.parents]
    return out


def context(message: Any, field_prefix: str, limits: Limits) -> dict[str, Any] | None:
    which = message.WhichOneof("context_encoding")
    if which == "context":
        return _decode_map(message.context, f"{field_prefix}context", limits, as_json=False)
    if which == "context_json":
        return _decode_map(message.context_json, f"{field_prefix}context_json", limits, as_json=True)
    return None


def request(msg: pb.AuthorizeRequest, limits: Limits, field: str = "") -> dict[str, Any]:
    """An AuthorizeRequest -> the engine's request (the principal may come from the token later)."""
    out: dict[str, Any] = {"action": msg.action}
    if not msg.action:
        raise BadRequest(f"{field}action", "is required")
    principal = entity(msg.principal, f"{field}principal", limits, required=not msg.bearer_token)
    if principal is not None:
        out["principal"] = principal
    resource = entity(msg.resource, f"{field}resource", limits)
    out["resource"] = resource
    ctx = context(msg, field, limits)
    if ctx is not None:
        out["context"] = ctx
    return out


# ---- responses ---------------------------------------------------------------------------


def _template(decision: Decision) -> pb.AuthorizeResponse:
    return pb.AuthorizeResponse(
        allowed=decision.allowed,
        reasons=list(decision.reasons),
        obligations=[
            pb.Obligation(
                type=str(o.get("type", "")),
                path=str(o.get("path", "")),
                name=str(o.get("name", "")),
                value=str(o.get("value", "")),
            )
            for o in decision.obligations
        ],
        advice=[
            pb.Advice(rule=str(a.get("rule", "")), name=str(a.get("name", "")), value_json=json.dumps(a.get("value")))
            for a in decision.advice
        ],
        errors=[pb.DecisionError(message=e.message, rule=e.rule or "", field=e.field or "") for e in decision.errors],
        revision=decision.revision,
    )


class ResponseBuilder:
    """Decision -> response; the shared part is built once per distinct decision object."""

    def __init__(self, limit: int = 4096):
        self._templates: dict[int, tuple[Decision, pb.AuthorizeResponse]] = {}
        self._limit = limit

    def build(
        self, decision: Decision, decision_id: str, *, cached: bool, unauthenticated: bool, cache_ttl_ms: int
    ) -> pb.AuthorizeResponse:
        entry = self._templates.get(id(decision))
        if entry is None or entry[0] is not decision:
            if len(self._templates) >= self._limit:
                self._templates.clear()
            entry = (decision, _template(decision))
            self._templates[id(decision)] = entry
        response = pb.AuthorizeResponse()
        response.CopyFrom(entry[1])
        response.decision_id = decision_id
        response.cached = cached
        response.unauthenticated = unauthenticated
        response.cache_ttl_ms = cache_ttl_ms
        return response

    def clear(self) -> None:
        self._templates.clear()
