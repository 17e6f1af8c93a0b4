"""A client of the decision point (pdp.v1.AuthorizationService): `Client` and `AsyncClient`.

    with Client("127.0.0.1:50051") as pdp:
        decision = pdp.authorize(
            {"type": "User", "id": "bob", "attributes": {...}},
            "read",
            {"type": "Document", "id": "doc-plan"},
            {"ip": "10.1.2.3", "mfa": True, "device_trusted": True},
        )
        if decision.allowed: ...

Entities are the engine's dicts (`{"type", "id", "attributes", "parents"}`); attributes and
context travel as msgpack. `now` is never sent: the server decides by its own clock.

Failures of the call itself (not denials) raise `PdpError` subclasses carrying the gRPC code
and details. `timeout` bounds a whole call, retries included. Only UNAVAILABLE is retried
(`retries` more attempts, exponential backoff with jitter): it is the one code that says the
request was not processed. Anything else, DEADLINE_EXCEEDED included, is raised at once.

The optional local cache (`local_cache_size > 0`) keeps an answer only when the server marked
it reusable (`cache_ttl_ms > 0`) and only for that long (and at most `local_cache_ttl`). An
answer may therefore outlive a policy reload by up to its TTL, exactly as the server allows.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import ipaddress
import json
import random
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeAlias, TypeVar

import grpc
import grpc.aio
import msgpack
from cachetools import TTLCache

from pdp.decision import DecisionError
from pdp.v1 import authorization_pb2 as pb
from pdp.v1 import authorization_pb2_grpc as pb_grpc

__all__ = [
    "AsyncClient",
    "Client",
    "ClientDecision",
    "PdpCancelled",
    "PdpDeadlineExceeded",
    "PdpError",
    "PdpInvalidRequest",
    "PdpPermissionDenied",
    "PdpResourceExhausted",
    "PdpServerError",
    "PdpStatus",
    "PdpUnauthenticated",
    "PdpUnavailable",
]

EntityDict: TypeAlias = Mapping[str, Any]
Metadata: TypeAlias = Sequence[tuple[str, str | bytes]]
BatchItem: TypeAlias = tuple[EntityDict, Sequence[str] | str]

_T = TypeVar("_T")

# Reconnect quickly after the decision point comes back: the gRPC default backs off up to
# 120 s, during which every call fails fast with UNAVAILABLE. Caller options override these.
_DEFAULT_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
)
_ENTITY_KEYS = frozenset({"type", "id", "attributes", "parents"})
_REQUEST_KEYS = frozenset({"principal", "action", "resource", "context", "token"})


# ---- errors ------------------------------------------------------------------------------


class PdpError(Exception):
    """A call to the decision point failed (this is not a denial). `code` is a grpc.StatusCode,
    or None for a failure found before anything was sent."""

    def __init__(self, code: Any, details: str):
        name = code.name if code is not None else "CLIENT"
        super().__init__(f"{name}: {details}")
        self.code = code
        self.details = details


class PdpUnavailable(PdpError):
    """UNAVAILABLE: the decision point could not be reached (after the retries)."""


class PdpDeadlineExceeded(PdpError):
    """DEADLINE_EXCEEDED: no answer within the timeout."""


class PdpInvalidRequest(PdpError):
    """INVALID_ARGUMENT (a malformed request, a batch over the server's cap), or a request the
    client could not encode (code None)."""


class PdpUnauthenticated(PdpError):
    """UNAUTHENTICATED from the transport: the decision point refused this client itself."""


class PdpPermissionDenied(PdpError):
    """PERMISSION_DENIED from the transport: this client may not call the decision point."""


class PdpResourceExhausted(PdpError):
    """RESOURCE_EXHAUSTED, e.g. a message over the size limit."""


class PdpCancelled(PdpError):
    """CANCELLED: the call was cancelled."""


class PdpServerError(PdpError):
    """INTERNAL, UNKNOWN and anything else unexpected from the server."""


_ERRORS: dict[str, type[PdpError]] = {
    "UNAVAILABLE": PdpUnavailable,
    "DEADLINE_EXCEEDED": PdpDeadlineExceeded,
    "INVALID_ARGUMENT": PdpInvalidRequest,
    "UNAUTHENTICATED": PdpUnauthenticated,
    "PERMISSION_DENIED": PdpPermissionDenied,
    "RESOURCE_EXHAUSTED": PdpResourceExhausted,
    "CANCELLED": PdpCancelled,
}


def _error(exc: grpc.RpcError) -> PdpError:
    code = exc.code() if callable(getattr(exc, "code", None)) else grpc.StatusCode.UNKNOWN
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    cls = _ERRORS.get(getattr(code, "name", ""), PdpServerError)
    return cls(code, details or "")


def _invalid(message: str) -> PdpInvalidRequest:
    return PdpInvalidRequest(None, message)


# ---- results -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientDecision:
    """A decision as the server sent it. `cached` = from the server's cache; `cached_locally` =
    from this client's cache (then `decision_id` is the id of the answer that was reused)."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    obligations: tuple[dict[str, Any], ...] = ()
    advice: tuple[dict[str, Any], ...] = ()  # values JSON-decoded
    errors: tuple[DecisionError, ...] = ()
    revision: str = ""
    decision_id: str = ""
    cached: bool = False
    cached_locally: bool = False
    unauthenticated: bool = False  # a missing/invalid bearer token: answer 401, not 403
    cache_ttl_ms: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "decision": "allow" if self.allowed else "deny",
            "reasons": list(self.reasons),
            "obligations": [dict(o) for o in self.obligations],
            "advice": [dict(a) for a in self.advice],
            "errors": [e.to_json() for e in self.errors],
            "revision": self.revision,
            "decision_id": self.decision_id,
            "cached": self.cached,
            "cached_locally": self.cached_locally,
            "unauthenticated": self.unauthenticated,
        }


@dataclass(frozen=True, slots=True)
class PdpStatus:
    revision: str
    policy_dir: str
    loaded_at: str
    last_reload_error: str
    last_reload_at: str
    reloads: int
    reload_errors: int


def _obligation(o: pb.Obligation) -> dict[str, Any]:
    if o.type == "mask":
        return {"type": "mask", "path": o.path}
    if o.type == "header":
        return {"type": "header", "name": o.name, "value": o.value}
    out: dict[str, Any] = {"type": o.type}
    for name in ("path", "name", "value"):
        if getattr(o, name):
            out[name] = getattr(o, name)
    return out


def _advice(a: pb.Advice) -> dict[str, Any]:
    try:
        value = json.loads(a.value_json) if a.value_json else None
    except ValueError:
        value = a.value_json
    return {"rule": a.rule, "name": a.name, "value": value}


def _decision(r: pb.AuthorizeResponse, *, cached_locally: bool = False) -> ClientDecision:
    return ClientDecision(
        allowed=r.allowed,
        reasons=tuple(r.reasons),
        obligations=tuple(_obligation(o) for o in r.obligations),
        advice=tuple(_advice(a) for a in r.advice),
        errors=tuple(DecisionError(e.message, e.rule or None, e.field or None) for e in r.errors),
        revision=r.revision,
        decision_id=r.decision_id,
        cached=r.cached,
        cached_locally=cached_locally,
        unauthenticated=r.unauthenticated,
        cache_ttl_ms=r.cache_ttl_ms,
    )


def _status(r: pb.StatusResponse) -> PdpStatus:
    return PdpStatus(
        revision=r.revision,
        policy_dir=r.policy_dir,
        loaded_at=r.loaded_at,
        last_reload_error=r.last_reload_error,
        last_reload_at=r.last_reload_at,
        reloads=r.reloads,
        reload_errors=r.reload_errors,
    )


# ---- encoding ----------------------------------------------------------------------------


def _msgpack_default(value: Any) -> Any:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            raise TypeError(f"datetime {value.isoformat()} has no time zone")
        return value.astimezone(_dt.UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)  # equal sets encode equally (one cache key)
        except TypeError:
            return list(value)
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


def _pack(value: Mapping[str, Any], field: str) -> bytes:
    if not isinstance(value, Mapping):
        raise _invalid(f"{field}: expected a mapping, got {type(value).__name__}")
    try:
        packed: bytes = msgpack.packb(dict(value), default=_msgpack_default, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _invalid(f"{field}: {exc}") from None
    return packed


def _ref(value: Any, field: str) -> pb.EntityRef:
    if isinstance(value, Mapping):
        type_, id_ = value.get("type"), value.get("id", "")
    elif isinstance(value, tuple | list) and len(value) == 2:
        type_, id_ = value
    else:
        raise _invalid(f'{field}: expected {{"type": ..., "id": ...}}')
    if not isinstance(type_, str) or not type_ or not isinstance(id_, str):
        raise _invalid(f"{field}: type and id must be strings")
    return pb.EntityRef(type=type_, id=id_)


def _entity(value: EntityDict, field: str) -> pb.Entity:
    if not isinstance(value, Mapping):
        raise _invalid(f"{field}: expected a mapping, got {type(value).__name__}")
    unknown = set(value) - _ENTITY_KEYS
    if unknown:
        raise _invalid(f"{field}: unknown keys {sorted(map(str, unknown))} (known: {sorted(_ENTITY_KEYS)})")
    type_, id_ = value.get("type"), value.get("id", "")
    if not isinstance(type_, str) or not type_:
        raise _invalid(f"{field}.type: a non-empty string is required")
    if not isinstance(id_, str):
        raise _invalid(f"{field}.id: must be a string")
    message = pb.Entity(type=type_, id=id_)
    attributes = value.get("attributes")
    if attributes is not None:
        message.attributes = _pack(attributes, f"{field}.attributes")
    parents = value.get("parents")
    if parents is not None:
        if isinstance(parents, str | bytes | Mapping) or not isinstance(parents, Iterable):
            raise _invalid(f"{field}.parents: expected a list of entity references")
        message.parents.extend(_ref(p, f"{field}.parents[{i}]") for i, p in enumerate(parents))
    return message


def _check_action(action: Any, field: str) -> str:
    if not isinstance(action, str) or not action:
        raise _invalid(f"{field}: a non-empty string is required")
    return action


def _authorize_request(
    principal: EntityDict | None,
    action: str,
    resource: EntityDict,
    context: Mapping[str, Any] | None,
    token: str | None,
    field: str = "",
) -> pb.AuthorizeRequest:
    if principal is None and not token:
        raise _invalid(f"{field}principal: required unless a token is given")
    request = pb.AuthorizeRequest(action=_check_action(action, f"{field}action"))
    if principal is not None:
        request.principal.CopyFrom(_entity(principal, f"{field}principal"))
    request.resource.CopyFrom(_entity(resource, f"{field}resource"))
    if context is not None:
        request.context = _pack(context, f"{field}context")
    if token:
        request.bearer_token = token
    return request


def _batch_request(
    first: EntityDict | Sequence[Mapping[str, Any]] | None,
    items: Iterable[BatchItem] | None,
    context: Mapping[str, Any] | None,
    token: str | None,
) -> tuple[pb.AuthorizeBatchRequest, int]:
    """Either form -> (request, number of decisions asked for)."""
    batch = pb.AuthorizeBatchRequest()
    if items is not None:
        principal = first
        if principal is not None and not isinstance(principal, Mapping):
            raise _invalid("principal: expected a mapping (or pass a list of requests without items)")
        if principal is None and not token:
            raise _invalid("principal: required unless a token is given")
        if principal is not None:
            batch.principal.CopyFrom(_entity(principal, "principal"))
        if context is not None:
            batch.context = _pack(context, "context")
        if token:
            batch.bearer_token = token
        count = 0
        for i, item in enumerate(items):
            try:
                resource, actions = item
            except (TypeError, ValueError):
                raise _invalid(f"items[{i}]: expected (resource, [actions...])") from None
            names = [actions] if isinstance(actions, str) else list(actions)
            if not names:
                raise _invalid(f"items[{i}].actions: at least one action is required")
            entry = batch.items.add()
            entry.resource.CopyFrom(_entity(resource, f"items[{i}].resource"))
            entry.actions.extend(_check_action(a, f"items[{i}].actions[{j}]") for j, a in enumerate(names))
            count += len(names)
        return batch, count
    if first is None or isinstance(first, Mapping | str | bytes):
        raise _invalid("authorize_batch takes (principal, [(resource, actions), ...]) or a list of requests")
    if context is not None or token:
        raise _invalid("context and token go inside each request of the list form")
    for i, req in enumerate(first):
        field = f"requests[{i}]."
        if not isinstance(req, Mapping):
            raise _invalid(f"{field[:-1]}: expected a mapping")
        unknown = set(req) - _REQUEST_KEYS
        if "now" in unknown:
            raise _invalid(f"{field}now: not sent over gRPC, the server decides by its own clock")
        if unknown:
            raise _invalid(f"{field[:-1]}: unknown keys {sorted(map(str, unknown))} (known: {sorted(_REQUEST_KEYS)})")
        if "resource" not in req:
            raise _invalid(f"{field}resource: is required")
        batch.requests.append(
            _authorize_request(
                req.get("principal"),
                req.get("action", ""),
                req["resource"],
                req.get("context"),
                req.get("token"),
                field,
            )
        )
    return batch, len(batch.requests)


# ---- local cache -------------------------------------------------------------------------


class _LocalCache:
    """Bounded; each entry carries its own expiry (the server's TTL for that answer)."""

    def __init__(self, maxsize: int, max_ttl: float, timer: Callable[[], float] = time.monotonic):
        self._timer = timer
        self._max_ttl = max_ttl
        self._entries: TTLCache[bytes, tuple[float, pb.AuthorizeResponse]] = TTLCache(
            maxsize=maxsize, ttl=max_ttl, timer=timer
        )
        self._lock = threading.Lock()  # the sync client may be shared between threads

    def get(self, key: bytes) -> pb.AuthorizeResponse | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires_at, response = entry
            if self._timer() >= expires_at:
                self._entries.pop(key, None)
                return None
            return response

    def put(self, key: bytes, response: pb.AuthorizeResponse) -> None:
        ttl = min(response.cache_ttl_ms / 1000.0, self._max_ttl)
        if ttl <= 0:
            return
        with self._lock:
            self._entries[key] = (self._timer() + ttl, response)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


# ---- clients -----------------------------------------------------------------------------


class _Base:
    def __init__(
        self,
        target: str,
        *,
        timeout: float | None,
        retries: int,
        local_cache_size: int,
        local_cache_ttl: float,
        metadata: Metadata | None,
        backoff_base: float,
        backoff_max: float,
    ):
        if retries < 0:
            raise ValueError("retries must be >= 0")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive (or None for no deadline)")
        if local_cache_size < 0:
            raise ValueError("local_cache_size must be >= 0")
        self.target = target
        self.timeout = timeout
        self.retries = retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._metadata = tuple(metadata) if metadata else None
        self._cache = (
            _LocalCache(local_cache_size, local_cache_ttl) if local_cache_size > 0 and local_cache_ttl > 0 else None
        )

    @staticmethod
    def _options(options: Sequence[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
        given = list(options or ())
        names = {name for name, _ in given}
        return [*(o for o in _DEFAULT_OPTIONS if o[0] not in names), *given]

    def _deadline(self, timeout: float | None) -> float | None:
        budget = self.timeout if timeout is None else timeout
        return None if budget is None else time.monotonic() + budget

    @staticmethod
    def _remaining(deadline: float | None) -> float | None:
        return None if deadline is None else max(deadline - time.monotonic(), 0.0)

    @staticmethod
    def _check_time_left(deadline: float | None) -> None:
        # gRPC rounds tiny deadlines up and may still answer; a spent budget is not a call.
        if deadline is not None and deadline <= time.monotonic():
            raise PdpDeadlineExceeded(grpc.StatusCode.DEADLINE_EXCEEDED, "no time left for the call")

    def _retry_delay(self, error: PdpError, attempt: int, deadline: float | None) -> float | None:
        """Seconds to wait before another attempt, or None to give up and raise `error`."""
        if not isinstance(error, PdpUnavailable) or attempt >= self.retries:
            return None
        delay = min(self.backoff_max, self.backoff_base * 2**attempt)
        delay = random.uniform(delay / 2, delay)  # jitter: clients that failed together spread out
        if deadline is not None and time.monotonic() + delay >= deadline:
            return None
        return delay

    def _cache_key(self, request: pb.AuthorizeRequest) -> bytes | None:
        return request.SerializeToString(deterministic=True) if self._cache is not None else None

    def _cached(self, key: bytes | None) -> ClientDecision | None:
        if key is None or self._cache is None:
            return None
        hit = self._cache.get(key)
        return _decision(hit, cached_locally=True) if hit is not None else None

    def _remember(self, key: bytes | None, response: pb.AuthorizeResponse) -> None:
        if key is not None and self._cache is not None:
            self._cache.put(key, response)

    @staticmethod
    def _batch_results(response: pb.AuthorizeBatchResponse, expected: int) -> list[ClientDecision]:
        if len(response.results) != expected:
            raise PdpServerError(
                grpc.StatusCode.INTERNAL, f"asked for {expected} decisions, the server answered {len(response.results)}"
            )
        return [_decision(r) for r in response.results]

    def clear_cache(self) -> None:
        """Forget every locally cached decision (e.g. after a known policy change)."""
        if self._cache is not None:
            self._cache.clear()


class Client(_Base):
    """Blocking client; thread-safe (one channel, shared)."""

    def __init__(
        self,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float | None = 1.0,
        retries: int = 2,
        local_cache_size: int = 0,
        local_cache_ttl: float = 60.0,
        metadata: Metadata | None = None,
        options: Sequence[tuple[str, Any]] | None = None,
        interceptors: Sequence[Any] = (),
        backoff_base: float = 0.05,
        backoff_max: float = 1.0,
    ):
        super().__init__(
            target,
            timeout=timeout,
            retries=retries,
            local_cache_size=local_cache_size,
            local_cache_ttl=local_cache_ttl,
            metadata=metadata,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )
        opts = self._options(options)
        if credentials is not None:
            self._channel = grpc.secure_channel(target, credentials, options=opts)
        else:
            self._channel = grpc.insecure_channel(target, options=opts)
        channel = grpc.intercept_channel(self._channel, *interceptors) if interceptors else self._channel
        self._stub = pb_grpc.AuthorizationServiceStub(channel)  # type: ignore[no-untyped-call]

    def _call(self, method: Callable[..., _T], request: Any, timeout: float | None) -> _T:
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            self._check_time_left(deadline)
            try:
                return method(request, timeout=self._remaining(deadline), metadata=self._metadata)
            except grpc.RpcError as exc:
                error = _error(exc)
                delay = self._retry_delay(error, attempt, deadline)
                if delay is None:
                    raise error from exc
            time.sleep(delay)
            attempt += 1

    def authorize(
        self,
        principal: EntityDict | None,
        action: str,
        resource: EntityDict,
        context: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        timeout: float | None = None,
    ) -> ClientDecision:
        """One decision. `principal` may be None when a token names it."""
        request = _authorize_request(principal, action, resource, context, token)
        key = self._cache_key(request)
        hit = self._cached(key)
        if hit is not None:
            return hit
        response: pb.AuthorizeResponse = self._call(self._stub.Authorize, request, timeout)
        self._remember(key, response)
        return _decision(response)

    def authorize_batch(
        self,
        principal_or_requests: EntityDict | Sequence[Mapping[str, Any]] | None,
        items: Iterable[BatchItem] | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        timeout: float | None = None,
    ) -> list[ClientDecision]:
        """Many decisions in one call, in order:

        - `authorize_batch(principal, [(resource, ["read", "write"]), ...], context, token=...)`:
          one result per action, item by item;
        - `authorize_batch([{"principal": ..., "action": ..., "resource": ..., "context": ...,
          "token": ...}, ...])`: one result per request.

        Over the server's batch cap -> PdpInvalidRequest. The local cache is not used."""
        request, expected = _batch_request(principal_or_requests, items, context, token)
        if expected == 0:
            return []
        response: pb.AuthorizeBatchResponse = self._call(self._stub.AuthorizeBatch, request, timeout)
        return self._batch_results(response, expected)

    def status(self, *, timeout: float | None = None) -> PdpStatus:
        response: pb.StatusResponse = self._call(self._stub.Status, pb.StatusRequest(), timeout)
        return _status(response)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient(_Base):
    """asyncio client (grpc.aio); create it inside the event loop that uses it."""

    def __init__(
        self,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float | None = 1.0,
        retries: int = 2,
        local_cache_size: int = 0,
        local_cache_ttl: float = 60.0,
        metadata: Metadata | None = None,
        options: Sequence[tuple[str, Any]] | None = None,
        interceptors: Sequence[Any] = (),
        backoff_base: float = 0.05,
        backoff_max: float = 1.0,
    ):
        super().__init__(
            target,
            timeout=timeout,
            retries=retries,
            local_cache_size=local_cache_size,
            local_cache_ttl=local_cache_ttl,
            metadata=metadata,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
        )
        opts = self._options(options)
        chosen = list(interceptors) or None
        if credentials is not None:
            self._channel = grpc.aio.secure_channel(target, credentials, options=opts, interceptors=chosen)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=opts, interceptors=chosen)
        self._stub = pb_grpc.AuthorizationServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def _call(self, method: Callable[..., Awaitable[_T]], request: Any, timeout: float | None) -> _T:
        deadline = self._deadline(timeout)
        attempt = 0
        while True:
            self._check_time_left(deadline)
            try:
                return await method(request, timeout=self._remaining(deadline), metadata=self._metadata)
            except grpc.RpcError as exc:
                error = _error(exc)
                delay = self._retry_delay(error, attempt, deadline)
                if delay is None:
                    raise error from exc
            await asyncio.sleep(delay)
            attempt += 1

    async def authorize(
        self,
        principal: EntityDict | None,
        action: str,
        resource: EntityDict,
        context: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        timeout: float | None = None,
    ) -> ClientDecision:
        """One decision; see `Client.authorize`."""
        request = _authorize_request(principal, action, resource, context, token)
        key = self._cache_key(request)
        hit = self._cached(key)
        if hit is not None:
            return hit
        response: pb.AuthorizeResponse = await self._call(self._stub.Authorize, request, timeout)
        self._remember(key, response)
        return _decision(response)

    async def authorize_batch(
        self,
        principal_or_requests: EntityDict | Sequence[Mapping[str, Any]] | None,
        items: Iterable[BatchItem] | None = None,
        context: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        timeout: float | None = None,
    ) -> list[ClientDecision]:
        """Many decisions in one call, in order; see `Client.authorize_batch`."""
        request, expected = _batch_request(principal_or_requests, items, context, token)
        if expected == 0:
            return []
        response: pb.AuthorizeBatchResponse = await self._call(self._stub.AuthorizeBatch, request, timeout)
        return self._batch_results(response, expected)

    async def status(self, *, timeout: float | None = None) -> PdpStatus:
        response: pb.StatusResponse = await self._call(self._stub.Status, pb.StatusRequest(), timeout)
        return _status(response)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
