"""The HTTP endpoint: nginx auth_request, Traefik forwardAuth, Envoy http_service and AuthZEN 1.0.

One asyncio listener on the server's event loop (`--http-port`, `--http-host`), speaking the
strict HTTP/1.1 of `pdp.server.http_wire`. Paths of the endpoint itself:

| path | what |
| --- | --- |
| `/healthz` | 200 when a policy is loaded, 503 otherwise |
| `/access/v1/evaluation`, `/access/v1/evaluations` | AuthZEN 1.0 (POST, JSON) |
| `/.well-known/authzen-configuration` | AuthZEN metadata (GET) |
| anything else (`/` for nginx and Traefik, `/check/...` for Envoy) | the gateway check |

**The gateway check** rebuilds the client's request from exactly one of:

1. `X-Original-Method` + `X-Original-URI` (nginx `auth_request`; the subrequest is always a GET);
2. `X-Forwarded-Method` + `X-Forwarded-Uri` (Traefik `forwardAuth`), with `X-Forwarded-Host` as
   the client's Host;
3. neither: the request's own method and target (Envoy `http_service`), a leading `/check`
   segment removed (Envoy's `path_prefix: /check`, which keeps client paths away from the paths
   above).

Both families at once, one of a pair without the other, or a repeated one of these headers (or
of `Authorization`, `X-Real-IP`) is ambiguous and denied. The bearer token is `Authorization`.
Answers are only ever **200** (allow: `X-Pdp-Decision-Id`, every `header` obligation as a response
header and the `mask` obligations' paths in `X-Pdp-Mask`), **401** (no or a bad token:
`WWW-Authenticate: Bearer realm="pdp"`, plus `error="invalid_token"` when a token came) or **403**
(everything else: denials, malformed requests, internal errors). nginx turns any other status
into a 500. Denials carry `X-Pdp-Decision-Id` and a small JSON body that names no rule.

**Source IP** (`source.ip` in routes): the TCP peer, unless the peer is in
`settings.trusted_proxies`. From a trusted peer, `X-Forwarded-For` (all its fields, in order) is
read right to left and the first address that is not a trusted proxy is the client; when every
entry is trusted, the left-most one is. Without `X-Forwarded-For`, `X-Real-IP` (one address) is
the client. An entry that is not an IP address (`1.2.3.4:80` and `[::1]:80` are accepted) makes
the check a deny. IPv4-mapped IPv6 peers count as IPv4.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

from pdp.decision import Decision, DecisionError
from pdp.gateway.mapping import HttpRequest, bearer
from pdp.server.convert import BadRequest, Limits, check_limits
from pdp.server.http_wire import Request, WireError, WireLimits, read_request, render, safe_header
from pdp.server.service import DecisionService, Outcome
from pdp.server.servicer import Recorder
from pdp.tokens import TokenError

log = logging.getLogger("pdp.http")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HEALTH = "/healthz"
EVALUATION = "/access/v1/evaluation"
EVALUATIONS = "/access/v1/evaluations"
WELL_KNOWN = "/.well-known/authzen-configuration"
CHECK_PREFIX = "/check"  # Envoy http_service `path_prefix`, stripped in own-path mode
_TUPLE = ("subject", "action", "resource", "context")
# An evaluations request costs about (body size) x (evaluations): each one is decided (and
# logged) with the shared parts. Above this the request is refused with 400.
MAX_BATCH_WORK = 8 << 20
SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")

_SINGLE = ("authorization", "x-original-uri", "x-original-method", "x-forwarded-uri", "x-forwarded-method",
           "x-forwarded-host", "x-real-ip")  # fmt: skip
# Names an obligation must not set: framing, hop-by-hop, and the endpoint's own.
_RESERVED = frozenset(
    "content-length transfer-encoding connection keep-alive upgrade te trailer host date proxy-connection "
    "proxy-authenticate www-authenticate x-pdp-decision-id x-pdp-mask x-request-id".split()
)
_JSON = ("Content-Type", "application/json")
REALM = "pdp"
_SHOWN_TOKEN_PROBLEMS = frozenset({"missing token", "token expired", "token not yet valid"})
_HOST = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
_REQUEST_ID = re.compile(r"^[\x21-\x7e]{1,256}$")


class Malformed(ValueError):
    """A check request whose original request cannot be known for sure: a deny."""


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []


Response = tuple[int, list[tuple[str, str]], bytes]

# ---- source address -----------------------------------------------------------------------


def parse_trusted(cidrs: Iterable[str]) -> tuple[IPNetwork, ...]:
    out: list[IPNetwork] = []
    for cidr in cidrs:
        try:
            out.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"trusted-proxies: `{cidr}` is not an IP address or CIDR") from None
    return tuple(out)


def parse_ip(text: str) -> IPAddress | None:
    """`1.2.3.4`, `::1`, `[::1]`, `1.2.3.4:80`, `[::1]:80` -> the address (v4-mapped v6 as v4)."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (text[end + 1 :] and not re.fullmatch(r":[0-9]{1,5}", text[end + 1 :])):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # IPv4 with a port
        text, _, port = text.partition(":")
        if not port.isdigit():
            return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _is_trusted(ip: IPAddress, trusted: tuple[IPNetwork, ...]) -> bool:
    return any(ip.version == net.version and ip in net for net in trusted)


def client_address(peer: IPAddress | None, request: Request, trusted: tuple[IPNetwork, ...]) -> str:
    """The client's address as described in the module docstring; raises Malformed."""
    if peer is None:
        return ""
    if not _is_trusted(peer, trusted):
        return str(peer)
    forwarded = request.values("x-forwarded-for")
    if forwarded:
        hops = [hop.strip() for value in forwarded for hop in value.split(",")]
        parsed: list[IPAddress] = []
        for hop in reversed(hops):
            ip = parse_ip(hop)
            if ip is None:
                raise Malformed("X-Forwarded-For holds something that is not an IP address")
            if not _is_trusted(ip, trusted):
                return str(ip)
            parsed.append(ip)
        return str(parsed[-1])  # every hop is a trusted proxy: the left-most is the client
    real = request.values("x-real-ip")
    if real:
        ip = parse_ip(real[0])
        if ip is None:
            raise Malformed("X-Real-IP is not an IP address")
        return str(ip)
    return str(peer)


def _peer(writer: asyncio.StreamWriter) -> IPAddress | None:
    name = writer.get_extra_info("peername")
    if not isinstance(name, tuple) or not name:
        return None  # not an IP socket
    try:
        ip = ipaddress.ip_address(str(name[0]))
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


# ---- the gateway check ---------------------------------------------------------------------


def original_request(request: Request, peer: IPAddress | None, trusted: tuple[IPNetwork, ...]) -> HttpRequest:
    """The client's request a gateway asks about; raises Malformed when it is ambiguous."""
    for name in _SINGLE:
        if len(request.values(name)) > 1:
            raise Malformed(f"more than one {name} header")
    headers = dict(request.headers())
    nginx = "x-original-uri" in headers or "x-original-method" in headers
    traefik = "x-forwarded-uri" in headers or "x-forwarded-method" in headers
    if nginx and traefik:
        raise Malformed("both X-Original-* and X-Forwarded-Method/-Uri headers")
    if nginx:
        method, target = headers.get("x-original-method"), headers.get("x-original-uri")
        if method is None or target is None:
            raise Malformed("X-Original-Method and X-Original-URI go together")
    elif traefik:
        method, target = headers.get("x-forwarded-method"), headers.get("x-forwarded-uri")
        if method is None or target is None:
            raise Malformed("X-Forwarded-Method and X-Forwarded-Uri go together")
    else:
        method, target = request.method, request.target
        if target == CHECK_PREFIX or target.startswith((CHECK_PREFIX + "/", CHECK_PREFIX + "?")):
            target = target[len(CHECK_PREFIX) :]
            target = target if target.startswith("/") else "/" + target
    if not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,32}", method):
        raise Malformed("the original method is not an HTTP method")
    if not target.startswith("/"):
        raise Malformed("the original target is not a path")
    if "x-forwarded-host" in headers and peer is not None and _is_trusted(peer, trusted):
        headers["host"] = headers["x-forwarded-host"]  # believed only from a trusted proxy
    return HttpRequest(method.upper(), target, headers, client_address(peer, request, trusted))


def check_response(outcome: Outcome) -> Response:
    decision = outcome.decision
    did = outcome.decision_id
    headers = [("X-Pdp-Decision-Id", did)]
    if decision.allowed and not outcome.unauthenticated:
        added = _obligation_headers(decision)
        if added is None:
            log.error("decision %s: a header obligation cannot be sent over HTTP; denying", did)
            return _check_denied(did, 403)
        return 200, headers + added, b""
    if outcome.unauthenticated:
        return _check_denied(did, 401, token_problem(decision))
    return _check_denied(did, 403, advice=decision.advice)


def token_problem(decision: Decision) -> str:
    """Only the class of a token problem is shown: missing, expired, not yet valid, or invalid."""
    for error in decision.errors:
        if error.field == "bearer_token":
            return error.message if error.message in _SHOWN_TOKEN_PROBLEMS else "invalid token"
    return "invalid token"


def challenge(problem: str) -> tuple[str, str]:
    """RFC 6750: no error code when no credentials came, `invalid_token` otherwise."""
    value = f'Bearer realm="{REALM}"'
    if problem != "missing token":
        value += f', error="invalid_token", error_description="{problem}"'
    return ("WWW-Authenticate", value)


def _check_denied(did: str, status: int, problem: str = "", advice: Iterable[Any] = ()) -> Response:
    headers = [("X-Pdp-Decision-Id", did), _JSON]
    body: dict[str, Any] = {"decision_id": did}
    if status == 401:
        headers.append(challenge(problem))
        body.update(error="unauthenticated", reason=problem)
    else:
        body.update(error="forbidden", reason="access denied")
        shown = [{"name": a.get("name"), "value": a.get("value")} for a in advice]
        if shown:
            body["advice"] = shown
    return status, headers, json.dumps(body, default=str).encode()


def _obligation_headers(decision: Decision) -> list[tuple[str, str]] | None:
    """`header` obligations as response headers (repeats of one name joined), `mask` ones in
    X-Pdp-Mask; None when one cannot be sent safely (the caller then denies: fail closed)."""
    values: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    masks: list[str] = []
    for o in decision.obligations:
        kind = o.get("type")
        if kind == "header":
            name, value = str(o.get("name", "")), str(o.get("value", ""))
            if not safe_header(name, value) or name.lower() in _RESERVED:
                return None
            names.setdefault(name.lower(), name)
            seen = values.setdefault(name.lower(), [])
            if value not in seen:
                seen.append(value)
        elif kind == "mask":
            path = str(o.get("path", ""))
            if path and path not in masks:
                masks.append(path)
    out = [(names[key], ", ".join(vals)) for key, vals in values.items()]
    if masks:
        mask = ", ".join(masks)
        if not safe_header("X-Pdp-Mask", mask):
            return None
        out.append(("X-Pdp-Mask", mask))
    return out


# ---- AuthZEN --------------------------------------------------------------------------------


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Objects with a key twice are refused: which value would the engine see?"""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(f"duplicate key `{key}`")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_json(request: Request) -> Any:
    ctype = request.get("content-type")
    if ctype is not None:
        media = ctype.split(";", 1)[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            raise ApiError(415, "the body must be application/json")
    try:
        return json.loads(request.body, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except _DuplicateKey as exc:
        raise ApiError(400, str(exc)) from None
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ApiError(400, "the body is not valid JSON") from None


def _entity(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ApiError(400, f"{field}: must be an object")
    kind, ident = value.get("type"), value.get("id")
    if not isinstance(kind, str) or not kind:
        raise ApiError(400, f"{field}.type: is required (a non-empty string)")
    if not isinstance(ident, str) or not ident:
        raise ApiError(400, f"{field}.id: is required (a non-empty string)")
    out: dict[str, Any] = {"type": kind, "id": ident}
    properties = value.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            raise ApiError(400, f"{field}.properties: must be an object")
        out["attributes"] = properties
    return out


def authzen_request(item: dict[str, Any], field: str, *, token: str) -> dict[str, Any]:
    """An AuthZEN 4-tuple -> the engine's request. Raises ApiError (400) naming the field."""
    request: dict[str, Any] = {}
    subject = item.get("subject")
    if subject is not None:
        request["principal"] = _entity(subject, f"{field}subject")
    elif not token:
        raise ApiError(400, f"{field}subject: is required (or a bearer token)")
    action = item.get("action")
    if not isinstance(action, dict):
        raise ApiError(400, f"{field}action: is required (an object)")
    name = action.get("name")
    if not isinstance(name, str) or not name:
        raise ApiError(400, f"{field}action.name: is required (a non-empty string)")
    if action.get("properties") is not None and not isinstance(action["properties"], dict):
        raise ApiError(400, f"{field}action.properties: must be an object")
    request["action"] = name
    if item.get("resource") is None:
        raise ApiError(400, f"{field}resource: is required")
    request["resource"] = _entity(item["resource"], f"{field}resource")
    context = item.get("context")
    if context is not None:
        if not isinstance(context, dict):
            raise ApiError(400, f"{field}context: must be an object")
        request["context"] = context
    return request


def authzen_result(outcome: Outcome) -> dict[str, Any]:
    decision = outcome.decision
    context: dict[str, Any] = {"decision_id": outcome.decision_id}
    if decision.reasons:
        context["reasons"] = list(decision.reasons)
    if decision.obligations:
        context["obligations"] = [dict(o) for o in decision.obligations]
    if decision.advice:
        context["advice"] = [dict(a) for a in decision.advice]
    if decision.errors:
        text = "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in decision.errors)
        context["reason_admin"] = {"en": text}
    return {"decision": decision.allowed, "context": context}


def _unauthenticated(outcome: Outcome) -> ApiError:
    message = outcome.decision.errors[0].message if outcome.decision.errors else "unauthenticated"
    return ApiError(401, message, [challenge(token_problem(outcome.decision))])


# ---- the listener ---------------------------------------------------------------------------


class HttpEndpoint:
    def __init__(self, settings: Any, service: DecisionService, recorder: Recorder, limits: WireLimits | None = None):
        self.settings = settings
        self.service = service
        self.recorder = recorder
        self.trusted = parse_trusted(settings.trusted_proxies)
        self.limits = limits or WireLimits(max_body=settings.max_message_bytes)
        self.value_limits = Limits(
            max_depth=settings.max_depth, max_string=settings.max_string, max_batch=settings.max_batch
        )
        self.port = 0
        self._server: asyncio.Server | None = None
        self._busy: dict[asyncio.StreamWriter, bool] = {}
        self._closing = False
        self._responses = _response_counter(service)

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        self._server = await asyncio.start_server(
            self._connection, host, port, limit=self.limits.max_line, reuse_address=True, reuse_port=reuse_port
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        """Stop listening; idle connections close now, busy ones after their current answer."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for writer, busy in list(self._busy.items()):
            if not busy:
                writer.close()

    # -- connections ---------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer)
        self._busy[writer] = False
        try:
            while not self._closing:
                try:
                    request = await read_request(reader, writer, self.limits)
                except WireError as exc:
                    await self._send(writer, self._refusal(exc), keep_alive=False, version="HTTP/1.1")
                    break
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    break
                if request is None:
                    break
                self._busy[writer] = True
                status, headers, body = await self._dispatch(request, peer)
                request_id = request.get("x-request-id")
                if request_id is not None and _REQUEST_ID.match(request_id):
                    headers.append(("X-Request-ID", request_id))
                keep = request.keep_alive and not self._closing
                head = request.method == "HEAD"
                await self._send(writer, (status, headers, body), keep_alive=keep, version=request.version, head=head)
                self._busy[writer] = False
                if not keep:
                    break
        except (ConnectionError, TimeoutError):
            pass
        except Exception:  # never let one connection take the listener down
            log.exception("http endpoint: unexpected error on a connection")
        finally:
            self._busy.pop(writer, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _send(
        self,
        writer: asyncio.StreamWriter,
        response: Response,
        *,
        keep_alive: bool,
        version: str,
        head: bool = False,
    ) -> None:
        status, headers, body = response
        writer.write(render(status, headers, body, keep_alive=keep_alive, version=version, head=head))
        await asyncio.wait_for(writer.drain(), self.limits.write_timeout)

    def _refusal(self, exc: WireError) -> Response:
        """A request the parser refused: on the check endpoint 403 (nothing else is allowed
        there), elsewhere its status; the connection closes either way."""
        endpoint = _endpoint(exc.target.split("?", 1)[0]) if exc.target is not None else "unknown"
        log.info("http endpoint: refused a request (%s): %s", exc.status, exc.message)
        if endpoint == "check":
            status, body = 403, json.dumps({"error": "forbidden", "reason": "access denied"}).encode()
        else:
            status, body = exc.status, json.dumps({"error": exc.message}).encode()
        self._count(endpoint, status)
        return status, [_JSON], body

    def _count(self, endpoint: str, status: int) -> None:
        if self._responses is not None:
            self._responses.labels(endpoint, str(status)).inc()

    async def _dispatch(self, request: Request, peer: IPAddress | None) -> Response:
        endpoint = _endpoint(request.path)
        try:
            if endpoint == "check":
                response = await self._check(request, peer)
            elif endpoint == "health":
                response = self._health(request)
            elif endpoint == "metadata":
                response = self._metadata(request, peer)
            else:
                response = await self._authzen(request)
        except ApiError as exc:
            response = exc.status, [_JSON, *exc.headers], json.dumps({"error": exc.message}).encode()
        except Exception:
            log.exception("http endpoint: internal error on %s %s", request.method, request.path)
            if endpoint == "check":
                response = _check_denied(self.service.ids.next(), 403)  # never a 500 here
            else:
                response = 500, [_JSON], json.dumps({"error": "internal error"}).encode()
        self._count(endpoint, response[0])
        return response

    # -- endpoints -----------------------------------------------------------------------
    async def _check(self, request: Request, peer: IPAddress | None) -> Response:
        try:
            http = original_request(request, peer, self.trusted)
        except Malformed as exc:
            outcome = self._refused(str(exc), request)
            await self.recorder.record(outcome, "http")
            return check_response(outcome)
        outcome = self.service.decide_http(http)
        await self.recorder.record(outcome, "http")
        return check_response(outcome)

    def _refused(self, message: str, request: Request) -> Outcome:
        """A deny the service never saw (the check request itself was malformed), as an Outcome
        so that it is logged and counted like any other decision."""
        store = self.service.store
        decision = Decision(False, errors=(DecisionError(message, field="http"),), revision=store.revision)
        if self.service.metrics is not None:
            self.service.metrics.observe(False, True, 0.0)
        shown = {"http": {"method": request.method, "target": request.target.split("?", 1)[0]}}  # no query values
        return Outcome(decision, self.service.ids.next(), False, False, 0, shown, 0.0)

    def _health(self, request: Request) -> Response:
        if request.method not in ("GET", "HEAD"):
            raise ApiError(405, "use GET", [("Allow", "GET, HEAD")])
        store = self.service.store
        if store.current is None:
            return 503, [_JSON], json.dumps({"status": "not serving", "revision": ""}).encode()
        return 200, [_JSON], json.dumps({"status": "serving", "revision": store.revision}).encode()

    def _metadata(self, request: Request, peer: IPAddress | None) -> Response:
        if request.method not in ("GET", "HEAD"):
            raise ApiError(405, "use GET", [("Allow", "GET, HEAD")])
        scheme, host = "http", request.get("host") or ""
        if peer is not None and _is_trusted(peer, self.trusted):
            proto = request.get("x-forwarded-proto")
            scheme = proto if proto in ("http", "https") else scheme
            host = request.get("x-forwarded-host") or host
        if not _HOST.match(host):
            host = f"{self.settings.http_host}:{self.port}"
        base = f"{scheme}://{host}"
        document = {
            "policy_decision_point": base,
            "access_evaluation_endpoint": base + EVALUATION,
            "access_evaluations_endpoint": base + EVALUATIONS,
        }
        return 200, [_JSON], json.dumps(document).encode()

    async def _authzen(self, request: Request) -> Response:
        if request.path not in (EVALUATION, EVALUATIONS):
            raise ApiError(404, "not found")
        if request.method != "POST":
            raise ApiError(405, "use POST", [("Allow", "POST")])
        if len(request.values("authorization")) > 1:
            raise ApiError(400, "more than one Authorization header")
        body = parse_json(request)
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        try:
            check_limits(body, "body", self.value_limits)
        except BadRequest as exc:
            raise ApiError(400, str(exc)) from None
        token = bearer(request.headers())
        shared = self._key_parts(body)  # the shared 4-tuple serialised once for every cache key
        if request.path == EVALUATION or "evaluations" not in body:
            engine_request = authzen_request(body, "", token=token)
            outcome = await self._decide(engine_request, token, shared)
            return 200, [_JSON], json.dumps(authzen_result(outcome), default=str).encode()
        result = await self._evaluations(body, token, len(request.body), shared)
        return 200, [_JSON], json.dumps(result, default=str).encode()

    def _key_parts(self, item: dict[str, Any]) -> dict[str, str] | None:
        """Each part of an AuthZEN 4-tuple as cache-key text (None: the cache is off). The engine
        request is a function of the 4-tuple and the token, so the two make an exact key."""
        if not self.service.cache.enabled:
            return None
        return {key: _key_text(item.get(key)) for key in _TUPLE}

    async def _evaluations(
        self, body: dict[str, Any], token: str, body_bytes: int, shared: dict[str, str] | None
    ) -> dict[str, Any]:
        items = body["evaluations"]
        if not isinstance(items, list):
            raise ApiError(400, "evaluations: must be an array")
        if len(items) > self.value_limits.max_batch:
            limit = self.value_limits.max_batch
            raise ApiError(400, f"evaluations: {len(items)} items is more than the limit of {limit}")
        if body_bytes * max(len(items), 1) > MAX_BATCH_WORK:
            raise ApiError(
                400, f"evaluations: {len(items)} items of a {body_bytes}-byte body is too much work for one request"
            )
        options = body.get("options", {})
        if not isinstance(options, dict):
            raise ApiError(400, "options: must be an object")
        semantic = options.get("evaluations_semantic", "execute_all")
        if semantic not in SEMANTICS:
            raise ApiError(400, f"options.evaluations_semantic: must be one of {', '.join(SEMANTICS)}")
        if not items:  # no evaluations: the single evaluation of the top-level 4-tuple
            return authzen_result(await self._decide(authzen_request(body, "", token=token), token, shared))
        requests = []
        for i, item in enumerate(items):  # all of them checked before any is decided
            if not isinstance(item, dict):
                raise ApiError(400, f"evaluations[{i}]: must be an object")
            merged = {key: item[key] if key in item else body.get(key) for key in _TUPLE}
            parts = None
            if shared is not None:
                parts = {key: _key_text(item[key]) if key in item else shared[key] for key in _TUPLE}
            requests.append((authzen_request(merged, f"evaluations[{i}].", token=token), parts))
        results = []
        for engine_request, parts in requests:
            result = authzen_result(await self._decide(engine_request, token, parts))
            results.append(result)
            if (semantic == "deny_on_first_deny" and not result["decision"]) or (
                semantic == "permit_on_first_permit" and result["decision"]
            ):
                break
        return {"evaluations": results}

    async def _decide(self, engine_request: dict[str, Any], token: str, parts: dict[str, str] | None) -> Outcome:
        key = None
        if parts is not None and self.service.cache.enabled:
            key = ("authzen", tuple(parts[k] for k in _TUPLE), token)
        try:
            outcome = self.service.decide(engine_request, token=token, cache_key=key)
        except TokenError as exc:  # the subject is not the token's (raised past the service)
            decision = Decision(False, errors=(DecisionError(str(exc), field="bearer_token"),))
            outcome = Outcome(decision, self.service.ids.next(), False, True, 0, engine_request, 0.0)
        await self.recorder.record(outcome, "authzen")
        if outcome.unauthenticated:
            raise _unauthenticated(outcome)
        return outcome


def _key_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _endpoint(path: str) -> str:
    if path == HEALTH:
        return "health"
    if path == WELL_KNOWN:
        return "metadata"
    if path == "/access" or path.startswith("/access/"):
        return "authzen"
    return "check"


def _response_counter(service: DecisionService) -> Any:
    """`pdp_http_responses_total{endpoint,code}` on the server's metrics registry, if any."""
    if service.metrics is None:
        return None
    try:
        from prometheus_client import Counter

        return Counter(
            "pdp_http_responses",
            "HTTP endpoint answers by endpoint and status",
            ["endpoint", "code"],
            registry=service.metrics.registry,
        )
    except ValueError:  # already registered (a second endpoint on the same registry)
        return None


class _Off:
    port = 0

    def close(self) -> None:
        return None


async def start_http_endpoint(
    settings: Any, service: DecisionService, recorder: Recorder, loop: asyncio.AbstractEventLoop
) -> HttpEndpoint | _Off:
    """Listen on `settings.http_host:settings.http_port` (0 = off); several workers share the port."""
    if not settings.http_port:
        return _Off()
    endpoint = HttpEndpoint(settings, service, recorder)
    await endpoint.start(settings.http_host, settings.http_port, reuse_port=settings.workers > 1)
    print(f"pdp: http endpoint on {settings.http_host}:{endpoint.port}", file=sys.stderr, flush=True)
    return endpoint
