"""TLS, and mTLS where a client without a certificate is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from pdp.v1 import authorization_pb2_grpc as pb_grpc
from tests.server.certs import make_pki
from tests.server.conftest import Server, authorize_request


def _stub(server: Server, credentials: grpc.ChannelCredentials) -> pb_grpc.AuthorizationServiceStub:
    return pb_grpc.AuthorizationServiceStub(grpc.secure_channel(server.target, credentials))


def test_tls(start_server: Any, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    server: Server = start_server(
        "policies", "--port", "0", "--tls-cert", str(pki["server_cert"]), "--tls-key", str(pki["server_key"])
    )
    creds = grpc.ssl_channel_credentials(root_certificates=pki["ca"].read_bytes())
    assert _stub(server, creds).Authorize(authorize_request(), timeout=10).allowed
    with pytest.raises(grpc.RpcError) as err:  # plaintext against a TLS port
        server.stub().Authorize(authorize_request(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mtls_requires_a_client_certificate(start_server: Any, tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    server: Server = start_server(
        "policies", "--port", "0",
        "--tls-cert", str(pki["server_cert"]), "--tls-key", str(pki["server_key"]), "--client-ca", str(pki["ca"]),
    )  # fmt: skip
    with_cert = grpc.ssl_channel_credentials(
        root_certificates=pki["ca"].read_bytes(),
        private_key=pki["client_key"].read_bytes(),
        certificate_chain=pki["client_cert"].read_bytes(),
    )
    assert _stub(server, with_cert).Authorize(authorize_request(), timeout=10).allowed
    without = grpc.ssl_channel_credentials(root_certificates=pki["ca"].read_bytes())
    with pytest.raises(grpc.RpcError) as err:
        _stub(server, without).Authorize(authorize_request(), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
