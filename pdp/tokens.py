"""Bearer tokens (JWT) -> the principal of a request.

The decision point (`pdp serve`) receives a bearer token with a call; `TokenVerifier` checks
it against pinned algorithms and locally configured keys and turns its claims into the
principal's type, id and attributes:

    config = TokenConfig.from_dict(json.load(f)["tokens"], base_dir=config_dir)
    verifier = TokenVerifier(config, engine.schema)
    verified = verifier.verify(token)                      # or raises TokenError(reason)
    request["principal"] = merge_principal(request.get("principal"), verified)
    engine.decide(request)

Choices that matter for safety:

- The algorithms are pinned by configuration; the token's `alg` header only selects among
  them. `none` is never accepted, and HMAC (HS*) cannot be configured together with public
  keys: one verifier holding both is the classic algorithm-confusion set-up (a public key's
  bytes used as an HMAC secret).
- The header is read and checked here before pyjwt sees the token: size, shape, a short list
  of known header fields (no `jku`, `jwk`, `x5u`, `crit`, `b64`: keys come from the
  configuration only), `alg`, `kid`. The key is picked by `kid` from the loaded keys, and
  pyjwt is given only the algorithms that fit that key.
- Time claims are checked by pyjwt and then again here with this module's clock (the cache
  and the tests use the same clock), with `leeway_seconds` either way.
- Reasons (`TokenError.reason`) are short, fixed phrases; values from the token appear in
  them only when they are short and plain (an algorithm name, a key id), and never any key
  material.
"""

from __future__ import annotations

import base64
import binascii
import copy
import difflib
import json
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jwt
from cachetools import TTLCache
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.algorithms import HMACAlgorithm
from jwt.exceptions import InvalidJTIError, InvalidSubjectError

from policy_lang.convert import ConversionError, Converter, converter
from policy_lang.schema import Schema

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "TokenConfig",
    "TokenConfigError",
    "TokenError",
    "TokenVerifier",
    "VerifiedPrincipal",
    "bearer_token",
    "merge_principal",
]

# The shortest HMAC secret per algorithm: the hash's output size (RFC 7518 section 3.2).
HMAC_ALGORITHMS: Mapping[str, int] = MappingProxyType({"HS256": 32, "HS384": 48, "HS512": 64})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS: Mapping[str, type[ec.EllipticCurve]] = MappingProxyType(
    {"ES256": ec.SECP256R1, "ES384": ec.SECP384R1, "ES512": ec.SECP521R1, "ES256K": ec.SECP256K1}
)
EDDSA = "EdDSA"
SUPPORTED_ALGORITHMS = frozenset({*HMAC_ALGORITHMS, *RSA_ALGORITHMS, *EC_ALGORITHMS, EDDSA})
MIN_RSA_BITS = 2048
DEFAULT_REQUIRE = ("exp", "iat", "sub")
DEFAULT_MAX_TOKEN_BYTES = 8192
MAX_KEY_FILE_BYTES = 1 << 20
MAX_HEADER_CHARS = 2048
MAX_ID_CHARS = 1024
MAX_LEEWAY_SECONDS = 300

# Header fields a token may carry. Anything else (jku, jwk, x5u, x5c, crit, b64, zip, cty, ...)
# is refused: keys come from the configuration only, and no extension is understood.
_HEADER_FIELDS = frozenset({"alg", "typ", "kid", "x5t", "x5t#S256"})
_SEGMENT = r"[A-Za-z0-9_-]+={0,2}"
_COMPACT = re.compile(rf"{_SEGMENT}\.{_SEGMENT}\.(?:{_SEGMENT})?")
_PLAIN = re.compile(r"[A-Za-z0-9._:#+/=@-]{1,64}")
_TIME_CLAIMS = ("exp", "nbf", "iat")


# ---- errors -------------------------------------------------------------------------------


class TokenError(Exception):
    """A token was refused. `reason` is safe to log and to return to the caller."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class TokenConfigError(ValueError):
    """The token configuration (or a key file it names) is unusable; `errors` lists every problem."""

    def __init__(self, errors: Sequence[str]):
        self.errors = tuple(errors)
        lines = "\n".join(f"  - {e}" for e in self.errors)
        super().__init__(f"invalid token configuration:\n{lines}")


# ---- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenConfig:
    """How bearer tokens are verified. Validated on construction (raises TokenConfigError).

    Sequences are stored as tuples, `issuer`/`audience` as tuples of accepted values, and
    `key_files` as Paths. `claim_map`, when given, replaces the default mapping entirely.
    """

    key_files: Sequence[str | Path]
    algorithms: Sequence[str]
    issuer: str | Sequence[str] | None = None
    audience: str | Sequence[str] | None = None
    verify_issuer: bool = True
    verify_audience: bool = True
    leeway_seconds: float = 30
    max_age_seconds: float | None = None
    require: Sequence[str] = DEFAULT_REQUIRE
    principal_type: str | None = None
    claim_map: Mapping[str, str] | None = None
    id_claim: str = "sub"
    cache_size: int = 1024
    cache_ttl_seconds: float = 300
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        problems = _check_fields(values)
        if problems:
            raise TokenConfigError(problems)
        for name, value in _normalized(values).items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_dict(cls, data: Any, *, base_dir: str | Path | None = None, where: str = "") -> TokenConfig:
        """Build from a parsed config file section. Relative `key_files` resolve against
        `base_dir` (the config file's folder). Every problem is reported at once, each prefixed
        by `where` (e.g. "tokens") and the key."""
        prefix = f"{where}." if where else ""
        if not isinstance(data, Mapping):
            raise TokenConfigError([f"{where or 'token configuration'}: expected an object, found {_kind(data)}"])
        known = [f.name for f in fields(cls)]
        problems: list[str] = []
        for key in data:
            if key not in known:
                hint = difflib.get_close_matches(str(key), known, n=1)
                also = f" (did you mean `{hint[0]}`?)" if hint else f" (known: {', '.join(known)})"
                problems.append(f"{prefix}{key}: unknown setting{also}")
        for key, example in (("key_files", '["keys/issuer.pem"]'), ("algorithms", '["RS256"]')):
            if key not in data:
                problems.append(f"{prefix}{key}: missing (e.g. {example})")
        values: dict[str, Any] = {f.name: f.default for f in fields(cls) if f.name not in ("key_files", "algorithms")}
        values.update({k: v for k, v in data.items() if k in known})
        key_files = values.get("key_files")
        if base_dir is not None and isinstance(key_files, list | tuple):
            values["key_files"] = [
                str(Path(base_dir) / p) if isinstance(p, str) and p and not Path(p).is_absolute() else p
                for p in key_files
            ]
        problems.extend(prefix + p for p in _check_fields(values))
        if problems:
            raise TokenConfigError(problems)
        return cls(**values)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "list"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _string_list(value: Any) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(v, str) and v for v in value)


def _check_fields(v: Mapping[str, Any]) -> list[str]:
    """Every problem with the given field values (fields absent from `v` are not checked)."""
    out: list[str] = []
    if "key_files" in v:
        files = v["key_files"]
        if not isinstance(files, list | tuple):
            out.append(f"key_files: expected a list of file paths, found {_kind(files)}")
        elif not all(isinstance(p, str | Path) and str(p) for p in files):
            out.append("key_files: every entry must be a file path (a non-empty string)")
        elif not files:
            out.append("key_files: list at least one file (a PEM public key, a certificate or a JWKS file)")
    if "algorithms" in v:
        out.extend(_check_algorithms(v["algorithms"]))
    for name, flag in (("issuer", "verify_issuer"), ("audience", "verify_audience")):
        value, verify = v.get(name), v.get(flag, True)
        if not isinstance(verify, bool):
            out.append(f"{flag}: expected true or false, found {_kind(verify)}")
            continue
        if not verify:
            if value is not None:
                out.append(f"{name}: set, but {flag} is false (remove one of them)")
        elif value is None:
            out.append(f"{name}: required (a string or a list of accepted values; set {flag}: false to accept any)")
        elif not (isinstance(value, str) and value) and not (_string_list(value) and value):
            out.append(f"{name}: expected a non-empty string or list of strings, found {_kind(value)}")
    leeway = v.get("leeway_seconds", 30)
    if not _is_number(leeway) or not 0 <= leeway <= MAX_LEEWAY_SECONDS:
        out.append(f"leeway_seconds: expected a number of seconds from 0 to {MAX_LEEWAY_SECONDS}, found {leeway!r}")
    max_age = v.get("max_age_seconds")
    if max_age is not None and (not _is_number(max_age) or max_age <= 0):
        out.append(f"max_age_seconds: expected a positive number of seconds or null, found {max_age!r}")
    require = v.get("require", DEFAULT_REQUIRE)
    if not _string_list(require):
        out.append(f'require: expected a list of claim names such as ["exp", "iat", "sub"], found {_kind(require)}')
    ptype = v.get("principal_type")
    if ptype is not None and not (isinstance(ptype, str) and ptype):
        out.append(f"principal_type: expected an entity type name or null, found {_kind(ptype)}")
    claim_map = v.get("claim_map")
    if claim_map is not None:
        if not isinstance(claim_map, Mapping) or not all(
            isinstance(c, str) and c and isinstance(a, str) and a for c, a in claim_map.items()
        ):
            out.append('claim_map: expected an object of claim name -> attribute name, e.g. {"grp": "groups"}')
        else:
            seen: dict[str, str] = {}
            for claim, attr in claim_map.items():
                if attr in seen:
                    out.append(f"claim_map: claims `{seen[attr]}` and `{claim}` both map to attribute `{attr}`")
                seen[attr] = claim
    id_claim = v.get("id_claim", "sub")
    if not (isinstance(id_claim, str) and id_claim):
        out.append(f"id_claim: expected a claim name, found {_kind(id_claim)}")
    size = v.get("cache_size", 1024)
    if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= 1_000_000:
        out.append(f"cache_size: expected a whole number from 0 (no cache) to 1000000, found {size!r}")
    ttl = v.get("cache_ttl_seconds", 300)
    if not _is_number(ttl) or ttl < 0:
        out.append(f"cache_ttl_seconds: expected a number of seconds >= 0, found {ttl!r}")
    limit = v.get("max_token_bytes", DEFAULT_MAX_TOKEN_BYTES)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 512 <= limit <= 65536:
        out.append(f"max_token_bytes: expected a whole number from 512 to 65536, found {limit!r}")
    return out


def _check_algorithms(algs: Any) -> list[str]:
    if not isinstance(algs, list | tuple) or not all(isinstance(a, str) for a in algs):
        return [f'algorithms: expected a list of algorithm names such as ["RS256"], found {_kind(algs)}']
    if not algs:
        return ['algorithms: empty; pin the algorithms your issuer signs with, e.g. ["RS256"]']
    out: list[str] = []
    for alg in algs:
        if alg.lower() == "none":
            out.append("algorithms: `none` is never accepted (a token with alg none carries no signature)")
        elif alg not in SUPPORTED_ALGORITHMS:
            hint = [a for a in SUPPORTED_ALGORITHMS if a.lower() == alg.lower()]
            also = (
                f" (did you mean `{hint[0]}`?)" if hint else f" (supported: {', '.join(sorted(SUPPORTED_ALGORITHMS))})"
            )
            out.append(f"algorithms: unsupported algorithm `{alg}`{also}")
    hmac = sorted(a for a in algs if a in HMAC_ALGORITHMS)
    public = sorted(a for a in algs if a in SUPPORTED_ALGORITHMS and a not in HMAC_ALGORITHMS)
    if hmac and public:
        out.append(
            f"algorithms: {', '.join(hmac)} (shared secrets) cannot be mixed with {', '.join(public)} (public keys): "
            "a verifier holding both invites algorithm confusion; run one verifier per kind"
        )
    return out


def _normalized(v: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "key_files": tuple(Path(p) for p in v["key_files"]),
        "algorithms": tuple(dict.fromkeys(v["algorithms"])),
        "require": tuple(dict.fromkeys(v["require"])),
    }
    for name in ("issuer", "audience"):
        value = v[name]
        out[name] = None if value is None else (value,) if isinstance(value, str) else tuple(value)
    if v["claim_map"] is not None:
        out["claim_map"] = MappingProxyType(dict(v["claim_map"]))
    return out


# ---- keys ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str | None
    key: Any  # a cryptography public key, or the HMAC secret's bytes
    algorithms: frozenset[str]  # the pinned algorithms this key may verify
    source: str  # for messages: the file, and the key's place in it


@dataclass(frozen=True, slots=True)
class _KeySet:
    keys: tuple[_Key, ...]
    by_kid: Mapping[str, _Key]


def _fits(key: Any, alg: str) -> bool:
    if alg in HMAC_ALGORITHMS:
        return isinstance(key, bytes) and len(key) >= HMAC_ALGORITHMS[alg]
    if alg in RSA_ALGORITHMS:
        return isinstance(key, rsa.RSAPublicKey)
    if alg in EC_ALGORITHMS:
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, EC_ALGORITHMS[alg])
    if alg == EDDSA:
        return isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey)
    return False


def _describe_key(key: Any) -> str:
    if isinstance(key, bytes):
        return f"{len(key)}-byte secret"
    if isinstance(key, rsa.RSAPublicKey):
        return f"{key.key_size}-bit RSA key"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC key on {key.curve.name}"
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return "EdDSA key"
    return f"{type(key).__name__.lstrip('_')}"


def _make_key(
    key: Any, kid: str | None, source: str, pinned: tuple[str, ...], declared_alg: str | None, out: list[str]
) -> _Key | None:
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        out.append(f"{source}: RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} are required")
        return None
    fits = frozenset(a for a in pinned if _fits(key, a))
    if declared_alg is not None:
        if declared_alg not in pinned:
            out.append(f"{source}: key is for `{declared_alg}`, not one of the pinned algorithms ({', '.join(pinned)})")
            return None
        fits &= {declared_alg}
    if not fits:
        out.append(f"{source}: {_describe_key(key)} fits none of the pinned algorithms ({', '.join(pinned)})")
        return None
    return _Key(kid, key, fits, source)


def _load_keys(config: TokenConfig) -> _KeySet:
    pinned = tuple(config.algorithms)
    hmac = all(a in HMAC_ALGORITHMS for a in pinned)
    problems: list[str] = []
    keys: list[_Key] = []
    for path in config.key_files:
        source = str(path)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            problems.append(f"key_files: cannot read `{source}`: {exc.strerror or type(exc).__name__}")
            continue
        if len(data) > MAX_KEY_FILE_BYTES:
            problems.append(f"{source}: larger than {MAX_KEY_FILE_BYTES} bytes; not a key file")
            continue
        head = data.lstrip()
        if head.startswith(b"-----BEGIN"):
            if hmac:
                problems.append(
                    f"{source}: holds a PEM key or certificate, but the algorithms are HMAC ({', '.join(pinned)}); "
                    "public keys and shared secrets cannot be mixed"
                )
                continue
            key = _load_pem(data, source, problems)
            if key is not None:
                made = _make_key(key, None, source, pinned, None, problems)
                if made is not None:
                    keys.append(made)
        elif head.startswith(b"{"):
            keys.extend(_load_jwks(data, source, pinned, problems))
        elif hmac:
            secret = data.rstrip(b"\r\n")  # a trailing newline is an editor's, not the secret's
            made = _load_secret(secret, source, pinned, problems)
            if made is not None:
                keys.append(made)
        else:
            problems.append(
                f"{source}: not a PEM public key, a PEM certificate or a JWKS file "
                "(shared secrets are read only when the algorithms are HS*)"
            )
    by_kid: dict[str, _Key] = {}
    for key in keys:
        if key.kid is None:
            continue
        if key.kid in by_kid:
            problems.append(f"key id `{key.kid}` is used twice ({by_kid[key.kid].source} and {key.source})")
        by_kid[key.kid] = key
    if len(keys) > 1:
        for key in keys:
            if key.kid is None:
                problems.append(
                    f"{key.source}: key has no key id; with several keys each needs one "
                    "(a token names its key with `kid`): use a JWKS file"
                )
    if not keys and not problems:
        problems.append("key_files: no usable key")
    if problems:
        raise TokenConfigError(problems)
    return _KeySet(tuple(keys), MappingProxyType(by_kid))


def _load_pem(data: bytes, source: str, out: list[str]) -> Any:
    labels = re.findall(rb"-----BEGIN ([A-Z0-9 ]+)-----", data)
    if len(labels) != 1:
        out.append(f"{source}: holds {len(labels)} PEM blocks; put exactly one key or certificate in each file")
        return None
    label = labels[0].decode()
    if "PRIVATE" in label:
        out.append(f"{source}: holds a private key; configure the public key or the certificate instead")
        return None
    try:
        if label == "CERTIFICATE":
            return x509.load_pem_x509_certificate(data).public_key()
        if label in ("PUBLIC KEY", "RSA PUBLIC KEY"):
            return load_pem_public_key(data)
    except (ValueError, TypeError):
        out.append(f"{source}: cannot parse the PEM {label.lower()}")
        return None
    out.append(f"{source}: PEM block `{label}` is not a public key or certificate")
    return None


def _load_secret(secret: bytes, source: str, pinned: tuple[str, ...], out: list[str]) -> _Key | None:
    need = max(HMAC_ALGORITHMS[a] for a in pinned)
    if len(secret) < need:
        out.append(f"{source}: the secret has {len(secret)} bytes; {', '.join(pinned)} needs at least {need}")
        return None
    try:
        HMACAlgorithm(HMACAlgorithm.SHA256).prepare_key(secret)  # pyjwt's own refusals, surfaced now
    except jwt.InvalidKeyError:
        out.append(f"{source}: looks like a public key, certificate or JWK, not a shared secret")
        return None
    return _Key(None, secret, frozenset(pinned), source)


_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})
_DEFAULT_JWK_ALG = {"RSA": "RS256", "oct": "HS256", "OKP": EDDSA}
_EC_CURVE_ALG = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512", "secp256k1": "ES256K"}


def _load_jwks(data: bytes, source: str, pinned: tuple[str, ...], out: list[str]) -> list[_Key]:
    """JWKS (`{"keys": [...]}`) or a single JWK. Entries are loaded one by one with jwt.PyJWK rather
    than jwt.PyJWKSet, which silently drops every entry it cannot load: here each bad entry is an
    error. Entries marked `"use": "enc"` are skipped (they do not sign)."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        out.append(f"{source}: not valid JSON")
        return []
    if isinstance(doc, dict) and "keys" in doc:
        entries = doc["keys"]
    elif isinstance(doc, dict) and "kty" in doc:
        entries = [doc]
    else:
        out.append(f'{source}: expected a JWKS object {{"keys": [...]}} or a single JWK')
        return []
    if not isinstance(entries, list) or not entries:
        out.append(f"{source}: `keys` must be a non-empty list")
        return []
    hmac = all(a in HMAC_ALGORITHMS for a in pinned)
    keys: list[_Key] = []
    for i, entry in enumerate(entries):
        where = f"{source} key #{i}"
        if not isinstance(entry, dict):
            out.append(f"{where}: expected an object")
            continue
        kid = entry.get("kid")
        if kid is not None:
            if not isinstance(kid, str) or not kid:
                out.append(f"{where}: `kid` must be a non-empty string")
                continue
            where = f"{source} key `{kid}`"
        if entry.get("use") == "enc":
            continue
        kty, alg = entry.get("kty"), entry.get("alg")
        if kty not in ("RSA", "EC", "OKP", "oct"):
            out.append(f"{where}: unsupported key type {kty!r}" if isinstance(kty, str) else f"{where}: no `kty`")
            continue
        if alg is not None and (not isinstance(alg, str) or alg.lower() == "none"):
            out.append(f"{where}: `alg` must name a signing algorithm")
            continue
        if (kty == "oct") != hmac:
            out.append(
                f"{where}: a `{kty}` key does not fit the pinned algorithms ({', '.join(pinned)}); "
                "public keys and shared secrets cannot be mixed"
            )
            continue
        if kty != "oct" and _PRIVATE_MEMBERS & entry.keys():
            out.append(f"{where}: holds private key material; publish only the public key")
            continue
        if alg is not None and alg not in pinned:
            out.append(f"{where}: key is for `{alg}`, not one of the pinned algorithms ({', '.join(pinned)})")
            continue
        crv = entry.get("crv")
        guess = alg or (_EC_CURVE_ALG.get(crv) if kty == "EC" and isinstance(crv, str) else _DEFAULT_JWK_ALG.get(kty))
        try:
            # pyjwt's own messages for bad JWKs embed the whole JWK (secrets included): not shown.
            loaded = jwt.PyJWK(entry, algorithm=guess).key
        except (jwt.PyJWTError, ValueError, TypeError, KeyError, NotImplementedError):
            out.append(f"{where}: not a valid {kty} key")
            continue
        if kty == "oct":
            made = _load_secret(loaded, where, pinned, out)
            made = None if made is None else _Key(kid, made.key, made.algorithms, where)
        else:
            made = _make_key(loaded, kid, where, pinned, alg, out)
        if made is not None:
            keys.append(made)
    return keys


# ---- the principal ------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedPrincipal:
    """What a verified token says about its bearer.

    `attributes` hold the mapped claims in their JSON form (the form `Engine.decide` accepts),
    already checked against the schema types; `claims` is the whole verified payload. Both are
    read-only views and may be shared between calls (the verifier caches them): copy before
    changing anything nested (`merge_principal` does).

    `claim_attributes` names every attribute the verifier's claim map can fill (its targets),
    whether or not this token carries the claim: `merge_principal` takes these from the token
    only."""

    type: str
    id: str
    attributes: Mapping[str, Any]
    claims: Mapping[str, Any]
    expires_at: float | None
    key_id: str | None = None
    algorithm: str = ""
    claim_attributes: frozenset[str] = frozenset()


def merge_principal(request_principal: Mapping[str, Any] | None, verified: VerifiedPrincipal) -> dict[str, Any]:
    """The request's principal with the token's identity and attributes laid over it.

    The token wins: its claims are signed by the issuer, while the rest of the request is only
    the caller's word. Every attribute the claim map can fill (`verified.claim_attributes`, and
    every attribute the token set) comes from the token only: a caller value for it is dropped
    even when the token lacks the claim, so a caller cannot add `roles` or `suspended: false`
    that the issuer did not sign (an absent claim stays absent, and an attribute the schema
    requires then fails closed in the engine). Caller attributes outside the claim map (e.g.
    facts the caller looked up) and `parents` pass through; the engine then lets entity data
    files override both.

    A request principal whose `type` or `id` differs from the token's is refused (TokenError):
    attributes stated about one user must not be merged into another's identity.
    Returns a new dict; nothing given is modified."""
    if request_principal is None:
        base: dict[str, Any] = {}
    elif isinstance(request_principal, Mapping):
        base = dict(request_principal)
    else:
        raise TokenError("request principal is not an object")
    if base.get("type") is not None and base["type"] != verified.type:
        raise TokenError("request principal type does not match the token")
    if base.get("id") is not None and base["id"] != verified.id:
        raise TokenError("request principal id does not match the token subject")
    given = base.get("attributes")
    if given is None:
        given = {}
    elif not isinstance(given, Mapping):
        raise TokenError("request principal attributes are not an object")
    base["type"] = verified.type
    base["id"] = verified.id
    governed = verified.claim_attributes | verified.attributes.keys()
    kept = {name: value for name, value in given.items() if name not in governed}
    # The verified principal is cached across calls: what we hand out must not alias it.
    base["attributes"] = {**kept, **{k: _copy_json(v) for k, v in verified.attributes.items()}}
    return base


def _copy_json(value: Any) -> Any:
    """A copy of a JSON value (claims are JSON): several times faster than copy.deepcopy."""
    if type(value) is dict:
        return {k: _copy_json(v) for k, v in value.items()}
    if type(value) is list:
        return [_copy_json(v) for v in value]
    return value


def bearer_token(authorization: str | None) -> str:
    """The token in an `Authorization: Bearer <token>` value; TokenError when absent or not a bearer."""
    if authorization is None or not authorization.strip():
        raise TokenError("missing token")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise TokenError("malformed authorization header")
    return token


# ---- the verifier -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Mapping:
    principal_type: str
    claims: tuple[tuple[str, str, Converter], ...]  # claim, attribute, converter
    attributes: frozenset[str] = frozenset()  # every attribute the claims can fill: token-only


@dataclass(frozen=True, slots=True)
class _Cached:
    principal: VerifiedPrincipal
    deadline: float  # min(verified at + cache TTL, exp)
    iat: float | None


def _resolve_mapping(config: TokenConfig, schema: Schema) -> _Mapping:
    ptype = config.principal_type
    if ptype is None:
        candidates = schema.principal_types
        if len(candidates) != 1:
            shown = ", ".join(candidates) or "none"
            raise TokenConfigError([f"principal_type: required, the schema has {len(candidates)} ({shown})"])
        ptype = candidates[0]
    entity = schema.entities.get(ptype)
    if entity is None:
        known = ", ".join(schema.entities) or "none"
        raise TokenConfigError([f"principal_type: the schema declares no entity `{ptype}` (known: {known})"])
    record = entity.record
    claim_map = config.claim_map
    if claim_map is None:
        claim_map = {f.name: f.name for f in record.fields}
    problems: list[str] = []
    out: list[tuple[str, str, Converter]] = []
    for claim, attr in claim_map.items():
        field = record.get(attr)
        if field is None:
            known = ", ".join(f.name for f in record.fields) or "none"
            problems.append(f"claim_map: `{claim}` maps to `{attr}`, which `{ptype}` does not declare (known: {known})")
            continue
        try:
            out.append((claim, attr, converter(field.type)))
        except TypeError:
            problems.append(f"claim_map: attribute `{attr}` has type {field.type}, which no claim can carry")
    if problems:
        raise TokenConfigError(problems)
    return _Mapping(ptype, tuple(out), frozenset(attr for _, attr, _ in out))


def _shown(value: str) -> str:
    """A value from a token, quoted only when short and plain (reasons are logged and returned)."""
    return f" `{value}`" if _PLAIN.fullmatch(value) else ""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError("duplicate header field")
        out[k] = v
    return out


def _header(token: str) -> dict[str, Any]:
    if not _COMPACT.fullmatch(token):
        raise TokenError("malformed token")
    segment = token.split(".", 1)[0]
    if len(segment) > MAX_HEADER_CHARS:
        raise TokenError("malformed token")
    try:
        raw = base64.urlsafe_b64decode(segment.rstrip("=") + "=" * (-len(segment.rstrip("=")) % 4))
        header = json.loads(raw, object_pairs_hook=_no_duplicates)
    except (binascii.Error, ValueError, RecursionError):
        raise TokenError("malformed token") from None
    if not isinstance(header, dict):
        raise TokenError("malformed token")
    for name in header:
        if name not in _HEADER_FIELDS:
            raise TokenError(f"unsupported token header{_shown(name)}")
    alg, kid, typ = header.get("alg"), header.get("kid"), header.get("typ")
    if not isinstance(alg, str) or not alg:
        raise TokenError("malformed token")
    if kid is not None and (not isinstance(kid, str) or not kid or len(kid) > 256):
        raise TokenError("malformed token")
    if typ is not None and not isinstance(typ, str):
        raise TokenError("malformed token")
    return header


def _claim_number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    try:
        if _is_number(value) and math.isfinite(float(value)):
            return float(value)
    except OverflowError:
        pass
    raise TokenError(f"claim `{name}` must be a number of seconds")


def _conversion_reason(claim: str, attr: str, exc: Exception) -> str:
    if isinstance(exc, ConversionError):
        where = exc.path(attr)
        detail = f"{where}: {exc.message}" if exc.parts else exc.message
    else:
        detail = "not a valid value"
    detail = "".join(ch if ch.isprintable() else "?" for ch in detail)
    if len(detail) > 160:
        detail = detail[:157] + "..."
    return f"claim `{claim}` does not fit attribute `{attr}`: {detail}"


_PYJWT_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.InvalidSignatureError, "bad signature"),  # a DecodeError: before it
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidIssuedAtError, "claim `iat` must be a number of seconds"),
    (InvalidSubjectError, "claim `sub` must be a string"),
    (InvalidJTIError, "claim `jti` must be a string"),
    (jwt.InvalidAlgorithmError, "unsupported algorithm"),
    (jwt.InvalidKeyError, "algorithm does not match the key"),
)


def _pyjwt_reason(exc: Exception) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing claim{_shown(exc.claim)}"
    if isinstance(exc, jwt.ImmatureSignatureError):  # pyjwt uses one class for both
        return "token issued in the future" if "(iat)" in str(exc) else "token not yet valid"
    for cls, reason in _PYJWT_REASONS:
        if isinstance(exc, cls):
            return reason
    if isinstance(exc, jwt.DecodeError):
        text = str(exc)
        for name in ("exp", "nbf"):
            if f"({name})" in text:
                return f"claim `{name}` must be a number of seconds"
    return "malformed token"


class TokenVerifier:
    """Verifies bearer tokens against one TokenConfig and turns them into principals.

    Keys are read once, here and on `reload()`. Safe to share between threads. `clock` (epoch
    seconds) is for tests; pyjwt checks times with the real clock too."""

    def __init__(self, config: TokenConfig, schema: Schema, *, clock: Callable[[], float] = time.time):
        self.config = config
        self._clock = clock
        self._leeway = float(config.leeway_seconds)
        self._issuers = None if config.issuer is None else tuple(config.issuer)
        self._audiences = None if config.audience is None else list(config.audience)
        require = list(config.require)
        if config.max_age_seconds is not None:
            require.append("iat")
        self._require = list(dict.fromkeys(require))
        self._lock = threading.Lock()
        self._cache: TTLCache[str, _Cached] | None = (
            TTLCache(config.cache_size, config.cache_ttl_seconds, timer=clock)
            if config.cache_size and config.cache_ttl_seconds
            else None
        )
        # keys and claim mapping, swapped together by reload(); a call reads the pair once
        self._state: tuple[_KeySet, _Mapping] = (_load_keys(config), _resolve_mapping(config, schema))

    @property
    def principal_type(self) -> str:
        return self._state[1].principal_type

    @property
    def claim_map(self) -> Mapping[str, str]:
        """The claim -> attribute mapping in effect (the default one when none is configured)."""
        return MappingProxyType({claim: attr for claim, attr, _ in self._state[1].claims})

    @property
    def key_ids(self) -> tuple[str | None, ...]:
        return tuple(k.kid for k in self._state[0].keys)

    def reload(self, schema: Schema | None = None) -> None:
        """Re-read the key files (key rotation) and, given a new schema, re-resolve the claim map.
        On any problem raises TokenConfigError and keeps the keys it had. Empties the cache, so a
        key removed from the files stops verifying at once."""
        mapping = self._state[1] if schema is None else _resolve_mapping(self.config, schema)
        keys = _load_keys(self.config)
        with self._lock:
            self._state = (keys, mapping)
            if self._cache is not None:
                self._cache.clear()

    def clear_cache(self) -> None:
        with self._lock:
            if self._cache is not None:
                self._cache.clear()

    def verify(self, token: str | None) -> VerifiedPrincipal:
        """The principal a valid token stands for; raises TokenError(reason) otherwise."""
        if token is None or token == "":
            raise TokenError("missing token")
        if not isinstance(token, str):
            raise TokenError("malformed token")
        if len(token) > self.config.max_token_bytes:
            raise TokenError("token too large")
        now = self._clock()
        cached = self._cached(token, now)
        if cached is not None:
            return cached
        state = self._state
        keys, mapping = state
        header = _header(token)
        alg: str = header["alg"]
        if alg.lower() == "none":
            raise TokenError("token uses alg none")
        if alg not in self.config.algorithms:
            raise TokenError(f"unsupported algorithm{_shown(alg)}")
        key = self._pick_key(keys, header.get("kid"))
        if alg not in key.algorithms:
            raise TokenError(f"algorithm{_shown(alg)} does not match the key")
        claims = self._decode(token, key)
        principal, iat = self._principal(claims, now, key, alg, mapping)
        self._remember(token, principal, iat, now, state)
        return principal

    # ---- steps ------------------------------------------------------------------------
    def _cached(self, token: str, now: float) -> VerifiedPrincipal | None:
        if self._cache is None:
            return None
        with self._lock:
            entry = self._cache.get(token)
            if entry is None:
                return None
            if now >= entry.deadline:
                self._cache.pop(token, None)
                return None
        # The entry was valid when stored; the clock has moved since.
        exp = entry.principal.expires_at
        if exp is not None and exp <= now - self._leeway:
            raise TokenError("token expired")
        self._check_age(entry.iat, now)
        return entry.principal

    def _remember(
        self, token: str, principal: VerifiedPrincipal, iat: float | None, now: float, state: tuple[_KeySet, _Mapping]
    ) -> None:
        if self._cache is None:
            return
        deadline = now + float(self.config.cache_ttl_seconds)
        if principal.expires_at is not None:
            deadline = min(deadline, principal.expires_at)
        if deadline <= now:
            return
        with self._lock:
            if self._state is state:  # not verified with keys that a reload has since replaced
                self._cache[token] = _Cached(principal, deadline, iat)

    @staticmethod
    def _pick_key(keys: _KeySet, kid: str | None) -> _Key:
        if kid is not None:
            key = keys.by_kid.get(kid)
            if key is not None:
                return key
            if len(keys.keys) == 1 and keys.keys[0].kid is None:  # a lone key without id serves all
                return keys.keys[0]
            raise TokenError(f"unknown key id{_shown(kid)}")
        if len(keys.keys) == 1:
            return keys.keys[0]
        raise TokenError("token has no key id")

    def _decode(self, token: str, key: _Key) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key.key,
                algorithms=sorted(key.algorithms),
                options={
                    "verify_signature": True,
                    "verify_exp": True,
                    "verify_nbf": True,
                    "verify_iat": True,
                    "verify_aud": self._audiences is not None,
                    "verify_iss": self._issuers is not None,
                    "verify_sub": True,
                    "verify_jti": True,
                    "require": list(self._require),
                    "strict_aud": False,
                    "enforce_minimum_key_length": True,
                },
                audience=self._audiences,
                issuer=self._issuers,  # a tuple: membership, never a substring test on a str
                leeway=self._leeway,
            )
        except jwt.PyJWTError as exc:
            raise TokenError(_pyjwt_reason(exc)) from None
        except Exception:  # fail closed whatever broke inside
            raise TokenError("malformed token") from None

    def _check_age(self, iat: float | None, now: float) -> None:
        max_age = self.config.max_age_seconds
        if max_age is not None and iat is not None and now - iat > float(max_age) + self._leeway:
            raise TokenError("token too old")

    def _principal(
        self, claims: dict[str, Any], now: float, key: _Key, alg: str, mapping: _Mapping
    ) -> tuple[VerifiedPrincipal, float | None]:
        exp, nbf, iat = (_claim_number(claims, name) for name in _TIME_CLAIMS)
        # pyjwt checked these against its own clock; check them against ours as well
        if exp is not None and exp <= now - self._leeway:
            raise TokenError("token expired")
        if nbf is not None and nbf > now + self._leeway:
            raise TokenError("token not yet valid")
        if iat is not None and iat > now + self._leeway:
            raise TokenError("token issued in the future")
        if self.config.max_age_seconds is not None and iat is None:
            raise TokenError("missing claim `iat`")
        self._check_age(iat, now)
        id_claim = self.config.id_claim
        pid = claims.get(id_claim)
        if pid is None:
            raise TokenError(f"missing claim `{id_claim}`")
        if not isinstance(pid, str) or not pid or len(pid) > MAX_ID_CHARS:
            raise TokenError(f"claim `{id_claim}` must be a non-empty string")
        attributes: dict[str, Any] = {}
        for claim, attr, convert in mapping.claims:
            value = claims.get(claim)
            if value is None:  # absent (or null): the attribute is not set by the token
                continue
            try:
                convert(value)
            except Exception as exc:
                raise TokenError(_conversion_reason(claim, attr, exc)) from None
            attributes[attr] = copy.deepcopy(value)
        principal = VerifiedPrincipal(
            type=mapping.principal_type,
            id=pid,
            attributes=MappingProxyType(attributes),
            claims=MappingProxyType(claims),
            expires_at=exp,
            key_id=key.kid,
            algorithm=alg,
            claim_attributes=mapping.attributes,
        )
        return principal, iat
