"""Authorize every call of a Python gRPC service at the decision point, before its handler runs.

    pdp = Client("127.0.0.1:50051")
    server = grpc.server(pool, interceptors=[AuthorizationInterceptor(pdp)])

    pdp = AsyncClient("127.0.0.1:50051")          # inside the event loop
    server = grpc.aio.server(interceptors=[AsyncAuthorizationInterceptor(pdp)])

For each call: the method is mapped to an (action, resource) - by default action = the method
name in snake_case and resource = {"type": "<ServiceName>", "id": "/<package.Service>/<Method>"};
a dict overrides methods one by one - and the principal is built from the call's metadata - by
default the token of `authorization: Bearer <token>`, which the decision point verifies. Then:

- no identity: UNAUTHENTICATED, without asking the decision point (unless `allow_anonymous`);
- allowed: the handler runs, and `current_decision()` gives it the decision (obligations);
- denied: PERMISSION_DENIED, or UNAUTHENTICATED when the decision says the token was bad;
- the decision point unreachable or failing: UNAVAILABLE (fail closed).

Status details are a fixed phrase and the decision id, never the reasons: the id finds the
whole decision in the decision log. The check happens inside the call's handler (the sync
server runs interceptors on its polling thread, which must not wait for the network), before
any of the service's code and before a streamed request is read.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import re
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol, TypeAlias

import grpc
import grpc.aio

__all__ = [
    "AsyncAuthorizationInterceptor",
    "AuthorizationInterceptor",
    "CallInfo",
    "Identity",
    "bearer_principal",
    "current_decision",
    "default_mapper",
]

log = logging.getLogger("pdp.interceptor")

EntityDict: TypeAlias = Mapping[str, Any]
Target: TypeAlias = tuple[str, EntityDict]  # (action, resource)


class DecisionLike(Protocol):
    """What the interceptor needs of a decision (ClientDecision, or the engine's Decision).
    `decision_id` and `unauthenticated` are read when present."""

    @property
    def allowed(self) -> bool: ...

    @property
    def obligations(self) -> Sequence[Mapping[str, Any]]: ...


class Authorizer(Protocol):
    def authorize(
        self,
        principal: EntityDict | None,
        action: str,
        resource: EntityDict,
        context: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        timeout: float | None = None,
    ) -> DecisionLike: ...


class AsyncAuthorizer(Protocol):
    async def authorize(
        self,
        principal: EntityDict | None,
        action: str,
        resource: EntityDict,
        context: Mapping[str, Any] | None = None,
        *,
        token: str | None = None,
        timeout: float | None = None,
    ) -> DecisionLike: ...


_current: contextvars.ContextVar[DecisionLike | None] = contextvars.ContextVar("pdp_decision", default=None)


def current_decision() -> DecisionLike | None:
    """The decision that let the current call through (None outside an authorized call, or in a
    method the mapper exempts). With the pdp clients it is a `pdp.client.ClientDecision`."""
    return _current.get()


# ---- calls, identities, targets ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What a principal builder sees of a call."""

    method: str  # "/package.Service/Method"
    metadata: tuple[tuple[str, str | bytes], ...]
    peer: str = ""
    auth_context: Mapping[str, Sequence[bytes]] = field(default_factory=dict)  # e.g. mTLS identity

    def get_all(self, key: str) -> list[str | bytes]:
        key = key.lower()
        return [value for k, value in self.metadata if k.lower() == key]

    def get(self, key: str) -> str | bytes | None:
        values = self.get_all(key)
        return values[0] if values else None


@dataclass(frozen=True, slots=True)
class Identity:
    """Who calls: a bearer token for the decision point to verify, and/or a principal entity."""

    token: str | None = None
    principal: EntityDict | None = None


PrincipalBuilder: TypeAlias = Callable[[CallInfo], Identity | None]
ContextBuilder: TypeAlias = Callable[[CallInfo], Mapping[str, Any] | None]
Mapper: TypeAlias = Callable[[str], Target | None]

_BEARER = re.compile(r"\s*bearer\s+(\S+)\s*", re.IGNORECASE)


def bearer_principal(call: CallInfo) -> Identity | None:
    """The default principal builder: `authorization: Bearer <token>` -> the token.
    None without the header; ValueError (-> UNAUTHENTICATED) if it is repeated or not a bearer."""
    values = call.get_all("authorization")
    if not values:
        return None
    if len(values) > 1:
        raise ValueError("more than one authorization header")
    value = values[0]
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    match = _BEARER.fullmatch(text)
    if match is None:
        raise ValueError("authorization is not a bearer token")
    return Identity(token=match.group(1))


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """`GetHTTPResponse` -> `get_http_response`."""
    return _CAMEL.sub("_", name).lower()


def default_mapper(method: str) -> Target:
    """`/acme.v1.Documents/ListDocuments` -> ("list_documents", {"type": "Documents", "id": method})."""
    service, _, name = method.lstrip("/").rpartition("/")
    return snake_case(name), {"type": service.rpartition(".")[2] or service, "id": method}


def _mapper(mapper: Mapper | Mapping[str, Target | None] | None) -> Mapper:
    if mapper is None:
        return default_mapper
    if isinstance(mapper, Mapping):
        table = {("/" + key.lstrip("/")): value for key, value in mapper.items()}

        def lookup(method: str) -> Target | None:
            return table[method] if method in table else default_mapper(method)

        return lookup
    return mapper


@dataclass(frozen=True, slots=True)
class _Refusal:
    code: Any  # grpc.StatusCode
    details: str


_UNAVAILABLE = _Refusal(grpc.StatusCode.UNAVAILABLE, "authorization service unavailable")


def _refusal(decision: DecisionLike) -> _Refusal | None:
    if decision.allowed is True:
        return None
    decision_id = getattr(decision, "decision_id", "") or "none"
    if getattr(decision, "unauthenticated", False):
        return _Refusal(grpc.StatusCode.UNAUTHENTICATED, f"unauthenticated (decision {decision_id})")
    return _Refusal(grpc.StatusCode.PERMISSION_DENIED, f"permission denied (decision {decision_id})")


@dataclass(frozen=True, slots=True)
class _Ask:
    """A question for the decision point."""

    principal: EntityDict | None
    action: str
    resource: EntityDict
    context: Mapping[str, Any] | None
    token: str | None
    timeout: float | None


class _Policy:
    """Everything but the call to the decision point, shared by the sync and aio interceptors."""

    def __init__(
        self,
        authorizer: Any,
        mapper: Mapper | Mapping[str, Target | None] | None,
        principal_builder: PrincipalBuilder,
        context_builder: ContextBuilder | None,
        allow_anonymous: bool,
        anonymous_principal: EntityDict,
        timeout: float | None,
    ):
        if not callable(getattr(authorizer, "authorize", None)):
            raise TypeError(
                "the authorizer needs an authorize(principal, action, resource, context, *, token, timeout)"
            )
        self.authorizer = authorizer
        self.mapper = _mapper(mapper)
        self.principal_builder = principal_builder
        self.context_builder = context_builder
        self.allow_anonymous = allow_anonymous
        self.anonymous_principal = anonymous_principal
        self.timeout = timeout

    def target(self, method: str) -> Target | _Refusal | None:
        """(action, resource); None when the mapper exempts the method; a refusal when it fails."""
        try:
            return self.mapper(method)
        except Exception:
            log.exception("pdp: %s: the method mapper failed, refusing the call", method)
            return _UNAVAILABLE

    def ask(self, method: str, target: Target | _Refusal, context: Any) -> _Ask | _Refusal:
        if isinstance(target, _Refusal):
            return target
        call = CallInfo(
            method=method,
            metadata=tuple((m[0], m[1]) for m in (context.invocation_metadata() or ())),
            peer=_safe(context.peer, ""),
            auth_context=_safe(context.auth_context, {}),
        )
        try:
            identity = self.principal_builder(call)
        except Exception as exc:
            log.info("pdp: %s: credentials refused: %s", method, exc)
            return _Refusal(grpc.StatusCode.UNAUTHENTICATED, "invalid credentials")
        if identity is None or (identity.principal is None and not identity.token):
            if not self.allow_anonymous:
                return _Refusal(grpc.StatusCode.UNAUTHENTICATED, "missing credentials")
            identity = Identity(principal=self.anonymous_principal)
        try:
            pdp_context = self.context_builder(call) if self.context_builder is not None else None
        except Exception:
            log.exception("pdp: %s: the context builder failed", method)
            return _UNAVAILABLE
        action, resource = target
        return _Ask(identity.principal, action, resource, pdp_context, identity.token, self._timeout(context))

    def _timeout(self, context: Any) -> float | None:
        """The configured timeout (else the client's), cut to what is left of the call's deadline."""
        timeout = self.timeout if self.timeout is not None else getattr(self.authorizer, "timeout", None)
        remaining = _safe(context.time_remaining, None)
        if isinstance(remaining, int | float) and remaining < (timeout if timeout is not None else float("inf")):
            timeout = max(remaining, 0.001)
        return timeout


def _method_name(method: str | bytes) -> str:
    return method.decode() if isinstance(method, bytes) else method


def _abort(context: Any, refusal: _Refusal) -> NoReturn:
    context.abort(refusal.code, refusal.details)  # raises
    raise RuntimeError("grpc: abort returned")  # pragma: no cover


async def _abort_async(context: Any, refusal: _Refusal) -> NoReturn:
    await context.abort(refusal.code, refusal.details)  # raises
    raise RuntimeError("grpc.aio: abort returned")  # pragma: no cover


def _safe(getter: Callable[[], Any], default: Any) -> Any:
    try:
        value = getter()
    except Exception:
        return default
    return default if value is None else value


def _handler(handler: Any, wrap: Callable[[Any, bool, bool], Any]) -> Any:
    """The same kind of handler, its behavior wrapped."""
    rs, ss = bool(handler.request_streaming), bool(handler.response_streaming)
    kwargs = {"request_deserializer": handler.request_deserializer, "response_serializer": handler.response_serializer}
    if not rs and not ss:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, rs, ss), **kwargs)
    if not rs and ss:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, rs, ss), **kwargs)
    if rs and not ss:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, rs, ss), **kwargs)
    return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream, rs, ss), **kwargs)


# ---- the interceptors --------------------------------------------------------------------


class AuthorizationInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """For `grpc.server(...)`. `authorizer` is a `pdp.client.Client` or anything with its
    blocking `authorize` method."""

    def __init__(
        self,
        authorizer: Authorizer,
        mapper: Mapper | Mapping[str, Target | None] | None = None,
        principal_builder: PrincipalBuilder = bearer_principal,
        *,
        context_builder: ContextBuilder | None = None,
        allow_anonymous: bool = False,
        anonymous_principal: EntityDict | None = None,
        timeout: float | None = None,
    ):
        if inspect.iscoroutinefunction(getattr(authorizer, "authorize", None)):
            raise TypeError("an async authorizer needs AsyncAuthorizationInterceptor (grpc.aio)")
        self._policy = _Policy(
            authorizer,
            mapper,
            principal_builder,
            context_builder,
            allow_anonymous,
            anonymous_principal or {"type": "Anonymous", "id": "anonymous"},
            timeout,
        )

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = _method_name(handler_call_details.method)
        target = self._policy.target(method)
        if target is None:  # exempted by the mapper
            return handler
        return _handler(handler, lambda behavior, rs, ss: self._wrap(method, target, behavior, ss))

    def _decide(self, method: str, target: Target | _Refusal, context: Any) -> DecisionLike:
        """The decision that lets the call through; aborts the call otherwise."""
        ask = self._policy.ask(method, target, context)
        if isinstance(ask, _Refusal):
            _abort(context, ask)
        try:
            decision: DecisionLike = self._policy.authorizer.authorize(
                ask.principal, ask.action, ask.resource, ask.context, token=ask.token, timeout=ask.timeout
            )
        except Exception:
            log.warning("pdp: %s: no decision, refusing the call", method, exc_info=True)
            _abort(context, _UNAVAILABLE)
        refusal = _refusal(decision)
        if refusal is not None:
            _abort(context, refusal)
        return decision

    def _wrap(
        self, method: str, target: Target | _Refusal, behavior: Callable[..., Any], streaming: bool
    ) -> Callable[..., Any]:
        # Each call runs in a copy of the context: the thread pool's threads keep theirs, and a
        # decision must not outlive its call.
        def unary(request: Any, context: Any) -> Any:
            decision = self._decide(method, target, context)
            scope = contextvars.copy_context()
            scope.run(_current.set, decision)
            return scope.run(behavior, request, context)

        def stream(request: Any, context: Any) -> Iterator[Any]:
            decision = self._decide(method, target, context)
            scope = contextvars.copy_context()
            scope.run(_current.set, decision)
            return _iterate_in(scope, behavior, request, context)

        return stream if streaming else unary


def _iterate_in(scope: contextvars.Context, behavior: Callable[..., Any], request: Any, context: Any) -> Iterator[Any]:
    responses = iter(scope.run(behavior, request, context))
    done = object()
    while True:
        item = scope.run(next, responses, done)
        if item is done:
            return
        yield item


class AsyncAuthorizationInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """For `grpc.aio.server(...)`. `authorizer` is a `pdp.client.AsyncClient` (or anything with
    its async `authorize`); a blocking one (`Client`) is called in a worker thread."""

    def __init__(
        self,
        authorizer: AsyncAuthorizer | Authorizer,
        mapper: Mapper | Mapping[str, Target | None] | None = None,
        principal_builder: PrincipalBuilder = bearer_principal,
        *,
        context_builder: ContextBuilder | None = None,
        allow_anonymous: bool = False,
        anonymous_principal: EntityDict | None = None,
        timeout: float | None = None,
    ):
        self._policy = _Policy(
            authorizer,
            mapper,
            principal_builder,
            context_builder,
            allow_anonymous,
            anonymous_principal or {"type": "Anonymous", "id": "anonymous"},
            timeout,
        )
        self._async = inspect.iscoroutinefunction(authorizer.authorize)

    async def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = _method_name(handler_call_details.method)
        target = self._policy.target(method)
        if target is None:  # exempted by the mapper
            return handler
        return _handler(handler, lambda behavior, rs, ss: self._wrap(method, target, behavior, ss))

    async def _authorize(self, ask: _Ask) -> DecisionLike:
        call = functools.partial(
            self._policy.authorizer.authorize,
            ask.principal,
            ask.action,
            ask.resource,
            ask.context,
            token=ask.token,
            timeout=ask.timeout,
        )
        result = await call() if self._async else await asyncio.to_thread(call)
        if inspect.isawaitable(result):
            result = await result
        decision: DecisionLike = result
        return decision

    async def _decide(self, method: str, target: Target | _Refusal, context: Any) -> DecisionLike:
        ask = self._policy.ask(method, target, context)
        if isinstance(ask, _Refusal):
            await _abort_async(context, ask)
        try:
            decision = await self._authorize(ask)
        except Exception:  # CancelledError is a BaseException: it passes
            log.warning("pdp: %s: no decision, refusing the call", method, exc_info=True)
            await _abort_async(context, _UNAVAILABLE)
        refusal = _refusal(decision)
        if refusal is not None:
            await _abort_async(context, refusal)
        return decision

    def _wrap(
        self, method: str, target: Target | _Refusal, behavior: Callable[..., Any], streaming: bool
    ) -> Callable[..., Any]:
        # grpc.aio runs each call in its own task (its own context): setting the variable there
        # scopes it to the call.
        if streaming and inspect.isasyncgenfunction(behavior):

            async def stream_async(request: Any, context: Any) -> AsyncIterator[Any]:
                _current.set(await self._decide(method, target, context))
                async for item in behavior(request, context):
                    yield item

            return stream_async

        if streaming and not inspect.iscoroutinefunction(behavior):  # a blocking generator

            async def stream_sync(request: Any, context: Any) -> AsyncIterator[Any]:
                _current.set(await self._decide(method, target, context))
                responses = iter(await asyncio.to_thread(behavior, request, context))
                done = object()
                while (item := await asyncio.to_thread(next, responses, done)) is not done:
                    yield item

            return stream_sync

        async def call(request: Any, context: Any) -> Any:  # a unary response, or one written with context.write
            _current.set(await self._decide(method, target, context))
            if inspect.iscoroutinefunction(behavior):
                return await behavior(request, context)
            return await asyncio.to_thread(behavior, request, context)

        return call
