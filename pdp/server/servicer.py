"""gRPC front end of pdp.v1.AuthorizationService: convert, decide, record, convert.

The server registers `authorize` and `authorize_batch` (see `add_to_server`): they take the
request's bytes and answer the response's bytes, put together from per-decision templates
(`ResponseBuilder`) rather than built as a message and serialized again. `Authorize` and
`AuthorizeBatch` are the same calls on messages.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import grpc

from pdp.server.convert import BadRequest, Decoder, Limits, ResponseBuilder, batch_result
from pdp.server.service import DecisionService, Outcome
from pdp.v1 import authorization_pb2 as pb
from pdp.v1 import authorization_pb2_grpc as pb_grpc
from policy_lang.values import format_datetime

log = logging.getLogger("pdp.server")

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["AuthorizationService"].full_name

_Items = list[tuple[dict[str, Any], str]]


class Recorder(Protocol):
    """Where decisions go after they are made (the decision log); must not block the loop."""

    async def record(self, outcome: Outcome, source: str) -> None: ...


class AuthorizationServicer(pb_grpc.AuthorizationServiceServicer):
    def __init__(self, service: DecisionService, recorder: Recorder, limits: Limits):
        self.service = service
        self.recorder = recorder
        self.limits = limits
        self.decoder = Decoder(limits)
        self.responses = ResponseBuilder()

    # ---- the calls -----------------------------------------------------------------------
    # A request message is never larger than its bytes (these messages have no integer
    # fields, whose canonical form can be longer), so it is measured only when they are over.

    async def authorize(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """Authorize, from the request's bytes to the response's."""
        request = pb.AuthorizeRequest.FromString(raw)
        if len(raw) > self.limits.max_message:
            await self._check_size(request, context)
        return await self._authorize(request, context)

    async def authorize_batch(self, raw: bytes, context: grpc.aio.ServicerContext) -> bytes:
        """AuthorizeBatch, from the request's bytes to the response's."""
        request = pb.AuthorizeBatchRequest.FromString(raw)
        if len(raw) > self.limits.max_message:
            await self._check_size(request, context)
        return await self._authorize_batch(request, context)

    async def Authorize(self, request: pb.AuthorizeRequest, context: grpc.aio.ServicerContext) -> pb.AuthorizeResponse:
        await self._check_size(request, context)
        return pb.AuthorizeResponse.FromString(await self._authorize(request, context))

    async def AuthorizeBatch(
        self, request: pb.AuthorizeBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.AuthorizeBatchResponse:
        await self._check_size(request, context)
        return pb.AuthorizeBatchResponse.FromString(await self._authorize_batch(request, context))

    async def Status(self, request: pb.StatusRequest, context: grpc.aio.ServicerContext) -> pb.StatusResponse:
        store = self.service.store
        current = store.current
        return pb.StatusResponse(
            revision=store.revision,
            policy_dir=str(store.directory),
            loaded_at=format_datetime(current.loaded_at) if current else "",
            last_reload_error=store.last_error,
            last_reload_at=format_datetime(store.last_reload_at) if store.last_reload_at else "",
            reloads=store.reloads,
            reload_errors=store.reload_errors,
        )

    # ---- Authorize -----------------------------------------------------------------------
    async def _authorize(self, request: pb.AuthorizeRequest, context: grpc.aio.ServicerContext) -> bytes:
        try:
            engine_request = self.decoder.request(request)
        except BadRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return await self._answer(engine_request, request, "authorize")

    async def _answer(self, engine_request: dict[str, Any], key_message: Any, source: str) -> bytes:
        """Decide and record, answered serialized; anything unexpected is a logged deny, never an
        allow or a crash."""
        service = self.service
        try:
            # The serialized request is the cache key: equal requests (token included) share an answer.
            key = key_message.SerializeToString(deterministic=True) if service.cache.enabled else None
            outcome = service.decide(engine_request, token=key_message.bearer_token, cache_key=key)
            await self.recorder.record(outcome, source)
        except Exception as exc:
            return self._internal_error(exc)
        return self.responses.encode(
            outcome.decision, outcome.decision_id, outcome.cached, outcome.unauthenticated, outcome.cache_ttl_ms
        )

    def _internal_error(self, exc: Exception) -> bytes:
        log.error("internal error while deciding; denying", exc_info=exc)
        service = self.service
        return pb.AuthorizeResponse(
            allowed=False,
            errors=[pb.DecisionError(message=f"internal error: {type(exc).__name__}")],
            revision=service.store.revision,
            decision_id=service.ids.next(),
        ).SerializeToString()

    # ---- AuthorizeBatch ------------------------------------------------------------------
    async def _authorize_batch(self, request: pb.AuthorizeBatchRequest, context: grpc.aio.ServicerContext) -> bytes:
        # The items are read (and counted) first; what is wrong with them is reported after the
        # size of the batch and the principal and context, as if they had been read in that order.
        items, keys, size, problem = self._items(request)
        requests = request.requests
        size += len(requests)
        if size > self.limits.max_batch:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"batch of {size} decisions is larger than the limit of {self.limits.max_batch}",
            )
        try:
            pieces = await self._decide_items(request, items, keys, problem) if items or problem else []
            for i, full in enumerate(requests):
                engine_request = self.decoder.request(full, f"requests[{i}].")
                pieces.append(batch_result(await self._answer(engine_request, full, "batch")))
        except BadRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return b"".join(pieces)

    def _items(self, request: pb.AuthorizeBatchRequest) -> tuple[_Items, list[Any] | None, int, BadRequest | None]:
        """(resource, action) pairs, their cache keys (None with the cache off), how many
        decisions the items ask for, and the first thing wrong with an item (its pairs are not
        read, nor those after it)."""
        pairs: _Items = []
        append = pairs.append
        keys: list[Any] | None = None
        shared: Any = None
        if self.service.cache.enabled:
            keys = []
            # The cache key of one decision: the shared part once, then the resource and the action.
            shared = (request.principal.SerializeToString(deterministic=True), request.context, request.context_json,
                      request.bearer_token)  # fmt: skip
        entity = self.decoder.entity
        size = 0
        problem: BadRequest | None = None
        for i, item in enumerate(request.items):
            if problem is not None:
                size += len(item.actions)
                continue
            actions = item.actions
            n = len(actions)
            size += n
            message = item.resource
            kind = message.type
            if kind and message.WhichOneof("attributes_encoding") is None and not len(message.parents):
                resource: dict[str, Any] | None = {"type": kind, "id": message.id}  # the common shape
            else:
                try:
                    resource = entity(message, "resource")
                except BadRequest as exc:
                    problem = BadRequest(f"items[{i}].{exc.field}", exc.message)
                    continue
            if not n:
                problem = BadRequest(f"items[{i}].actions", "at least one action is required")
            elif keys is None:
                for action in actions:  # appended one by one: faster than extending by a zip here
                    append((resource, action))  # type: ignore[arg-type]
            else:
                resource_bytes = message.SerializeToString(deterministic=True)
                for action in actions:
                    append((resource, action))  # type: ignore[arg-type]
                    keys.append((shared, resource_bytes, action))
        return pairs, keys, size, problem

    async def _decide_items(
        self, request: pb.AuthorizeBatchRequest, items: _Items, keys: list[Any] | None, problem: BadRequest | None
    ) -> list[bytes]:
        decoder = self.decoder
        token = request.bearer_token
        principal = decoder.principal(request.principal, "principal", required=not token)
        ctx = decoder.context(request)
        if problem is not None:
            raise problem
        service = self.service
        try:
            outcomes = service.decide_batch(principal, ctx, items, token=token, keys=keys)
            record = self.recorder.record
            for outcome in outcomes:
                await record(outcome, "batch")
        except Exception as exc:
            log.exception("internal error while deciding a batch; denying")
            denial = pb.AuthorizeResponse(
                allowed=False,
                errors=[pb.DecisionError(message=f"internal error: {type(exc).__name__}")],
                revision=service.store.revision,
            )
            return [batch_result(denial.SerializeToString())] * len(items)
        return self.responses.encode_results(outcomes)

    # ---- helpers -------------------------------------------------------------------------
    async def _check_size(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        size = request.ByteSize()
        if size > self.limits.max_message:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request of {size} bytes is larger than the limit of {self.limits.max_message}",
            )


def add_to_server(servicer: AuthorizationServicer, server: grpc.aio.Server) -> None:
    """Register the service: `authorize` and `authorize_batch` take and answer bytes (no
    deserializer or serializer), `Status` messages."""
    handlers = {
        "Authorize": grpc.unary_unary_rpc_method_handler(servicer.authorize),
        "AuthorizeBatch": grpc.unary_unary_rpc_method_handler(servicer.authorize_batch),
        "Status": grpc.unary_unary_rpc_method_handler(
            servicer.Status,
            request_deserializer=pb.StatusRequest.FromString,
            response_serializer=pb.StatusResponse.SerializeToString,
        ),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
