"""Shared pieces for the decision log tests: a schema with sensitive attributes at every level,
events, and file objects that let a test hold, slow down or fail the writer's writes."""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pdp import Engine
from pdp.decision import Decision, DecisionError
from pdp.decision_log import DecisionEvent, Masker, event_for

SOURCE = """
enum Level { low < high }
principal entity User {
  tenant: string;
  email: string sensitive;
  profile: { name: string; ssn: string sensitive; address: { city: string; zip: string sensitive; }; };
  keys: map<string, { kid: string; secret: string sensitive; }>;
  level: Level sensitive;
  nick?: string;
}
principal entity Service { token: string sensitive; name: string; }
entity Doc { owner: string; salary?: int sensitive; tags: set<string>; }
context { ip: ip; session: string sensitive; device: { serial: string; fingerprint: string sensitive; }; }
actions Doc { read }
permit owners action read resource Doc when resource.owner == principal.id
  obligations { header "x-owner" = resource.owner; };
"""


def _user_request(pid: str = "u1") -> dict[str, Any]:
    return {
        "principal": {
            "type": "User",
            "id": pid,
            "attributes": {
                "tenant": "t",
                "email": "a@b.example",
                "profile": {"name": "Ann", "ssn": "123-45-6789", "address": {"city": "Oslo", "zip": "0150"}},
                "keys": {"k1": {"kid": "i1", "secret": "s1"}, "k2": {"kid": "i2", "secret": "s2"}},
                "level": "high",
            },
        },
        "action": "read",
        "resource": {"type": "Doc", "id": "d1", "attributes": {"owner": pid, "salary": 5, "tags": ["a", "b"]}},
        "context": {"ip": "10.0.0.1", "session": "sess-1", "device": {"serial": "dev-1", "fingerprint": "fp-1"}},
    }


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.from_source(SOURCE)


@pytest.fixture(scope="session")
def masker(engine: Engine) -> Masker:
    return Masker(engine.schema)


def _make_event(i: int, *, allowed: bool | None = None, pid: str = "bob", **over: Any) -> DecisionEvent:
    """A small event numbered `i` (its decision_id is `e<i>`, its timestamp i microseconds after 2026-11-27)."""
    allowed = (i % 2 == 0) if allowed is None else allowed
    decision = Decision(
        allowed,
        reasons=("acme.owner_full_access",) if allowed else ("acme.forbid_suspended",),
        errors=(DecisionError("boom", rule="acme.broken"),) if i % 7 == 3 else (),
        revision="rev1",
    )
    request = {
        "principal": {"type": "User", "id": pid},
        "action": "read",
        "resource": {"type": "Document", "id": f"doc-{i}"},
        "context": {"ip": "10.1.2.3", "note": "x" * (i % 50)},
    }
    fields: dict[str, Any] = {
        "decision_id": f"e{i}",
        "latency_us": 12.5,
        "cached": i % 3 == 0,
        "masker": Masker(None),
        "source": "authorize",
        "timestamp": 1795737600.0 + i / 1_000_000,
    }
    fields.update(over)
    return event_for(request, decision, **fields)


class ControlledFile:
    """A real append-mode file whose writes can be held (`gate`), slowed (`delay`) or made to fail
    (`fail` the next n writes; `partial` writes half the data before failing, like a full disk)."""

    def __init__(self, path: str, control: Control):
        self.f = open(path, "ab", buffering=0)
        self.control = control

    def write(self, data: bytes) -> int | None:
        c = self.control
        c.entered.set()
        c.gate.wait()
        if c.delay:
            time.sleep(c.delay)
        with c.lock:
            c.writes += 1
            failing = c.fail > 0
            if failing:
                c.fail -= 1
        if failing:
            if c.partial:
                self.f.write(data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return self.f.write(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.f.close()

    def fileno(self) -> int:
        return self.f.fileno()

    def truncate(self, size: int) -> int:
        return self.f.truncate(size)


class Control:
    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.delay = 0.0
        self.fail = 0
        self.partial = False
        self.writes = 0
        self.lock = threading.Lock()

    def opener(self, path: str) -> ControlledFile:
        return ControlledFile(path, self)

    def hold(self) -> None:
        self.entered.clear()
        self.gate.clear()


@pytest.fixture
def control() -> Control:
    return Control()


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.002)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "decisions.jsonl"


# The helpers, as fixtures (test modules do not import conftest).
@pytest.fixture
def user_request() -> Callable[..., dict[str, Any]]:
    return _user_request


@pytest.fixture
def make_event() -> Callable[..., DecisionEvent]:
    return _make_event


@pytest.fixture
def wait_until() -> Callable[..., None]:
    return _wait_until
