"""Reading logs back: `log_files` finds the files of the logs named (rotated siblings oldest
first, globs, worker files), `read_events` yields their records (JSON lines or msgpack, several
logs merged by timestamp, a torn record reported rather than raised), `parse_time` and `matches`
filter them and `format_event` shows one on a line; `pdp logs` (pdp/logs_cli.py) is the command
line over them."""

from __future__ import annotations

import glob
import heapq
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgpack

logger = logging.getLogger("pdp.decision_log")  # the package's one logger (not __name__): the name operators configure


_ROTATED = re.compile(r"^(.*)\.(\d+)$")
_GLOB_MAGIC = re.compile(r"[*?[]")


def log_files(paths: Iterable[str | os.PathLike[str]]) -> list[list[Path]]:
    """The log files to read, one list per log (a base file and its rotated siblings), oldest first.

    A path names a log: the file and its rotated siblings (`FILE.N` ... `FILE.1`, `FILE`) are read.
    A glob (quoted, or expanded by the shell) may match bases and rotated files alike; they are
    grouped by base. Raises FileNotFoundError for a path or glob that matches no file."""
    groups: dict[Path, set[int]] = {}  # base -> rotation numbers (0: the base itself)
    for raw in paths:
        text = os.fspath(raw)
        if _GLOB_MAGIC.search(text):
            found = [Path(p) for p in sorted(glob.glob(text)) if os.path.isfile(p)]
            if not found:
                raise FileNotFoundError(f"no file matches {text}")
            for p in found:
                base, n = _split_rotated(p)
                groups.setdefault(base, set()).add(n)
            continue
        p = Path(text)
        base, n = _split_rotated(p)
        if n and not p.is_file():
            raise FileNotFoundError(f"no such file: {text}")
        numbers = groups.setdefault(base, set())
        if n:
            numbers.add(n)
            continue
        if p.is_file():
            numbers.add(0)
        siblings = _rotated_siblings(p)
        numbers.update(siblings)
        if not p.is_file() and not siblings:
            if p.is_dir():
                raise FileNotFoundError(f"{text} is a directory")
            raise FileNotFoundError(f"no such file: {text}")
    out = []
    for base in sorted(groups):
        numbers = groups[base]
        if not numbers:
            continue
        out.append([base if n == 0 else Path(f"{base}.{n}") for n in sorted(numbers, reverse=True)])
    return out


def _split_rotated(p: Path) -> tuple[Path, int]:
    m = _ROTATED.match(p.name)
    if m and m.group(1):
        return p.with_name(m.group(1)), int(m.group(2))
    return p, 0


def _rotated_siblings(p: Path) -> set[int]:
    out = set()
    for q in glob.glob(glob.escape(str(p)) + ".*"):
        base, n = _split_rotated(Path(q))
        if n and base == p and os.path.isfile(q):
            out.add(n)
    return out


def read_events(
    paths: Iterable[str | os.PathLike[str]], *, on_warning: Callable[[str], None] | None = None
) -> Iterator[dict[str, Any]]:
    """The events (as `to_json()` dicts) in the logs `paths` name (see `log_files`), in order.

    Each log is read oldest file first; several logs (worker files) are merged by timestamp.
    A damaged or truncated record (a crash mid-write) ends that file with a warning passed to
    `on_warning` (default: the `pdp.decision_log` logger). The files are resolved now (raising
    FileNotFoundError); they are read as the iterator is consumed."""
    groups = log_files(paths)
    warn = on_warning or (lambda message: logger.warning("%s", message))
    streams = [itertools.chain.from_iterable(_read_file(p, warn) for p in group) for group in groups]
    if len(streams) == 1:
        return streams[0]
    return heapq.merge(*streams, key=_timestamp_key)


def _timestamp_key(event: dict[str, Any]) -> str:
    ts = event.get("timestamp")
    return ts if isinstance(ts, str) else ""


def _read_file(path: Path, warn: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    with open(path, "rb") as f:
        first = f.read(1)
        if not first:
            return
        f.seek(0)
        if first == b"{":
            yield from _read_jsonl(f, path, warn)
        else:
            yield from _read_msgpack(f, path, warn)


def _read_jsonl(f: Any, path: Path, warn: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    offset = 0
    for lineno, line in enumerate(f, 1):
        start, offset = offset, offset + len(line)
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            if not line.endswith(b"\n"):
                warn(
                    f"{path}: truncated record at byte {start} (line {lineno}), ignored: the writer stopped mid-record"
                )
                return
            warn(f"{path}: line {lineno} is not a JSON record, skipped")
            continue
        if isinstance(event, dict):
            yield event
        else:
            warn(f"{path}: line {lineno} is not a JSON object, skipped")


def _read_msgpack(f: Any, path: Path, warn: Callable[[str], None]) -> Iterator[dict[str, Any]]:
    unpacker = msgpack.Unpacker(f, raw=False, strict_map_key=False)
    size = os.fstat(f.fileno()).st_size
    while True:
        start = unpacker.tell()
        try:
            event = unpacker.unpack()
        except msgpack.OutOfData:  # (tell() is not meaningful after this; `start` is)
            if start < size:
                warn(f"{path}: truncated record at byte {start}, ignored: the writer stopped mid-record")
            return
        except Exception as exc:
            warn(f"{path}: damaged record at byte {start} ({type(exc).__name__}); the rest of the file is skipped")
            return
        if isinstance(event, dict):
            yield event
        else:
            warn(f"{path}: the record at byte {start} is not a map, skipped")


# ---- filtering and formatting -----------------------------------------------------------


def parse_time(text: str, *, now: float | None = None) -> datetime:
    """An RFC 3339 time (`2026-11-27T10:00:00Z`; no offset means UTC), a date (`2026-11-27`, midnight
    UTC), or a duration before now (`15m`, `1h30m`, `2d`). Raises ValueError."""
    from policy_lang.values import parse_duration

    text = text.strip()
    try:
        ago = parse_duration(text)
    except ValueError:
        pass
    else:
        return datetime.fromtimestamp(time.time() if now is None else now, UTC) - timedelta(seconds=ago)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"`{text}` is not a time such as 2026-11-27T10:00:00Z, 2026-11-27 or 15m") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def _event_time(event: Mapping[str, Any]) -> datetime | None:
    ts = event.get("timestamp")
    if not isinstance(ts, str):
        return None
    try:
        value = datetime.fromisoformat(ts)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _entity(request: Any, side: str) -> tuple[str, str]:
    entity = request.get(side) if isinstance(request, dict) else None
    if not isinstance(entity, dict):
        return "?", "?"
    etype, eid = entity.get("type"), entity.get("id")
    return (etype if isinstance(etype, str) else "?"), (eid if isinstance(eid, str) else "?")


def matches(
    event: Mapping[str, Any],
    *,
    decision: str | None = None,
    principal: str | None = None,
    rule: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> bool:
    """Does `event` (a `to_json()` dict) pass every filter given?

    `decision`: "allow" or "deny". `principal`: the request principal's id (or `Type:id`,
    `Type::id`). `rule`: a rule id among the reasons or the errors' rules. `since` (inclusive) and
    `until` (exclusive): aware datetimes."""
    if decision is not None and (event.get("allowed") is True) != (decision == "allow"):
        return False
    if principal is not None:
        ptype, pid = _entity(event.get("request"), "principal")
        if principal not in (pid, f"{ptype}:{pid}", f"{ptype}::{pid}"):
            return False
    if rule is not None:
        reasons = event.get("reasons")
        errors = event.get("errors")
        found = isinstance(reasons, list) and rule in reasons
        if not found and isinstance(errors, list):
            found = any(isinstance(e, dict) and e.get("rule") == rule for e in errors)
        if not found:
            return False
    if since is not None or until is not None:
        when = _event_time(event)
        if when is None:
            return False
        if since is not None and when < since:
            return False
        if until is not None and when >= until:
            return False
    return True


def _clean(value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    return text if text.isprintable() else repr(text)[1:-1]


def format_event(event: Mapping[str, Any]) -> str:
    """One line: time, decision, principal, action, resource, reasons, latency, cached (and errors,
    source, worker when present). Control characters from the request are escaped."""
    request = event.get("request")
    ptype, pid = _entity(request, "principal")
    rtype, rid = _entity(request, "resource")
    action = request.get("action") if isinstance(request, dict) else None
    reasons = event.get("reasons")
    reasons_text = ",".join(_clean(r) for r in reasons) if isinstance(reasons, list) else ""
    latency = event.get("latency_us")
    parts = [
        _clean(event.get("timestamp", "?")),
        "allow" if event.get("allowed") is True else "deny ",
        f"{_clean(ptype)}:{_clean(pid)}",
        _clean(action) if isinstance(action, str) else "?",
        f"{_clean(rtype)}:{_clean(rid)}",
        f"[{reasons_text}]",
        f"{latency:.1f}us" if isinstance(latency, (int, float)) else "?us",
    ]
    if event.get("cached") is True:
        parts.append("cached")
    errors = event.get("errors")
    if isinstance(errors, list) and errors:
        first = errors[0]
        message = first.get("message", "") if isinstance(first, dict) else first
        more = f" (+{len(errors) - 1})" if len(errors) > 1 else ""
        parts.append(f"error: {_clean(message)}{more}")
    if event.get("unauthenticated") is True:
        parts.append("unauthenticated")
    source = event.get("source")
    if isinstance(source, str):
        parts.append(f"source={_clean(source)}")
    worker = event.get("worker")
    if isinstance(worker, int):
        parts.append(f"worker={worker}")
    return " ".join(parts)
