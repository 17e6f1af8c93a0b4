"""One decision as the server makes it: token -> cache -> engine -> log -> metrics.

Shared by every front end (gRPC Authorize and batches here; gateways later), so that all
of them verify tokens, cache, log and count the same way. No gRPC in here.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Protocol

from pdp.cache import DecisionCache
from pdp.decision import Decision, DecisionError
from pdp.gateway.mapping import HttpRequest, MappingError, bearer, map_request
from pdp.server.metrics import Metrics
from pdp.server.policy_store import PolicyStore, Snapshot


class TokenVerifierLike(Protocol):
    def verify(self, token: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Outcome:
    decision: Decision
    decision_id: str
    cached: bool
    unauthenticated: bool
    cache_ttl_ms: int
    request: dict[str, Any]
    latency_us: float
    schema: Any = None  # of the revision that decided: the decision log masks by it
    sensitive_headers: frozenset[str] = frozenset()  # header obligations filled from sensitive attributes
    sensitive_advice: frozenset[str] = frozenset()  # advice filled from sensitive attributes


_NO_POLICY = "no policy is loaded; every request is denied until one compiles"


def _shown(http: HttpRequest) -> dict[str, str]:
    # The query string may carry values a route maps onto sensitive attributes: keep it out of logs.
    return {"method": http.method, "path": http.target.split("?", 1)[0].split("#", 1)[0]}


class _TokensUnavailable:
    def verify(self, token: str) -> Any:
        from pdp.tokens import TokenError

        raise TokenError("token keys unavailable")


class DecisionIds:
    """Unique across processes and restarts without a syscall per id: random prefix + counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex()
        self._counter = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}-{next(self._counter):010d}"


class DecisionService:
    def __init__(
        self,
        store: PolicyStore,
        *,
        cache: DecisionCache[Decision],
        metrics: Metrics | None = None,
        verifier_factory: Callable[[Snapshot], TokenVerifierLike | None] | None = None,
        token_required: bool = False,
    ):
        self.store = store
        self.cache = cache
        self.metrics = metrics
        self.ids = DecisionIds()
        self._verifier_factory = verifier_factory
        self._verifier: TokenVerifierLike | None = None
        self._verifier_revision = ""
        self.token_required = token_required
        self._headers_for: Any = None
        self._clock_routes = False
        self._header_names: tuple[str, ...] = ()

    def on_swap(self, snapshot: Snapshot) -> None:
        """A new policy revision: old cached answers go, and claims map onto the new schema."""
        self.cache.clear()
        self._verifier_for(snapshot)
        if self.metrics is not None:
            self.metrics.set_revision(snapshot.revision)

    def decide(
        self,
        request: dict[str, Any],
        *,
        token: str = "",
        cache_key: Hashable | None = None,
        force_token: bool = False,
        looked_up: bool = False,  # the caller already missed the cache with this key
    ) -> Outcome:
        started = time.perf_counter()
        snapshot = self.store.current
        if snapshot is None:
            return self._finish(
                snapshot, started, Decision(False, errors=(DecisionError(_NO_POLICY),)), request, False, False, 0
            )
        expires_at = None
        if token or self.token_required or force_token:
            verified = self._verify(token, request, snapshot)
            if isinstance(verified, Decision):
                return self._finish(snapshot, started, verified, request, False, True, 0)
            request, expires_at = verified
        key = None
        if cache_key is not None and self.cache.enabled:
            key = (snapshot.revision, cache_key)
            hit = None if looked_up else self.cache.get(key)
            if self.metrics is not None:
                (self.metrics.cache_hits if hit is not None else self.metrics.cache_misses).inc()
            if hit is not None:
                return self._finish(snapshot, started, hit, request, True, False, self._ttl_ms(hit, expires_at))
        decision = snapshot.engine.decide(request)
        if key is not None and not decision.time_dependent:
            self.cache.put(key, decision)
        return self._finish(snapshot, started, decision, request, False, False, self._ttl_ms(decision, expires_at))

    def decide_batch(
        self,
        principal: dict[str, Any] | None,
        context: dict[str, Any] | None,
        items: list[tuple[dict[str, Any], str]],
        *,
        token: str = "",
        keys: list[Hashable] | None = None,
    ) -> list[Outcome]:
        """Many (resource, action) pairs for one principal and context: the token is verified and
        the principal and context are checked once; each answer is cached and logged on its own."""
        started = time.perf_counter()
        snapshot = self.store.current
        base: dict[str, Any] = {"principal": principal} if principal is not None else {}
        if context is not None:
            base["context"] = context
        if snapshot is None:
            denial = Decision(False, errors=(DecisionError(_NO_POLICY),))
            return [self._finish(snapshot, started, denial, base, False, False, 0) for _ in items]
        expires_at = None
        if token or self.token_required:
            verified = self._verify(token, base, snapshot)
            if isinstance(verified, Decision):
                return [self._finish(snapshot, started, verified, base, False, True, 0) for _ in items]
            base, expires_at = verified
        results: list[Outcome | None] = [None] * len(items)
        todo = []
        for i, (resource, action) in enumerate(items):
            key = (snapshot.revision, keys[i]) if keys is not None and self.cache.enabled else None
            hit = self.cache.get(key) if key is not None else None
            if self.metrics is not None and key is not None:
                (self.metrics.cache_hits if hit is not None else self.metrics.cache_misses).inc()
            if hit is not None:
                request = {**base, "resource": resource, "action": action}
                results[i] = self._finish(snapshot, started, hit, request, True, False, self._ttl_ms(hit, expires_at))
            else:
                todo.append((i, key))
        decisions = snapshot.engine.decide_batch(
            base.get("principal"), base.get("context"), [items[i] for i, _ in todo]
        )
        for (i, key), decision in zip(todo, decisions, strict=True):
            if key is not None and not decision.time_dependent:
                self.cache.put(key, decision)
            request = {**base, "resource": items[i][0], "action": items[i][1]}
            results[i] = self._finish(
                snapshot, started, decision, request, False, False, self._ttl_ms(decision, expires_at)
            )
        return [r for r in results if r is not None]

    def decide_http(self, http: HttpRequest) -> Outcome:
        """A gateway's HTTP request: route -> engine request; the bearer token is the principal.

        An unknown route or a path that cannot be normalized safely is a deny (never an allow).
        Equal requests (method, target, peer, and every header a route reads, the token included)
        share a cached answer, looked up before any mapping once the token has been checked.
        """
        started = time.perf_counter()
        snapshot = self.store.current
        if snapshot is None:
            return self._finish(
                snapshot, started, Decision(False, errors=(DecisionError(_NO_POLICY),)), {}, False, False, 0
            )
        table = snapshot.engine.policy.checked.routes
        key: Hashable | None = None
        reads_clock = self._route_reads_clock(table)
        if self.cache.enabled and not reads_clock:
            headers = self._route_headers(table)
            key = (
                "http", http.method, http.target, http.source_ip, http.source_principal,
                tuple(http.headers.get(name) for name in headers),
            )  # fmt: skip
            hit = self.cache.get((snapshot.revision, key))
            if hit is not None:
                # The token is part of the key, but it may have expired since: check it again
                # (the verifier keeps recent tokens, so this costs no signature check).
                checked = self._check_token(bearer(http.headers), snapshot)
                if isinstance(checked, Decision):
                    return self._finish(snapshot, started, checked, {}, False, True, 0)
                if self.metrics is not None:
                    self.metrics.cache_hits.inc()
                return self._finish(
                    snapshot, started, hit, {"http": _shown(http)}, True, False, self._ttl_ms(hit, checked)
                )
        try:
            mapped = map_request(table, http, time.time())
        except MappingError as exc:
            denial = Decision(False, errors=(DecisionError(exc.message, field=exc.field),), revision=snapshot.revision)
            return self._finish(snapshot, started, denial, {"http": _shown(http)}, False, False, 0)
        outcome = self.decide(mapped.request, token=mapped.token, cache_key=key, force_token=True, looked_up=True)
        if reads_clock:  # a route put the time into the request: the answer holds for this instant only
            outcome = dataclasses.replace(outcome, cache_ttl_ms=0)
        return outcome

    def _route_reads_clock(self, table: Any) -> bool:
        self._route_headers(table)
        return self._clock_routes

    def _route_headers(self, table: Any) -> tuple[str, ...]:
        """Every header some route or the `http` block reads, plus authorization (per table)."""
        if self._headers_for is not table:
            names = {"authorization"}
            for assign in table.http:
                if assign.kind == "header":
                    names.add(assign.name)
            stack = [table.root]
            routes = [table.default] if table.default is not None else []
            while stack:
                node = stack.pop()
                routes.extend(node.routes)
                stack.extend(node.literal.values())
                children = getattr(node, "params", None)
                if isinstance(children, dict):
                    stack.extend(children.values())
                elif getattr(node, "param", None) is not None:
                    stack.append(node.param)
            for route in routes:
                names.update(a.name for a in route.assigns if a.kind == "header")
            self._clock_routes = any(a.kind == "now" for route in routes for a in route.assigns) or any(
                a.kind == "now" for a in table.http
            )
            self._header_names = tuple(sorted(names))
            self._headers_for = table
        return self._header_names

    def _check_token(self, token: str, snapshot: Snapshot) -> Decision | float | None:
        """Verify a token without building a principal: a denial, or when the token expires."""
        from pdp.tokens import TokenError

        verifier = self._verifier_for(snapshot)
        if verifier is None or not token:
            return self._verify(token, {}, snapshot)  # type: ignore[return-value]
        try:
            return getattr(verifier.verify(token), "expires_at", None)
        except TokenError as exc:
            return Decision(False, errors=(DecisionError(str(exc), field="bearer_token"),), revision=snapshot.revision)

    def _verify(
        self, token: str, request: dict[str, Any], snapshot: Snapshot
    ) -> Decision | tuple[dict[str, Any], float | None]:
        from pdp.tokens import TokenError, merge_principal

        verifier = self._verifier_for(snapshot)
        if verifier is None:
            message = "bearer tokens are not accepted: the server has no token keys configured"
            return Decision(False, errors=(DecisionError(message, field="bearer_token"),), revision=snapshot.revision)
        if not token:
            return Decision(
                False, errors=(DecisionError("missing token", field="bearer_token"),), revision=snapshot.revision
            )
        try:
            verified = verifier.verify(token)
            merged = dict(request)
            merged["principal"] = merge_principal(request.get("principal"), verified)
        except TokenError as exc:  # a bad token, or a principal that is not the token's
            return Decision(False, errors=(DecisionError(str(exc), field="bearer_token"),), revision=snapshot.revision)
        return merged, getattr(verified, "expires_at", None)

    def _verifier_for(self, snapshot: Snapshot) -> TokenVerifierLike | None:
        if self._verifier_factory is not None and self._verifier_revision != snapshot.revision:
            try:
                self._verifier = self._verifier_factory(snapshot)
            except Exception:  # unusable keys: refuse every token (never fall back to no checking)
                logging.getLogger("pdp.server").exception("token verifier for revision %s failed", snapshot.revision)
                self._verifier = _TokensUnavailable()
            self._verifier_revision = snapshot.revision
        return self._verifier

    def _ttl_ms(self, decision: Decision, expires_at: float | None) -> int:
        if decision.time_dependent or not self.cache.enabled:
            return 0
        ttl = self.cache.ttl_seconds
        if expires_at is not None:
            ttl = min(ttl, max(expires_at - time.time(), 0.0))
        return int(ttl * 1000)

    def _finish(
        self,
        snapshot: Snapshot | None,  # the one that decided: its schema masks the log, not a newer one's
        started: float,
        decision: Decision,
        request: dict[str, Any],
        cached: bool,
        unauthenticated: bool,
        ttl: int,
    ) -> Outcome:
        latency_us = (time.perf_counter() - started) * 1e6
        if self.metrics is not None:
            self.metrics.observe(decision.allowed, bool(decision.errors), latency_us / 1e6)
        if snapshot is None:
            return Outcome(decision, self.ids.next(), cached, unauthenticated, ttl, request, latency_us)
        policy = snapshot.engine.policy
        return Outcome(
            decision, self.ids.next(), cached, unauthenticated, ttl, request, latency_us,
            policy.checked.schema, policy.sensitive_headers, policy.sensitive_advice,
        )  # fmt: skip
