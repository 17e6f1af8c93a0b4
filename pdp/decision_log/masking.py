"""What a logged request may show: `Masker` replaces the attributes a schema declares `sensitive`
with "<masked>" and caps every value (string length, nesting depth, items, total size), noting
the paths it masked or cut. Each masker (one per policy revision) also keeps the masked request
parts and decision outputs that the writer's encoders (pdp.decision_log.compose) reuse, and
`_sanitize` is the writer's last resort for a value that will not encode."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from pdp.decision import Decision, DecisionError
from policy_lang.schema import EntityType, MapOf, Record, Schema, SetOf, Type

MASK = "<masked>"


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
            _remember(memo, key, part)
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
        _remember(self._decisions, key, out)
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


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    """`memo[key] = value`, the oldest entry given up first when `memo` holds `_MEMO_ENTRIES`."""
    if len(memo) >= _MEMO_ENTRIES:
        try:
            del memo[next(iter(memo))]  # the oldest
        except (KeyError, RuntimeError, StopIteration):  # another writer thread got there
            memo.clear()
    memo[key] = value


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
