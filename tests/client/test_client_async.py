"""pdp.client.AsyncClient (grpc.aio) against a real `pdp serve`; each test runs its own loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import grpc
import pytest

from pdp.client import AsyncClient, PdpDeadlineExceeded, PdpInvalidRequest, PdpUnavailable

AUTHORIZE = "/pdp.v1.AuthorizationService/Authorize"


def test_allow_and_deny(pdp_server: Any, acme: Any) -> None:
    async def main() -> None:
        async with AsyncClient(pdp_server.target) as client:
            bob = acme("bob-reads-plan")
            allowed = await client.authorize(bob["principal"], bob["action"], bob["resource"], bob["context"])
            dave = acme("dave-suspended-reads-handbook")
            denied = await client.authorize(dave["principal"], dave["action"], dave["resource"], dave["context"])
            merger = acme("alice-reads-merger-without-mfa")
            advised = await client.authorize(merger["principal"], "read", merger["resource"], merger["context"])
        assert allowed.allowed and allowed.reasons == ("acme.non_owner_read_masked", "role:viewer")
        assert {"type": "mask", "path": "resource.ssn"} in allowed.obligations
        assert allowed.revision == pdp_server.revision
        assert not denied.allowed and denied.reasons == ("acme.suspended_account",)
        assert advised.advice[0]["value"] == "mfa"

    asyncio.run(main())


def test_concurrent_calls(pdp_server: Any, acme: Any) -> None:
    async def main() -> list[bool]:
        async with AsyncClient(pdp_server.target) as client:
            names = ["bob-reads-plan", "dave-suspended-reads-handbook", "gus-reads-globex-runbook"] * 5
            requests = [acme(name) for name in names]
            results = await asyncio.gather(
                *(client.authorize(r["principal"], r["action"], r["resource"], r["context"]) for r in requests)
            )
        return [r.allowed for r in results]

    assert asyncio.run(main()) == [True, False, True] * 5


def test_batch_both_forms_and_status(pdp_server: Any, acme: Any) -> None:
    async def main() -> None:
        async with AsyncClient(pdp_server.target) as client:
            bob = acme("bob-reads-plan")
            items = await client.authorize_batch(
                bob["principal"], [({"type": "Document", "id": "doc-plan"}, ["read", "delete"])], bob["context"]
            )
            requests = await client.authorize_batch([acme("dave-suspended-reads-handbook"), bob])
            status = await client.status()
        assert [r.allowed for r in items] == [True, False]
        assert [r.allowed for r in requests] == [False, True]
        assert status.revision == pdp_server.revision

    asyncio.run(main())


def test_batch_cap(small_batch_server: Any, acme: Any) -> None:
    async def main() -> None:
        bob = acme("bob-reads-plan")
        async with AsyncClient(small_batch_server.target) as client:
            with pytest.raises(PdpInvalidRequest) as info:
                await client.authorize_batch([bob] * 4)
        assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "limit of 3" in info.value.details

    asyncio.run(main())


def test_local_cache(pdp_server: Any, acme: Any, async_attempts: Any) -> None:
    async def main() -> None:
        bob = acme("bob-reads-plan", auth_age=dt.timedelta(minutes=6))
        erin = acme("erin-manages-users")
        async with AsyncClient(pdp_server.target, local_cache_size=8, interceptors=[async_attempts]) as client:
            first = await client.authorize(bob["principal"], "read", bob["resource"], bob["context"])
            second = await client.authorize(bob["principal"], "read", bob["resource"], bob["context"])
            assert (first.cached_locally, second.cached_locally) == (False, True)
            assert second.decision_id == first.decision_id
            admin = [
                await client.authorize(erin["principal"], "manage_users", erin["resource"], erin["context"])
                for _ in "ab"
            ]
            assert [d.cache_ttl_ms for d in admin] == [0, 0]
            assert not admin[1].cached_locally
        assert len(async_attempts.methods) == 3

    asyncio.run(main())


def test_unreachable_is_retried_then_unavailable(dead_target: str, async_attempts: Any) -> None:
    async def main() -> None:
        async with AsyncClient(dead_target, retries=2, interceptors=[async_attempts]) as client:
            with pytest.raises(PdpUnavailable) as info:
                await client.authorize({"type": "User", "id": "u"}, "read", {"type": "Document", "id": "d"})
        assert info.value.code == grpc.StatusCode.UNAVAILABLE

    started = time.monotonic()
    asyncio.run(main())
    assert async_attempts.methods == [AUTHORIZE] * 3
    assert 0.075 <= time.monotonic() - started < 3.0


def test_retry_then_success(fake_pdp: Any) -> None:
    fake_pdp.script = ["unavailable", "ok"]

    async def main() -> bool:
        async with AsyncClient(fake_pdp.target) as client:
            decision = await client.authorize({"type": "User", "id": "u"}, "read", {"type": "Document", "id": "d"})
        return decision.allowed

    assert asyncio.run(main())
    assert fake_pdp.calls == 2


def test_deadline_exceeded(fake_pdp: Any) -> None:
    fake_pdp.script = ["slow"]

    async def main() -> None:
        async with AsyncClient(fake_pdp.target, timeout=0.1) as client:
            with pytest.raises(PdpDeadlineExceeded) as info:
                await client.authorize({"type": "User", "id": "u"}, "read", {"type": "Document", "id": "d"})
        assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 1.5  # the server would take 2 s
    assert fake_pdp.calls == 1
