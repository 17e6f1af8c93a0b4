"""The decision log as the server feeds it: every outcome, cache hits included.

Events are built here (masked per the schema of the revision that decided) and queued to
the writer thread of `pdp.decision_log`; the queue's back-pressure or drop policy applies.
"""

from __future__ import annotations

from typing import Any

from pdp.server.config import Settings
from pdp.server.service import Outcome


class NullRecorder:
    async def record(self, outcome: Outcome, source: str) -> None:
        return None

    def queue_depth(self) -> float:
        return 0.0

    def dropped(self) -> float:
        return 0.0

    def close(self) -> None:
        return None


class LogRecorder:
    def __init__(self, log: Any, worker: int):
        from pdp import decision_log

        self._module = decision_log
        self.log = log
        self.worker = worker
        self._maskers: dict[str, Any] = {}

    def _masker(self, outcome: Outcome, schema: Any) -> Any:
        revision = outcome.decision.revision
        masker = self._maskers.get(revision)
        if masker is None:
            self._maskers = {revision: self._module.Masker(schema)}  # keep only the newest
            masker = self._maskers[revision]
        return masker

    async def record(self, outcome: Outcome, source: str) -> None:
        masker = self._masker(outcome, outcome.schema) if outcome.schema is not None else None
        event = self._module.event_for(
            outcome.request,
            outcome.decision,
            decision_id=outcome.decision_id,
            latency_us=outcome.latency_us,
            cached=outcome.cached,
            masker=masker,
            source=source,
            unauthenticated=outcome.unauthenticated,
            worker=self.worker,
        )
        await self.log.submit_async(event)

    def queue_depth(self) -> float:
        return float(self.log.queue_depth())

    def dropped(self) -> float:
        return float(self.log.dropped)

    def close(self) -> None:
        self.log.close()


def build_recorder(settings: Settings, worker: int) -> Any:
    if not settings.decision_log:
        return NullRecorder()
    from pdp.decision_log import DecisionLog, worker_path

    path = settings.decision_log if settings.workers == 1 else str(worker_path(settings.decision_log, worker))
    log = DecisionLog(
        path,
        format=settings.decision_log_format,
        max_bytes=settings.decision_log_max_bytes,
        backups=settings.decision_log_backups,
        queue_size=settings.decision_log_queue,
        on_full=settings.decision_log_on_full,
    )
    return LogRecorder(log, worker)
