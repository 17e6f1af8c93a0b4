"""The decision log's file as the writer sees it: what it needs of the file an `opener` returns
(`LogFile`; by default the file opened for appending, unbuffered), a write that finishes or
raises (`_write_all`), and how much of an existing file is whole records (`_complete_prefix`),
so that the writer appends after a crash without leaving a torn record in the middle."""

from __future__ import annotations

import os
from typing import Literal, Protocol

import msgpack

Format = Literal["jsonl", "msgpack"]


class LogFile(Protocol):
    """What the writer needs of the file `opener` returns (the default: `open(path, "ab", buffering=0)`).

    `write` returns how many bytes it wrote (None: all of them). `truncate(size)` and `fileno()`
    are used when present (undoing a failed write; fsync and the size of an existing file)."""

    def write(self, data: bytes, /) -> int | None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def _open_append(path: str) -> LogFile:
    return open(path, "ab", buffering=0)


def _write_all(fh: LogFile, data: bytes) -> None:
    while data:
        n = fh.write(data)
        if n is None or n == len(data):
            return
        if n <= 0:
            raise OSError(f"short write ({n} bytes)")
        data = data[n:]  # rare: copy what is left


def _file_size(fh: LogFile, path: str) -> int:
    try:
        return os.fstat(getattr(fh, "fileno")()).st_size  # noqa: B009 - not in the LogFile protocol
    except (AttributeError, OSError, ValueError):
        try:
            return os.path.getsize(path)
        except OSError:
            return 0


def _complete_prefix(path: str, format: Format, size: int) -> int:
    """How many leading bytes of an existing log are whole records (-1: not this format)."""
    with open(path, "rb") as f:
        first = f.read(1)
        if (first == b"{") != (format == "jsonl"):
            return -1
        if format == "jsonl":
            f.seek(size - 1)
            if f.read(1) == b"\n":
                return size
            # back to the last newline
            pos = size
            while pos > 0:
                step = min(pos, 65536)
                pos -= step
                f.seek(pos)
                chunk = f.read(step)
                i = chunk.rfind(b"\n")
                if i >= 0:
                    return pos + i + 1
            return 0
        f.seek(0)
        unpacker = msgpack.Unpacker(f, raw=False, strict_map_key=False)
        start = 0
        try:
            while True:
                start = unpacker.tell()
                unpacker.skip()
        except msgpack.OutOfData:  # the end, or a record cut short: the whole ones end at `start`
            return int(start)
        except Exception:  # not msgpack, or damaged in the middle: not safe to cut
            return -1
