"""pdp.interceptor: a tiny real gRPC service (bytes in, bytes out) behind the interceptor, with
a real `pdp serve` deciding.

TEST-ONLY principal builder: `metadata_principal` takes the principal entity from the
`x-test-principal` metadata as JSON. Metadata is whatever the caller says, so a real service
must never do this: it passes tokens (the default builder) or builds the principal from a
verified client certificate (`CallInfo.auth_context`). The decision point here runs without
JWT keys, so tokens cannot be accepted by it; the token path is checked up to the PDP's
"unauthenticated" answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import grpc
import grpc.aio
import pytest

from pdp.client import AsyncClient, Client, ClientDecision
from pdp.interceptor import (
    AsyncAuthorizationInterceptor,
    AuthorizationInterceptor,
    CallInfo,
    Identity,
    bearer_principal,
    current_decision,
    default_mapper,
    snake_case,
)

SERVICE = "demo.v1.Docs"
DOC = {"type": "Document", "id": "doc-plan"}
METHODS: dict[str, Any] = {
    f"/{SERVICE}/Read": ("read", DOC),
    f"/{SERVICE}/Watch": ("read", DOC),
    f"/{SERVICE}/Tail": ("read", DOC),
    f"/{SERVICE}/Upload": ("write", DOC),
    f"/{SERVICE}/Chat": ("read", {"type": "Project", "id": "proj-apollo"}),
    f"/{SERVICE}/Ping": None,  # exempt: never authorized
}


def metadata_principal(call: CallInfo) -> Identity | None:
    """TEST ONLY (see the module docstring); falls back to the bearer token."""
    raw = call.get("x-test-principal")
    if raw is None:
        return bearer_principal(call)
    return Identity(principal=json.loads(raw))


def metadata_context(call: CallInfo) -> Mapping[str, Any] | None:
    raw = call.get("x-test-context")
    return json.loads(raw) if raw is not None else None


def as_metadata(request: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return (("x-test-principal", json.dumps(request["principal"])), ("x-test-context", json.dumps(request["context"])))


def described(decision: Any) -> bytes:
    if decision is None:
        return b"null"
    return json.dumps({"id": decision.decision_id, "obligations": [dict(o) for o in decision.obligations]}).encode()


class Recording:
    """Any object with Client.authorize will do: this one records and delegates (or answers)."""

    def __init__(self, inner: Any = None, answer: ClientDecision | Exception | None = None, timeout: float = 1.0):
        self.inner = inner
        self.answer = answer
        self.timeout = inner.timeout if inner is not None else timeout
        self.calls: list[dict[str, Any]] = []
        self.decisions: list[Any] = []

    def authorize(
        self,
        principal: Any,
        action: str,
        resource: Any,
        context: Any = None,
        *,
        token: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        self.calls.append(
            {
                "principal": principal,
                "action": action,
                "resource": resource,
                "context": context,
                "token": token,
                "timeout": timeout,
            }
        )
        if isinstance(self.answer, Exception):
            raise self.answer
        decision = self.answer or self.inner.authorize(
            principal, action, resource, context, token=token, timeout=timeout
        )
        self.decisions.append(decision)
        print(f"pdp: {action} -> {decision}")  # shown when a test fails
        return decision


class AsyncRecording(Recording):
    async def authorize(  # type: ignore[override]
        self,
        principal: Any,
        action: str,
        resource: Any,
        context: Any = None,
        *,
        token: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        self.calls.append({"principal": principal, "action": action, "resource": resource, "token": token})
        decision = await self.inner.authorize(principal, action, resource, context, token=token, timeout=timeout)
        self.decisions.append(decision)
        print(f"pdp: {action} -> {decision}")
        return decision


# ---- the sync service --------------------------------------------------------------------


class Docs:
    def __init__(self) -> None:
        self.ran: list[str] = []

    def read(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.ran.append("Read")
        return described(current_decision())

    def watch(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        self.ran.append("Watch")
        for i in range(3):
            assert current_decision() is not None
            yield str(i).encode()

    def upload(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        self.ran.append("Upload")
        return str(sum(1 for _ in requests)).encode()

    def chat(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        self.ran.append("Chat")
        yield from requests

    def ping(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self.ran.append("Ping")
        return described(current_decision())

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Read": grpc.unary_unary_rpc_method_handler(self.read),
                "GetHTTPStatus": grpc.unary_unary_rpc_method_handler(self.read),
                "Watch": grpc.unary_stream_rpc_method_handler(self.watch),
                "Upload": grpc.stream_unary_rpc_method_handler(self.upload),
                "Chat": grpc.stream_stream_rpc_method_handler(self.chat),
                "Ping": grpc.unary_unary_rpc_method_handler(self.ping),
            },
        )


@contextmanager
def protected(authorizer: Any, mapper: Any = METHODS, **options: Any) -> Iterator[tuple[grpc.Channel, Docs]]:
    docs = Docs()
    options.setdefault("context_builder", metadata_context)
    interceptor = AuthorizationInterceptor(authorizer, mapper, metadata_principal, **options)
    server = grpc.server(ThreadPoolExecutor(max_workers=1), interceptors=[interceptor])  # one thread: leaks would show
    server.add_generic_rpc_handlers((docs.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel, docs
    finally:
        server.stop(None).wait()


def unary(channel: grpc.Channel, method: str, metadata: Any = (), timeout: float = 5) -> bytes:
    result: bytes = channel.unary_unary(f"/{SERVICE}/{method}")(b"x", metadata=metadata, timeout=timeout)
    return result


def refused(call: Any) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


@pytest.fixture
def pdp(pdp_server: Any) -> Iterator[Recording]:
    with Client(pdp_server.target) as client:
        yield Recording(client)


def test_no_credentials_is_unauthenticated_without_asking(pdp: Recording) -> None:
    with protected(pdp) as (channel, docs):
        code, details = refused(lambda: unary(channel, "Read"))
    assert code == grpc.StatusCode.UNAUTHENTICATED and details == "missing credentials"
    assert pdp.calls == [] and docs.ran == []


def test_allowed_call_sees_its_decision(pdp: Recording, acme: Any) -> None:
    bob = acme("bob-reads-plan")
    with protected(pdp) as (channel, docs):
        answer = json.loads(unary(channel, "Read", as_metadata(bob)))
    assert docs.ran == ["Read"]
    assert pdp.calls[0]["principal"] == bob["principal"] and pdp.calls[0]["context"] == bob["context"]
    assert (pdp.calls[0]["action"], pdp.calls[0]["resource"]) == ("read", DOC)
    assert answer["id"] == pdp.decisions[0].decision_id
    assert {"type": "mask", "path": "resource.salary"} in answer["obligations"]
    assert current_decision() is None  # nothing leaks into the test's thread


def test_denied_call_is_permission_denied_with_only_the_decision_id(pdp: Recording, acme: Any) -> None:
    with protected(pdp) as (channel, docs):
        code, details = refused(lambda: unary(channel, "Read", as_metadata(acme("dave-suspended-reads-handbook"))))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert details == f"permission denied (decision {pdp.decisions[0].decision_id})"
    assert docs.ran == []


def test_unary_stream(pdp: Recording, acme: Any) -> None:
    with protected(pdp) as (channel, docs):
        watch = channel.unary_stream(f"/{SERVICE}/Watch")
        assert list(watch(b"", metadata=as_metadata(acme("bob-reads-plan")), timeout=5)) == [b"0", b"1", b"2"]
        code, _ = refused(lambda: list(watch(b"", metadata=as_metadata(acme("dave-suspended-reads-handbook")))))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert docs.ran == ["Watch"]


def test_stream_unary_and_stream_stream(pdp: Recording, acme: Any) -> None:
    with protected(pdp) as (channel, docs):
        upload = channel.stream_unary(f"/{SERVICE}/Upload")
        assert upload(iter([b"a", b"b", b"c"]), metadata=as_metadata(acme("alice-writes-plan")), timeout=5) == b"3"
        code, _ = refused(lambda: upload(iter([b"a"]), metadata=as_metadata(acme("bob-reads-plan")), timeout=5))
        assert code == grpc.StatusCode.PERMISSION_DENIED  # bob may read, not write
        chat = channel.stream_stream(f"/{SERVICE}/Chat")
        assert list(chat(iter([b"hi", b"yo"]), metadata=as_metadata(acme("bob-reads-plan")), timeout=5)) == [
            b"hi",
            b"yo",
        ]
    assert docs.ran == ["Upload", "Chat"]


def test_exempt_method_and_no_leak_between_calls(pdp: Recording, acme: Any) -> None:
    with protected(pdp) as (channel, docs):
        unary(channel, "Read", as_metadata(acme("bob-reads-plan")))
        assert unary(channel, "Ping") == b"null"  # same worker thread, no decision
    assert docs.ran == ["Read", "Ping"] and len(pdp.calls) == 1


def test_bearer_token_goes_to_the_pdp(pdp: Recording) -> None:
    with protected(pdp) as (channel, docs):
        code, details = refused(lambda: unary(channel, "Read", (("authorization", "Bearer abc.def.ghi"),)))
    assert pdp.calls[0]["token"] == "abc.def.ghi" and pdp.calls[0]["principal"] is None
    # This decision point has no JWT keys: every token is refused as unauthenticated.
    assert pdp.decisions[0].unauthenticated
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert details == f"unauthenticated (decision {pdp.decisions[0].decision_id})"
    assert docs.ran == []


@pytest.mark.parametrize("header", ["Basic dXNlcjpwdw==", "Bearer", "Bearer a b"])
def test_malformed_authorization_is_refused_without_asking(pdp: Recording, header: str) -> None:
    with protected(pdp) as (channel, docs):
        code, details = refused(lambda: unary(channel, "Read", (("authorization", header),)))
    assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "invalid credentials")
    assert pdp.calls == [] and docs.ran == []


def test_fails_closed_when_the_pdp_is_down(dead_target: str, acme: Any) -> None:
    with Client(dead_target, retries=0) as client, protected(client) as (channel, docs):
        code, details = refused(lambda: unary(channel, "Read", as_metadata(acme("bob-reads-plan"))))
        stream_code, _ = refused(
            lambda: list(channel.unary_stream(f"/{SERVICE}/Watch")(b"", metadata=as_metadata(acme("bob-reads-plan"))))
        )
    assert (code, details) == (grpc.StatusCode.UNAVAILABLE, "authorization service unavailable")
    assert stream_code == grpc.StatusCode.UNAVAILABLE
    assert docs.ran == []


def test_fails_closed_when_the_authorizer_breaks(acme: Any) -> None:
    with protected(Recording(answer=RuntimeError("bug"))) as (channel, docs):
        code, _ = refused(lambda: unary(channel, "Read", as_metadata(acme("bob-reads-plan"))))
    assert code == grpc.StatusCode.UNAVAILABLE and docs.ran == []


def test_fails_closed_when_the_mapper_breaks(pdp: Recording, acme: Any) -> None:
    def mapper(method: str) -> Any:
        raise KeyError(method)

    with protected(pdp, mapper=mapper) as (channel, docs):
        code, _ = refused(lambda: unary(channel, "Read", as_metadata(acme("bob-reads-plan"))))
    assert code == grpc.StatusCode.UNAVAILABLE and docs.ran == [] and pdp.calls == []


def test_only_true_allows(acme: Any) -> None:
    class Odd:
        allowed = "yes"  # truthy, but not an allow
        obligations = ()

    with protected(Recording(answer=Odd())) as (channel, docs):  # type: ignore[arg-type]
        code, _ = refused(lambda: unary(channel, "Read", as_metadata(acme("bob-reads-plan"))))
    assert code == grpc.StatusCode.PERMISSION_DENIED and docs.ran == []


def test_default_mapping_and_anonymous_principal() -> None:
    stub = Recording(answer=ClientDecision(allowed=True, decision_id="d-1"))
    with protected(stub, mapper=None, allow_anonymous=True) as (channel, docs):
        answer = json.loads(unary(channel, "GetHTTPStatus"))
    call = stub.calls[0]
    assert call["action"] == "get_http_status"
    assert call["resource"] == {"type": "Docs", "id": "/demo.v1.Docs/GetHTTPStatus"}
    assert call["principal"] == {"type": "Anonymous", "id": "anonymous"} and call["token"] is None
    assert answer == {"id": "d-1", "obligations": []}


def test_the_pdp_timeout_follows_the_callers_deadline(acme: Any) -> None:
    stub = Recording(answer=ClientDecision(allowed=True), timeout=5.0)
    with protected(stub) as (channel, _):
        unary(channel, "Read", as_metadata(acme("bob-reads-plan")), timeout=2)
        unary(channel, "Read", as_metadata(acme("bob-reads-plan")), timeout=30)
    assert 0 < stub.calls[0]["timeout"] < 2.1  # gRPC rounds the deadline it sends up a little
    assert stub.calls[1]["timeout"] == 5.0  # the client's own default


def test_sync_interceptor_refuses_an_async_authorizer(dead_target: str) -> None:
    async def main() -> None:
        async with AsyncClient(dead_target) as client:
            with pytest.raises(TypeError):
                AuthorizationInterceptor(client)  # type: ignore[arg-type]

    asyncio.run(main())


def test_mapping_helpers() -> None:
    assert snake_case("SayHello") == "say_hello"
    assert snake_case("GetHTTPResponse") == "get_http_response"
    assert snake_case("List") == "list"
    assert default_mapper("/acme.v1.Documents/ListDocuments") == (
        "list_documents",
        {"type": "Documents", "id": "/acme.v1.Documents/ListDocuments"},
    )
    call = CallInfo("/x.Y/Z", (("Authorization", "bearer tok"),))
    assert bearer_principal(call) == Identity(token="tok")
    assert bearer_principal(CallInfo("/x.Y/Z", ())) is None
    with pytest.raises(ValueError):
        bearer_principal(CallInfo("/x.Y/Z", (("authorization", "Bearer a"), ("authorization", "Bearer b"))))


# ---- the aio service ---------------------------------------------------------------------


class AsyncDocs:
    def __init__(self) -> None:
        self.ran: list[str] = []

    async def read(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        self.ran.append("Read")
        await asyncio.sleep(0)
        return described(current_decision())

    async def watch(self, request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        self.ran.append("Watch")
        for i in range(3):
            yield described(current_decision()) if i == 0 else str(i).encode()

    async def tail(self, request: bytes, context: grpc.aio.ServicerContext) -> None:
        self.ran.append("Tail")
        await context.write(b"a")
        await context.write(b"b")

    async def upload(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> bytes:
        self.ran.append("Upload")
        return str(len([r async for r in requests])).encode()

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Read": grpc.unary_unary_rpc_method_handler(self.read),
                "Watch": grpc.unary_stream_rpc_method_handler(self.watch),
                "Tail": grpc.unary_stream_rpc_method_handler(self.tail),
                "Upload": grpc.stream_unary_rpc_method_handler(self.upload),
            },
        )


async def serve_aio(authorizer: Any) -> tuple[grpc.aio.Server, str, AsyncDocs]:
    docs = AsyncDocs()
    interceptor = AsyncAuthorizationInterceptor(
        authorizer, METHODS, metadata_principal, context_builder=metadata_context
    )
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers((docs.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}", docs


async def aio_refused(call: Any) -> tuple[Any, str]:
    with pytest.raises(grpc.RpcError) as info:
        await call()
    return info.value.code(), info.value.details()


def test_aio_interceptor_with_the_async_client(pdp_server: Any, acme: Any) -> None:
    async def main() -> None:
        async with AsyncClient(pdp_server.target) as client:
            pdp = AsyncRecording(client)
            server, target, docs = await serve_aio(pdp)
            try:
                async with grpc.aio.insecure_channel(target) as channel:
                    read = channel.unary_unary(f"/{SERVICE}/Read")
                    bob, dave = as_metadata(acme("bob-reads-plan")), as_metadata(acme("dave-suspended-reads-handbook"))

                    code, details = await aio_refused(lambda: read(b"x", timeout=5))
                    assert (code, details) == (grpc.StatusCode.UNAUTHENTICATED, "missing credentials")
                    assert pdp.calls == []

                    answer = json.loads(await read(b"x", metadata=bob, timeout=5))
                    assert answer["id"] == pdp.decisions[-1].decision_id
                    assert {"type": "header", "name": "x-tenant", "value": "acme"} in answer["obligations"]

                    code, details = await aio_refused(lambda: read(b"x", metadata=dave, timeout=5))
                    assert code == grpc.StatusCode.PERMISSION_DENIED
                    assert details == f"permission denied (decision {pdp.decisions[-1].decision_id})"

                    watch = channel.unary_stream(f"/{SERVICE}/Watch")
                    items = [item async for item in watch(b"", metadata=bob, timeout=5)]
                    assert json.loads(items[0])["id"] == pdp.decisions[-1].decision_id and items[1:] == [b"1", b"2"]

                    async def denied_watch() -> None:
                        [item async for item in watch(b"", metadata=dave, timeout=5)]

                    code, _ = await aio_refused(denied_watch)
                    assert code == grpc.StatusCode.PERMISSION_DENIED

                    tail = channel.unary_stream(f"/{SERVICE}/Tail")
                    assert [item async for item in tail(b"", metadata=bob, timeout=5)] == [b"a", b"b"]

                    async def chunks() -> AsyncIterator[bytes]:
                        for chunk in (b"1", b"2"):
                            yield chunk

                    upload = channel.stream_unary(f"/{SERVICE}/Upload")
                    alice = as_metadata(acme("alice-writes-plan"))
                    assert await upload(chunks(), metadata=alice, timeout=5) == b"2"
                    code, _ = await aio_refused(lambda: upload(chunks(), metadata=bob, timeout=5))
                    assert code == grpc.StatusCode.PERMISSION_DENIED
                assert docs.ran == ["Read", "Watch", "Tail", "Upload"]
            finally:
                await server.stop(None)

    asyncio.run(main())


def test_aio_interceptor_with_a_blocking_client(pdp_server: Any, acme: Any) -> None:
    async def main() -> None:
        with Client(pdp_server.target) as client:
            server, target, docs = await serve_aio(client)
            try:
                async with grpc.aio.insecure_channel(target) as channel:
                    answer = await channel.unary_unary(f"/{SERVICE}/Read")(
                        b"x", metadata=as_metadata(acme("bob-reads-plan")), timeout=5
                    )
                assert json.loads(answer)["obligations"]
                assert docs.ran == ["Read"]
            finally:
                await server.stop(None)

    asyncio.run(main())


def test_aio_fails_closed_when_the_pdp_is_down(dead_target: str, acme: Any) -> None:
    async def main() -> None:
        async with AsyncClient(dead_target, retries=0) as client:
            server, target, docs = await serve_aio(client)
            try:
                async with grpc.aio.insecure_channel(target) as channel:
                    read = channel.unary_unary(f"/{SERVICE}/Read")
                    code, details = await aio_refused(
                        lambda: read(b"x", metadata=as_metadata(acme("bob-reads-plan")), timeout=5)
                    )
                assert (code, details) == (grpc.StatusCode.UNAVAILABLE, "authorization service unavailable")
                assert docs.ran == []
            finally:
                await server.stop(None)

    asyncio.run(main())
