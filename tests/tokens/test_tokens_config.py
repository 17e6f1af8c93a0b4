"""pdp.tokens: configuration and key files are checked up front, with errors that say what to fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tokenkit import AUDIENCE, ISSUER, Kit, jwk_public, pem_public

from pdp.tokens import DEFAULT_REQUIRE, TokenConfig, TokenConfigError, TokenVerifier
from policy_lang.schema import Schema

BASE: dict[str, Any] = {"key_files": ["k.pem"], "algorithms": ["RS256"], "issuer": ISSUER, "audience": AUDIENCE}


def config_errors(**changes: Any) -> list[str]:
    data = {**BASE, **changes}
    with pytest.raises(TokenConfigError) as info:
        TokenConfig.from_dict({k: v for k, v in data.items() if v is not ...})
    return list(info.value.errors)


def key_errors(kit: Kit, *files: Path, **settings: Any) -> list[str]:
    with pytest.raises(TokenConfigError) as info:
        kit.verifier(*files, **settings)
    return list(info.value.errors)


def test_defaults() -> None:
    config = TokenConfig.from_dict(BASE, base_dir="/etc/pdp")
    assert config.key_files == (Path("/etc/pdp/k.pem"),)
    assert config.algorithms == ("RS256",)
    assert config.issuer == (ISSUER,) and config.audience == (AUDIENCE,)
    assert config.leeway_seconds == 30 and config.max_age_seconds is None
    assert config.require == DEFAULT_REQUIRE == ("exp", "iat", "sub")
    assert config.id_claim == "sub" and config.principal_type is None and config.claim_map is None
    absolute = TokenConfig.from_dict({**BASE, "key_files": ["/keys/k.pem"]}, base_dir="/etc/pdp")
    assert absolute.key_files == (Path("/keys/k.pem"),)


def test_alg_none_rejected() -> None:
    assert config_errors(algorithms=["none"]) == [
        "algorithms: `none` is never accepted (a token with alg none carries no signature)"
    ]
    assert config_errors(algorithms=["RS256", "None"])[0].startswith("algorithms: `none` is never accepted")


def test_empty_algorithm_list_rejected() -> None:
    assert config_errors(algorithms=[]) == [
        'algorithms: empty; pin the algorithms your issuer signs with, e.g. ["RS256"]'
    ]
    assert config_errors(algorithms="RS256") == [
        'algorithms: expected a list of algorithm names such as ["RS256"], found string'
    ]
    assert config_errors(algorithms=...) == ['algorithms: missing (e.g. ["RS256"])']


def test_unknown_algorithm_gets_a_hint() -> None:
    assert config_errors(algorithms=["rs256"]) == ["algorithms: unsupported algorithm `rs256` (did you mean `RS256`?)"]
    assert config_errors(algorithms=["XY1"])[0].startswith("algorithms: unsupported algorithm `XY1` (supported: ES256")


def test_hmac_mixed_with_public_key_algorithms_rejected() -> None:
    (error,) = config_errors(algorithms=["HS256", "RS256"])
    assert error.startswith("algorithms: HS256 (shared secrets) cannot be mixed with RS256 (public keys)")


def test_hmac_algorithm_with_a_public_key_file_rejected(kit: Kit) -> None:
    pem = kit.write("rsa.pem", pem_public(kit.rsa))
    (error,) = key_errors(kit, pem, algorithms=["HS256"])
    assert error == (
        f"{pem}: holds a PEM key or certificate, but the algorithms are HMAC (HS256); "
        "public keys and shared secrets cannot be mixed"
    )
    jwks = kit.jwks("keys.json", jwk_public(kit.rsa, "k1"))
    (error,) = key_errors(kit, jwks, algorithms=["HS256"])
    assert "a `RSA` key does not fit the pinned algorithms (HS256)" in error
    # a secret file is not read as a secret unless the algorithms are HS*
    secret = kit.write("secret", b"s" * 64)
    (error,) = key_errors(kit, secret)
    assert error.startswith(f"{secret}: not a PEM public key, a PEM certificate or a JWKS file")


def test_issuer_and_audience_required_by_default() -> None:
    assert config_errors(issuer=...) == [
        "issuer: required (a string or a list of accepted values; set verify_issuer: false to accept any)"
    ]
    assert config_errors(audience=[]) == ["audience: expected a non-empty string or list of strings, found list"]
    assert config_errors(verify_audience=False) == ["audience: set, but verify_audience is false (remove one of them)"]
    assert TokenConfig.from_dict({**BASE, "audience": None, "verify_audience": False}).audience is None


def test_every_problem_reported_at_once() -> None:
    errors = config_errors(
        algorithm=["RS256"], leeway_seconds=-1, max_age_seconds=0, require="exp", cache_size=-5, claim_map=[]
    )
    assert errors == [
        "algorithm: unknown setting (did you mean `algorithms`?)",
        "leeway_seconds: expected a number of seconds from 0 to 300, found -1",
        "max_age_seconds: expected a positive number of seconds or null, found 0",
        'require: expected a list of claim names such as ["exp", "iat", "sub"], found string',
        'claim_map: expected an object of claim name -> attribute name, e.g. {"grp": "groups"}',
        "cache_size: expected a whole number from 0 (no cache) to 1000000, found -5",
    ]


def test_prefix_and_message() -> None:
    with pytest.raises(TokenConfigError) as info:
        TokenConfig.from_dict({**BASE, "leeway_seconds": "30s"}, where="tokens")
    assert str(info.value) == (
        "invalid token configuration:\n  - tokens.leeway_seconds: expected a number of seconds from 0 to 300, found '30s'"
    )
    with pytest.raises(TokenConfigError):
        TokenConfig.from_dict(["not", "an", "object"])


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(TokenConfigError, match="never accepted"):
        TokenConfig(key_files=["k.pem"], algorithms=["none"], issuer=ISSUER, audience=AUDIENCE)
    with pytest.raises(TokenConfigError, match="key_files: list at least one file"):
        TokenConfig(key_files=[], algorithms=["RS256"], issuer=ISSUER, audience=AUDIENCE)


def test_claim_map_targets_must_be_unique_and_declared(kit: Kit) -> None:
    assert config_errors(claim_map={"a": "roles", "b": "roles"}) == [
        "claim_map: claims `a` and `b` both map to attribute `roles`"
    ]
    (error,) = key_errors(kit, claim_map={"grp": "groups"})
    assert error.startswith("claim_map: `grp` maps to `groups`, which `User` does not declare (known: tenant, roles")


def test_principal_type(kit: Kit) -> None:
    assert kit.verifier().principal_type == "User"
    (error,) = key_errors(kit, principal_type="Robot")
    assert error.startswith("principal_type: the schema declares no entity `Robot` (known: User, Group")
    several = Schema(entities=dict(kit.schema.entities))  # no type marked `principal`: all of them count
    several.entities["User"] = type(several.entities["User"])("User", several.entities["User"].record)
    config = kit.config(kit.write("rsa.pem", pem_public(kit.rsa)))
    with pytest.raises(TokenConfigError, match="principal_type: required, the schema has 5"):
        TokenVerifier(config, several)


def test_unreadable_and_unusable_key_files(kit: Kit) -> None:
    missing = kit.folder / "nope.pem"
    assert key_errors(kit, missing) == [f"key_files: cannot read `{missing}`: No such file or directory"]
    garbage = kit.write("garbage.pem", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    assert key_errors(kit, garbage) == [f"{garbage}: cannot parse the PEM public key"]
    not_json = kit.write("keys.json", b"{nope")
    assert key_errors(kit, not_json) == [f"{not_json}: not valid JSON"]
    empty = kit.jwks("empty.json")
    assert key_errors(kit, empty) == [f"{empty}: `keys` must be a non-empty list"]


def test_private_keys_refused(kit: Kit) -> None:
    pem = kit.rsa.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = kit.write("private.pem", pem)
    assert key_errors(kit, path) == [
        f"{path}: holds a private key; configure the public key or the certificate instead"
    ]
    private_jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(kit.rsa))
    private_jwk["kid"] = "k1"
    jwks = kit.jwks("private.json", private_jwk)
    (error,) = key_errors(kit, jwks)
    assert error == f"{jwks} key `k1`: holds private key material; publish only the public key"
    assert "BEGIN" not in error and private_jwk["d"] not in error


def test_several_pem_blocks_refused(kit: Kit) -> None:
    path = kit.write("chain.pem", pem_public(kit.rsa) + pem_public(kit.rsa2))
    assert key_errors(kit, path) == [f"{path}: holds 2 PEM blocks; put exactly one key or certificate in each file"]


def test_weak_rsa_key_refused(kit: Kit) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = kit.write("weak.pem", pem_public(weak))
    assert key_errors(kit, path) == [f"{path}: RSA key of 1024 bits; at least 2048 are required"]


def test_short_hmac_secret_refused(kit: Kit) -> None:
    path = kit.write("secret", b"short-secret\n")
    assert key_errors(kit, path, algorithms=["HS256"]) == [f"{path}: the secret has 12 bytes; HS256 needs at least 32"]


def test_jwks_keys_conflicting_with_pinned_algorithms(kit: Kit) -> None:
    wrong_alg = kit.jwks("a.json", jwk_public(kit.rsa, "k1", "RS512"))
    assert key_errors(kit, wrong_alg) == [
        f"{wrong_alg} key `k1`: key is for `RS512`, not one of the pinned algorithms (RS256)"
    ]
    wrong_kty = kit.jwks("b.json", jwk_public(kit.ec, "k2"))
    assert key_errors(kit, wrong_kty) == [
        f"{wrong_kty} key `k2`: EC key on secp256r1 fits none of the pinned algorithms (RS256)"
    ]
    none_alg = kit.jwks("c.json", jwk_public(kit.rsa, "k3", "none"))
    assert key_errors(kit, none_alg) == [f"{none_alg} key `k3`: `alg` must name a signing algorithm"]
    broken = kit.jwks("d.json", {"kty": "RSA", "kid": "k4", "n": "AAAA"})
    assert key_errors(kit, broken) == [f"{broken} key `k4`: not a valid RSA key"]
    pem = kit.write("ec.pem", pem_public(kit.ec))
    assert key_errors(kit, pem) == [f"{pem}: EC key on secp256r1 fits none of the pinned algorithms (RS256)"]


def test_encryption_keys_in_a_jwks_are_skipped(kit: Kit) -> None:
    enc = {**jwk_public(kit.rsa2, "enc1"), "use": "enc", "alg": "RSA-OAEP"}
    jwks = kit.jwks("keys.json", jwk_public(kit.rsa, "sig1"), enc)
    assert kit.verifier(jwks).key_ids == ("sig1",)


def test_several_keys_need_key_ids(kit: Kit) -> None:
    a = kit.write("a.pem", pem_public(kit.rsa))
    b = kit.write("b.pem", pem_public(kit.rsa2))
    errors = key_errors(kit, a, b)
    assert errors[0].startswith(f"{a}: key has no key id; with several keys each needs one")
    jwks = kit.jwks("dup.json", jwk_public(kit.rsa, "k1"), jwk_public(kit.rsa2, "k1"))
    assert key_errors(kit, jwks) == [f"key id `k1` is used twice ({jwks} key `k1` and {jwks} key `k1`)"]


def test_pyjwt_pyjwkset_drops_bad_keys_silently(kit: Kit) -> None:
    # why pdp.tokens loads JWKS entries one by one: PyJWKSet would hide a broken entry
    good = jwk_public(kit.rsa, "k1")
    keyset = jwt.PyJWKSet([good, {"kty": "RSA", "kid": "k2", "n": "AAAA"}])
    assert [k.key_id for k in keyset.keys] == ["k1"]
