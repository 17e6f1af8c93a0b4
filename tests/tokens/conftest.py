"""Fixtures for the tests of pdp.tokens: keys made once per session, a Kit per test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from tokenkit import POLICIES, Kit

from pdp import Engine
from policy_lang.schema import Schema


@pytest.fixture(scope="session")
def _keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey]:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec.generate_private_key(ec.SECP256R1()),
        ed25519.Ed25519PrivateKey.generate(),
    )


@pytest.fixture(scope="session")
def schema() -> Schema:
    return Engine.load(POLICIES).schema


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.load(POLICIES)


@pytest.fixture
def kit(_keys: tuple[Any, ...], tmp_path: Path, schema: Schema) -> Kit:
    rsa_key, rsa2_key, ec_key, ed_key = _keys
    return Kit(rsa=rsa_key, rsa2=rsa2_key, ec=ec_key, ed=ed_key, folder=tmp_path, schema=schema)
