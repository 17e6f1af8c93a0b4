"""The policies being served, and their reloads.

Policies and entity data are compiled together, off the request path (in the watcher
thread, or the thread a SIGHUP wakes), and swapped in with one assignment: a request sees
either the old snapshot or the new one, never a mix. A policy set that fails to compile is
reported and the last good one keeps serving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pdp.engine import Engine
from pdp.loader import is_data_file, is_policy_file, read_directory
from policy_lang.errors import PolicyError

log = logging.getLogger("pdp.reload")


@dataclass(frozen=True, slots=True)
class Snapshot:
    engine: Engine
    revision: str
    loaded_at: float


class PolicyStore:
    def __init__(self, directory: str | Path, on_swap: Callable[[Snapshot], None] | None = None):
        self.directory = Path(directory)
        self._current: Snapshot | None = None
        self._on_swap = on_swap
        self._lock = threading.Lock()  # one reload at a time
        self._fingerprint: tuple[tuple[str, int, int], ...] | None = None
        self.last_error: str = ""
        self.last_reload_at: float = 0.0
        self.reloads = 0
        self.reload_errors = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def current(self) -> Snapshot | None:
        return self._current

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Name, mtime and size of every file that makes the policy: cheap to poll."""
        entries = []
        if self.directory.is_file():
            paths = [self.directory]
        else:
            paths = sorted(
                p for p in self.directory.rglob("*") if p.is_file() and (is_policy_file(p) or is_data_file(p))
            )
        for path in paths:
            try:
                stat = path.stat()
            except OSError:
                continue
            entries.append((str(path), stat.st_mtime_ns, stat.st_size))
        return tuple(entries)

    def reload(self, *, force: bool = False) -> bool:
        """Compile and swap in the policies if they changed; True when a new revision serves."""
        with self._lock:
            fingerprint = self.fingerprint()
            if not force and fingerprint == self._fingerprint and self._current is not None:
                return False
            self._fingerprint = fingerprint
            self.last_reload_at = time.time()
            try:
                sources = read_directory(self.directory)
                if self._current is not None and sources.revision == self._current.revision:
                    self.last_error = ""
                    return False
                engine = Engine.from_sources(sources)
                engine.policy.warm()  # generate all code here, off the request path
            except Exception as exc:  # whatever failed (compile, warm), the last good policy keeps serving
                self.reload_errors += 1
                self.last_error = exc.render() if isinstance(exc, PolicyError) else str(exc)
                log.error("policy reload failed; still serving %s:\n%s", self.revision or "nothing", self.last_error)
                return False
            snapshot = Snapshot(engine, engine.revision, time.time())
            self._current = snapshot
            self.reloads += 1
            self.last_error = ""
            log.info("serving policy revision %s", snapshot.revision)
        if self._on_swap is not None:
            self._on_swap(snapshot)
        return True

    @property
    def revision(self) -> str:
        return self._current.revision if self._current else ""

    # ---- watching ----------------------------------------------------------------
    def start_watching(self, interval: float) -> None:
        self._thread = threading.Thread(target=self._watch, args=(interval,), name="pdp-reload", daemon=True)
        self._thread.start()

    def request_reload(self) -> None:
        """From a signal handler: wake the watcher, which reloads off the request path."""
        self._wake.set()

    def stop_watching(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _watch(self, interval: float) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(timeout=interval if interval > 0 else None)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.reload(force=woken)
            except Exception:  # the watcher must survive anything a reload throws
                log.exception("unexpected error while reloading policies")
