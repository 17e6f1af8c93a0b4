"""Shared by the HTTP endpoint, nginx and benchmark modules: a token issuer, a real `pdp serve`
with its HTTP endpoint on, and small HTTP clients that always close what they open."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.server.conftest import ROOT, Server, free_port

ISSUER, AUDIENCE = "https://idp.acme.example", "pdp"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_PEM = KEY.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

PEOPLE: dict[str, dict[str, Any]] = {
    "bob": {"tenant": "acme", "roles": {"acme": ["viewer"]}, "clearance": "confidential"},
    "alice": {"tenant": "acme", "roles": {"acme": ["editor"]}, "clearance": "restricted"},
    "gina": {"tenant": "globex", "roles": {"globex": ["viewer"]}, "clearance": "confidential"},
}


def claims(sub: str = "bob", **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    out: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "exp": now + 600,
        "external": False, "suspended": False, "email": f"{sub}@acme.example", "auth_time": now - 60,
        **PEOPLE[sub],
    }  # fmt: skip
    out.update(changes)
    return out


def token(sub: str = "bob", **changes: Any) -> str:
    return jwt.encode(claims(sub, **changes), KEY, algorithm="RS256")


def bearer(sub: str = "bob", **changes: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, **changes)}"}


class Pdp:
    """`pdp serve` on the example policies with its HTTP endpoint on a free loopback port."""

    def __init__(self, folder: Path, *args: str, jwt_keys: bool = True, policy_dir: Path | None = None):
        self.http_port = free_port()
        policies = str(policy_dir or ROOT / "policies")
        argv = [policies, "--port", "0", "--reload-interval", "0", "--http-port", str(self.http_port)]
        if jwt_keys:
            (folder / "issuer.pem").write_bytes(PUBLIC_PEM)
            argv += ["--jwt-keys", str(folder / "issuer.pem"), "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE]
        self.server = Server([*argv, *args], ROOT)
        assert f"pdp: http endpoint on 127.0.0.1:{self.http_port}" in self.server.output(), self.server.output()

    def stop(self) -> int:
        return self.server.stop()


class Reply:
    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.header_list = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.status}, {self.headers}, {self.body[:200]!r})"


def request(
    port: int,
    method: str,
    target: str,
    headers: Mapping[str, str] | None = None,
    body: bytes | str | None = None,
    *,
    host: str = "127.0.0.1",
    source: str | None = None,
    timeout: float = 10.0,
) -> Reply:
    """One request on a fresh connection (from `source` when given), closed afterwards."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=(source, 0) if source else None)
    try:
        conn.request(method, target, body=body, headers=dict(headers or {}))
        response = conn.getresponse()
        data = response.read()
        return Reply(response.status, response.getheaders(), data)
    finally:
        conn.close()


def post_json(port: int, path: str, document: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return request(
        port, "POST", path, {"Content-Type": "application/json", **(headers or {})}, json.dumps(document).encode()
    )


def raw(port: int, data: bytes, *, timeout: float = 10.0, host: str = "127.0.0.1") -> bytes:
    """Send bytes as they are, read until the server closes (or the timeout)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
