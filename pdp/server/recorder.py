"""The decision log as the server feeds it: every outcome, cache hits included.

Events are built here (masked per the schema of the revision that decided) and queued to
the writer thread of `pdp.decision_log`; the queue's back-pressure or drop policy applies.
"""

from __future__ import annotations

import dataclasses
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
        masker = self._masker(outcome)
        request = outcome.request if masker is not None else _without_values(outcome.request)
        event = self._module.event_for(
            request,
            outcome.decision,
            decision_id=outcome.decision_id,
            latency_us=outcome.latency_us,
            cached=outcome.cached,
            masker=masker,
            source=source,
            unauthenticated=outcome.unauthenticated,
            worker=self.worker,
        )
        if outcome.sensitive_headers and event.obligations:
            event = dataclasses.replace(
                event,
                obligations=tuple(
                    {**o, "value": "<masked>"} if o.get("name") in outcome.sensitive_headers else o
                    for o in event.obligations
                ),
            )
        if outcome.sensitive_advice and event.advice:
            event = dataclasses.replace(
                event,
                advice=tuple(
                    {**a, "value": "<masked>"} if a.get("name") in outcome.sensitive_advice else a for a in event.advice
                ),
            )
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
