"""Composition root of `pdp serve`: builds every part once, wires them, runs, stops cleanly.

Start-up: bind, report NOT_SERVING, compile the policies off the loop, then SERVING.
Stop (SIGTERM/SIGINT): NOT_SERVING, let in-flight calls finish, flush the decision log.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from pdp.cache import DecisionCache
from pdp.decision import Decision
from pdp.server import envoy
from pdp.server.config import Settings
from pdp.server.convert import Limits
from pdp.server.envoy import add_envoy_servicer
from pdp.server.http_endpoint import start_http_endpoint
from pdp.server.metrics import Metrics
from pdp.server.policy_store import PolicyStore, Snapshot
from pdp.server.recorder import build_recorder
from pdp.server.service import DecisionService, TokenVerifierLike
from pdp.server.servicer import AuthorizationServicer
from pdp.server.servicer import add_to_server as add_authorization_servicer
from pdp.tokens import TokenConfig, TokenConfigError, TokenError, TokenVerifier
from pdp.v1 import authorization_pb2

log = logging.getLogger("pdp.server")

SERVICE_NAME = authorization_pb2.DESCRIPTOR.services_by_name["AuthorizationService"].full_name


def token_config(settings: Settings) -> TokenConfig | None:
    """Checked at start-up: a server told to verify tokens must not start without what it needs."""
    if not settings.jwt_keys:
        return None
    data: dict[str, Any] = {
        "key_files": list(settings.jwt_keys),
        "algorithms": list(settings.jwt_algorithms),
        "issuer": settings.jwt_issuer,
        "audience": settings.jwt_audience,
        "leeway_seconds": settings.jwt_leeway,
    }
    if settings.jwt_principal_type:
        data["principal_type"] = settings.jwt_principal_type
    if settings.jwt_claims:
        data["claim_map"] = dict(settings.jwt_claims)
    return TokenConfig.from_dict(data, where="jwt")


class _KeysUnavailable:
    """Stands in for a verifier that could not be built for a policy revision (a broken key
    file, a claim map that does not fit the new schema): every token is refused, so requests
    that need one are denied with a clear reason instead of raising. `reload()` (SIGHUP, a key
    file change) tries again and, once it succeeds, verifies with the real verifier."""

    REASON = "token keys unavailable"

    def __init__(self, config: TokenConfig, snapshot: Snapshot):
        self._config = config
        self._snapshot = snapshot
        self._inner: TokenVerifier | None = None

    def verify(self, token: str) -> Any:
        inner = self._inner
        if inner is None:
            raise TokenError(self.REASON)
        return inner.verify(token)

    def reload(self) -> None:
        if self._inner is None:
            self._inner = TokenVerifier(self._config, self._snapshot.engine.schema)
        else:
            self._inner.reload()


def _verifier_factory(config: TokenConfig | None) -> Callable[[Snapshot], TokenVerifierLike] | None:
    if config is None:
        return None

    def build(snapshot: Snapshot) -> TokenVerifierLike:
        try:
            return TokenVerifier(config, snapshot.engine.schema)
        except Exception as exc:  # fail closed: refuse tokens, keep serving
            log.error("revision %s: bearer tokens are refused until this is fixed: %s", snapshot.revision, exc)
            return _KeysUnavailable(config, snapshot)

    return build


def reload_token_keys(service: DecisionService) -> bool:
    """Re-read the verifier's key files (key rotation). Runs off the event loop. On any problem
    logs it and keeps the keys the verifier had. True when the keys were reloaded."""
    verifier = service._verifier  # noqa: SLF001 - wired here, at the composition root
    reload = getattr(verifier, "reload", None)
    if reload is None:
        return False
    try:
        reload()
    except Exception as exc:
        log.error("token keys not reloaded, the old ones stay in use: %s", exc)
        return False
    log.info("token keys reloaded")
    return True


def _key_mtimes(config: TokenConfig | None) -> tuple[tuple[int, int] | None, ...]:
    if config is None:
        return ()
    out: list[tuple[int, int] | None] = []
    for path in config.key_files:
        try:
            st = Path(path).stat()
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


async def _watch_keys(service: DecisionService, config: TokenConfig | None, interval: float) -> None:
    """Reload the token keys when a key file changes (polled like the policy files)."""
    loop = asyncio.get_running_loop()
    seen = await loop.run_in_executor(None, _key_mtimes, config)
    while True:
        await asyncio.sleep(interval)
        now = await loop.run_in_executor(None, _key_mtimes, config)
        if now != seen:
            seen = now
            await loop.run_in_executor(None, reload_token_keys, service)


def _credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if not settings.tls_cert or not settings.tls_key:
        return None
    cert = Path(settings.tls_cert).read_bytes()
    key = Path(settings.tls_key).read_bytes()
    ca = Path(settings.client_ca).read_bytes() if settings.client_ca else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


async def serve(settings: Settings, *, worker: int = 0) -> int:
    loop = asyncio.get_running_loop()
    metrics = Metrics()
    cache: DecisionCache[Decision] = DecisionCache(settings.cache_size, settings.cache_ttl)
    store = PolicyStore(settings.policy_dir)
    tokens = token_config(settings)
    service = DecisionService(
        store,
        cache=cache,
        metrics=metrics,
        verifier_factory=_verifier_factory(tokens),
        token_required=bool(settings.jwt_keys),
    )
    recorder = build_recorder(settings, worker)
    health_servicer = health.aio.HealthServicer()

    def on_swap(snapshot: Snapshot) -> None:  # runs in the reload thread
        try:
            service.on_swap(snapshot)
        except Exception:  # the new revision is in place: keep serving it (tokens fail closed)
            log.exception("revision %s: swap-in step failed; serving it anyway", snapshot.revision)
        servicer.responses.clear()
        for name in ("", SERVICE_NAME):
            asyncio.run_coroutine_threadsafe(health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING), loop)

    store._on_swap = on_swap  # noqa: SLF001 - wired here, at the composition root
    limits = Limits(
        max_depth=settings.max_depth,
        max_string=settings.max_string,
        max_batch=settings.max_batch,
        max_message=settings.max_message_bytes,
    )
    servicer = AuthorizationServicer(service, recorder, limits)
    metrics.watch(
        queue_depth=recorder.queue_depth,
        dropped=recorder.dropped,
        reloads=lambda: store.reloads,
        reload_errors=lambda: store.reload_errors,
    )

    server = grpc.aio.server(
        options=[
            # gRPC itself refuses (RESOURCE_EXHAUSTED) only far beyond the limit, to bound memory;
            # up to there the servicer answers INVALID_ARGUMENT with the sizes.
            ("grpc.max_receive_message_length", 2 * settings.max_message_bytes + 65536),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 1),
        ]
    )
    add_authorization_servicer(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    add_envoy_servicer(server, service, recorder, settings)
    reflection.enable_server_reflection(
        (SERVICE_NAME, envoy.SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
    )
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    address = f"{settings.host}:{settings.port}"
    credentials = _credentials(settings)
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    await server.start()
    if settings.metrics_port:
        metrics.serve(settings.metrics_host, settings.metrics_port + worker)

    await asyncio.to_thread(store.reload, force=True)
    store.start_watching(settings.reload_interval)
    http_endpoint = await start_http_endpoint(settings, service, recorder, loop)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def on_sighup() -> None:
        store.request_reload()
        loop.run_in_executor(None, reload_token_keys, service)  # key rotation, off the loop

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    key_watch = (
        loop.create_task(_watch_keys(service, tokens, settings.reload_interval))
        if tokens is not None and settings.reload_interval > 0
        else None
    )
    state = f"revision {store.revision}" if store.current else f"no policy ({store.last_error.splitlines()[0]})"
    print(f"pdp: worker {worker} serving {state} on {settings.host}:{port}", file=sys.stderr, flush=True)

    await stop.wait()
    print(f"pdp: worker {worker} stopping", file=sys.stderr, flush=True)
    if key_watch is not None:
        key_watch.cancel()
    await health_servicer.enter_graceful_shutdown()
    await server.stop(settings.grace_seconds)
    http_endpoint.close()
    store.stop_watching()
    await asyncio.to_thread(recorder.close)
    print(f"pdp: worker {worker} stopped", file=sys.stderr, flush=True)
    return 0


def run(settings: Settings, argv: list[str], *, worker: int | None = None) -> int:
    """Run one server process, or a supervisor of `settings.workers` of them sharing the port."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        token_config(settings)
    except TokenConfigError as exc:
        print(f"pdp serve: {exc}", file=sys.stderr)
        return 2
    if worker is not None or settings.workers == 1:
        return asyncio.run(serve(settings, worker=worker or 0))
    return _supervise(settings, argv)


def _supervise(settings: Settings, argv: list[str]) -> int:
    """Start N workers (each a full server on the same port, SO_REUSEPORT) and relay signals."""
    children = [
        subprocess.Popen([sys.executable, "-m", "pdp.cli", "serve", *argv, "--worker-index", str(i)])
        for i in range(settings.workers)
    ]

    def relay(signum: int, _frame: object) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, relay)
    codes = [child.wait() for child in children]
    return 0 if all(code == 0 for code in codes) else 1
