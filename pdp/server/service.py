"""One decision as the server makes it: token -> cache -> engine -> log -> metrics.

Shared by every front end (gRPC Authorize and batches here; gateways later), so that all
of them verify tokens, cache, log and count the same way. No gRPC in here.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Hashable, Mapping
from itertools import islice, repeat
from typing import Any, NamedTuple, Protocol

from pdp.cache import DecisionCache
from pdp.decision import Decision, DecisionError
from pdp.gateway.mapping import HttpRequest, MappingError, bearer, map_request
from pdp.server.metrics import Metrics
from pdp.server.policy_store import PolicyStore, Snapshot


class TokenVerifierLike(Protocol):
    def verify(self, token: str) -> Any: ...


_NOTHING: frozenset[str] = frozenset()


class Outcome(NamedTuple):
    """One decision as it is answered and logged. Immutable; a tuple, so that the servers make
    one per decision (every decision of a batch too) for the cost of a tuple."""

    decision: Decision
    decision_id: str
    cached: bool
    unauthenticated: bool
    cache_ttl_ms: int
    request: dict[str, Any]
    latency_us: float
    schema: Any = None  # of the revision that decided: the decision log masks by it
    sensitive_headers: frozenset[str] = _NOTHING  # header obligations filled from sensitive attributes
    sensitive_advice: frozenset[str] = _NOTHING  # advice filled from sensitive attributes


_new_outcome = tuple.__new__  # _new_outcome(Outcome, (all ten fields)): no argument parsing
_clock = time.perf_counter

_NO_POLICY = "no policy is loaded; every request is denied until one compiles"


def _shown(method: str, target: str) -> dict[str, str]:
    # The query string may carry values a route maps onto sensitive attributes: keep it out of logs.
    return {"method": method, "path": target.split("?", 1)[0].split("#", 1)[0]}


def _token_error() -> type[Exception]:
    from pdp.tokens import TokenError  # only servers with token keys need pdp.tokens

    return TokenError


class _TokensUnavailable:
    def verify(self, token: str) -> Any:
        raise _token_error()("token keys unavailable")


class DecisionIds:
    """Unique across processes and restarts without a syscall per id: random prefix + counter."""

    def __init__(self) -> None:
        self._prefix = os.urandom(6).hex() + "-"
        self._counter = itertools.count(1)

    def next(self) -> str:
        return self._prefix + str(next(self._counter)).zfill(10)  # f"{prefix}-{n:010d}", faster

    def take(self, n: int) -> list[str]:
        """`n` ids at once (for a batch)."""
        prefix = self._prefix
        return [prefix + str(i).zfill(10) for i in islice(self._counter, n)]


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
        self._id_prefix = self.ids._prefix  # noqa: SLF001 - `_finish` makes ids.next()'s ids inline
        self._id_numbers = self.ids._counter.__next__  # noqa: SLF001
        self._verifier_factory = verifier_factory
        self._verifier: TokenVerifierLike | None = None
        self._verifier_revision = ""
        self.token_required = token_required
        self._headers_for: Any = None
        self._clock_routes = False
        self._header_names: tuple[str, ...] = ()
        self._routes: tuple[Snapshot | None, Any, tuple[str, ...], bool] = (None, None, (), False)
        self._policy: tuple[Snapshot | None, tuple[Any, frozenset[str], frozenset[str]]] = (
            None,
            (None, _NOTHING, _NOTHING),
        )

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
        started = _clock()
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
        cache = self.cache
        if cache_key is not None and cache.enabled:
            key = (snapshot.revision, cache_key)
            hit = None if looked_up else cache.get(key)
            if self.metrics is not None:
                if hit is None:
                    self.metrics.cache_misses += 1
                else:
                    self.metrics.cache_hits += 1
            if hit is not None:
                return self._finish(snapshot, started, hit, request, True, False, self._ttl_ms(hit, expires_at))
        decision = snapshot.engine.decide(request)
        if key is not None and not decision.time_dependent:
            cache.put(key, decision)
        ttl = self._ttl_ms(decision, expires_at) if cache.enabled else 0  # 0 either way with the cache off
        return self._finish(snapshot, started, decision, request, False, False, ttl)

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
        the principal and context are checked once; each answer is cached and logged on its own.

        Every decision of the batch gets its own outcome and id; they share the batch's latency
        (its time up to the last decision), which the metrics count once per decision."""
        started = _clock()
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
        engine = snapshot.engine
        cache = self.cache
        n = len(items)
        cached: list[bool] | None = None
        if keys is not None and cache.enabled:
            revision = snapshot.revision
            decisions: list[Decision] = [None] * n  # type: ignore[list-item]
            todo = []
            for i, key in enumerate(keys):
                found = cache.get((revision, key))
                if found is None:
                    todo.append(i)
                else:
                    decisions[i] = found
            cached = [d is not None for d in decisions]
            if self.metrics is not None:
                self.metrics.count_cache(n - len(todo), len(todo))
            fresh = engine.decide_batch(base.get("principal"), base.get("context"), [items[i] for i in todo])
            for i, decision in zip(todo, fresh, strict=True):
                decisions[i] = decision
                if not decision.time_dependent:
                    cache.put((revision, keys[i]), decision)
        else:
            decisions = engine.decide_batch(base.get("principal"), base.get("context"), items)
        if len(decisions) != n:
            raise RuntimeError(f"the engine answered {len(decisions)} of {n} decisions")
        ttl = self._ttl_ms(None, expires_at)
        schema, headers, advice = self._policy_info(snapshot)
        ids = self.ids.take(n)
        latency_us = (_clock() - started) * 1e6
        out: list[Outcome] = []
        append = out.append
        allowed = errored = 0
        principal, context = base.get("principal"), base.get("context")
        plain = len(base) == 2 and principal is not None and context is not None
        for (resource, action), decision, decision_id, hit in zip(  # noqa: B905 - lengths checked above
            items, decisions, ids, cached or repeat(False)
        ):
            if decision.errors:
                errored += 1
            elif decision.allowed:
                allowed += 1
            request = (
                {"principal": principal, "context": context, "resource": resource, "action": action}
                if plain
                else {**base, "resource": resource, "action": action}
            )
            ttl_ms = 0 if ttl and decision.time_dependent else ttl
            append(
                _new_outcome(
                    Outcome,
                    (decision, decision_id, hit, False, ttl_ms, request, latency_us, schema, headers, advice),
                )
            )
        if self.metrics is not None:
            self.metrics.observe_many(allowed, n - allowed - errored, errored, latency_us / 1e6)
        return out

    def decide_http(self, http: HttpRequest, *, snapshot: Snapshot | None = None) -> Outcome:
        """A gateway's HTTP request: route -> engine request; the bearer token is the principal.

        An unknown route or a path that cannot be normalized safely is a deny (never an allow).
        Equal requests (method, target, peer, and every header a route reads, the token included)
        share a cached answer, looked up before any mapping once the token has been checked.
        `snapshot`: the revision to route with (by default the current one).
        """
        return self.decide_http_parts(
            http.method, http.target, http.headers, http.source_ip, http.source_principal, snapshot=snapshot, http=http
        )

    def decide_http_parts(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str],
        source_ip: str = "",
        source_principal: str = "",
        *,
        snapshot: Snapshot | None = None,
        http: HttpRequest | None = None,
    ) -> Outcome:
        """`decide_http` without an `HttpRequest` (one is made only when the request must be mapped)."""
        started = _clock()
        if snapshot is None:
            snapshot = self.store.current
            if snapshot is None:
                return self._finish(
                    snapshot, started, Decision(False, errors=(DecisionError(_NO_POLICY),)), {}, False, False, 0
                )
        routes = self._routes
        if routes[0] is not snapshot:
            routes = self._routes_of(snapshot)
        _, table, names, reads_clock = routes
        key: Hashable | None = None
        if self.cache.enabled and not reads_clock:
            key = ("http", method, target, source_ip, source_principal, tuple(map(headers.get, names)))
            hit = self.cache.get((snapshot.revision, key))
            if hit is not None:
                # The token is part of the key, but it may have expired since: check it again
                # (the verifier keeps recent tokens, so this costs no signature check).
                checked = self._check_token(bearer(headers), snapshot)
                if isinstance(checked, Decision):
                    return self._finish(snapshot, started, checked, {}, False, True, 0)
                if self.metrics is not None:
                    self.metrics.cache_hits += 1
                ttl = self._ttl_ms(None, checked)  # a cached decision does not read the clock
                return self._finish(snapshot, started, hit, {"http": _shown(method, target)}, True, False, ttl)
        if http is None:
            http = HttpRequest(method, target, headers, source_ip, source_principal)
        try:
            mapped = map_request(table, http, time.time())
        except MappingError as exc:
            denial = Decision(False, errors=(DecisionError(exc.message, field=exc.field),), revision=snapshot.revision)
            return self._finish(snapshot, started, denial, {"http": _shown(method, target)}, False, False, 0)
        outcome = self.decide(mapped.request, token=mapped.token, cache_key=key, force_token=True, looked_up=True)
        if reads_clock:  # a route put the time into the request: the answer holds for this instant only
            outcome = outcome._replace(cache_ttl_ms=0)
        return outcome

    def gateway_headers(self, snapshot: Snapshot) -> tuple[str, ...]:
        """Every header name (lower-case) that a gateway decision under `snapshot` reads: a
        gateway may pass `decide_http` only these and decide the same."""
        routes = self._routes
        if routes[0] is not snapshot:
            routes = self._routes_of(snapshot)
        return routes[2]

    def _routes_of(self, snapshot: Snapshot) -> tuple[Snapshot, Any, tuple[str, ...], bool]:
        """(snapshot, its route table, the headers it reads, whether a route reads the clock)."""
        table = snapshot.engine.policy.checked.routes
        names = self._route_headers(table)
        routes = (snapshot, table, names, self._clock_routes)
        self._routes = routes
        return routes

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
        verifier = self._verifier_for(snapshot)
        if verifier is None or not token:
            return self._verify(token, {}, snapshot)  # type: ignore[return-value]
        try:
            return getattr(verifier.verify(token), "expires_at", None)
        except _token_error() as exc:
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

    def _ttl_ms(self, decision: Decision | None, expires_at: float | None) -> int:
        """How long a client may reuse `decision` (None: any decision that does not read the clock)."""
        if (decision is not None and decision.time_dependent) or not self.cache.enabled:
            return 0
        ttl = self.cache.ttl_seconds
        if expires_at is not None:
            ttl = min(ttl, max(expires_at - time.time(), 0.0))
        return int(ttl * 1000)

    def _policy_info(self, snapshot: Snapshot) -> tuple[Any, frozenset[str], frozenset[str]]:
        """What the decision log needs of the deciding revision: its schema and sensitive outputs."""
        of, info = self._policy
        if of is not snapshot:
            policy = snapshot.engine.policy
            info = (policy.checked.schema, policy.sensitive_headers, policy.sensitive_advice)
            self._policy = (snapshot, info)
        return info

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
        latency_us = (_clock() - started) * 1e6
        if self.metrics is not None:
            self.metrics.observe(decision.allowed, bool(decision.errors), latency_us / 1e6)
        decision_id = self._id_prefix + str(self._id_numbers()).zfill(10)  # ids.next(), without the call
        if snapshot is None:
            info: tuple[Any, frozenset[str], frozenset[str]] = (None, _NOTHING, _NOTHING)
        else:
            of, info = self._policy
            if of is not snapshot:
                info = self._policy_info(snapshot)
        return _new_outcome(
            Outcome,
            (decision, decision_id, cached, unauthenticated, ttl, request, latency_us, info[0], info[1], info[2]),
        )
