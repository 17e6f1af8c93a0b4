"""Decision logging: a plugin beside evaluation, never inside it (as in OPA).

Whoever runs decisions (the gRPC/HTTP decision point, a batch job) builds one `DecisionEvent`
per decision with `event_for` and hands it to a sink:

    masker = Masker(engine.schema)                       # once per policy revision
    log = DecisionLog("decisions.jsonl")                 # or NullDecisionLog() when logging is off
    ...
    t0 = time.perf_counter()
    decision = engine.decide(request)
    log.submit(event_for(request, decision, masker=masker, latency_us=(time.perf_counter() - t0) * 1e6,
                         cached=False, source="authorize"))
    ...
    log.close()                                          # flushes everything, joins the writer

A server that logs every decision queues less: `log.try_submit((outcome, masker, source, worker,
time.time()))` (a `PendingDecision`; pdp/server/recorder.py) takes the outcome as it is, and the
writer thread masks and encodes it later, in a batch, composing each record from pieces it keeps
masked and encoded: the attribute maps of principals, resources and contexts (by identity: the
server decodes equal bytes into the same dict), entities, and the obligations and advice of each
(shared) decision. The records are byte for byte those `event_for` would give; a request that does
not fit that way (another shape, one near the size limits) is masked whole, as `event_for` does.

The engine never sees the log. `submit` only appends to a bounded in-memory queue; a background
thread encodes and writes in batches. The writer wakes when a batch has gathered (a quarter of the
queue, at most 1,024 events), after `write_interval` seconds (0.1), for `flush`, `close` or a full
queue, never per event: a thread woken per event costs the event loop more in GIL hand-offs than
the event itself. When the queue is full, `on_full="block"` (the default)
makes the caller wait for room (back-pressure) and raise `DecisionLogFull` after `submit_timeout`
seconds, so a writer that keeps failing turns into a clear error instead of a hang;
`on_full="drop"` drops the event, counts it in `dropped` and logs it (at most a line every 10 s).
Nothing is lost silently: a failed write is counted in `write_errors`, logged on the
`pdp.decision_log` logger, passed to `on_error`, undone (the file is cut back, so no half record
stays) and retried with a growing pause, the events staying queued, so that a persistent failure
becomes back-pressure (then `DecisionLogFull`) or drops; `close()` retries for `close_timeout`
seconds, then gives the rest up, counted and logged. A log that is never closed is drained when
the main thread ends. Create the log in each worker process after forking (threads do not
survive a fork), on its own file: `worker_path(path, i)`.

Masking: attributes declared `sensitive` in the schema (principal and resource attributes per
entity type, context, nested records, maps and sets of records) are logged as "<masked>" and
their JSON paths listed in the event's `masked`. Every logged value is also capped (string length,
nesting depth, items per container, total size), so a hostile request cannot blow up the log; the
paths that were cut are listed in `truncated`.

File formats (one file per writer; with N worker processes use `worker_path`):

- `jsonl`: one JSON object per line, ASCII (non-ASCII escaped), `\\n`-terminated.
- `msgpack`: a plain concatenation of msgpack maps, no framing (read it with `msgpack.Unpacker`).

On opening an existing file, a torn last record (a crash mid-write) is moved aside with the file by
a rotation (or, without rotation, cut off) before appending.

Both hold the objects of `DecisionEvent.to_json()`; `"v"` is the schema version (1). Files rotate
by size like `logging.handlers.RotatingFileHandler` (`decisions.jsonl` -> `decisions.jsonl.1` ->
... -> `decisions.jsonl.<backups>`), and a record is never split between two files.

Reading: `read_events(paths)` (files, globs, rotated siblings oldest first, formats detected by
the first byte: `{` is JSON lines, anything else msgpack), `matches(event, ...)` and
`format_event(event)`; `pdp logs` (pdp/logs_cli.py) is the command line over them.

The package, one concern a module (this one re-exports what callers use: import from
`pdp.decision_log`):

- `events`: `DecisionEvent`, `event_for`, `PendingDecision` and `event_for_outcome`, ids, timestamps.
- `masking`: `Masker` (masking and size caps) and the memos the writer's encoders reuse.
- `sinks`: `DecisionSink`, its errors, `NullDecisionLog`, `MemoryDecisionLog`, `worker_path`.
- `compose`: the writer's encoders that build a record from memoized, pre-encoded pieces.
- `writer`: `DecisionLog` (queue, thread, batches, rotation, retries) and `open_decision_log`.
- `files`: the log file as the writer sees it (`LogFile`, whole writes, a torn tail found).
- `reading`: `log_files`, `read_events`, `parse_time`, `matches`, `format_event`.
"""

from pdp.decision_log.compose import _latency_text as _latency_text
from pdp.decision_log.events import (
    SCHEMA_VERSION,
    DecisionEvent,
    event_for,
    new_decision_id,
    rfc3339,
)
from pdp.decision_log.events import OutcomeLike as OutcomeLike
from pdp.decision_log.events import PendingDecision as PendingDecision
from pdp.decision_log.events import event_for_outcome as event_for_outcome
from pdp.decision_log.events import to_the_nanosecond as to_the_nanosecond
from pdp.decision_log.files import LogFile as LogFile
from pdp.decision_log.masking import MASK, MaskedRequest, Masker
from pdp.decision_log.reading import format_event, log_files, matches, parse_time, read_events
from pdp.decision_log.sinks import (
    DecisionLogClosed,
    DecisionLogError,
    DecisionLogFull,
    DecisionSink,
    MemoryDecisionLog,
    NullDecisionLog,
    worker_path,
)
from pdp.decision_log.writer import DecisionLog, open_decision_log

__all__ = [
    "MASK",
    "SCHEMA_VERSION",
    "DecisionEvent",
    "DecisionLog",
    "DecisionLogClosed",
    "DecisionLogError",
    "DecisionLogFull",
    "DecisionSink",
    "Masker",
    "MaskedRequest",
    "MemoryDecisionLog",
    "NullDecisionLog",
    "event_for",
    "format_event",
    "log_files",
    "matches",
    "new_decision_id",
    "open_decision_log",
    "parse_time",
    "read_events",
    "rfc3339",
    "worker_path",
]
