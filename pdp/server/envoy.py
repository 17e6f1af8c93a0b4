"""Envoy ext_authz v3 (`envoy.service.auth.v3.Authorization/Check`) on the gRPC server.

Envoy, Istio's `CUSTOM` action, Envoy Gateway and proxyless gRPC call `Check` once per HTTP
request. The request becomes a gateway `HttpRequest`, `DecisionService.decide_http` decides
(routes, bearer token, engine), the decision is logged with source `envoy`, and the answer is a
`CheckResponse` built explicitly for both outcomes, because Envoy reads a default (empty)
`CheckResponse` as an allow.

Reading the request:

- `attributes.request.http` is required (a TCP check has none: denied). `method` and `path`
  (which carries the raw query; `query` is appended only when `path` has none) are required,
  with the `:method` and `:path` pseudo-headers as fallbacks.
- Headers come from `headers` (a map, repeats comma-joined by Envoy) **and** `header_map`
  (`encode_raw_headers: true`, proxyless gRPC: repeated `raw_value` bytes): both are read and
  merged, a name present in `header_map` taking its value from there (repeats comma-joined, as
  Envoy does for `headers`; bytes that are not UTF-8 are replaced). Names are lower-cased. A
  decision reads only `authorization` and the headers the policy's routes name, so when Envoy
  sent lower-case `headers` and no `header_map`, only those are read off the message.
- `source.address.socket_address.address` is the source IP (the TCP peer: `x-forwarded-for` is
  not trusted), `source.principal` the peer's identity (a SPIFFE id under mTLS).

Answering (the server sends the serialized answer: an allow is a per-decision template's bytes
with the decision id spliced in):

- **Allow**: `status` OK and `ok_response`: `x-pdp-decision-id` (always, first), the decision's
  `header` obligations, and `x-pdp-mask` (comma-separated paths) when the decision has `mask`
  obligations, which only the upstream can discharge. Every header sets both `append` (false)
  and `append_action` (OVERWRITE_IF_EXISTS_OR_ADD), as Envoy versions read one or the other; a
  second, different value of the same obligation header is appended rather than overwritten.
  `headers_to_remove`: `settings.envoy_remove_headers` (e.g. `authorization`), plus every header
  any obligation of the policy can set and the `x-pdp-*` headers, when this answer does not set
  them, so that a client cannot forge them. An obligation header with an empty value is removed
  (Envoy skips empty values, which would let the client's value through).
- **Deny**: `status` PERMISSION_DENIED and `denied_response`: HTTP 401 with `www-authenticate:
  Bearer` (RFC 6750) when the token is missing or bad, 403 otherwise; a JSON body
  `{"decision_id", "error": "unauthenticated"|"forbidden", "reason", "advice"?}`. The reason is
  `access denied`, or for a token only its class (`missing token`, `token expired`, `token not
  yet valid`, else `invalid token`); never rule ids or error details. Advice (e.g. step-up MFA)
  is shown without its rule id.
- An obligation the gateway cannot apply (an unknown type, a reserved or invalid header name or
  value) makes an allow a 403: the policy asked for something that would not happen.
- `dynamic_metadata` (both outcomes): `decision_id`, `revision`, `decision` (in dry-run mode
  `decision` is `allow`, with `real_decision` and `dry_run: true`).
- Any exception: logged, and a 403 deny (never an allow, never a gRPC error that Envoy's
  `failure_mode_allow` could turn into an allow).
- Dry run (`settings.envoy_dry_run`): every request is allowed, with `x-pdp-dry-run-decision:
  allow|deny` upstream; the real decision is made and logged. An internal error still denies.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Protocol

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from pdp.decision import Decision, DecisionError
from pdp.gateway.mapping import HttpRequest
from pdp.server.config import Settings
from pdp.server.service import DecisionService, Outcome

log = logging.getLogger("pdp.server.envoy")

SERVICE_NAME: str = external_auth_pb2.DESCRIPTOR.services_by_name["Authorization"].full_name
SOURCE = "envoy"  # the decision log's `source`

DECISION_ID_HEADER = "x-pdp-decision-id"
MASK_HEADER = "x-pdp-mask"
DRY_RUN_HEADER = "x-pdp-dry-run-decision"
_OWN_HEADERS = (DECISION_ID_HEADER, MASK_HEADER, DRY_RUN_HEADER)
REALM = "pdp"

_OK = 0  # google.rpc.Code.OK
_PERMISSION_DENIED = 7  # google.rpc.Code.PERMISSION_DENIED
_HTTP_UNAUTHORIZED = 401  # envoy.type.v3.StatusCode.Unauthorized
_HTTP_FORBIDDEN = 403  # envoy.type.v3.StatusCode.Forbidden
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_APPEND = base_pb2.HeaderValueOption.APPEND_IF_EXISTS_OR_ADD

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+")  # an HTTP header name (RFC 9110 token), lower-case
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # control characters but tab
_SHOWN_TOKEN_PROBLEMS = frozenset({"missing token", "token expired", "token not yet valid"})


class Recorder(Protocol):
    async def record(self, outcome: Outcome, source: str) -> None: ...


class BadCheckRequest(ValueError):
    """The CheckRequest lacks what a decision needs: deny it."""

    def __init__(self, message: str, field: str):
        super().__init__(message)
        self.message = message
        self.field = field


class _Undischargeable(ValueError):
    """An obligation that this gateway cannot apply: the allow becomes a deny."""


# ---- request ---------------------------------------------------------------------------------


def http_request(check: Any, names: Collection[str] | None = None) -> HttpRequest:
    """The gateway request inside an Envoy CheckRequest (see the module docstring). `names`: see
    `request_headers`."""
    return HttpRequest(*_request_parts(check, names))


def _request_parts(check: Any, names: Collection[str] | None = None) -> tuple[str, str, dict[str, str], str, str]:
    """`http_request`'s fields: method, target, headers, source IP, source principal."""
    attributes = check.attributes
    request = attributes.request
    if not request.HasField("http"):
        raise BadCheckRequest("not an HTTP request: attributes.request.http is missing", "attributes.request.http")
    http = request.http
    method = http.method
    target = http.path
    if not method or not target:
        names = None  # the pseudo-headers stand in
    headers = request_headers(http, names)
    if not method:
        method = headers.get(":method", "")
        if not method:
            raise BadCheckRequest("the request has no method", "attributes.request.http.method")
    if not target:
        target = headers.get(":path", "")
        if not target:
            raise BadCheckRequest("the request has no path", "attributes.request.http.path")
    if http.query and "?" not in target:
        target = f"{target}?{http.query}"
    source = attributes.source
    # An address that is not a socket address (a pipe, ...) reads as the default: no IP.
    return method, target, headers, source.address.socket_address.address, source.principal


def request_headers(http: Any, names: Collection[str] | None = None) -> dict[str, str]:
    """`headers` merged with `header_map`; a name in `header_map` takes its value from there.

    `names` (lower-case): the only headers the caller reads. Then, in the common case (Envoy's
    lower-case `headers` and no `header_map`) only those are read off the message; in any other
    case all of them are, as without `names`.
    """
    given = http.headers
    entries = http.header_map.headers if http.HasField("header_map") else ()
    if names is not None and not entries:
        if not given:
            return {}
        if "".join(given).islower():
            found = {}
            for name in names:
                value = given.get(name)
                if value is not None:
                    found[name] = value
            return found
    out = dict(given)
    if out and not "".join(out).islower():  # Envoy sends lower-case names; others may not
        out = {key.lower(): value for key, value in out.items()}
    if entries:
        raw: dict[str, list[str]] = {}
        for entry in entries:
            value = entry.raw_value.decode("utf-8", "replace") if entry.raw_value else entry.value
            raw.setdefault(entry.key.lower(), []).append(value)
        for key, values in raw.items():
            out[key] = values[0] if len(values) == 1 else ",".join(values)
    return out


# ---- servicer --------------------------------------------------------------------------------

_TEMPLATES_MAX = 4096


class EnvoyAuthorizationServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc]
    """`Check`: decide, record, answer. Allow answers are copied from a template per decision.

    The engine hands out one shared, immutable `Decision` object per distinct outcome, so the
    allow response (headers, removals, metadata) is built once per decision object and per
    policy revision, and each answer is a copy with its own decision id. The template keeps
    its decision alive, so an `id()` is never reused while its entry exists.
    """

    def __init__(self, service: DecisionService, recorder: Recorder, settings: Settings):
        self.service = service
        self.recorder = recorder
        self.dry_run = settings.envoy_dry_run
        self._configured_removals = _removable(settings.envoy_remove_headers)
        self._revision: str | None = None
        self._removals: tuple[str, ...] = ()
        # id(decision) -> (it, allow response or None, why not, {id length: the response's bytes around the ids})
        self._templates: dict[int, tuple[Decision, Any, str, dict[int, tuple[bytes, ...]]]] = {}

    async def Check(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """`check`, answering a CheckResponse message."""
        return external_auth_pb2.CheckResponse.FromString(await self.check(request, context))

    async def check(self, request: Any, context: grpc.aio.ServicerContext) -> bytes:
        """Decide, record, answer: the serialized CheckResponse (what the server registers)."""
        try:
            outcome = self.decide(request)
            await self.recorder.record(outcome, SOURCE)
            return self.encode(outcome)
        except Exception:
            decision_id = self.service.ids.next()
            log.exception("envoy ext_authz: internal error; denying (decision id %s)", decision_id)
            return _serialized(self._internal_error(decision_id))

    def decide(self, request: Any) -> Outcome:
        service = self.service
        snapshot = service.store.current
        try:
            if snapshot is None:  # nothing is loaded (the service denies it)
                http = http_request(request)
            else:  # only the headers that this revision's routes (and the token) read
                parts = _request_parts(request, service.gateway_headers(snapshot))
        except BadCheckRequest as exc:
            return self._rejected(exc)
        if snapshot is None:
            return service.decide_http(http)
        return service.decide_http_parts(*parts, snapshot=snapshot)

    def response(self, outcome: Outcome) -> Any:
        """The CheckResponse message for `outcome`."""
        return external_auth_pb2.CheckResponse.FromString(self.encode(outcome))

    def encode(self, outcome: Outcome) -> bytes:
        """The serialized CheckResponse for `outcome`: an allow is its decision's template with
        the decision id put in (spliced into the template's bytes, which keep one blank of the
        id's length in each of its two places)."""
        decision = outcome.decision
        if not decision.allowed and not self.dry_run:
            return _serialized(self._deny(outcome))
        self._check_revision()
        entry = self._templates.get(id(decision))
        if entry is None or entry[0] is not decision:
            entry = (decision, *self._allow_template(decision), {})
            if len(self._templates) >= _TEMPLATES_MAX:
                self._templates.clear()
            self._templates[id(decision)] = entry
        template, problem, spliced = entry[1], entry[2], entry[3]
        if template is None:
            log.warning("envoy ext_authz: decision %s denied: %s", outcome.decision_id, problem)
            return _serialized(self._deny(outcome))
        raw = outcome.decision_id.encode()
        parts = spliced.get(len(raw))
        if parts is None:
            parts = spliced[len(raw)] = _splice_points(template, len(raw))
        if parts:
            return raw.join(parts)
        return _serialized(_with_id(template, outcome.decision_id))

    # ---- answers -----------------------------------------------------------------------------

    def _allow_template(self, decision: Decision) -> tuple[Any, str]:
        """The allow answer for `decision` (decision id left blank), or None and why it is a deny."""
        real = "deny"
        obligations: _Obligations = ([], [], [])
        problem = ""
        if decision.allowed:
            try:
                obligations = _obligations(decision.obligations)
                real = "allow"
            except _Undischargeable as exc:
                problem = str(exc)
                if not self.dry_run:
                    return None, problem
                log.warning("envoy ext_authz (dry run): decisions like this one would be denied: %s", problem)
        sets, removes, masks = obligations
        response = external_auth_pb2.CheckResponse()
        response.status.code = _OK
        ok = response.ok_response
        _header(ok.headers.add(), DECISION_ID_HEADER, "")  # first: filled in per answer
        set_names: set[str] = {DECISION_ID_HEADER}
        for name, value in sets:
            _header(ok.headers.add(), name, value, append=name in set_names)
            set_names.add(name)
        if masks:
            _header(ok.headers.add(), MASK_HEADER, ",".join(masks))
            set_names.add(MASK_HEADER)
        if self.dry_run:
            _header(ok.headers.add(), DRY_RUN_HEADER, real)
            set_names.add(DRY_RUN_HEADER)
        removals = [name for name in self._removals if name not in set_names]
        removals.extend(name for name in removes if name not in set_names and name not in removals)
        ok.headers_to_remove.extend(removals)
        _metadata(response, "", decision.revision, real, dry_run=self.dry_run)
        return response, problem

    def _deny(self, outcome: Outcome) -> Any:
        decision = outcome.decision
        response = external_auth_pb2.CheckResponse()
        denied = response.denied_response
        body: dict[str, Any] = {"decision_id": outcome.decision_id}
        if outcome.unauthenticated:
            problem = _token_problem(decision.errors)
            response.status.code = _PERMISSION_DENIED
            response.status.message = "unauthenticated"
            denied.status.code = _HTTP_UNAUTHORIZED
            challenge = f'Bearer realm="{REALM}"'
            if problem != "missing token":  # RFC 6750 3.1: no error code when no credentials came
                challenge += f', error="invalid_token", error_description="{problem}"'
            _header(denied.headers.add(), "www-authenticate", challenge)
            body.update(error="unauthenticated", reason=problem)
        else:
            response.status.code = _PERMISSION_DENIED
            response.status.message = "access denied"
            denied.status.code = _HTTP_FORBIDDEN
            body.update(error="forbidden", reason="access denied")
            advice = [{"name": a.get("name"), "value": a.get("value")} for a in decision.advice]
            if advice:
                body["advice"] = advice
        _denied_body(denied, outcome.decision_id, body)
        _metadata(response, outcome.decision_id, decision.revision, "deny", dry_run=False)
        return response

    def _internal_error(self, decision_id: str) -> Any:
        response = external_auth_pb2.CheckResponse()
        response.status.code = _PERMISSION_DENIED
        response.status.message = "internal error"
        denied = response.denied_response
        denied.status.code = _HTTP_FORBIDDEN
        _denied_body(denied, decision_id, {"decision_id": decision_id, "error": "forbidden", "reason": "access denied"})
        _metadata(response, decision_id, self.service.store.revision, "deny", dry_run=False)
        return response

    def _rejected(self, exc: BadCheckRequest) -> Outcome:
        """A CheckRequest that cannot be decided: an explicit deny, counted and logged like any."""
        service = self.service
        started = time.perf_counter()
        snapshot = service.store.current
        decision = Decision(
            False, errors=(DecisionError(exc.message, field=exc.field),), revision=service.store.revision
        )
        latency = (time.perf_counter() - started) * 1e6
        if service.metrics is not None:
            service.metrics.observe(False, True, latency / 1e6)
        schema = snapshot.engine.schema if snapshot is not None else None
        return Outcome(decision, service.ids.next(), False, False, 0, {"http": {}}, latency, schema)

    def _check_revision(self) -> None:
        """On a new policy revision: the removals (configured, the policy's obligation headers and
        ours) are recomputed and the allow templates dropped."""
        snapshot = self.service.store.current
        revision = snapshot.revision if snapshot is not None else ""
        if revision != self._revision:
            names = list(self._configured_removals)
            if snapshot is not None:
                names.extend(sorted(policy_header_names(snapshot.engine.policy)))
            names.extend(_OWN_HEADERS)
            self._removals = tuple(dict.fromkeys(_removable(names)))
            self._templates = {}
            self._revision = revision


# ---- helpers ---------------------------------------------------------------------------------

_Obligations = tuple[list[tuple[str, str]], list[str], list[str]]  # headers to set, to remove, masks


def _obligations(obligations: Iterable[Mapping[str, Any]]) -> _Obligations:
    sets: list[tuple[str, str]] = []
    removes: list[str] = []
    masks: list[str] = []
    for o in obligations:
        kind = o.get("type")
        if kind == "header":
            name = str(o.get("name", "")).lower()
            value = str(o.get("value", ""))
            if not _TOKEN.fullmatch(name) or name == "host" or name.startswith("x-pdp-"):
                raise _Undischargeable(f"obligation header name `{name}` cannot be set by the gateway")
            if _BAD_VALUE.search(value):
                raise _Undischargeable(f"obligation header `{name}` has a control character in its value")
            if value == "":
                removes.append(name)
            elif (name, value) not in sets:
                sets.append((name, value))
        elif kind == "mask":
            path = str(o.get("path", ""))
            if not path or "," in path or _BAD_VALUE.search(path):
                raise _Undischargeable(f"mask obligation `{path}` cannot be passed upstream")
            if path not in masks:
                masks.append(path)
        else:
            raise _Undischargeable(f"obligation of type `{kind}` is not supported by the Envoy gateway")
    set_names = {name for name, _ in sets}
    return sets, [name for name in removes if name not in set_names], masks


def _serialized(message: Any) -> bytes:
    out: bytes = message.SerializeToString()
    return out


def _with_id(template: Any, decision_id: str) -> Any:
    response = external_auth_pb2.CheckResponse()
    response.CopyFrom(template)
    response.ok_response.headers[0].header.value = decision_id
    response.dynamic_metadata.fields["decision_id"].string_value = decision_id
    return response


def _splice_points(template: Any, length: int) -> tuple[bytes, ...]:
    """The allow template serialized with a blank decision id of `length` bytes, cut around the
    two blanks: `id.join(parts)` is the answer for an id of that length. Empty when the blank
    is not found exactly twice, or the result does not parse as the answer built field by field
    (the caller then builds it so)."""
    if length == 0:
        return ()
    blank = "\x00" * length
    parts = tuple(_with_id(template, blank).SerializeToString().split(blank.encode()))
    sample = "s" * length
    if len(parts) != 3 or external_auth_pb2.CheckResponse.FromString(sample.encode().join(parts)) != _with_id(
        template, sample
    ):
        return ()
    return parts


def policy_header_names(policy: Any) -> frozenset[str]:
    """Every header name an obligation of the compiled policy can set."""
    names: set[str] = set()
    for bucket in policy.buckets.values():
        for rule in bucket.rules:
            names.update(name.lower() for name in rule.header_names)
    return frozenset(names)


def _removable(names: Iterable[str]) -> tuple[str, ...]:
    """Envoy never removes pseudo-headers or Host; leave them out rather than pretend."""
    out = []
    for name in names:
        name = name.strip().lower()
        if name and not name.startswith(":") and name != "host" and name not in out:
            out.append(name)
    return tuple(out)


def _header(option: Any, key: str, value: str, *, append: bool = False) -> None:
    option.header.key = key
    option.header.value = value
    option.append.value = append  # read by Envoy <= 1.36 (and first by later ones)
    option.append_action = _APPEND if append else _OVERWRITE


def _denied_body(denied: Any, decision_id: str, body: dict[str, Any]) -> None:
    _header(denied.headers.add(), "content-type", "application/json")
    _header(denied.headers.add(), "cache-control", "no-store")
    _header(denied.headers.add(), DECISION_ID_HEADER, decision_id)
    denied.body = json.dumps(body, separators=(",", ":"))


def _metadata(response: Any, decision_id: str, revision: str, decision: str, *, dry_run: bool) -> None:
    """`dynamic_metadata`, which Envoy keeps under `envoy.filters.http.ext_authz` (access logs)."""
    fields = response.dynamic_metadata.fields  # field by field: ~3x faster than Struct.update
    fields["decision_id"].string_value = decision_id
    fields["revision"].string_value = revision
    fields["decision"].string_value = "allow" if dry_run else decision
    if dry_run:
        fields["real_decision"].string_value = decision
        fields["dry_run"].bool_value = True


def _token_problem(errors: Iterable[DecisionError]) -> str:
    """Only the class of a token problem is shown: missing, expired, not yet valid, or invalid."""
    for error in errors:
        if error.field == "bearer_token":
            return error.message if error.message in _SHOWN_TOKEN_PROBLEMS else "invalid token"
    return "invalid token"


def add_envoy_servicer(
    server: grpc.aio.Server, service: DecisionService, recorder: Recorder, settings: Settings
) -> EnvoyAuthorizationServicer:
    """Register `envoy.service.auth.v3.Authorization` on the gRPC server (same port); `check`
    answers bytes, sent as they are."""
    servicer = EnvoyAuthorizationServicer(service, recorder, settings)
    handlers = {
        "Check": grpc.unary_unary_rpc_method_handler(
            servicer.check, request_deserializer=external_auth_pb2.CheckRequest.FromString
        )
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, handlers)
    return servicer
