"""Prometheus metrics of one server process, on their own registry.

The per-decision metrics (decisions by result, the latency histogram, cache hits and misses)
are plain integers counted by the event loop's thread, which makes every decision, and
every decision of a batch, cost a few additions instead of a few locked `prometheus_client`
calls. A collector turns them into the same metric families at scrape time.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator

import prometheus_client.metrics
from prometheus_client import CollectorRegistry, Gauge, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

_LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
_LATENCY = "pdp_decision_latency_seconds"


class Metrics:
    """Counters are written by the event loop's thread only (every decision is made there);
    the scrape reads them from the metrics server's thread."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.allowed = 0
        self.denied = 0
        self.errored = 0
        self.cache_hits = 0
        self.cache_misses = 0
        self._buckets = [0] * (len(_LATENCY_BUCKETS) + 1)  # per bucket (not cumulative); the last is +Inf
        self._latency_sum = 0.0
        self._created = time.time()
        r.register(_DecisionMetrics(self))
        self.log_queue_depth = Gauge("pdp_decision_log_queue_depth", "Events waiting to be written", registry=r)
        self.log_dropped = Gauge("pdp_decision_log_dropped", "Events dropped because the queue was full", registry=r)
        self.reloads = Gauge("pdp_policy_reloads", "Successful policy reloads", registry=r)
        self.reload_errors = Gauge("pdp_policy_reload_errors", "Failed policy reloads", registry=r)
        self.revision = Gauge("pdp_policy_revision_info", "The policy revision being served", ["revision"], registry=r)
        self._current_revision = ""

    def observe(self, allowed: bool, errored: bool, seconds: float) -> None:
        """One decision: its result and how long it took."""
        if errored:
            self.errored += 1
        elif allowed:
            self.allowed += 1
        else:
            self.denied += 1
        self._buckets[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        self._latency_sum += seconds

    def observe_many(self, allowed: int, denied: int, errored: int, seconds: float) -> None:
        """A batch: so many decisions of each result, each of which took `seconds`."""
        self.allowed += allowed
        self.denied += denied
        self.errored += errored
        n = allowed + denied + errored
        self._buckets[bisect_left(_LATENCY_BUCKETS, seconds)] += n
        self._latency_sum += seconds * n

    def count_cache(self, hits: int, misses: int) -> None:
        self.cache_hits += hits
        self.cache_misses += misses

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


class _DecisionMetrics:
    """`pdp_decisions_total{result}`, `pdp_decision_latency_seconds`, `pdp_cache_hits_total` and
    `pdp_cache_misses_total`, exposed as `prometheus_client`'s Counter and Histogram would be
    (with their `_created` series unless PROMETHEUS_DISABLE_CREATED_SERIES)."""

    def __init__(self, metrics: Metrics):
        self._m = metrics

    def describe(self) -> list[Metric]:
        return self._families(values=False)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families(values=True))

    def _families(self, *, values: bool) -> list[Metric]:
        m = self._m
        created = m._created if getattr(prometheus_client.metrics, "_use_created", True) else None
        decisions = CounterMetricFamily("pdp_decisions", "Decisions by result", labels=["result"])
        latency = HistogramMetricFamily(_LATENCY, "Time to decide, cache included", labels=[])
        hits = CounterMetricFamily("pdp_cache_hits", "Decision cache hits", labels=[])
        misses = CounterMetricFamily("pdp_cache_misses", "Decision cache misses", labels=[])
        if values:
            for result, value in (("allow", m.allowed), ("deny", m.denied), ("error", m.errored)):
                decisions.add_metric([result], value, created=created)
            counts = list(m._buckets)  # one read of the list the loop thread writes to
            cumulative, buckets = 0, []
            for bound, count in zip((*_LATENCY_BUCKETS, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append((floatToGoString(bound), float(cumulative)))  # type: ignore[no-untyped-call]
            latency.add_metric([], buckets, m._latency_sum)
            if created is not None:
                latency.samples.append(Sample(f"{_LATENCY}_created", {}, created))
            hits.add_metric([], m.cache_hits, created=created)
            misses.add_metric([], m.cache_misses, created=created)
        return [decisions, latency, hits, misses]
