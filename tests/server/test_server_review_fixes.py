"""Security review fixes, through a real `pdp serve` with its HTTP endpoint on.

- token-only claim attributes: a caller cannot add `roles` or `suspended: false` the token lacks;
- SIGHUP reloads the token keys (key rotation), a broken key file keeps the server answering;
- X-Forwarded-Host is believed only from a trusted proxy;
- an AuthZEN batch too costly for one request is refused quickly.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.gateway.http_fixtures import Pdp, Reply, post_json, request

ISSUER, AUDIENCE = "https://idp", "pdp"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
NEW_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EVAL, EVALS = "/access/v1/evaluation", "/access/v1/evaluations"

SCHEMA = """principal entity User {
  roles: set<string>;
  suspended: bool;
  email: string sensitive;
  auth_time: datetime;
}
entity Page {}
actions Page { view, admin }
"""
ROUTES = """route GET "/host" => view Page {
  resource.id = header("host", "none");
}
route default => view Page {
  resource.id = "public";
}
"""
RULES = """permit admins
  principal User
  action admin
  resource Page
  when "admin" in principal.roles;

permit internal_host
  principal User
  action view
  resource Page
  when resource.id == "internal.example";

forbid suspended
  when principal.suspended;
"""


def pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def token(key: rsa.RSAPrivateKey = KEY, drop: tuple[str, ...] = (), **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "bob", "iat": now, "exp": now + 600,
        "roles": [], "suspended": False, "email": "bob@x", "auth_time": now - 60,
    }  # fmt: skip
    claims.update(changes)
    for name in drop:
        claims.pop(name, None)
    return jwt.encode(claims, key, algorithm="RS256")


def auth(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def admin_request(properties: dict[str, Any] | None = None) -> dict[str, Any]:
    subject: dict[str, Any] = {"type": "User", "id": "bob"}
    if properties is not None:
        subject["properties"] = properties
    return {"subject": subject, "action": {"name": "admin"}, "resource": {"type": "Page", "id": "x"}}


def start(folder: Path, *args: str) -> tuple[Pdp, Path, Path]:
    policies = folder / "policies"
    (policies / "app").mkdir(parents=True)
    (policies / "app" / "schema.pdp").write_text(SCHEMA)
    (policies / "app" / "routes.pdp").write_text(ROUTES)
    (policies / "app" / "rules.pdp").write_text(RULES)
    keys = folder / "keys"
    keys.mkdir()
    (keys / "k.pem").write_bytes(pem(KEY))
    server = Pdp(
        folder, "--jwt-keys", str(keys / "k.pem"), "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE,
        *args, jwt_keys=False, policy_dir=policies,
    )  # fmt: skip
    return server, policies, keys / "k.pem"


@pytest.fixture(scope="module")
def pdp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pdp]:
    server, _, _ = start(tmp_path_factory.mktemp("review"), "--trusted-proxies", "127.0.0.1/32")
    yield server
    assert server.stop() == 0, server.server.output()


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


# ---- 1. token-only claim attributes ----------------------------------------------------------


def test_caller_cannot_add_roles_the_token_lacks(pdp: Pdp) -> None:
    ok = post_json(pdp.http_port, EVAL, admin_request(), auth(token(roles=["admin"])))
    assert ok.status == 200 and ok.json()["decision"] is True, ok
    reply = post_json(pdp.http_port, EVAL, admin_request({"roles": ["admin"]}), auth(token(drop=("roles",))))
    assert reply.status == 200 and reply.json()["decision"] is False, reply
    # and when the token has roles, the caller's are not added to them
    reply = post_json(pdp.http_port, EVAL, admin_request({"roles": ["admin"]}), auth(token(roles=["viewer"])))
    assert reply.status == 200 and reply.json()["decision"] is False, reply


def test_caller_cannot_supply_suspended_false_the_token_lacks(pdp: Pdp) -> None:
    tok = token(drop=("suspended",), roles=["admin"])
    reply = post_json(pdp.http_port, EVAL, admin_request({"suspended": False}), auth(tok))
    assert reply.status == 200, reply
    assert reply.json()["decision"] is False, reply  # the required attribute is missing: fail closed
    assert "suspended" in json.dumps(reply.json()["context"]), reply


# ---- 4. X-Forwarded-Host ---------------------------------------------------------------------


def test_forwarded_host_only_from_a_trusted_proxy(pdp: Pdp) -> None:
    sent = {"X-Original-URI": "/host", "X-Original-Method": "GET", "X-Forwarded-Host": "internal.example"}
    sent.update(auth(token()))
    assert request(pdp.http_port, "GET", "/", sent).status == 200  # 127.0.0.1 is trusted
    untrusted = request(pdp.http_port, "GET", "/", sent, source="127.0.0.2")
    assert untrusted.status == 403, untrusted


# ---- 5. AuthZEN cost -------------------------------------------------------------------------


def test_oversized_authzen_batch_is_refused_quickly(pdp: Pdp) -> None:
    shared = {f"k{i}": "v" * 100 for i in range(1500)}  # ~170 KB, under the value limits
    body = {
        "subject": {"type": "User", "id": "bob"},
        "action": {"name": "view"},
        "resource": {"type": "Page", "id": "public", "properties": shared},
        "evaluations": [{"context": {"n": i}} for i in range(100)],
    }
    started = time.monotonic()
    reply = post_json(pdp.http_port, EVALS, body, auth(token()))
    assert reply.status == 400 and "too much work" in reply.json()["error"], reply
    assert time.monotonic() - started < 2
    body["evaluations"] = body["evaluations"][:2]  # the same shared part, few evaluations: fine
    assert post_json(pdp.http_port, EVALS, body, auth(token())).status == 200


def test_too_many_values_is_400(pdp: Pdp) -> None:
    body = admin_request({f"k{i}": i for i in range(20_000)})
    reply = post_json(pdp.http_port, EVAL, body, auth(token()))
    assert reply.status == 400 and "too many values" in reply.json()["error"], reply


# ---- 2/3. key rotation and a broken key file -------------------------------------------------


def test_sighup_rotates_keys_and_a_broken_key_file_fails_closed(tmp_path: Path) -> None:
    server, policies, key_file = start(tmp_path)
    try:
        port = server.http_port
        old = token(roles=["admin"])

        def evaluate(tok: str) -> Reply:
            return post_json(port, EVAL, admin_request(), auth(tok))

        assert evaluate(old).status == 200
        # rotation: the old key leaves the file; SIGHUP (no policy change) picks it up
        key_file.write_bytes(pem(NEW_KEY))
        server.server.signal(signal.SIGHUP)
        eventually(lambda: evaluate(old).status == 401)
        assert evaluate(token(NEW_KEY, roles=["admin"])).json()["decision"] is True

        # a broken key file and a policy change: the new revision serves, tokens are refused
        key_file.write_text("garbage")
        (policies / "app" / "rules.pdp").write_text(RULES + "\n// changed\n")
        server.server.signal(signal.SIGHUP)
        new = token(NEW_KEY, roles=["admin"])
        eventually(lambda: "bearer tokens are refused" in server.server.output())
        for _ in range(3):
            reply = evaluate(new)
            assert reply.status == 401 and reply.json()["error"] == "token keys unavailable", reply
        check = {"X-Original-URI": "/x", "X-Original-Method": "GET", **auth(new)}
        assert request(port, "GET", "/", check).status == 401
        assert request(port, "GET", "/healthz").status == 200

        # the key file is fixed: SIGHUP again and tokens verify
        key_file.write_bytes(pem(NEW_KEY))
        server.server.signal(signal.SIGHUP)
        eventually(lambda: evaluate(new).status == 200)
        assert evaluate(new).json()["decision"] is True
    finally:
        assert server.stop() == 0, server.server.output()
    output = server.server.output()
    assert "Traceback" not in output and "internal error" not in output, output
