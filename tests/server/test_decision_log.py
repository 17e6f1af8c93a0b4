"""The decision log of a real server: every answer logged (cache hits too), masked, and
nothing lost when the server is stopped under load."""

from __future__ import annotations

import asyncio
import signal
import threading
from pathlib import Path
from typing import Any

import grpc

from pdp.decision_log import read_events
from pdp.v1 import authorization_pb2_grpc as pb_grpc
from tests.server.conftest import Server, authorize_request, free_port, user


def events(path: Path) -> list[dict[str, Any]]:
    return list(read_events([path]))


def test_events_carry_the_decision_and_mask_sensitive_attributes(start_server: Any, tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    server: Server = start_server("policies", "--port", "0", "--decision-log", str(log))
    stub = server.stub()
    msg = authorize_request(user("bob", email="bob@secret.example"))
    first, second = stub.Authorize(msg), stub.Authorize(msg)
    assert server.stop() == 0
    logged = events(log)
    assert [e["decision_id"] for e in logged] == [first.decision_id, second.decision_id]
    assert [e["cached"] for e in logged] == [False, True]  # cache hits are logged too
    event = logged[0]
    assert event["allowed"] is True and event["revision"] == first.revision
    assert event["reasons"] == ["acme.non_owner_read_masked", "role:viewer"]
    assert event["request"]["principal"]["attributes"]["email"] == "<masked>"
    assert "principal.attributes.email" in event["masked"]
    assert event["request"]["principal"]["attributes"]["tenant"] == "acme"
    assert "bob@secret.example" not in log.read_text()
    assert event["latency_us"] > 0 and event["source"] == "authorize"


def test_msgpack_format_and_pdp_logs(start_server: Any, tmp_path: Path) -> None:
    from pdp.cli import main

    log = tmp_path / "decisions.msgpack"
    server: Server = start_server(
        "policies", "--port", "0", "--decision-log", str(log), "--decision-log-format", "msgpack"
    )
    stub = server.stub()
    stub.Authorize(authorize_request())
    stub.Authorize(authorize_request(user(suspended=True)))
    assert server.stop() == 0
    logged = events(log)
    assert [(e["allowed"], e["reasons"]) for e in logged] == [
        (True, ["acme.non_owner_read_masked", "role:viewer"]),
        (False, ["acme.suspended_account"]),
    ]
    assert main(["logs", str(log), "--decision", "deny", "--json"]) == 0


def test_sigterm_under_load_loses_nothing(start_server: Any, tmp_path: Path) -> None:
    """Every answer a client received is in the log after a graceful stop."""
    log = tmp_path / "decisions.jsonl"
    server: Server = start_server("policies", "--port", "0", "--decision-log", str(log), "--cache-size", "0")
    answered: list[str] = []
    stop_sending = threading.Event()

    async def client() -> None:
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = pb_grpc.AuthorizationServiceStub(channel)
            request = authorize_request()

            async def worker() -> None:
                while not stop_sending.is_set():
                    try:
                        r = await stub.Authorize(request, timeout=5)
                    except grpc.aio.AioRpcError:
                        return  # the server has stopped accepting calls
                    answered.append(r.decision_id)

            await asyncio.gather(*(worker() for _ in range(16)))

    thread = threading.Thread(target=lambda: asyncio.run(client()))
    thread.start()
    try:
        while len(answered) < 300:
            threading.Event().wait(0.02)
        server.signal(signal.SIGTERM)
        code = server.proc.wait(timeout=60)
    finally:
        stop_sending.set()
        thread.join(timeout=60)
    assert code == 0
    logged = {e["decision_id"] for e in events(log)}
    assert len(answered) >= 300
    assert set(answered) <= logged  # answered => logged (a call cut off mid-flight may be logged, unanswered)


def test_every_workers_log_is_kept(start_server: Any, tmp_path: Path) -> None:
    from pdp.decision_log import worker_path

    log = tmp_path / "decisions.jsonl"
    port = free_port()
    server: Server = start_server(
        "policies", "--port", str(port), "--workers", "2", "--decision-log", str(log), "--cache-size", "0", workers=2
    )
    ids = []
    for _ in range(40):
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        ids.append(pb_grpc.AuthorizationServiceStub(channel).Authorize(authorize_request(), timeout=10).decision_id)
        channel.close()
    assert server.stop() == 0
    files = [Path(worker_path(str(log), i)) for i in range(2)]
    logged = [e["decision_id"] for f in files if f.exists() for e in events(f)]
    assert sorted(logged) == sorted(ids)


def test_headers_filled_from_sensitive_attributes_are_masked(
    start_server: Any, tmp_path: Path, policy_dir: Path
) -> None:
    (policy_dir / "acme" / "mail.pdp").write_text(
        "permit mail_header\n  action read\n  resource Document\n"
        '  when resource.owner == principal.id\n  obligations {\n    header "x-user-email" = principal.email;\n  };\n'
    )
    log = tmp_path / "decisions.jsonl"
    server: Server = start_server(str(policy_dir), "--port", "0", "--decision-log", str(log))
    r = server.stub().Authorize(authorize_request(user("alice", email="alice@secret.example")))
    assert ("x-user-email", "alice@secret.example") in [(o.name, o.value) for o in r.obligations]
    assert server.stop() == 0
    (event,) = events(log)
    assert {"type": "header", "name": "x-user-email", "value": "<masked>"} in event["obligations"]
    assert "alice@secret.example" not in log.read_text()
