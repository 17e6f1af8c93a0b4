"""A real `pdp serve` in a subprocess on a loopback port, and real gRPC clients."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import msgpack
import pytest

from pdp.v1 import authorization_pb2 as pb
from pdp.v1 import authorization_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"pdp: worker (\d+) serving (.*) on ([\d.]+):(\d+)")


class Server:
    def __init__(self, args: list[str], cwd: Path, workers: int = 1):
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pdp.cli", "serve", *args],
            cwd=cwd,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self.ready: dict[int, tuple[str, int]] = {}
        self._ready_event = threading.Event()
        self._workers = workers
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready_event.wait(timeout=60):
            self.stop()
            raise RuntimeError("server did not start:\n" + "".join(self.lines))
        self.port = next(iter(self.ready.values()))[1]
        self.target = f"127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            m = READY.search(line)
            if m:
                self.ready[int(m.group(1))] = (m.group(2), int(m.group(4)))
                if len(self.ready) >= self._workers:
                    self._ready_event.set()
        self._ready_event.set()

    def output(self) -> str:
        return "".join(self.lines)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self._reader.join(timeout=5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        return code

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.target)

    def stub(self) -> pb_grpc.AuthorizationServiceStub:
        return pb_grpc.AuthorizationServiceStub(self.channel())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A private copy of the example policies, free to edit for reload tests."""
    target = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", target, ignore=shutil.ignore_patterns("*_test.toml"))
    return target


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Any]:
    started: list[Server] = []

    def start(*args: str, workers: int = 1) -> Server:
        server = Server(list(args), ROOT, workers=workers)
        started.append(server)
        return server

    yield start
    for server in started:
        code = server.stop()
        assert code == 0, server.output()


@pytest.fixture(scope="module")
def shared_server() -> Iterator[Server]:
    server = Server([str(ROOT / "policies"), "--port", "0", "--reload-interval", "0"], ROOT)
    yield server
    assert server.stop() == 0, server.output()


def now_iso(offset: float = 0.0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + offset))


def user(uid: str = "bob", **attributes: Any) -> dict[str, Any]:
    attrs = {
        "tenant": "acme",
        "roles": {"acme": ["viewer"]},
        "clearance": "confidential",
        "external": False,
        "suspended": False,
        "email": f"{uid}@acme.example",
        "auth_time": now_iso(-60),
    }
    attrs.update(attributes)
    return {"type": "User", "id": uid, "attributes": attrs}


CONTEXT = {"ip": "10.1.2.3", "mfa": True, "device_trusted": True}


def entity(value: dict[str, Any]) -> pb.Entity:
    e = pb.Entity(type=value["type"], id=value["id"])
    if "attributes" in value:
        e.attributes = msgpack.packb(value["attributes"])
    return e


def authorize_request(
    principal: dict[str, Any] | None = None,
    action: str = "read",
    resource: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    token: str = "",
) -> pb.AuthorizeRequest:
    msg = pb.AuthorizeRequest(
        action=action,
        resource=entity(resource or {"type": "Document", "id": "doc-plan"}),
        context=msgpack.packb(CONTEXT if context is None else context),
        bearer_token=token,
    )
    if principal is not None or not token:
        msg.principal.CopyFrom(entity(principal or user()))
    return msg


def as_json(message: Any) -> str:
    return json.dumps(str(message))
