"""Real `pdp serve` subprocesses on loopback ports for the client and interceptor tests."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest

from pdp.v1 import authorization_pb2 as pb
from pdp.v1 import authorization_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"pdp: worker 0 serving revision (\S+) on ([\d.]+):(\d+)")


class PdpServer:
    """`python -m pdp.cli serve policies --port 0 ...`; stderr goes to a file (no pipe to fill)."""

    def __init__(self, log_path: Path, *extra: str):
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pdp.cli", "serve", "policies", "--port", "0", "--reload-interval", "0", *extra],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=dict(os.environ, PYTHONUNBUFFERED="1"),
            )
        deadline = time.monotonic() + 30
        while True:
            match = READY.search(self.output())
            if match:
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"pdp serve did not start:\n{self.output()}")
            time.sleep(0.02)
        self.revision = match.group(1)
        self.port = int(match.group(3))
        self.target = f"{match.group(2)}:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise


def _serve(tmp_path_factory: pytest.TempPathFactory, name: str, *extra: str) -> Iterator[PdpServer]:
    server = PdpServer(tmp_path_factory.mktemp(name) / "stderr.log", "--grace-seconds", "2", *extra)
    yield server
    code = server.stop()
    assert code == 0, f"pdp serve exited with {code}:\n{server.output()}"
    assert "stopped" in server.output()


@pytest.fixture(scope="session")
def pdp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PdpServer]:
    yield from _serve(tmp_path_factory, "pdp")


@pytest.fixture(scope="session")
def small_batch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PdpServer]:
    yield from _serve(tmp_path_factory, "pdp-batch3", "--max-batch", "3")


@pytest.fixture
def dead_target() -> str:
    """A loopback address where nothing listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


def _rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(scope="session")
def acme() -> Callable[..., dict[str, Any]]:
    """An example request of policies/requests, without `now` (not sent over gRPC: the server
    decides by its clock) and with `auth_time` set `auth_age` before the current time."""

    def load(name: str, *, auth_age: dt.timedelta = dt.timedelta(minutes=1)) -> dict[str, Any]:
        request: dict[str, Any] = json.loads((ROOT / "policies" / "requests" / f"{name}.json").read_text())
        request.pop("now", None)
        request["principal"]["attributes"]["auth_time"] = _rfc3339(dt.datetime.now(dt.UTC) - auth_age)
        return request

    return load


class CountingInterceptor(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Counts the attempts a client makes (each retry goes through the channel again)."""

    def __init__(self) -> None:
        self.methods: list[str] = []

    def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        self.methods.append(client_call_details.method)
        return continuation(client_call_details, request)


class AsyncCountingInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.methods: list[str] = []

    async def intercept_unary_unary(self, continuation: Any, client_call_details: Any, request: Any) -> Any:
        method = client_call_details.method
        self.methods.append(method.decode() if isinstance(method, bytes) else method)
        return await continuation(client_call_details, request)


@pytest.fixture
def attempts() -> CountingInterceptor:
    return CountingInterceptor()


@pytest.fixture
def async_attempts() -> AsyncCountingInterceptor:
    return AsyncCountingInterceptor()


class FakePdp(pb_grpc.AuthorizationServiceServicer):  # type: ignore[misc]
    """An in-process stand-in whose Authorize follows a script, one step per call:
    "ok" (allow, cacheable for 60 s), "unavailable", "invalid", "internal" or "slow" (2 s)."""

    def __init__(self) -> None:
        self.script: list[str] = []
        self.calls = 0
        self.metadata: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self.release = threading.Event()  # ends "slow" steps early at teardown
        self.server = grpc.server(ThreadPoolExecutor(max_workers=4))
        pb_grpc.add_AuthorizationServiceServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.target = f"127.0.0.1:{self.port}"
        self.server.start()

    def Authorize(self, request: pb.AuthorizeRequest, context: grpc.ServicerContext) -> pb.AuthorizeResponse:
        with self._lock:
            self.calls += 1
            self.metadata.append({m.key: m.value for m in context.invocation_metadata()})
            step = self.script.pop(0) if self.script else "ok"
        if step == "unavailable":
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
        if step == "invalid":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "action: is required")
        if step == "internal":
            context.abort(grpc.StatusCode.INTERNAL, "boom")
        if step == "slow":
            self.release.wait(2)
        return pb.AuthorizeResponse(
            allowed=True, reasons=["fake"], decision_id=f"fake-{self.calls}", cache_ttl_ms=60_000
        )


@pytest.fixture
def fake_pdp() -> Iterator[FakePdp]:
    fake = FakePdp()
    yield fake
    fake.release.set()
    fake.server.stop(None).wait()
