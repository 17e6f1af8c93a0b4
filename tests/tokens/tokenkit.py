"""Helpers for the tests of pdp.tokens: key files and token minting (the fixtures are in conftest.py)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from pdp.tokens import TokenConfig, TokenVerifier
from policy_lang.schema import Schema

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ISSUER = "https://idp.acme.example"
AUDIENCE = "pdp"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pem_public(private: Any) -> bytes:
    return bytes(
        private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def jwk_public(private: Any, kid: str | None = None, alg: str | None = None) -> dict[str, Any]:
    public = private.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    if kid is not None:
        jwk["kid"] = kid
    else:
        jwk.pop("kid", None)
    if alg is not None:
        jwk["alg"] = alg
    return dict(jwk)


@dataclass
class Kit:
    """Keys (made once per session), a temporary folder for key files, and helpers."""

    rsa: RSAPrivateKey
    rsa2: RSAPrivateKey
    ec: EllipticCurvePrivateKey
    ed: Ed25519PrivateKey
    folder: Path
    schema: Schema
    now: float = field(default_factory=time.time)

    def write(self, name: str, data: bytes | str | dict[str, Any]) -> Path:
        path = self.folder / name
        if isinstance(data, dict):
            data = json.dumps(data)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def jwks(self, name: str, *entries: dict[str, Any]) -> Path:
        return self.write(name, {"keys": list(entries)})

    def claims(self, drop: tuple[str, ...] = (), **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        out: dict[str, Any] = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "alice",
            "iat": now,
            "exp": now + 600,
            "tenant": "acme",
            "roles": {"acme": ["editor"]},
            "clearance": "confidential",
            "external": False,
            "suspended": False,
            "email": "alice@acme.example",
            "auth_time": now - 60,
        }
        out.update(changes)
        for name in drop:
            del out[name]
        return out

    def token(
        self, key: Any = None, alg: str = "RS256", kid: str | None = None, drop: tuple[str, ...] = (), **changes: Any
    ) -> str:
        """A token signed with `key` (default: the first RSA key) over the default claims, changed."""
        headers = {"kid": kid} if kid is not None else None
        claims = self.claims(drop, **changes)
        return jwt.encode(claims, key if key is not None else self.rsa, algorithm=alg, headers=headers)

    def config(self, *key_files: Path, **settings: Any) -> TokenConfig:
        values: dict[str, Any] = {"algorithms": ["RS256"], "issuer": ISSUER, "audience": AUDIENCE}
        values.update(settings)
        return TokenConfig(key_files=list(key_files), **values)

    def verifier(self, *key_files: Path, clock: Callable[[], float] = time.time, **settings: Any) -> TokenVerifier:
        if not key_files:
            key_files = (self.write("rsa.pem", pem_public(self.rsa)),)
        return TokenVerifier(self.config(*key_files, **settings), self.schema, clock=clock)
