"""gRPC front end of pdp.v1.AuthorizationService: convert, decide, record, convert."""

from __future__ import annotations

import logging
from typing import Any, Protocol

import grpc

from pdp.server import convert
from pdp.server.convert import BadRequest, Limits, ResponseBuilder
from pdp.server.service import DecisionService, Outcome
from pdp.v1 import authorization_pb2 as pb
from pdp.v1 import authorization_pb2_grpc as pb_grpc
from policy_lang.values import format_datetime

log = logging.getLogger("pdp.server")


class Recorder(Protocol):
    """Where decisions go after they are made (the decision log); must not block the loop."""

    async def record(self, outcome: Outcome, source: str) -> None: ...


class AuthorizationServicer(pb_grpc.AuthorizationServiceServicer):
    def __init__(self, service: DecisionService, recorder: Recorder, limits: Limits):
        self.service = service
        self.recorder = recorder
        self.limits = limits
        self.responses = ResponseBuilder()

    async def _check_size(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        size = request.ByteSize()
        if size > self.limits.max_message:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request of {size} bytes is larger than the limit of {self.limits.max_message}",
            )

    async def Authorize(self, request: pb.AuthorizeRequest, context: grpc.aio.ServicerContext) -> pb.AuthorizeResponse:
        await self._check_size(request, context)
        try:
            engine_request = convert.request(request, self.limits)
        except BadRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return await self._answer(engine_request, request.bearer_token, request, "authorize")

    async def AuthorizeBatch(
        self, request: pb.AuthorizeBatchRequest, context: grpc.aio.ServicerContext
    ) -> pb.AuthorizeBatchResponse:
        await self._check_size(request, context)
        size = sum(len(item.actions) for item in request.items) + len(request.requests)
        if size > self.limits.max_batch:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"batch of {size} decisions is larger than the limit of {self.limits.max_batch}",
            )
        try:
            if request.items:
                results = await self._batch_items(request)
            else:
                results = []
            for i, full in enumerate(request.requests):
                engine_request = convert.request(full, self.limits, f"requests[{i}].")
                results.append(await self._answer(engine_request, full.bearer_token, full, "batch"))
        except BadRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return pb.AuthorizeBatchResponse(results=results)

    async def _batch_items(self, request: pb.AuthorizeBatchRequest) -> list[pb.AuthorizeResponse]:
        principal = convert.entity(request.principal, "principal", self.limits, required=not request.bearer_token)
        ctx = convert.context(request, "", self.limits)
        items: list[tuple[dict[str, Any], str]] = []
        keys: list[Any] = []
        # The cache key of one decision: the shared part once, then the resource and the action.
        shared = (request.principal.SerializeToString(deterministic=True), request.context, request.context_json,
                  request.bearer_token)  # fmt: skip
        for i, item in enumerate(request.items):
            resource = convert.entity(item.resource, f"items[{i}].resource", self.limits)
            if not item.actions:
                raise BadRequest(f"items[{i}].actions", "at least one action is required")
            resource_bytes = item.resource.SerializeToString(deterministic=True)
            for action in item.actions:
                items.append((resource, action))  # type: ignore[arg-type]
                keys.append((shared, resource_bytes, action))
        try:
            outcomes = self.service.decide_batch(principal, ctx, items, token=request.bearer_token, keys=keys)
            for outcome in outcomes:
                await self.recorder.record(outcome, "batch")
        except Exception as exc:
            log.exception("internal error while deciding a batch; denying")
            denial = pb.AuthorizeResponse(
                allowed=False,
                errors=[pb.DecisionError(message=f"internal error: {type(exc).__name__}")],
                revision=self.service.store.revision,
            )
            return [denial for _ in items]
        return [self._response(outcome) for outcome in outcomes]

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

    # ---- helpers -----------------------------------------------------------------------
    async def _answer(self, engine_request: dict[str, Any], token: str, key: Any, source: str) -> pb.AuthorizeResponse:
        """Decide and record; anything unexpected is a logged deny, never an allow or a crash."""
        try:
            outcome = self._decide(engine_request, token, key)
            await self.recorder.record(outcome, source)
        except Exception as exc:
            log.exception("internal error while deciding; denying")
            message = f"internal error: {type(exc).__name__}"
            return pb.AuthorizeResponse(
                allowed=False,
                errors=[pb.DecisionError(message=message)],
                revision=self.service.store.revision,
                decision_id=self.service.ids.next(),
            )
        return self._response(outcome)

    def _decide(self, engine_request: dict[str, Any], token: str, key_message: Any) -> Outcome:
        # The serialized request is the cache key: equal requests (token included) share an answer.
        cache_key = key_message.SerializeToString(deterministic=True) if self.service.cache.enabled else None
        return self.service.decide(engine_request, token=token, cache_key=cache_key)

    def _response(self, outcome: Outcome) -> pb.AuthorizeResponse:
        return self.responses.build(
            outcome.decision,
            outcome.decision_id,
            cached=outcome.cached,
            unauthenticated=outcome.unauthenticated,
            cache_ttl_ms=outcome.cache_ttl_ms,
        )
