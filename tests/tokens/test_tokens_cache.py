"""pdp.tokens: the cache of verified tokens, and reloading keys for rotation."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from tokenkit import Kit, jwk_public, pem_public

from pdp import tokens
from pdp.tokens import TokenConfigError, TokenError, TokenVerifier


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records every signature check (every call into jwt.decode)."""
    calls: list[str] = []
    real = jwt.decode

    def counting(token: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(token)
        return real(token, *args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting)  # the module pdp.tokens calls through
    return calls


def reason(verifier: TokenVerifier, token: str) -> str:
    with pytest.raises(TokenError) as info:
        verifier.verify(token)
    return info.value.reason


def test_repeated_token_skips_the_signature_check(kit: Kit, decodes: list[str]) -> None:
    verifier = kit.verifier()
    token = kit.token()
    first = verifier.verify(token)
    assert verifier.verify(token) is first
    assert verifier.verify(token) is first
    assert len(decodes) == 1
    other = kit.token(sub="bob")
    assert verifier.verify(other).id == "bob"
    assert len(decodes) == 2


def test_cache_hit_does_not_skip_the_exp_check(kit: Kit, decodes: list[str]) -> None:
    clock = Clock()
    verifier = kit.verifier(clock=clock, leeway_seconds=30, cache_ttl_seconds=3600)
    token = kit.token(exp=int(clock.now) + 60)
    verifier.verify(token)
    clock.now += 50
    verifier.verify(token)  # still valid: a cache hit
    assert len(decodes) == 1
    clock.now += 45  # 35 s past exp: beyond the leeway
    assert reason(verifier, token) == "token expired"
    assert reason(verifier, token) == "token expired"


def test_cache_entry_lives_no_longer_than_the_token(kit: Kit, decodes: list[str]) -> None:
    clock = Clock()
    verifier = kit.verifier(clock=clock, cache_ttl_seconds=3600)
    token = kit.token(exp=int(clock.now) + 60)
    verifier.verify(token)
    clock.now += 61  # past exp but within leeway: verified afresh, not served from the cache
    verifier.verify(token)
    assert len(decodes) == 2


def test_cache_ttl(kit: Kit, decodes: list[str]) -> None:
    clock = Clock()
    verifier = kit.verifier(clock=clock, cache_ttl_seconds=10)
    token = kit.token()
    verifier.verify(token)
    clock.now += 5
    verifier.verify(token)
    clock.now += 10
    verifier.verify(token)
    assert len(decodes) == 2


def test_cache_hit_checks_max_age(kit: Kit) -> None:
    clock = Clock()
    verifier = kit.verifier(clock=clock, max_age_seconds=120, leeway_seconds=0, cache_ttl_seconds=3600)
    token = kit.token(iat=int(clock.now), exp=int(clock.now) + 3600)
    verifier.verify(token)
    clock.now += 121
    assert reason(verifier, token) == "token too old"


def test_no_cache(kit: Kit, decodes: list[str]) -> None:
    verifier = kit.verifier(cache_size=0)
    token = kit.token()
    verifier.verify(token)
    verifier.verify(token)
    assert len(decodes) == 2


def test_refusals_are_not_cached(kit: Kit, decodes: list[str]) -> None:
    verifier = kit.verifier()
    token = kit.token(kit.rsa2)
    assert reason(verifier, token) == "bad signature"
    assert reason(verifier, token) == "bad signature"
    assert len(decodes) == 2


def test_cache_is_bounded(kit: Kit) -> None:
    verifier = kit.verifier(cache_size=3)
    for i in range(10):
        verifier.verify(kit.token(sub=f"user{i}"))
    assert verifier._cache is not None and len(verifier._cache) == 3


def test_reload_picks_up_a_rotated_key(kit: Kit, decodes: list[str]) -> None:
    path = kit.write("issuer.pem", pem_public(kit.rsa))
    verifier = kit.verifier(path)
    old_token, new_token = kit.token(kit.rsa), kit.token(kit.rsa2)
    assert verifier.verify(old_token).id == "alice"
    assert reason(verifier, new_token) == "bad signature"
    path.write_bytes(pem_public(kit.rsa2))  # the issuer rotated its key
    assert verifier.verify(old_token).id == "alice"  # nothing changes until reload
    verifier.reload()
    assert verifier.verify(new_token).id == "alice"
    assert reason(verifier, old_token) == "bad signature"  # the cache was emptied too


def test_reload_jwks_rotation_by_kid(kit: Kit) -> None:
    path = kit.jwks("keys.json", jwk_public(kit.rsa, "2026-01"))
    verifier = kit.verifier(path)
    new_token = kit.token(kit.rsa2, kid="2026-02")
    assert reason(verifier, new_token) == "unknown key id `2026-02`"
    kit.jwks("keys.json", jwk_public(kit.rsa, "2026-01"), jwk_public(kit.rsa2, "2026-02"))
    verifier.reload()
    assert verifier.key_ids == ("2026-01", "2026-02")
    assert verifier.verify(new_token).key_id == "2026-02"
    assert verifier.verify(kit.token(kit.rsa, kid="2026-01")).key_id == "2026-01"


def test_failed_reload_keeps_the_old_keys(kit: Kit) -> None:
    path = kit.write("issuer.pem", pem_public(kit.rsa))
    verifier = kit.verifier(path)
    path.write_bytes(b"-----BEGIN PUBLIC KEY-----\ntruncated")
    with pytest.raises(TokenConfigError, match="cannot parse the PEM public key"):
        verifier.reload()
    assert verifier.verify(kit.token()).id == "alice"


def test_cache_hit_path_itself_checks_exp(kit: Kit, decodes: list[str]) -> None:
    # white-box: even an entry kept past its token's exp (a bug elsewhere) is not served
    clock = Clock()
    verifier = kit.verifier(clock=clock, leeway_seconds=0, cache_ttl_seconds=3600)
    token = kit.token(exp=int(clock.now) + 60)
    verifier.verify(token)
    assert verifier._cache is not None
    entry = verifier._cache[token]
    verifier._cache[token] = tokens._Cached(entry.principal, float("inf"), entry.iat)
    clock.now += 61
    assert reason(verifier, token) == "token expired"
    assert len(decodes) == 1
