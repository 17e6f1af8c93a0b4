"""Findings of the review, each shown fixed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pdp import Engine
from pdp.cache import DecisionCache
from pdp.gateway.mapping import HttpRequest
from pdp.server.policy_store import PolicyStore
from pdp.server.service import DecisionService
from policy_lang.errors import PolicyError

SCHEMA = """
principal entity User { roles: set<string>; }
entity Service { roles: set<string>; }
entity Doc { owner?: string; kind: string; }
context { ip: ip; }
actions Doc { read, write }
"""


def req(ip: str, **resource: Any) -> dict[str, Any]:
    return {
        "principal": {"type": "User", "id": "u", "attributes": {"roles": []}},
        "action": "read",
        "resource": {"type": "Doc", "id": resource.pop("id", "d"), **resource},
        "context": {"ip": ip},
    }


@pytest.mark.parametrize("blocked", ["203.0.113.0/24", "::ffff:203.0.113.0/120"])
@pytest.mark.parametrize("client", ["203.0.113.5", "::ffff:203.0.113.5", "::ffff:203.0.113.5/128"])
def test_ipv4_mapped_addresses_and_networks_are_judged_as_ipv4(blocked: str, client: str) -> None:
    e = Engine.from_source(
        SCHEMA + f'list blocked: ip = ["{blocked}"]; permit all; forbid b when context.ip in blocked;'
    )
    d = e.decide(req(client, attributes={"kind": "x"}))
    assert not d.allowed and d.reasons == ("b",)


def test_a_role_binding_on_a_non_principal_type_is_an_error() -> None:
    with pytest.raises(PolicyError) as err:
        Engine.from_source(SCHEMA + "role viewer { grant read on Doc; } roles of Service from principal.roles;")
    assert [d.code for d in err.value.diagnostics] == ["not_principal"]


def test_a_caller_cannot_fill_an_optional_attribute_the_data_leaves_out() -> None:
    data = {"entities": [{"type": "Doc", "id": "orphan", "attributes": {"kind": "x"}}]}
    e = Engine.from_source(SCHEMA + "permit owner when resource has owner and resource.owner == principal.id;", data)
    assert not e.decide(req("10.0.0.1", id="orphan", attributes={"owner": "u"})).allowed
    # an entity the data does not know still takes the request's attributes
    assert e.decide(req("10.0.0.1", id="other", attributes={"owner": "u", "kind": "x"})).allowed


@pytest.mark.parametrize("bad", [0, "", [], False])
def test_malformed_attributes_of_a_stored_entity_deny(bad: Any) -> None:
    data = {"entities": [{"type": "Doc", "id": "s", "attributes": {"kind": "x"}}]}
    e = Engine.from_source(SCHEMA + "permit all;", data)
    d = e.decide(req("10.0.0.1", id="s", attributes=bad))
    assert not d.allowed and d.errors and d.errors[0].field == "resource.attributes"


def test_a_route_that_reads_the_clock_is_never_cached(tmp_path: Path) -> None:
    (tmp_path / "p.pdp").write_text(
        SCHEMA.replace("context { ip: ip; }", "context { ip: ip; at: datetime; }")
        + 'route GET "/docs/{id}" => read Doc { resource.id = path.id; resource.kind = "x"; }\n'
        + "http { context.ip = source.ip; context.at = now; }\n"
        + "permit all;\n"
    )
    store = PolicyStore(tmp_path)
    service = DecisionService(store, cache=DecisionCache(100, 60), token_required=False)
    store._on_swap = service.on_swap  # noqa: SLF001
    assert store.reload(force=True)
    assert store.current is not None
    assert service._route_reads_clock(store.current.engine.policy.checked.routes)  # noqa: SLF001
    http = HttpRequest("GET", "/docs/d1", {}, "10.0.0.1")
    first, second = service.decide_http(http), service.decide_http(http)
    assert first.cache_ttl_ms == 0 and not second.cached


def test_code_the_gate_refuses_while_loading_is_a_reported_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from policy_lang import compiler
    from policy_lang.sandbox import UnsafeCodeError

    def refuse(source: str, constants: Any, extra: Any) -> Any:
        raise UnsafeCodeError("generated code names `os`")

    monkeypatch.setattr(compiler, "run", refuse)
    with pytest.raises(PolicyError) as err:
        Engine.from_source(SCHEMA + "permit all;")
    assert [d.code for d in err.value.diagnostics] == ["internal_error"]
