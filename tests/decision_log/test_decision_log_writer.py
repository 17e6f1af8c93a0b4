"""The writer: formats, rotation, back-pressure, drops, flush/close, asyncio, write errors."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from pdp.decision import Decision
from pdp.decision_log import (
    DecisionEvent,
    DecisionLog,
    DecisionLogClosed,
    DecisionLogFull,
    Masker,
    MemoryDecisionLog,
    NullDecisionLog,
    event_for,
    open_decision_log,
    read_events,
    worker_path,
)

MakeEvent = Callable[..., DecisionEvent]
WaitUntil = Callable[..., None]
ROOT = Path(__file__).resolve().parents[2]


def ids(events: Any) -> list[str]:
    return [e["decision_id"] for e in events]


def read_all(path: Path, warnings: list[str] | None = None) -> list[dict[str, Any]]:
    sink = [] if warnings is None else warnings
    return list(read_events([path], on_warning=sink.append))


# ---- formats ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_round_trip(tmp_path: Path, fmt: str, make_event: MakeEvent) -> None:
    path = tmp_path / f"decisions.{fmt}"
    odd = {"context": {"text": "Grüße \u2603 \ud800 lone surrogate", "big": 2**70, "nan": float("nan")}}
    events = [make_event(i) for i in range(50)]
    events.append(event_for(odd, Decision(True), decision_id="odd", latency_us=1.5, masker=Masker(None)))
    with DecisionLog(path, format=fmt) as log:
        for e in events:
            assert log.submit(e) is True
    assert log.written == 51 and log.dropped == 0 and log.write_errors == 0
    assert log.bytes_written == path.stat().st_size
    warnings: list[str] = []
    back = read_all(path, warnings)
    assert warnings == []
    assert [DecisionEvent.from_json(d) for d in back[:50]] == events[:50]
    assert back[50]["request"]["context"]["big"] == str(2**70)
    assert back[50]["request"]["context"]["nan"] == "nan"
    assert back[50]["request"]["context"]["text"].startswith("Grüße \u2603 ")
    raw = path.read_bytes()
    if fmt == "jsonl":
        lines = raw.decode("ascii").splitlines()  # ASCII only: non-ASCII is escaped
        assert len(lines) == 51
        assert json.loads(lines[0]) == events[0].to_json()
    else:
        assert raw[:1] != b"{"
        with open(path, "rb") as f:
            assert list(msgpack.Unpacker(f, raw=False))[:50] == [e.to_json() for e in events[:50]]


def test_an_event_that_cannot_be_encoded_as_is_is_sanitised(log_path: Path) -> None:
    weird = DecisionEvent(
        "w", "2026-11-27T00:00:00.000000Z", "r", {"s": {1, 2}, "o": object()}, True, (), (), (), (), 1.0, False
    )
    with DecisionLog(log_path) as log:
        log.submit(weird)
    (back,) = read_all(log_path)
    assert back["request"]["s"] == [1, 2]
    assert back["request"]["o"].startswith("<object object")


def test_worker_path() -> None:
    assert worker_path("decisions.jsonl", 1) == "decisions.w1.jsonl"
    assert worker_path("/var/log/pdp/decisions.msgpack", 3) == "/var/log/pdp/decisions.w3.msgpack"
    assert worker_path(Path("logs/decisions"), 0) == os.path.join("logs", "decisions.w0")


# ---- rotation ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_rotation_never_splits_a_record_and_keeps_the_order(tmp_path: Path, fmt: str, make_event: MakeEvent) -> None:
    path = tmp_path / f"decisions.{fmt}"
    max_bytes = 3000
    with DecisionLog(path, format=fmt, max_bytes=max_bytes, backups=100, queue_size=7) as log:
        for i in range(400):
            log.submit(make_event(i))
    files = sorted(tmp_path.iterdir())
    assert log.rotations == len(files) - 1 > 10
    for f in files:
        assert f.stat().st_size <= max_bytes
        warnings: list[str] = []
        assert list(read_events([f], on_warning=warnings.append))  # each file holds whole records only
        assert warnings == []
    assert ids(read_all(path)) == [f"e{i}" for i in range(400)]  # oldest file first


def test_rotation_keeps_only_backups(tmp_path: Path, make_event: MakeEvent) -> None:
    path = tmp_path / "decisions.jsonl"
    with DecisionLog(path, max_bytes=2000, backups=2) as log:
        for i in range(200):
            log.submit(make_event(i))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decisions.jsonl", "decisions.jsonl.1", "decisions.jsonl.2"]
    kept = ids(read_all(path))
    assert kept == [f"e{i}" for i in range(200 - len(kept), 200)]


def test_a_record_larger_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path, make_event: MakeEvent) -> None:
    path = tmp_path / "decisions.jsonl"
    with DecisionLog(path, max_bytes=1000, backups=10, queue_size=1) as log:
        log.submit(make_event(0))
        log.submit(make_event(1, masker=Masker(None, max_string=5000), pid="p" * 3000))
        log.submit(make_event(2))
    sizes = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    assert len(sizes) == 3 and sizes["decisions.jsonl.1"] > 3000
    assert ids(read_all(path)) == ["e0", "e1", "e2"]


def test_no_rotation_when_max_bytes_or_backups_is_zero(tmp_path: Path, make_event: MakeEvent) -> None:
    for name, options in (("a.jsonl", {"max_bytes": 0}), ("b.jsonl", {"max_bytes": 500, "backups": 0})):
        with DecisionLog(tmp_path / name, **options) as log:
            for i in range(50):
                log.submit(make_event(i))
        assert log.rotations == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.jsonl", "b.jsonl"]


# ---- back-pressure, drops, flush and close ------------------------------------------------


def test_back_pressure_blocks_submit_and_loses_nothing(log_path: Path, control: Any, make_event: MakeEvent) -> None:
    control.hold()
    log = DecisionLog(log_path, queue_size=2, opener=control.opener)
    log.submit(make_event(0))
    assert control.entered.wait(5)  # the writer took event 0 and is stuck writing it
    log.submit(make_event(1))
    log.submit(make_event(2))  # the queue is full now
    done = threading.Event()

    def producer() -> None:
        log.submit(make_event(3))
        done.set()

    thread = threading.Thread(target=producer)
    thread.start()
    assert not done.wait(0.3), "submit must block while the queue is full"
    assert log.queue_depth() == 3
    control.gate.set()
    assert done.wait(5)
    thread.join()
    log.close()
    assert ids(read_all(log_path)) == ["e0", "e1", "e2", "e3"]
    assert log.written == 4 and log.dropped == 0


def test_slow_writer_many_producers(log_path: Path, control: Any, make_event: MakeEvent) -> None:
    control.delay = 0.003  # per batch
    log = DecisionLog(log_path, queue_size=3, opener=control.opener)
    waited = [0.0, 0.0]

    def producer(t: int) -> None:
        for i in range(100):
            start = time.perf_counter()
            log.submit(make_event(t * 1000 + i))
            waited[t] = max(waited[t], time.perf_counter() - start)

    threads = [threading.Thread(target=producer, args=(t,)) for t in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    got = ids(read_all(log_path))
    assert len(got) == 200 and log.written == 200 and log.dropped == 0
    for t in range(2):  # each producer's events in its order
        assert [x for x in got if int(x[1:]) // 1000 == t] == [f"e{t * 1000 + i}" for i in range(100)]
    assert max(waited) >= 0.002  # producers were held back by the slow writer


def test_drop_mode_counts_drops_exactly(log_path: Path, control: Any, make_event: MakeEvent) -> None:
    control.hold()
    log = DecisionLog(log_path, queue_size=3, on_full="drop", opener=control.opener)
    assert log.submit(make_event(0))
    assert control.entered.wait(5)
    results = [log.submit(make_event(i)) for i in range(1, 11)]
    assert results == [True] * 3 + [False] * 7
    assert log.dropped == 7
    control.gate.set()
    log.close()
    assert ids(read_all(log_path)) == ["e0", "e1", "e2", "e3"]
    assert log.written == 4 and log.dropped == 7


def test_close_writes_everything_from_many_threads(log_path: Path, make_event: MakeEvent) -> None:
    log = DecisionLog(log_path, queue_size=100)
    events = [make_event(i) for i in range(10_000)]

    def producer(k: int) -> None:
        for e in events[k::4]:
            log.submit(e)

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    got = ids(read_all(log_path))
    assert len(got) == 10_000 and len(set(got)) == 10_000
    assert log.written == 10_000 and log.queue_depth() == 0
    for k in range(4):
        mine = [x for x in got if int(x[1:]) % 4 == k]
        assert mine == [f"e{i}" for i in range(k, 10_000, 4)]


def test_flush_waits_for_what_was_submitted(log_path: Path, control: Any, make_event: MakeEvent) -> None:
    control.delay = 0.05
    with DecisionLog(log_path, opener=control.opener) as log:
        for i in range(20):
            log.submit(make_event(i))
        assert log.flush(timeout=10)
        assert len(read_all(log_path)) == 20
        control.hold()
        log.submit(make_event(20))
        assert log.flush(timeout=0.1) is False
        control.gate.set()
        assert log.flush(timeout=10)
        assert len(read_all(log_path)) == 21


def test_close_is_idempotent_and_submit_after_close_raises(log_path: Path, make_event: MakeEvent) -> None:
    log = DecisionLog(log_path)
    log.submit(make_event(0))
    log.close()
    log.close()
    assert not log._thread.is_alive()
    with pytest.raises(DecisionLogClosed):
        log.submit(make_event(1))
    with pytest.raises(DecisionLogClosed):
        asyncio.run(log.submit_async(make_event(1)))
    assert len(read_all(log_path)) == 1


def test_close_releases_blocked_producers(log_path: Path, control: Any, make_event: MakeEvent) -> None:
    control.hold()
    log = DecisionLog(log_path, queue_size=1, opener=control.opener)
    log.submit(make_event(0))
    assert control.entered.wait(5)
    log.submit(make_event(1))
    errors: list[BaseException] = []

    def producer() -> None:
        try:
            log.submit(make_event(2))
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=producer)
    thread.start()
    time.sleep(0.1)
    closer = threading.Thread(target=log.close)
    closer.start()
    thread.join(5)
    assert not thread.is_alive() and isinstance(errors[0], DecisionLogClosed)
    control.gate.set()
    closer.join(5)
    assert ids(read_all(log_path)) == ["e0", "e1"]


def test_unclosed_log_is_drained_when_the_program_ends(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    script = (
        "import sys\n"
        "from pdp.decision import Decision\n"
        "from pdp.decision_log import DecisionLog, Masker, event_for\n"
        "log = DecisionLog(sys.argv[1])\n"
        "for i in range(1000):\n"
        "    log.submit(event_for({}, Decision(True), latency_us=1, masker=Masker(None)))\n"
        "# no close: the writer notices the main thread ended, drains and stops\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, timeout=60, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert len(path.read_bytes().splitlines()) == 1000


# ---- asyncio ----------------------------------------------------------------------------


def test_submit_async_waits_without_blocking_the_loop(log_path: Path, control: Any, make_event: MakeEvent) -> None:
    control.hold()
    log = DecisionLog(log_path, queue_size=2, opener=control.opener)

    async def main() -> tuple[int, int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        tick_task = asyncio.create_task(ticker())
        await log.submit_async(make_event(0))
        while not control.entered.is_set():
            await asyncio.sleep(0.001)
        await log.submit_async(make_event(1))
        await log.submit_async(make_event(2))  # full now
        producer = asyncio.create_task(log.submit_async(make_event(3)))
        await asyncio.sleep(0.25)
        assert not producer.done(), "submit_async must wait while the queue is full"
        ticks_while_waiting = ticks
        control.gate.set()
        assert await asyncio.wait_for(producer, 5) is True
        stop.set()
        await tick_task
        return ticks_while_waiting, ticks

    waiting, total = asyncio.run(main())
    assert waiting >= 20  # the loop kept running while the producer waited
    log.close()
    assert ids(read_all(log_path)) == ["e0", "e1", "e2", "e3"]


def test_submit_async_many_producers_tiny_queue(log_path: Path, control: Any, make_event: MakeEvent) -> None:
    control.delay = 0.002
    log = DecisionLog(log_path, queue_size=2, opener=control.opener)

    async def main() -> None:
        await asyncio.gather(*(log.submit_async(make_event(i)) for i in range(300)))

    asyncio.run(main())
    log.close()
    assert sorted(ids(read_all(log_path))) == sorted(f"e{i}" for i in range(300))
    assert log.dropped == 0


def test_submit_async_drop_mode(log_path: Path, control: Any, make_event: MakeEvent) -> None:
    control.hold()
    log = DecisionLog(log_path, queue_size=1, on_full="drop", opener=control.opener)

    async def main() -> list[bool]:
        first = await log.submit_async(make_event(0))
        while not control.entered.is_set():
            await asyncio.sleep(0.001)
        return [first] + [await log.submit_async(make_event(i)) for i in range(1, 5)]

    assert asyncio.run(main()) == [True, True, False, False, False]
    assert log.dropped == 3
    control.gate.set()
    log.close()
    assert log.written == 2


# ---- errors -----------------------------------------------------------------------------


def test_write_errors_are_counted_reported_and_retried(
    log_path: Path, control: Any, make_event: MakeEvent, caplog: pytest.LogCaptureFixture
) -> None:
    control.fail = 3
    control.partial = True  # each failure leaves half a batch in the file: it must be cut away
    reported: list[BaseException] = []
    with caplog.at_level(logging.ERROR, logger="pdp.decision_log"):
        with DecisionLog(log_path, opener=control.opener, retry_interval=0.01, on_error=reported.append) as log:
            for i in range(10):
                log.submit(make_event(i))
            assert log.flush(timeout=10)
    assert log.write_errors == 3
    assert len(reported) == 3 and all(isinstance(e, OSError) for e in reported)
    assert "No space left on device" in caplog.text
    warnings: list[str] = []
    assert sorted(ids(read_all(log_path, warnings)), key=lambda x: int(x[1:])) == [f"e{i}" for i in range(10)]
    assert warnings == []  # no half record, no duplicate
    assert log.written == 10 and log.dropped == 0


def test_failing_writer_makes_blocked_submit_raise(log_path: Path, control: Any, make_event: MakeEvent) -> None:
    control.fail = 10**9
    log = DecisionLog(
        log_path, queue_size=2, opener=control.opener, submit_timeout=0.3, close_timeout=0.2, retry_interval=0.01
    )
    for i in range(3):  # one batch in the writer's hands, two queued
        if i == 1:
            assert control.entered.wait(5)
        log.submit(make_event(i))
    start = time.monotonic()
    with pytest.raises(DecisionLogFull, match="No space left on device"):
        log.submit(make_event(3))
    assert 0.25 <= time.monotonic() - start < 5
    with pytest.raises(DecisionLogFull):
        asyncio.run(log.submit_async(make_event(4)))
    assert log.write_errors >= 1
    start = time.monotonic()
    log.close()  # gives up after close_timeout: counted, not silent
    assert time.monotonic() - start < 5
    assert log.written == 0
    assert log.dropped == 5  # 2 refused submits + 3 abandoned at close
    assert log.queue_depth() == 0


def test_configuration_errors_surface_at_once(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        DecisionLog(tmp_path / "no" / "such" / "dir.jsonl")
    with pytest.raises(ValueError):
        DecisionLog(tmp_path / "x.jsonl", format="xml")
    with pytest.raises(ValueError):
        DecisionLog(tmp_path / "x.jsonl", on_full="explode")


# ---- reopening a log a crash left behind ---------------------------------------------------


def test_reopening_after_a_crash_moves_the_damaged_file_aside(log_path: Path, make_event: MakeEvent) -> None:
    with DecisionLog(log_path) as log:
        for i in range(3):
            log.submit(make_event(i))
    with open(log_path, "ab") as f:
        f.write(b'{"v":1,"decision_id":"half')  # a crash mid-record
    with DecisionLog(log_path) as log:
        log.submit(make_event(3))
    assert log.rotations == 1
    warnings: list[str] = []
    assert ids(read_all(log_path, warnings)) == ["e0", "e1", "e2", "e3"]
    assert len(warnings) == 1 and "truncated record" in warnings[0] and "decisions.jsonl.1" in warnings[0]


@pytest.mark.parametrize("fmt", ["jsonl", "msgpack"])
def test_reopening_without_rotation_repairs_the_tail(tmp_path: Path, fmt: str, make_event: MakeEvent) -> None:
    path = tmp_path / f"decisions.{fmt}"
    with DecisionLog(path, format=fmt, backups=0) as log:
        for i in range(3):
            log.submit(make_event(i))
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size - 7)
    with DecisionLog(path, format=fmt, backups=0) as log:
        log.submit(make_event(3))
    warnings: list[str] = []
    assert ids(read_all(path, warnings)) == ["e0", "e1", "e3"]
    assert warnings == []


def test_refuses_to_append_to_another_format(tmp_path: Path, make_event: MakeEvent) -> None:
    path = tmp_path / "decisions.log"
    with DecisionLog(path, format="jsonl", backups=0) as log:
        log.submit(make_event(0))
    with pytest.raises(Exception, match="not a msgpack decision log"):
        DecisionLog(path, format="msgpack", backups=0)
    with DecisionLog(path, format="msgpack") as log:  # with rotation: the old file is moved aside
        log.submit(make_event(1))
    assert ids(read_all(path)) == ["e0", "e1"]


# ---- other sinks ------------------------------------------------------------------------


def test_null_sink_has_the_same_interface(tmp_path: Path, make_event: MakeEvent) -> None:
    null = open_decision_log(None)
    assert isinstance(null, NullDecisionLog)
    with null as log:
        assert log.submit(make_event(0)) is True
        assert asyncio.run(log.submit_async(make_event(1))) is True
        assert log.flush(1) is True
        assert log.queue_depth() == 0
    null.close()
    assert null.stats() == {
        "written": 0,
        "dropped": 0,
        "bytes_written": 0,
        "rotations": 0,
        "write_errors": 0,
        "queue_depth": 0,
    }
    real = open_decision_log(tmp_path / "d.jsonl", format="msgpack")
    assert isinstance(real, DecisionLog) and real.format == "msgpack"
    real.close()


def test_memory_sink(make_event: MakeEvent) -> None:
    log = MemoryDecisionLog()
    log.submit(make_event(0))
    asyncio.run(log.submit_async(make_event(1)))
    assert [e.decision_id for e in log.events] == ["e0", "e1"] and log.written == 2


def test_drops_are_logged_not_silent(
    log_path: Path, control: Any, make_event: MakeEvent, caplog: pytest.LogCaptureFixture
) -> None:
    control.hold()
    with caplog.at_level(logging.WARNING, logger="pdp.decision_log"):
        log = DecisionLog(log_path, queue_size=1, on_full="drop", opener=control.opener)
        log.submit(make_event(0))
        assert control.entered.wait(5)
        for i in range(1, 6):
            log.submit(make_event(i))
        control.gate.set()
        log.close()
    assert log.dropped == 4
    drops = [r for r in caplog.records if "dropped so far" in r.getMessage()]
    assert len(drops) == 1  # rate-limited: one line, not one per drop
    assert "1 events dropped so far" in drops[0].getMessage()


def test_a_failed_rotation_is_reported_and_writing_goes_on(
    tmp_path: Path, make_event: MakeEvent, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "decisions.jsonl"
    blocker = tmp_path / "decisions.jsonl.1"
    blocker.mkdir()
    (blocker / "keep").write_text("x")  # os.replace cannot put a file over a non-empty directory
    with caplog.at_level(logging.ERROR, logger="pdp.decision_log"):
        with DecisionLog(path, max_bytes=1000, backups=1, queue_size=1) as log:
            for i in range(30):
                log.submit(make_event(i))
    assert log.rotations == 0 and log.write_errors >= 1
    assert "rotation failed" in caplog.text
    assert ids(read_all(path)) == [f"e{i}" for i in range(30)]


def test_a_failing_on_error_callback_does_not_stop_the_writer(
    log_path: Path, control: Any, make_event: MakeEvent
) -> None:
    control.fail = 2

    def bad_callback(exc: BaseException) -> None:
        raise RuntimeError("callback bug")

    with DecisionLog(log_path, opener=control.opener, retry_interval=0.01, on_error=bad_callback) as log:
        log.submit(make_event(0))
    assert log.write_errors == 2 and ids(read_all(log_path)) == ["e0"]


class WriterBug(BaseException):
    pass


def test_a_dead_writer_makes_submit_fail_loudly(
    log_path: Path, make_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = DecisionLog(log_path)

    def broken(records: list[bytes]) -> None:
        raise WriterBug("bug in the writer")

    monkeypatch.setattr(log, "_write_records", broken)
    log.submit(make_event(0))
    assert log.flush(timeout=5)
    assert log.dropped == 1 and log.queue_depth() == 0
    with pytest.raises(Exception, match="writer thread failed"):
        log.submit(make_event(1))
    log.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_decision_ids_differ_in_a_forked_worker() -> None:
    from pdp.decision_log import new_decision_id

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave at once
        try:
            os.write(write, new_decision_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    child_id = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child_id) == 36 and child_id != new_decision_id()
