"""Protocol buffers <-> the engine's request and decision, with the size limits.

Anything malformed raises `BadRequest` naming the field, which the servicer answers with
INVALID_ARGUMENT. Decisions that carry no per-call data are turned into a response once
and copied after that (decisions are immutable and the engine shares equal ones); the
server sends answers as bytes made from that template's serialized form.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
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


_CACHEABLE = 4096  # bytes; larger maps are decoded each time


class Decoder:
    """Request messages -> the engine's request, under one set of limits.

    The same principal and context come back call after call, byte for byte, so decoded maps,
    and whole principals, are kept by their bytes (nothing downstream writes to a request's
    maps; at most `cache_size` of each kind, each at most 4 KiB encoded; a full cache starts
    over). What fails is never kept: each failure is decoded again and names its field.
    """

    def __init__(self, limits: Limits, cache_size: int = 4096):
        self.limits = limits
        self._msgpack: dict[bytes, dict[str, Any]] = {}
        self._json: dict[str, dict[str, Any]] = {}
        self._principals: dict[bytes, dict[str, Any]] = {}
        self._size = cache_size

    def principal(self, e: pb.Entity, field: str, *, required: bool = True) -> dict[str, Any] | None:
        """`entity` for a principal, kept by the entity's bytes (one read of the message instead
        of one per field)."""
        raw = e.SerializeToString()
        found = self._principals.get(raw)
        if found is not None:
            return found
        value = self.entity(e, field, required=required)
        if value is not None and len(raw) <= _CACHEABLE:
            if len(self._principals) >= self._size:
                self._principals.clear()
            self._principals[raw] = value
        return value

    def _map(self, raw: bytes | str, field: str, name: str) -> dict[str, Any]:
        as_json = type(raw) is str
        if len(raw) > _CACHEABLE:
            return _decode_uncached(raw, f"{field}{name}", self.limits, as_json=as_json)
        cache: dict[Any, dict[str, Any]] = self._json if as_json else self._msgpack
        value = cache.get(raw)
        if value is None:
            value = _decode_uncached(raw, f"{field}{name}", self.limits, as_json=as_json)
            if len(cache) >= self._size:
                cache.clear()
            cache[raw] = value
        return value

    def entity(self, e: pb.Entity, field: str, *, required: bool = True) -> dict[str, Any] | None:
        kind = e.type
        which = e.WhichOneof("attributes_encoding")
        if not kind:
            if not e.id and which is None and not e.parents:
                if required:
                    raise BadRequest(field, "is required")
                return None
            raise BadRequest(f"{field}.type", "is required")
        out: dict[str, Any] = {"type": kind, "id": e.id}
        if which is not None:
            if which == "attributes":
                out["attributes"] = self._map(e.attributes, field, ".attributes")
            else:
                out["attributes"] = self._map(e.attributes_json, field, ".attributes_json")
        parents = e.parents
        if parents:
            out["parents"] = [{"type": p.type, "id": p.id} for p in parents]
        return out

    def context(self, message: Any, field_prefix: str = "") -> dict[str, Any] | None:
        raw = message.context
        if raw:  # set, as msgpack (the usual case: one read)
            return self._map(raw, field_prefix, "context")
        which = message.WhichOneof("context_encoding")
        if which is None:
            return None
        if which == "context":
            return self._map(raw, field_prefix, "context")
        return self._map(message.context_json, field_prefix, "context_json")

    def request(self, msg: pb.AuthorizeRequest, field: str = "") -> dict[str, Any]:
        """An AuthorizeRequest -> the engine's request (the principal may come from the token later)."""
        action = msg.action
        if not action:
            raise BadRequest(f"{field}action", "is required")
        out: dict[str, Any] = {"action": action}
        principal = self.principal(msg.principal, f"{field}principal", required=not msg.bearer_token)
        if principal is not None:
            out["principal"] = principal
        out["resource"] = self.entity(msg.resource, f"{field}resource")
        ctx = self.context(msg, field)
        if ctx is not None:
            out["context"] = ctx
        return out


_decoders: dict[Limits, Decoder] = {}


def _decoder(limits: Limits) -> Decoder:
    decoder = _decoders.get(limits)
    if decoder is None:
        decoder = _decoders[limits] = Decoder(limits)
    return decoder


def entity(e: pb.Entity, field: str, limits: Limits, *, required: bool = True) -> dict[str, Any] | None:
    return _decoder(limits).entity(e, field, required=required)


def context(message: Any, field_prefix: str, limits: Limits) -> dict[str, Any] | None:
    return _decoder(limits).context(message, field_prefix)


def request(msg: pb.AuthorizeRequest, limits: Limits, field: str = "") -> dict[str, Any]:
    """An AuthorizeRequest -> the engine's request (the principal may come from the token later)."""
    return _decoder(limits).request(msg, field)


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


def varint(n: int) -> bytes:
    """A protobuf base-128 varint (n >= 0)."""
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [bytes((i,)) for i in range(0x80)]
# AuthorizeResponse fields 7-10, which the template leaves unset (tag = number << 3 | wire type)
_DECISION_ID = b"\x3a"  # 7, length-delimited
_CACHED = b"\x40\x01"  # 8, varint true
_UNAUTHENTICATED = b"\x48\x01"  # 9, varint true
_CACHE_TTL = b"\x50"  # 10, varint
_RESULT = b"\x0a"  # AuthorizeBatchResponse.results (1), length-delimited
_UINT32_MAX = 0xFFFFFFFF


def batch_result(answer: bytes) -> bytes:
    """One serialized AuthorizeResponse as an entry of a serialized AuthorizeBatchResponse (the
    response is the concatenation of its entries)."""
    return _RESULT + varint(len(answer)) + answer


class ResponseBuilder:
    """Decision -> response; the shared part is built (and serialized) once per distinct decision
    object, and each answer adds its own decision id and flags.

    `encode` gives the bytes that `build(...).SerializeToString()` gives: protobuf writes fields
    in field-number order, and the per-answer fields 7-10 come after the template's 1-6."""

    def __init__(self, limit: int = 4096):
        self._templates: dict[int, tuple[Decision, pb.AuthorizeResponse, bytes]] = {}
        # (id(decision), id length, cached, unauthenticated, ttl) -> (decision, before the id, after it)
        self._arounds: dict[tuple[int, int, bool, bool, int], tuple[Decision, bytes, bytes]] = {}
        self._limit = limit

    def _entry(self, decision: Decision) -> tuple[Decision, pb.AuthorizeResponse, bytes]:
        entry = self._templates.get(id(decision))
        if entry is None or entry[0] is not decision:
            if len(self._templates) >= self._limit:
                self._templates.clear()
            template = _template(decision)
            entry = (decision, template, template.SerializeToString())
            self._templates[id(decision)] = entry
        return entry

    def build(
        self, decision: Decision, decision_id: str, *, cached: bool, unauthenticated: bool, cache_ttl_ms: int
    ) -> pb.AuthorizeResponse:
        response = pb.AuthorizeResponse()
        response.CopyFrom(self._entry(decision)[1])
        response.decision_id = decision_id
        response.cached = cached
        response.unauthenticated = unauthenticated
        response.cache_ttl_ms = cache_ttl_ms
        return response

    def encode(
        self, decision: Decision, decision_id: str, cached: bool, unauthenticated: bool, cache_ttl_ms: int
    ) -> bytes:
        """The serialized response."""
        out = self._entry(decision)[2]
        if decision_id:
            raw = decision_id.encode()
            out += _DECISION_ID + varint(len(raw)) + raw
        if cached:
            out += _CACHED
        if unauthenticated:
            out += _UNAUTHENTICATED
        if cache_ttl_ms:
            if not 0 < cache_ttl_ms <= _UINT32_MAX:  # let protobuf refuse it, as it would
                return self.build(
                    decision, decision_id, cached=cached, unauthenticated=unauthenticated, cache_ttl_ms=cache_ttl_ms
                ).SerializeToString()
            out += _CACHE_TTL + varint(cache_ttl_ms)
        return out

    def encode_results(self, outcomes: Iterable[Any]) -> list[bytes]:
        """Outcomes -> the pieces of a serialized AuthorizeBatchResponse: their concatenation is
        the response's `results` (see `batch_result`). Each answer is a prefix (the entry's
        header and the template), the id and a suffix (the flags); prefix and suffix are made
        once per decision object, flags and id length."""
        pieces: list[bytes] = []
        append = pieces.append
        made = self._arounds
        for o in outcomes:
            decision, decision_id, cached, unauthenticated, ttl = o[:5]
            raw = decision_id.encode()
            shape = (id(decision), len(raw), cached, unauthenticated, ttl)
            around = made.get(shape)
            if around is None or around[0] is not decision:
                if len(made) >= self._limit:
                    made.clear()
                around = made[shape] = (decision, *self._around(decision, len(raw), cached, unauthenticated, ttl))
            append(around[1])
            append(raw)
            append(around[2])
        return pieces

    def _around(
        self, decision: Decision, id_length: int, cached: bool, unauthenticated: bool, cache_ttl_ms: int
    ) -> tuple[bytes, bytes]:
        """What comes before and after a decision id of `id_length` bytes in a batch entry."""
        blank = "\x00" * id_length  # any id of this length: only lengths go into the pieces
        answer = self.encode(decision, blank, cached, unauthenticated, cache_ttl_ms)
        entry = batch_result(answer)
        if not id_length:
            return entry, b""
        at = len(entry) - len(answer) + len(self._entry(decision)[2]) + 1 + len(varint(id_length))
        return entry[:at], entry[at + id_length :]

    def clear(self) -> None:
        self._templates.clear()
        self._arounds.clear()
