"""Prometheus metrics of one server process, on their own registry."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.decisions = Counter("pdp_decisions", "Decisions by result", ["result"], registry=r)
        self.latency = Histogram(
            "pdp_decision_latency_seconds", "Time to decide, cache included", buckets=_LATENCY_BUCKETS, registry=r
        )
        self.cache_hits = Counter("pdp_cache_hits", "Decision cache hits", registry=r)
        self.cache_misses = Counter("pdp_cache_misses", "Decision cache misses", registry=r)
        self.log_queue_depth = Gauge("pdp_decision_log_queue_depth", "Events waiting to be written", registry=r)
        self.log_dropped = Gauge("pdp_decision_log_dropped", "Events dropped because the queue was full", registry=r)
        self.reloads = Gauge("pdp_policy_reloads", "Successful policy reloads", registry=r)
        self.reload_errors = Gauge("pdp_policy_reload_errors", "Failed policy reloads", registry=r)
        self.revision = Gauge("pdp_policy_revision_info", "The policy revision being served", ["revision"], registry=r)
        self._allow = self.decisions.labels("allow")
        self._deny = self.decisions.labels("deny")
        self._error = self.decisions.labels("error")
        self._current_revision = ""

    def observe(self, allowed: bool, errored: bool, seconds: float) -> None:
        (self._error if errored else self._allow if allowed else self._deny).inc()
        self.latency.observe(seconds)

    def watch(
        self,
        *,
        queue_depth: Callable[[], float],
        dropped: Callable[[], float],
        reloads: Callable[[], float],
        reload_errors: Callable[[], float],
    ) -> None:
        self.log_queue_depth.set_function(queue_depth)
        self.log_dropped.set_function(dropped)
        self.reloads.set_function(reloads)
        self.reload_errors.set_function(reload_errors)

    def set_revision(self, revision: str) -> None:
        if self._current_revision:
            self.revision.remove(self._current_revision)
        self.revision.labels(revision).set(1)
        self._current_revision = revision

    def serve(self, host: str, port: int) -> None:
        start_http_server(port, addr=host, registry=self.registry)
