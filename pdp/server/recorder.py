"""The decision log as the server feeds it: every outcome, cache hits included.

`record` only queues the outcome (with the masker of the revision that decided, the source and
the time): the writer thread of `pdp.decision_log` masks and encodes it later, in a batch, from
memoized pieces. The queue's back-pressure or drop policy applies.
"""

from __future__ import annotations

from time import time as _now
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
        self._last: Any = None
        # A DecisionLog takes outcomes as they are; other sinks get finished events.
        self._try_submit = log.try_submit if isinstance(log, decision_log.DecisionLog) else None

    def _masker(self, outcome: Outcome) -> Any:
        """The masker of the deciding revision's schema; without one (no policy has ever loaded)
        None, and the request is then logged without any attribute values at all."""
        if outcome.schema is None:
            return self._last
        revision = outcome.decision.revision
        masker = self._maskers.get(revision)
        if masker is None:
            masker = self._module.Masker(outcome.schema)
            self._maskers = {revision: masker}  # keep only the newest
            self._last = masker
        return masker

    async def record(self, outcome: Outcome, source: str) -> None:
        masker = self._maskers.get(outcome.decision.revision) if outcome.schema is not None else self._last
        if masker is None:
            masker = self._masker(outcome)
        if masker is not None and self._try_submit is not None:
            pending = (outcome, masker, source, self.worker, _now())
            if not self._try_submit(pending):  # full: wait for room (or drop), per on_full
                await self.log.submit_async(pending)
            return
        if masker is None:  # no policy has ever loaded: log the request without any values
            outcome = outcome._replace(request=_without_values(outcome.request))
        event = self._module.event_for_outcome((outcome, masker, source, self.worker, _now()))
        await self.log.submit_async(event)

    def queue_depth(self) -> float:
        return float(self.log.queue_depth())

    def dropped(self) -> float:
        return float(self.log.dropped)

    def close(self) -> None:
        self.log.close()


def _without_values(request: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in request.items() if k != "context"}
    if "context" in request:
        out["context"] = "<masked>"
    for side in ("principal", "resource"):
        entity = request.get(side)
        if isinstance(entity, dict) and "attributes" in entity:
            out[side] = {**entity, "attributes": "<masked>"}
    return out


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
