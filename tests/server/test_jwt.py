"""Bearer tokens through a real server: the good one decides, every bad one is unauthenticated."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.server.conftest import ROOT, Server, authorize_request

ISSUER, AUDIENCE = "https://idp.acme.example", "pdp"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    out = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "bob", "iat": now, "exp": now + 600,
        "tenant": "acme", "roles": {"acme": ["viewer"]}, "clearance": "confidential",
        "external": False, "suspended": False, "email": "bob@acme.example", "auth_time": now - 60,
    }  # fmt: skip
    out.update(changes)
    return out


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned() -> str:
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{b64(json.dumps(claims()).encode())}."


@pytest.fixture(scope="module")
def jwt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("keys")
    (folder / "issuer.pem").write_bytes(PUBLIC_PEM)
    server = Server(
        [
            str(ROOT / "policies"), "--port", "0", "--jwt-keys", str(folder / "issuer.pem"),
            "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE,
        ],
        ROOT,
    )  # fmt: skip
    yield server
    assert server.stop() == 0, server.output()


def test_a_valid_token_is_the_principal(jwt_server: Server) -> None:
    token = jwt.encode(claims(), KEY, algorithm="RS256")
    r = jwt_server.stub().Authorize(authorize_request(token=token))
    assert r.allowed and not r.unauthenticated
    assert list(r.reasons) == ["acme.non_owner_read_masked", "role:viewer"]
    assert 0 < r.cache_ttl_ms <= 600_000


def test_token_attributes_drive_the_decision(jwt_server: Server) -> None:
    stale = jwt.encode(claims(roles={"acme": ["editor"]}, auth_time=int(time.time()) - 3600), KEY, algorithm="RS256")
    r = jwt_server.stub().Authorize(authorize_request(action="write", token=stale))
    assert not r.allowed and list(r.reasons) == ["acme.stale_token_write"] and not r.unauthenticated


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: "", "missing token"),
        (lambda: jwt.encode(claims(exp=int(time.time()) - 120), KEY, algorithm="RS256"), "token expired"),
        (lambda: jwt.encode(claims(nbf=int(time.time()) + 600), KEY, algorithm="RS256"), "token not yet valid"),
        (lambda: jwt.encode(claims(aud="someone-else"), KEY, algorithm="RS256"), "wrong audience"),
        (lambda: jwt.encode(claims(iss="https://evil.example"), KEY, algorithm="RS256"), "wrong issuer"),
        (lambda: jwt.encode(claims(), OTHER, algorithm="RS256"), "bad signature"),
        (unsigned, "token uses alg none"),
        (lambda: jwt.encode(claims(), b"x" * 64, algorithm="HS256"), "unsupported algorithm `HS256`"),
        (lambda: "not.a.token", "malformed token"),
    ],
    ids=[
        "missing",
        "expired",
        "not-yet-valid",
        "wrong-aud",
        "wrong-iss",
        "bad-signature",
        "alg-none",
        "hs256",
        "garbage",
    ],
)
def test_bad_tokens_are_unauthenticated_denials(jwt_server: Server, token: Any, reason: str) -> None:
    value = token()
    msg = authorize_request(token=value) if value else authorize_request()
    r = jwt_server.stub().Authorize(msg)
    assert not r.allowed and r.unauthenticated
    assert [(e.field, e.message) for e in r.errors] == [("bearer_token", reason)]


def test_hs256_signed_with_the_rsa_public_key_is_refused(jwt_server: Server) -> None:
    """The classic algorithm confusion: the public key's PEM used as an HMAC secret."""
    import hashlib
    import hmac

    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64(json.dumps(claims()).encode())
    signature = hmac.new(PUBLIC_PEM, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    r = jwt_server.stub().Authorize(authorize_request(token=f"{header}.{payload}.{b64(signature)}"))
    assert not r.allowed and r.unauthenticated
    assert r.errors[0].message == "unsupported algorithm `HS256`"


def test_a_server_without_issuer_refuses_to_start(tmp_path: Path) -> None:
    import subprocess
    import sys

    (tmp_path / "k.pem").write_bytes(PUBLIC_PEM)
    done = subprocess.run(
        [sys.executable, "-m", "pdp.cli", "serve", "policies", "--port", "0", "--jwt-keys", str(tmp_path / "k.pem")],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "issuer" in done.stderr


def test_a_principal_that_is_not_the_tokens_is_refused(jwt_server: Server) -> None:
    token = jwt.encode(claims(), KEY, algorithm="RS256")  # bob's token
    msg = authorize_request(token=token)
    msg.principal.id = "mallory"
    msg.principal.type = "User"
    r = jwt_server.stub().Authorize(msg)
    assert not r.allowed and r.unauthenticated
    assert r.errors[0].field == "bearer_token" and "does not match the token" in r.errors[0].message
