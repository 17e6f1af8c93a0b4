"""An HTTP request as a gateway sees it -> the engine's request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pdp.gateway.normalize import PathError, normalize_path, parse_query, split_target
from policy_lang.routes import RouteTable, request_values
from policy_lang.values import format_datetime


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    target: str  # path with its query string, as the client sent it
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    source_ip: str = ""
    source_principal: str = ""  # e.g. a SPIFFE id from the client certificate


class MappingError(ValueError):
    """The request cannot become a decision (unknown route, bad path or value): deny it."""

    def __init__(self, message: str, *, field: str = "path"):
        super().__init__(message)
        self.message = message
        self.field = field


@dataclass(frozen=True, slots=True)
class Mapped:
    request: dict[str, Any]  # the engine request, without a principal (the token gives it)
    token: str
    route: str


def bearer(headers: Mapping[str, str]) -> str:
    value = headers.get("authorization", "")
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def map_request(table: RouteTable, http: HttpRequest, now: float) -> Mapped:
    method = http.method.upper()
    path, query_text = split_target(http.target)
    try:
        segments = normalize_path(path)
    except PathError as exc:
        raise MappingError(str(exc)) from None
    found = table.match(method, segments)
    params: dict[str, str]
    if found is None:
        if table.default is None:
            raise MappingError(f"no route for {method} /{'/'.join(segments)}")
        route, params = table.default, {}
    else:
        route, params = found
    peer = {"ip": http.source_ip, "principal": http.source_principal}
    peer = {k: v for k, v in peer.items() if v}
    try:
        query = parse_query(query_text)
    except ValueError:
        raise MappingError("malformed query string", field="query") from None
    values = dict(params=params, query=query, headers=http.headers, peer=peer, now=format_datetime(now))
    try:
        _, context, _ = request_values(table.http, **values)  # type: ignore[arg-type]
        attributes, route_context, resource_id = request_values(route.assigns, **values)  # type: ignore[arg-type]
    except ValueError as exc:
        raise MappingError(str(exc), field="value") from None
    context.update(route_context)
    resource: dict[str, Any] = {"type": route.resource_type, "id": resource_id or ""}
    if attributes:
        resource["attributes"] = attributes
    request: dict[str, Any] = {"action": route.action, "resource": resource, "context": context}
    return Mapped(request, bearer(http.headers), route.pattern or "default")
