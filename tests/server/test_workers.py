"""Several processes on one port, metrics, and the settings file."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import grpc

from pdp.v1 import authorization_pb2_grpc as pb_grpc
from tests.server.conftest import Server, authorize_request, free_port


def test_two_workers_share_the_port(start_server: Any) -> None:
    port = free_port()
    server: Server = start_server("policies", "--port", str(port), "--workers", "2", workers=2)
    assert sorted(server.ready) == [0, 1]
    prefixes = set()
    for _ in range(40):  # SO_REUSEPORT spreads new connections over the workers
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])
        r = pb_grpc.AuthorizationServiceStub(channel).Authorize(authorize_request(), timeout=10)
        assert r.allowed
        prefixes.add(r.decision_id.split("-")[0])
        channel.close()
        if len(prefixes) == 2:
            break
    assert len(prefixes) == 2


def test_metrics_endpoint(start_server: Any) -> None:
    metrics_port = free_port()
    server: Server = start_server("policies", "--port", "0", "--metrics-port", str(metrics_port))
    stub = server.stub()
    msg = authorize_request()
    stub.Authorize(msg)
    stub.Authorize(msg)
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    assert 'pdp_decisions_total{result="allow"} 2.0' in text
    assert "pdp_cache_hits_total 1.0" in text and "pdp_cache_misses_total 1.0" in text
    assert "pdp_decision_latency_seconds_count 2.0" in text
    assert "pdp_policy_reloads 1.0" in text
    assert 'pdp_policy_revision_info{revision="' in text
    assert "pdp_decision_log_queue_depth" in text


def test_settings_from_a_config_file(start_server: Any, tmp_path: Path) -> None:
    config = tmp_path / "pdp.toml"
    config.write_text('[serve]\nmax_batch = 2\ncache_size = 0\npolicy_dir = "policies"\nport = 0\n')
    server: Server = start_server("--config", str(config))
    stub = server.stub()
    msg = authorize_request()
    assert not stub.Authorize(msg).cached and not stub.Authorize(msg).cached  # cache off
