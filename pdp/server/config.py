"""Server settings: defaults, then a TOML config file, then command-line flags.

Every setting is a flag and a config key of the same name (dashes in flags, underscores
in the file). Validated once, at start-up, into a frozen object.
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Settings:
    policy_dir: str = "policies"
    host: str = "127.0.0.1"
    port: int = 50051
    workers: int = 1
    # TLS: a certificate and key turn TLS on; a client CA also requires client certificates.
    tls_cert: str | None = None
    tls_key: str | None = None
    client_ca: str | None = None
    # Decision cache.
    cache_size: int = 100_000
    cache_ttl: float = 60.0
    # Decision log: off unless a path is given.
    decision_log: str | None = None
    decision_log_format: str = "jsonl"
    decision_log_max_bytes: int = 100 * 1024 * 1024
    decision_log_backups: int = 5
    decision_log_queue: int = 10_000
    decision_log_on_full: str = "block"
    # Reloads: polling interval of the policy directory (0 = only on SIGHUP).
    reload_interval: float = 2.0
    # Limits.
    max_message_bytes: int = 4 * 1024 * 1024
    max_batch: int = 100
    max_depth: int = 16
    max_string: int = 8192
    # Metrics: Prometheus text on this HTTP port (0 = off).
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    # Graceful stop: how long in-flight calls may take to finish.
    grace_seconds: float = 10.0
    # Gateways. Envoy ext_authz (envoy.service.auth.v3.Authorization) is on the gRPC port.
    envoy_dry_run: bool = False  # allow everything, but decide and log the real answer
    envoy_remove_headers: tuple[str, ...] = ("authorization",)
    # HTTP endpoint for nginx auth_request, Traefik forwardAuth, Envoy http_service, AuthZEN (0 = off).
    http_port: int = 0
    http_host: str = "127.0.0.1"
    trusted_proxies: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    # JWT: verification is on when keys are given.
    jwt_keys: tuple[str, ...] = ()
    jwt_algorithms: tuple[str, ...] = ("RS256",)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway: float = 30.0
    jwt_principal_type: str | None = None
    jwt_claims: dict[str, str] = field(default_factory=dict)

    def validate(self) -> Settings:
        problems = []
        if not 0 <= self.port <= 65535:
            problems.append("port must be 0-65535")
        if self.workers < 1:
            problems.append("workers must be at least 1")
        if self.workers > 1 and self.port == 0:
            problems.append("several workers need a fixed port to share")
        if bool(self.tls_cert) != bool(self.tls_key):
            problems.append("tls-cert and tls-key go together")
        if self.client_ca and not self.tls_cert:
            problems.append("client-ca needs tls-cert and tls-key")
        if self.decision_log_format not in ("jsonl", "msgpack"):
            problems.append("decision-log-format is jsonl or msgpack")
        if self.decision_log_on_full not in ("block", "drop"):
            problems.append("decision-log-on-full is block or drop")
        for name in ("max_message_bytes", "max_batch", "max_depth", "max_string"):
            if getattr(self, name) < 1:
                problems.append(f"{name.replace('_', '-')} must be positive")
        for cidr in self.trusted_proxies:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                problems.append(f"trusted-proxies: `{cidr}` is not an IP network")
        if self.jwt_keys and "none" in [a.lower() for a in self.jwt_algorithms]:
            problems.append("jwt-algorithms must not include none")
        if problems:
            raise ConfigError("; ".join(problems))
        return self


_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policy_dir", nargs="?", help="policy directory (default: policies)")
    parser.add_argument("--config", help="a TOML file with any of the settings below")
    for f in dataclasses.fields(Settings):
        if f.name == "policy_dir":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name in ("envoy_remove_headers", "trusted_proxies"):
            parser.add_argument(flag, help="comma-separated")
        elif isinstance(f.default, bool):
            parser.add_argument(flag, nargs="?", const="true", help=f"default: {f.default}")
        elif f.name == "jwt_keys":
            parser.add_argument(flag, action="append", help="a PEM or JWKS file (repeatable)")
        elif f.name == "jwt_claims":
            parser.add_argument(flag, action="append", metavar="CLAIM=ATTRIBUTE", help="map a claim (repeatable)")
        elif f.name == "jwt_algorithms":
            parser.add_argument(flag, help="comma-separated, e.g. RS256,ES256")
        else:
            parser.add_argument(flag, help=f"default: {f.default}")


def _coerce(name: str, value: Any) -> Any:
    default = _FIELDS[name].default
    if name in ("jwt_keys", "jwt_algorithms", "envoy_remove_headers", "trusted_proxies"):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return tuple(str(v) for v in value)
    if name == "jwt_claims":
        if isinstance(value, list):
            pairs = [item.split("=", 1) for item in value]
            if any(len(p) != 2 for p in pairs):
                raise ConfigError("jwt-claims entries look like claim=attribute")
            return dict(pairs)
        if not isinstance(value, dict):
            raise ConfigError("jwt_claims must be a table of claim = attribute")
        return {str(k): str(v) for k, v in value.items()}
    if isinstance(default, bool):
        return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes")
    try:
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name.replace('_', '-')}: `{value}` is not a number") from None
    return None if value is None else str(value)


def load_settings(args: argparse.Namespace) -> Settings:
    values: dict[str, Any] = {}
    if getattr(args, "config", None):
        try:
            data = tomllib.loads(Path(args.config).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"config {args.config}: {exc}") from None
        section = data.get("serve", data)
        for key, value in section.items():
            name = key.replace("-", "_")
            if name not in _FIELDS:
                raise ConfigError(f"config {args.config}: unknown setting `{key}`")
            values[name] = _coerce(name, value)
    for name in _FIELDS:
        value = getattr(args, name, None)
        if value is not None:
            values[name] = _coerce(name, value)
    return Settings(**values).validate()
