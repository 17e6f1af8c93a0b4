"""pdp.tokens: what a token must be to be accepted, and the exact reason when it is not."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from tokenkit import AUDIENCE, ISSUER, Kit, b64url, jwk_public, pem_public

from pdp.tokens import TokenError, TokenVerifier, bearer_token


def refused(verifier: TokenVerifier, token: Any) -> str:
    with pytest.raises(TokenError) as info:
        verifier.verify(token)
    return info.value.reason


# ---- accepted ----------------------------------------------------------------------------


def test_valid_rs256(kit: Kit) -> None:
    verifier = kit.verifier()
    token = kit.token()
    p = verifier.verify(token)
    assert (p.type, p.id, p.algorithm, p.key_id) == ("User", "alice", "RS256", None)
    assert p.attributes["tenant"] == "acme"
    assert p.attributes["roles"] == {"acme": ["editor"]}
    assert p.expires_at == p.claims["exp"]
    assert p.claims["iss"] == ISSUER


def test_valid_es256(kit: Kit) -> None:
    verifier = kit.verifier(kit.write("ec.pem", pem_public(kit.ec)), algorithms=["ES256"])
    assert verifier.verify(kit.token(kit.ec, "ES256")).id == "alice"


def test_valid_eddsa_and_ps256_from_jwks_without_alg(kit: Kit) -> None:
    # pyjwt's PyJWK guesses RS256 for an RSA JWK without `alg`; the key must still serve PS256.
    jwks = kit.jwks("keys.json", jwk_public(kit.rsa, "r1"), jwk_public(kit.ed, "e1"))
    verifier = kit.verifier(jwks, algorithms=["PS256", "EdDSA"])
    assert verifier.verify(kit.token(kit.rsa, "PS256", kid="r1")).key_id == "r1"
    assert verifier.verify(kit.token(kit.ed, "EdDSA", kid="e1")).key_id == "e1"
    assert refused(verifier, kit.token(kit.rsa, "PS256", kid="e1")) == "algorithm `PS256` does not match the key"


def test_certificate_key_file(kit: Kit) -> None:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(kit.rsa.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(kit.rsa, hashes.SHA256())
    )
    path = kit.write("idp.crt", cert.public_bytes(serialization.Encoding.PEM))
    assert kit.verifier(path).verify(kit.token()).id == "alice"


def test_hmac_secret_file(kit: Kit) -> None:
    secret = b"s" * 40
    verifier = kit.verifier(kit.write("secret", secret + b"\n"), algorithms=["HS256"])
    assert verifier.verify(kit.token(secret, "HS256")).id == "alice"
    assert refused(verifier, kit.token(b"t" * 40, "HS256")) == "bad signature"


def test_audience_list_in_token_and_issuer_list_in_config(kit: Kit) -> None:
    verifier = kit.verifier(issuer=["https://other.example", ISSUER], audience=[AUDIENCE, "x"])
    assert verifier.verify(kit.token(aud=["someone-else", AUDIENCE])).id == "alice"


# ---- time ----------------------------------------------------------------------------------


def test_expired(kit: Kit) -> None:
    assert refused(kit.verifier(), kit.token(exp=int(time.time()) - 120)) == "token expired"


def test_not_yet_valid(kit: Kit) -> None:
    assert refused(kit.verifier(), kit.token(nbf=int(time.time()) + 120)) == "token not yet valid"


def test_issued_in_the_future(kit: Kit) -> None:
    assert refused(kit.verifier(), kit.token(iat=int(time.time()) + 120)) == "token issued in the future"


def test_leeway_honoured_at_the_edge(kit: Kit) -> None:
    verifier = kit.verifier(leeway_seconds=30)
    now = int(time.time())
    assert verifier.verify(kit.token(exp=now - 10)).id == "alice"  # expired 10 s ago, within leeway
    assert verifier.verify(kit.token(nbf=now + 10, iat=now + 10)).id == "alice"
    assert refused(verifier, kit.token(exp=now - 45)) == "token expired"
    assert refused(verifier, kit.token(nbf=now + 45)) == "token not yet valid"
    strict = kit.verifier(leeway_seconds=0)
    assert refused(strict, kit.token(exp=now - 2)) == "token expired"


def test_leeway_with_an_injected_clock(kit: Kit) -> None:
    # the module's own checks use the verifier's clock; pyjwt's use the real one
    now = time.time()
    token = kit.token(exp=int(now) + 100)
    assert kit.verifier(clock=lambda: now + 125, leeway_seconds=30).verify(token).id == "alice"
    assert refused(kit.verifier(clock=lambda: now + 135, leeway_seconds=30), token) == "token expired"


def test_too_old(kit: Kit) -> None:
    verifier = kit.verifier(max_age_seconds=600)
    now = int(time.time())
    assert verifier.verify(kit.token(iat=now - 500)).id == "alice"
    assert refused(verifier, kit.token(iat=now - 700)) == "token too old"
    assert refused(verifier, kit.token(drop=("iat",))) == "missing claim `iat`"


def test_time_claims_must_be_numbers(kit: Kit) -> None:
    # pyjwt runs int() over exp/iat/nbf, so "9999999999" and true pass its checks
    verifier = kit.verifier()
    assert refused(verifier, kit.token(exp="9999999999")) == "claim `exp` must be a number of seconds"
    assert refused(verifier, kit.token(nbf=True)) == "claim `nbf` must be a number of seconds"
    assert refused(verifier, kit.token(iat="now")) == "claim `iat` must be a number of seconds"
    assert refused(verifier, kit.token(exp=10**400)) == "claim `exp` must be a number of seconds"


# ---- audience, issuer, required claims -------------------------------------------------------


def test_wrong_audience(kit: Kit) -> None:
    verifier = kit.verifier()
    assert refused(verifier, kit.token(aud="another-service")) == "wrong audience"
    assert refused(verifier, kit.token(aud=["a", "b"])) == "wrong audience"
    assert refused(verifier, kit.token(drop=("aud",))) == "missing claim `aud`"


def test_audience_not_verified_when_configured_so(kit: Kit) -> None:
    verifier = kit.verifier(audience=None, verify_audience=False)
    assert verifier.verify(kit.token(aud="anything")).id == "alice"
    assert verifier.verify(kit.token(drop=("aud",))).id == "alice"


def test_wrong_issuer(kit: Kit) -> None:
    verifier = kit.verifier()
    assert refused(verifier, kit.token(iss="https://evil.example")) == "wrong issuer"
    # a prefix of the issuer is not the issuer (older pyjwt matched substrings of a str issuer)
    assert refused(verifier, kit.token(iss="https://idp.acme")) == "wrong issuer"
    assert refused(verifier, kit.token(drop=("iss",))) == "missing claim `iss`"


def test_missing_claims(kit: Kit) -> None:
    verifier = kit.verifier()
    assert refused(verifier, kit.token(drop=("exp",))) == "missing claim `exp`"
    assert refused(verifier, kit.token(exp=None)) == "missing claim `exp`"
    assert refused(verifier, kit.token(drop=("sub",))) == "missing claim `sub`"
    assert refused(verifier, kit.token(sub=7)) == "claim `sub` must be a string"
    extra = kit.verifier(require=["exp", "iat", "sub", "jti"])
    assert refused(extra, kit.token()) == "missing claim `jti`"


def test_id_claim(kit: Kit) -> None:
    verifier = kit.verifier(id_claim="preferred_username")
    assert verifier.verify(kit.token(preferred_username="al")).id == "al"
    assert refused(verifier, kit.token()) == "missing claim `preferred_username`"
    assert (
        refused(verifier, kit.token(preferred_username="")) == "claim `preferred_username` must be a non-empty string"
    )


# ---- signatures and algorithms -------------------------------------------------------------------


def test_signed_by_another_key(kit: Kit) -> None:
    assert refused(kit.verifier(), kit.token(kit.rsa2)) == "bad signature"


def test_tampered_payload(kit: Kit) -> None:
    header, payload, signature = kit.token().split(".")
    claims = json.loads(jwt.utils.base64url_decode(payload))
    claims["roles"] = {"acme": ["tenant_admin"]}
    forged = ".".join([header, b64url(json.dumps(claims).encode()), signature])
    assert refused(kit.verifier(), forged) == "bad signature"


def test_truncated_signature(kit: Kit) -> None:
    token = kit.token()
    assert refused(kit.verifier(), token[:-10]) == "bad signature"


def crafted(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}.{b64url(signature)}"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none(kit: Kit, alg: str) -> None:
    token = crafted({"alg": alg, "typ": "JWT"}, kit.claims())
    assert token.endswith(".")
    assert refused(kit.verifier(), token) == "token uses alg none"


def test_alg_none_with_a_signature_segment(kit: Kit) -> None:
    token = crafted({"alg": "none"}, kit.claims(), b"whatever")
    assert refused(kit.verifier(), token) == "token uses alg none"


def test_algorithm_confusion_hs256_with_the_public_key_as_secret(kit: Kit) -> None:
    pem = pem_public(kit.rsa)
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps(kit.claims()).encode())
    mac = hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = f"{header}.{body}.{b64url(mac)}"
    # the verifier pins RS256: the token's HS256 is refused before any key is used
    assert refused(kit.verifier(kit.write("rsa.pem", pem)), token) == "unsupported algorithm `HS256`"
    # pyjwt itself, handed the PEM bytes and HS256, refuses to use a public key as an HMAC secret
    with pytest.raises(jwt.InvalidKeyError):
        jwt.decode(token, pem, algorithms=["HS256"], audience=AUDIENCE)
    # and an HS256 verifier cannot be given the public key file at all (see the config tests)


def test_pinned_algorithms_only(kit: Kit) -> None:
    verifier = kit.verifier()  # RS256
    assert refused(verifier, kit.token(alg="RS512")) == "unsupported algorithm `RS512`"
    assert refused(verifier, kit.token(alg="PS256")) == "unsupported algorithm `PS256`"
    both = kit.verifier(algorithms=["RS256", "ES256"])
    assert refused(both, kit.token(kit.ec, "ES256")) == "algorithm `ES256` does not match the key"


def test_odd_algorithm_names_are_not_echoed(kit: Kit) -> None:
    token = crafted({"alg": "RS256\n<script>"}, kit.claims(), b"x")
    assert refused(kit.verifier(), token) == "unsupported algorithm"


# ---- key ids -------------------------------------------------------------------------------------


def test_unknown_kid(kit: Kit) -> None:
    jwks = kit.jwks("keys.json", jwk_public(kit.rsa, "k1"), jwk_public(kit.rsa2, "k3"))
    assert refused(kit.verifier(jwks), kit.token(kid="k2")) == "unknown key id `k2`"


def test_jwks_with_two_keys_picks_by_kid(kit: Kit) -> None:
    jwks = kit.jwks("keys.json", jwk_public(kit.rsa, "k1", "RS256"), jwk_public(kit.rsa2, "k2", "RS256"))
    verifier = kit.verifier(jwks)
    assert verifier.verify(kit.token(kit.rsa, kid="k1")).key_id == "k1"
    assert verifier.verify(kit.token(kit.rsa2, kid="k2")).key_id == "k2"
    assert refused(verifier, kit.token(kit.rsa, kid="k2")) == "bad signature"
    assert refused(verifier, kit.token(kit.rsa)) == "token has no key id"


def test_lone_key_serves_tokens_with_or_without_kid(kit: Kit) -> None:
    verifier = kit.verifier()  # one PEM key, no kid
    assert verifier.verify(kit.token(kid="whatever")).id == "alice"
    jwks = kit.jwks("one.json", jwk_public(kit.rsa, "k1"))
    one = kit.verifier(jwks)
    assert one.verify(kit.token()).key_id == "k1"
    assert refused(one, kit.token(kid="k9")) == "unknown key id `k9`"


def test_mixed_key_types_in_one_jwks(kit: Kit) -> None:
    jwks = kit.jwks("keys.json", jwk_public(kit.rsa, "r"), jwk_public(kit.ec, "e"))
    verifier = kit.verifier(jwks, algorithms=["RS256", "ES256"])
    assert verifier.verify(kit.token(kit.ec, "ES256", kid="e")).key_id == "e"
    assert verifier.verify(kit.token(kit.rsa, "RS256", kid="r")).key_id == "r"
    assert refused(verifier, kit.token(kit.ec, "ES256", kid="r")) == "algorithm `ES256` does not match the key"


# ---- malformed -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b",
        "a.b.c.d",
        "a.b.c.d.e",  # a JWE
        "....",
        "eyJhbGciOiJSUzI1NiJ9..sig",
        "!!!.###.$$$",
        " eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        "eyJhbGciOiJSUzI1NiJ9.e30.c2ln\n",
    ],
)
def test_malformed(kit: Kit, token: str) -> None:
    assert refused(kit.verifier(), token) == "malformed token"


def test_malformed_headers(kit: Kit) -> None:
    verifier = kit.verifier()
    claims = kit.claims()
    body = b64url(json.dumps(claims).encode())
    assert refused(verifier, f"{b64url(b'not json')}.{body}.c2ln") == "malformed token"
    assert refused(verifier, f"{b64url(b'[1, 2]')}.{body}.c2ln") == "malformed token"
    assert refused(verifier, crafted({"typ": "JWT"}, claims, b"x")) == "malformed token"  # no alg
    assert refused(verifier, crafted({"alg": 256}, claims, b"x")) == "malformed token"
    assert refused(verifier, crafted({"alg": "RS256", "kid": 5}, claims, b"x")) == "malformed token"
    duplicate = b64url(b'{"alg": "RS256", "alg": "none"}')
    assert refused(verifier, f"{duplicate}.{body}.c2ln") == "malformed token"
    assert refused(verifier, f"{b64url(b'{}')}.{b64url(b'[]')}.c2ln") == "malformed token"


@pytest.mark.parametrize("field", ["jku", "jwk", "x5u", "x5c", "crit", "b64", "zip"])
def test_header_fields_that_would_choose_keys_or_extensions_are_refused(kit: Kit, field: str) -> None:
    token = kit.token()
    header, rest = token.split(".", 1)
    fields = json.loads(jwt.utils.base64url_decode(header))
    fields[field] = "https://evil.example/keys.json"
    tampered = f"{b64url(json.dumps(fields).encode())}.{rest}"
    assert refused(kit.verifier(), tampered) == f"unsupported token header `{field}`"


def test_huge_token(kit: Kit) -> None:
    assert refused(kit.verifier(), kit.token(padding="x" * 9000)) == "token too large"
    assert refused(kit.verifier(), "a" * 100_000) == "token too large"
    big = kit.verifier(max_token_bytes=16384)
    assert big.verify(kit.token(padding="x" * 9000)).id == "alice"


def test_missing_token(kit: Kit) -> None:
    verifier = kit.verifier()
    assert refused(verifier, None) == "missing token"
    assert refused(verifier, "") == "missing token"
    assert refused(verifier, b"abc.def.ghi") == "malformed token"
    assert refused(verifier, 42) == "malformed token"


def test_bearer_token() -> None:
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
    assert bearer_token("bearer   abc.def.ghi ") == "abc.def.ghi"
    for value, reason in [
        (None, "missing token"),
        ("  ", "missing token"),
        ("Basic dXNlcjpwYXNz", "malformed authorization header"),
        ("Bearer", "malformed authorization header"),
    ]:
        with pytest.raises(TokenError) as info:
            bearer_token(value)
        assert info.value.reason == reason


def test_reasons_carry_no_key_material(kit: Kit) -> None:
    pem = pem_public(kit.rsa).decode()
    secret_part = pem.splitlines()[1]
    verifier = kit.verifier()
    for token in [kit.token(kit.rsa2), kit.token(alg="RS512"), "a.b.c", kit.token(exp=1)]:
        with pytest.raises(TokenError) as info:
            verifier.verify(token)
        assert secret_part not in str(info.value)
        assert "BEGIN" not in str(info.value)


def test_signed_payload_that_is_not_a_claims_object(kit: Kit) -> None:
    verifier = kit.verifier()
    for payload in [b"[1, 2]", b"not json", b'"text"']:
        token = jwt.api_jws.encode(payload, kit.rsa, algorithm="RS256")
        assert refused(verifier, token) == "malformed token"
