"""The writer's fast encoders: `_Composer` turns a `PendingDecision` straight into a JSON line or
a msgpack map, byte for byte what encoding `event_for_outcome(item).to_json()` gives, from pieces
made once and reused (the masker's masked parts and outputs, masked entities `_Entity`, whole
records less their per-event fields `_Template`). What it cannot compose exactly gives None, and
the writer (pdp.decision_log.writer) takes the general way."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import msgpack

from pdp.decision import Decision
from pdp.decision_log.events import SCHEMA_VERSION, OutcomeLike, PendingDecision, rfc3339, to_the_nanosecond
from pdp.decision_log.masking import _MAX_NOTES, _MEMO_MAX_CHARS, Masker, _Part, _remember

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
            built.maps = maps
            _remember(masker._templates, key, built)
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
        if type(request) is not dict or masker.max_depth <= 2:
            return None
        masked = self._items(masker, request, None, None)
        if masked is None:
            return None
        items, parts, used = masked
        if used >= masker.max_total:
            return None
        if len(parts) > 1 and (
            sum([len(p.masked) for p in parts]) > _MAX_NOTES or sum([len(p.truncated) for p in parts]) > _MAX_NOTES
        ):
            return None
        if json_format:
            return [self._jkey(k) + self._jvalue(v) for k, v in items], parts
        out: list[Any] = [self._packer.pack_map_header(len(items))]
        for k, v in items:
            out += (self._pkey(k), self._pvalue(v))
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
        plan = masker._entities.get(etype) if type(etype) is str else None
        masked = self._items(masker, entity, side, plan)
        if masked is None:
            return None
        items, parts, used = masked
        found = _Entity(attributes, tuple(entity), items, parts, used)
        if key is not None and found.keys and _ENTITY_KEYS.issuperset(found.keys):  # every value is in the key
            _remember(memo, key, found)
        return found

    def _items(
        self, masker: Masker, mapping: dict[Any, Any], side: str | None, plan: Any
    ) -> tuple[list[tuple[str, Any]], list[_Part], int] | None:
        """The items of a request (`side` None) or of its principal or resource (`side`, with its
        type's `plan`), masked: (key, str or `_Entity` or `_Part`) in the mapping's order; the parts
        whose paths are noted; and the budget `Masker.mask` would use up. Maps are masked where a
        request or an entity may have them (an entity's attributes, the request's entities and
        context); anything else gives None, as does whatever is not composed exactly (see the class)."""
        if len(mapping) > masker.max_items:
            return None
        max_string = masker.max_string
        used = 2
        items: list[tuple[str, Any]] = []
        parts: list[_Part] = []
        for k, v in mapping.items():
            if type(k) is not str or len(k) > max_string:
                return None
            t = type(v)
            if t is str:
                if len(v) > max_string:
                    return None
                used += len(k) + len(v)
            elif t is dict:
                if side is not None:  # an entity's
                    if k != "attributes":
                        return None
                    v = masker._part(side, v, plan.get(k) if plan is not None else None, (("", side), k), 2)
                elif k == "principal" or k == "resource":  # the request's
                    v = self._entity(masker, k, v)
                elif k == "context":
                    v = masker._part(k, v, masker._context, ("", k), 1)
                else:
                    return None
                if v is None:
                    return None
                if type(v) is _Part:
                    parts.append(v)
                else:
                    parts += v.parts
                used += len(k) + v.consumed
            else:
                return None
            items.append((k, v))
        return items, parts, used

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


def _plain_fields(decision_id: Any, latency: Any, cached: Any) -> bool:
    """The per-decision fields are of the types the fast encoders write; otherwise the general path."""
    return (
        type(decision_id) is str
        and (type(latency) is float or type(latency) is int)
        and math.isfinite(latency)
        and type(cached) is bool
    )
