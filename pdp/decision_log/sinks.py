"""What a decision point hands its events to: the `DecisionSink` protocol and its errors, the
counters every sink keeps, the sinks that need no thread (`NullDecisionLog` when logging is off,
`MemoryDecisionLog` for tests) and `worker_path`, the file of one worker process. The sink that
writes files, `DecisionLog`, is pdp.decision_log.writer's."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol, Self

from pdp.decision_log.events import DecisionEvent


class DecisionLogError(RuntimeError):
    """The decision log cannot take an event."""


class DecisionLogFull(DecisionLogError):
    """`on_full="block"` waited `submit_timeout` seconds for room: the writer is failing or too slow."""


class DecisionLogClosed(DecisionLogError):
    """The decision log is closed."""


class DecisionSink(Protocol):
    """What a decision point needs from a decision log (DecisionLog, NullDecisionLog, MemoryDecisionLog)."""

    written: int
    dropped: int
    bytes_written: int
    rotations: int
    write_errors: int

    def submit(self, event: DecisionEvent) -> bool: ...

    async def submit_async(self, event: DecisionEvent) -> bool: ...

    def queue_depth(self) -> int: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def close(self) -> None: ...


class _SinkBase:
    written = 0
    dropped = 0
    bytes_written = 0
    rotations = 0
    write_errors = 0

    def stats(self) -> dict[str, int]:
        """Counters and gauges for metrics."""
        return {
            "written": self.written,
            "dropped": self.dropped,
            "bytes_written": self.bytes_written,
            "rotations": self.rotations,
            "write_errors": self.write_errors,
            "queue_depth": self.queue_depth(),
        }

    def queue_depth(self) -> int:
        return 0

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        pass


class NullDecisionLog(_SinkBase):
    """Logging off: the same interface, every event is discarded at once (and not counted)."""

    enabled = False

    def submit(self, event: DecisionEvent) -> bool:
        return True

    async def submit_async(self, event: DecisionEvent) -> bool:
        return True

    def flush(self, timeout: float | None = None) -> bool:
        return True


class MemoryDecisionLog(_SinkBase):
    """Keeps events in `events` (for tests of a decision point)."""

    enabled = True

    def __init__(self) -> None:
        self.events: list[DecisionEvent] = []
        self._lock = threading.Lock()

    def submit(self, event: DecisionEvent) -> bool:
        with self._lock:
            self.events.append(event)
            self.written += 1
        return True

    async def submit_async(self, event: DecisionEvent) -> bool:
        return self.submit(event)

    def flush(self, timeout: float | None = None) -> bool:
        return True


def worker_path(path: str | os.PathLike[str], worker_index: int) -> str:
    """The log file of one worker process: `decisions.jsonl` -> `decisions.w1.jsonl` (`decisions` -> `decisions.w1`)."""
    p = Path(path)
    if p.suffix:
        return str(p.with_name(f"{p.stem}.w{worker_index}{p.suffix}"))
    return str(p.with_name(f"{p.name}.w{worker_index}"))
