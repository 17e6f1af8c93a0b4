"""`DecisionLog`, the sink that writes events to a file from a background thread: the bounded
queue with its back-pressure or drops, batches, encoding (composed by pdp.decision_log.compose
when it can be), rotation by size, retries of failed writes, `flush` and `close`. What it does
to the file itself is pdp.decision_log.files'. `open_decision_log` is here because it may make a
`DecisionLog`."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import msgpack

from pdp.decision_log.compose import _Composer
from pdp.decision_log.events import DecisionEvent, QueueItem, event_for_outcome
from pdp.decision_log.files import Format, LogFile, _complete_prefix, _file_size, _open_append, _write_all
from pdp.decision_log.masking import _sanitize
from pdp.decision_log.sinks import (
    DecisionLogClosed,
    DecisionLogError,
    DecisionLogFull,
    DecisionSink,
    MemoryDecisionLog,
    NullDecisionLog,
    _SinkBase,
)

OnFull = Literal["block", "drop"]

logger = logging.getLogger("pdp.decision_log")  # the package's one logger (not __name__): the name operators configure


if TYPE_CHECKING:  # the three sinks are interchangeable

    def _sinks(a: DecisionLog, b: NullDecisionLog, c: MemoryDecisionLog) -> tuple[DecisionSink, ...]:
        return (a, b, c)


def open_decision_log(path: str | os.PathLike[str] | None, **options: Any) -> DecisionLog | NullDecisionLog:
    """A `DecisionLog` on `path`, or a `NullDecisionLog` when `path` is None (logging off)."""
    return NullDecisionLog() if path is None else DecisionLog(path, **options)


class DecisionLog(_SinkBase):
    """Writes decision events to a file from a background thread; see the package docstring.

    Memory: at most `queue_size` events wait in the queue, plus the batch being written (at most
    another `queue_size`). `queue_depth()` counts both: events accepted and not yet on disk.
    Events reach the file about `write_interval` seconds after they are queued (at once with
    `flush` and `close`, and as soon as a batch of them waits).
    `submit_timeout` (None: wait forever) bounds how long `submit`/`submit_async` wait for room
    with `on_full="block"`; `close_timeout` how long `close` keeps retrying a failing write before
    it gives the remaining events up (counted in `dropped`, reported). Two logs must not share a
    path (use `worker_path` for worker processes).
    """

    enabled = True
    retry_max = 1.0  # seconds between retries of a failing write, at most

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        format: Format | str = "jsonl",
        max_bytes: int = 100 * 1024 * 1024,
        backups: int = 5,
        queue_size: int = 10_000,
        on_full: OnFull | str = "block",
        submit_timeout: float | None = 30.0,
        close_timeout: float = 30.0,
        retry_interval: float = 0.05,
        write_interval: float = 0.1,
        fsync: bool = False,
        on_error: Callable[[BaseException], None] | None = None,
        opener: Callable[[str], LogFile] | None = None,
    ):
        if format not in ("jsonl", "msgpack"):
            raise ValueError(f"format must be 'jsonl' or 'msgpack', not {format!r}")
        if on_full not in ("block", "drop"):
            raise ValueError(f"on_full must be 'block' or 'drop', not {on_full!r}")
        if queue_size < 1 or max_bytes < 0 or backups < 0:
            raise ValueError("queue_size must be positive; max_bytes and backups must not be negative")
        if not write_interval > 0:
            raise ValueError("write_interval must be positive")
        self.path = os.fspath(path)
        self.format: Format = "jsonl" if format == "jsonl" else "msgpack"
        self.max_bytes = max_bytes
        self.backups = backups
        self.queue_size = queue_size
        self.on_full: OnFull = "block" if on_full == "block" else "drop"
        self.submit_timeout = submit_timeout
        self.close_timeout = close_timeout
        self.retry_interval = retry_interval
        self.write_interval = write_interval
        self.fsync = fsync
        self.on_error = on_error
        self._opener = opener or _open_append
        self.written = 0
        self.dropped = 0
        self.bytes_written = 0
        self.rotations = 0
        self.write_errors = 0
        self.submitted = 0
        self.last_error: BaseException | None = None
        self._next_drop_warning = 0.0

        self._rotating = max_bytes > 0 and backups > 0
        self._limit = max_bytes  # raised past a rotation that failed, so that it is not retried per batch
        # no circular check (faster): a cyclic value fails with RecursionError and is sanitised
        self._json = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False)
        self._packer = msgpack.Packer(use_bin_type=True)
        self._encode = self._encode_jsonl if format == "jsonl" else self._encode_msgpack
        composer = _Composer(self._json)
        self._compose = composer.jsonl if format == "jsonl" else composer.msgpack

        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)  # the writer waits here
        self._not_full = threading.Condition(self._lock)  # blocked producers wait here
        self._done = threading.Condition(self._lock)  # flush waits here
        self._queue: list[QueueItem] = []
        # The writer wakes when this many events wait (or every write_interval seconds, or for a
        # flush, a close or a full queue), not for each event: a thread woken per event costs the
        # event loop's thread more (GIL hand-offs) than the event itself.
        self._wake_at = max(1, min(queue_size // 4, 1024))
        self._completed = 0  # events written or given up (counted in dropped)
        self._writer_idle = False
        self._urgent = False  # a flush waits: write what is queued now
        self._blocked = 0  # producers waiting in submit
        self._async_waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._closing = False
        self._closed = False
        self._abandon_at: float | None = None
        self._writer_dead: BaseException | None = None

        self._fh: LogFile | None = None
        self._size = 0
        self._fh = self._open()  # configuration errors (no such folder, no permission) surface here
        self._thread = threading.Thread(target=self._run, name=f"pdp-decision-log:{self.path}", daemon=False)
        self._thread.start()

    # ---- producers -------------------------------------------------------------------------
    def submit(self, event: QueueItem) -> bool:
        """Queue `event`; True once queued, False when dropped (on_full="drop", queue full).

        With on_full="block" a full queue makes this wait (back-pressure) and raise
        `DecisionLogFull` after `submit_timeout` seconds. Raises `DecisionLogClosed` after close.
        Do not call it on an event loop: use `submit_async`."""
        with self._lock:
            if self._closed or self._writer_dead is not None:
                self._check_open()
            if len(self._queue) < self.queue_size or self._make_room():
                queue = self._queue  # (a new list once the writer has taken the old one)
                queue.append(event)
                self.submitted += 1
                if self._writer_idle and len(queue) >= self._wake_at:
                    self._not_empty.notify()
                return True
            self.dropped += 1
        self._warn_dropped()
        return False

    def try_submit(self, event: QueueItem) -> bool:
        """Queue `event` if there is room now, never waiting: False when the queue is full (nothing
        is counted; call `submit_async` or `submit` then, which apply `on_full`). Raises
        `DecisionLogClosed` after close. The cheap way for an event loop: a `PendingDecision` is
        masked and encoded by the writer thread, in a batch."""
        with self._lock:
            if self._closed or self._writer_dead is not None:
                self._check_open()
            queue = self._queue
            if len(queue) < self.queue_size:
                queue.append(event)
                self.submitted += 1
                if self._writer_idle and len(queue) >= self._wake_at:
                    self._not_empty.notify()
                return True
        return False

    def _warn_dropped(self) -> None:
        """Log drops (on_full="drop"): the first at once, then at most one line every 10 s."""
        now = time.monotonic()
        if now >= self._next_drop_warning:
            self._next_drop_warning = now + 10.0
            logger.warning(
                "decision log %s: queue full (%d events), %d events dropped so far (on_full=drop)",
                self.path,
                self.queue_size,
                self.dropped,
            )

    def _make_room(self) -> bool:
        """With the lock held and the queue full: False to drop (on_full="drop"), or wait until
        the queue has room and return True; raise when closed or after `submit_timeout`."""
        if self.on_full == "drop":
            return False
        deadline = None if self.submit_timeout is None else time.monotonic() + self.submit_timeout
        self._blocked += 1
        if self._writer_idle:
            self._not_empty.notify()
        try:
            while len(self._queue) >= self.queue_size:
                self._check_open()
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self.dropped += 1
                    raise self._full_error()
                self._not_full.wait(remaining)
            self._check_open()
        finally:
            self._blocked -= 1
        return True

    def _check_open(self) -> None:
        if self._closed:
            raise DecisionLogClosed(f"decision log {self.path} is closed")
        if self._writer_dead is not None:
            raise DecisionLogError(f"decision log {self.path}: the writer thread failed: {self._writer_dead!r}")

    def _full_error(self) -> DecisionLogFull:
        why = f"the writer is failing: {self.last_error}" if self.last_error is not None else "the writer is too slow"
        return DecisionLogFull(
            f"decision log {self.path}: queue full ({self.queue_size} events) for {self.submit_timeout} s; {why}"
        )

    async def submit_async(self, event: QueueItem) -> bool:
        """`submit` for asyncio code; never blocks the event loop.

        Tries a non-blocking put first. When the queue is full: with on_full="drop" drops and
        counts (False); with "block" the coroutine waits (the loop keeps running) until the writer
        takes the queue: the writer wakes it with `loop.call_soon_threadsafe`, with a 50 ms poll as
        a safety net. Raises `DecisionLogFull` after `submit_timeout` seconds without room."""
        loop = asyncio.get_running_loop()
        deadline = None if self.submit_timeout is None else loop.time() + self.submit_timeout
        waiter: asyncio.Future[None] | None = None
        while True:
            with self._lock:
                if self._closed:
                    raise DecisionLogClosed(f"decision log {self.path} is closed")
                if self._writer_dead is not None:
                    self._check_open()
                if len(self._queue) < self.queue_size:
                    self._queue.append(event)
                    self.submitted += 1
                    if self._writer_idle and len(self._queue) >= self._wake_at:
                        self._not_empty.notify()
                    return True
                if self._writer_idle:
                    self._not_empty.notify()
                if self.on_full == "drop":
                    self.dropped += 1
                    dropping = True
                else:
                    dropping = False
                    remaining = None if deadline is None else deadline - loop.time()
                    if remaining is not None and remaining <= 0:
                        self.dropped += 1
                        raise self._full_error()
                    if waiter is None or waiter.done():  # one registration at a time: the writer resolves it
                        waiter = loop.create_future()
                        self._async_waiters.append((loop, waiter))
            if dropping:
                self._warn_dropped()
                return False
            assert waiter is not None
            await asyncio.wait((waiter,), timeout=0.05 if remaining is None else min(0.05, remaining))

    # ---- state -------------------------------------------------------------------------------
    def queue_depth(self) -> int:
        """Events accepted and not yet written (queued plus the batch being written)."""
        return self.submitted - self._completed

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event submitted before this call is on disk (or given up by `close`).
        False if `timeout` seconds passed first (e.g. while a failing write is being retried)."""
        with self._lock:
            target = self.submitted
            if self._completed < target:
                self._urgent = True
                self._not_empty.notify()
            return self._done.wait_for(lambda: self._completed >= target, timeout)

    def close(self) -> None:
        """Write everything queued, stop and join the writer, close the file. Idempotent.

        A write that keeps failing is retried for `close_timeout` seconds; then the events still
        unwritten are counted in `dropped` and reported."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._closing = True
                self._abandon_at = time.monotonic() + self.close_timeout
                self._not_empty.notify_all()
                self._not_full.notify_all()  # blocked producers raise DecisionLogClosed
                waiters, self._async_waiters = self._async_waiters, []
            else:
                waiters = []
        _wake(waiters)
        if self._thread is not threading.current_thread():
            self._thread.join()

    # ---- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # a bug: make producers fail loudly instead of waiting forever
            logger.exception("decision log %s: the writer thread failed", self.path)
            with self._lock:
                self._writer_dead = exc
                self.dropped += self.submitted - self._completed
                self._completed = self.submitted
                self._not_full.notify_all()
                self._done.notify_all()
                waiters, self._async_waiters = self._async_waiters, []
            _wake(waiters)
        finally:
            self._close_file()

    def _loop(self) -> None:
        main = threading.main_thread()
        delay = self.retry_interval
        pending: list[bytes] = []  # encoded records not yet on disk, oldest first
        while True:
            if not pending:
                with self._lock:
                    waited = False
                    while True:
                        queue = self._queue
                        if queue and (
                            waited
                            or self._closing
                            or self._urgent
                            or self._blocked
                            or self._async_waiters
                            or len(queue) >= self._wake_at
                        ):
                            break
                        if self._closing:
                            return
                        self._writer_idle = True
                        self._not_empty.wait(self.write_interval)
                        self._writer_idle = False
                        waited = True
                        if not main.is_alive():  # the program ended without close(): drain and stop
                            self._closing = True
                            self._abandon_at = time.monotonic() + self.close_timeout
                    batch, self._queue = self._queue, []
                    self._urgent = False
                    if self._blocked:
                        self._not_full.notify_all()
                    waiters, self._async_waiters = self._async_waiters, []
                _wake(waiters)
                pending = self._encode_batch(batch)
                if not pending:
                    continue
            try:
                self._write_records(pending)
                delay = self.retry_interval
            except Exception as exc:
                self._report(exc, f"write failed, {len(pending)} events kept for retry")
                abandon_at = self._abandon_at
                if abandon_at is not None and time.monotonic() >= abandon_at:
                    logger.error("decision log %s: closing with %d events unwritten (%s)", self.path, len(pending), exc)
                    self._finish(len(pending), dropped=True)
                    pending = []
                    continue
                with self._lock:
                    self._not_empty.wait(delay)  # close() wakes it
                delay = min(delay * 2, self.retry_max)

    def _finish(self, n: int, *, dropped: bool = False) -> None:
        with self._lock:
            self._completed += n
            if dropped:
                self.dropped += n
            self._done.notify_all()

    def _encode_batch(self, batch: list[QueueItem]) -> list[bytes]:
        out = []
        encode, compose = self._encode, self._compose
        for event in batch:
            try:
                if type(event) is tuple:  # a PendingDecision
                    try:
                        record = compose(event)
                    except Exception:  # composing is an optimisation: the long way says what is wrong
                        record = None
                    out.append(record if record is not None else encode(event_for_outcome(event)))
                else:
                    out.append(encode(event))  # type: ignore[arg-type]
            except Exception as exc:
                self._report(exc, f"cannot encode event {_decision_id(event)}; dropped")
                self._finish(1, dropped=True)
        return out

    def _encode_jsonl(self, event: DecisionEvent) -> bytes:
        data = event.to_json()
        try:
            text = self._json.encode(data)
        except (TypeError, ValueError, OverflowError, RecursionError):
            text = self._json.encode(_sanitize(data))
        return (text + "\n").encode("utf-8")

    def _encode_msgpack(self, event: DecisionEvent) -> bytes:
        data = event.to_json()
        try:
            return self._packer.pack(data)  # type: ignore[no-any-return]
        except (TypeError, ValueError, OverflowError, RecursionError):
            return self._packer.pack(_sanitize(data))  # type: ignore[no-any-return]

    def _write_records(self, records: list[bytes]) -> None:
        """Write `records`, removing each from the list once on disk; raises on a failed write
        (what failed is still in `records`, and nothing of it is left in the file when possible)."""
        while records:
            if self._fh is None:
                self._fh = self._open()
            fh = self._fh
            if self._rotating and self._size > 0 and self._size + len(records[0]) > self._limit:
                self._rotate()
                continue
            room = self._limit - self._size if self._rotating else math.inf
            n, total = 0, 0
            for record in records:  # as many as fit; a record larger than max_bytes gets a file of its own
                if n and total + len(record) > room:
                    break
                total += len(record)
                n += 1
            blob = records[0] if n == 1 else b"".join(records[:n])
            start = self._size
            try:
                _write_all(fh, blob)
                fh.flush()
                if self.fsync:
                    os.fsync(getattr(fh, "fileno")())  # noqa: B009 - not in the LogFile protocol
            except BaseException:
                self._undo(start)
                raise
            self._size += total
            self.bytes_written += total
            self.written += n
            del records[:n]
            self._finish(n)

    def _undo(self, size: int) -> None:
        """After a failed write: cut the file back to `size` so that no record is half written."""
        try:
            truncate = getattr(self._fh, "truncate", None)
            if truncate is None:
                raise OSError("cannot truncate")
            truncate(size)
        except Exception:
            self._close_file()  # reopened (and its tail checked) on the next attempt

    def _rotate(self) -> None:
        self._close_file()
        try:
            self._shift_files()
        except OSError as exc:
            self._report(exc, "rotation failed; appending to the current file")
            self._limit = self._size + self.max_bytes
            return
        self.rotations += 1
        self._limit = self.max_bytes
        self._size = 0

    def _shift_files(self) -> None:
        for i in range(self.backups - 1, 0, -1):
            src = f"{self.path}.{i}"
            if os.path.exists(src):
                os.replace(src, f"{self.path}.{i + 1}")
        os.replace(self.path, f"{self.path}.1")

    def _open(self) -> LogFile:
        fh = self._opener(self.path)
        try:
            size = _file_size(fh, self.path)
            if size:
                good = _complete_prefix(self.path, self.format, size)
                if good != size:
                    self._damaged_tail(good, size)
                    if self._rotating:
                        fh.close()
                        self._shift_files()
                        self.rotations += 1
                        fh = self._opener(self.path)
                        size = _file_size(fh, self.path)
                    elif good >= 0:
                        os.truncate(self.path, good)
                        size = good
                    else:
                        raise DecisionLogError(
                            f"{self.path} is not a {self.format} decision log; refusing to append to it"
                        )
        except BaseException:
            fh.close()
            raise
        self._size = size
        return fh

    def _damaged_tail(self, good: int, size: int) -> None:
        if good < 0:
            what = f"{self.path} does not hold {self.format} records"
        else:
            what = f"{self.path} ends with {size - good} bytes of an incomplete record (a crash mid-write?)"
        action = "moved aside by rotation" if self._rotating else "truncated away" if good >= 0 else "not touched"
        logger.warning("decision log: %s; %s", what, action)

    def _close_file(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except Exception as exc:
                self._report(exc, "closing the file failed")

    def _report(self, exc: BaseException, what: str) -> None:
        self.write_errors += 1
        self.last_error = exc
        logger.error("decision log %s: %s: %s", self.path, what, exc)
        if self.on_error is not None:
            try:
                self.on_error(exc)
            except Exception:
                logger.exception("decision log %s: the on_error callback failed", self.path)


def _decision_id(event: Any) -> str:
    if type(event) is tuple:
        event = event[0]
    return str(getattr(event, "decision_id", "?"))


def _wake(waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]) -> None:
    for loop, fut in waiters:
        try:
            loop.call_soon_threadsafe(_resolve, fut)
        except RuntimeError:  # that loop is closed
            pass


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
