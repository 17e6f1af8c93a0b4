"""Regression tests for review findings: checker gaps, generated code the sandbox rejected,
constants sharing a slot, and the fast request validator disagreeing with the slow one."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

import pytest

import policy_lang.compiler as compiler_module
from pdp.cli import main
from pdp.engine import Engine
from pdp.server.policy_store import PolicyStore
from policy_lang.errors import PolicyError
from policy_lang.sandbox import UnsafeCodeError

SCHEMA = """
enum Level { public < internal < confidential < restricted }
principal entity User {
  tenant: string; roles: map<string, set<string>>; clearance: Level;
  n: int; tags: set<string>;
  addr: { city: string; zip?: string; };
}
entity Group {}
entity Document in Group { tenant: string; classification: Level; tags: set<string>; }
context { ip: ip; mfa: bool; }
actions Document { read, write }
"""


def user(**kw: Any) -> dict[str, Any]:
    a: dict[str, Any] = {
        "tenant": "acme", "roles": {}, "clearance": "public", "n": 1, "tags": [], "addr": {"city": "x"},
    }  # fmt: skip
    a.update(kw)
    return {"type": "User", "id": "u", "attributes": a}


def req(p: dict[str, Any] | None = None, action: str = "read") -> dict[str, Any]:
    doc = {"type": "Document", "id": "d", "attributes": {"tenant": "acme", "classification": "public", "tags": []}}
    return {"principal": p or user(), "action": action, "resource": doc, "context": {"ip": "10.0.0.1", "mfa": True}}


def codes(body: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        Engine.from_source(SCHEMA + body)
    return [d.code for d in info.value.diagnostics]


# ---- 1: bad constructor literals are compile errors -----------------------------------------


@pytest.mark.parametrize(
    "expr",
    ['context.ip in ip("10.0.0.1/8")', 'now > datetime("yesterday")', 'now - now > duration("soon")'],
)
def test_bad_constructor_literal_is_invalid_literal(expr: str) -> None:
    assert codes(f"permit p action read when {expr};") == ["invalid_literal"]


def test_good_constructor_literals_still_compile() -> None:
    e = Engine.from_source(SCHEMA + 'forbid f action read when context.ip in ip("10.0.0.0/8");')
    assert e.decide(req()).reasons == ("f",)


# ---- 2: code the sandbox used to reject --------------------------------------------------------


def test_long_or_chain_compiles_warms_and_decides() -> None:
    ors = " or ".join(f"principal.n == {i}" for i in range(250))
    ands = " and ".join(f"principal.n != {i}" for i in range(1000, 1250))
    e = Engine.from_source(SCHEMA + f"permit many action read when {ors};\npermit all action write when {ands};")
    e.policy.warm()
    assert e.decide(req(user(n=249))).reasons == ("many",)
    assert e.decide(req(user(n=7))).allowed
    assert not e.decide(req(user(n=250))).allowed
    assert e.decide(req(user(n=1), action="write")).allowed
    assert not e.decide(req(user(n=1100), action="write")).allowed


def test_long_or_chain_explains() -> None:
    from pdp.explain import explain

    ors = " or ".join(f"principal.n == {i}" for i in range(250))
    e = Engine.from_source(SCHEMA + f"permit many action read when {ors};")
    out = explain(e, req(user(n=3)))
    assert out["decision"]["allowed"] is True


def test_big_non_constant_set_literal() -> None:
    items = ", ".join(["principal.tenant"] * 39 + ['"globex"'])
    e = Engine.from_source(SCHEMA + f"permit big action read when resource.tenant in [{items}];")
    e.policy.warm()
    assert e.decide(req()).reasons == ("big",)
    assert not e.decide(req(user(tenant="other"))).allowed


def test_many_header_obligations() -> None:
    headers = "".join(f'header "x-h{i}" = principal.tenant;' for i in range(35))
    e = Engine.from_source(SCHEMA + f"permit hdr action read obligations {{ {headers} }};")
    e.policy.warm()
    d = e.decide(req())
    assert d.allowed
    assert [o["name"] for o in d.obligations] == [f"x-h{i}" for i in range(35)]
    assert {o["value"] for o in d.obligations} == {"acme"}


def _failing_run(calls: list[int]) -> Any:
    """A sandbox `run` that rejects every bucket's code, as it did for the cases above."""
    real = compiler_module.run

    def run(source: str, *args: Any) -> Any:
        if "def " not in source:  # the role functions, built when the policy compiles
            return real(source, *args)
        calls.append(1)
        raise UnsafeCodeError("generated code uses `SOMETHING`")

    return run


def test_failed_bucket_build_is_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    e = Engine.from_source(SCHEMA + "permit p action read;")
    calls: list[int] = []
    monkeypatch.setattr(compiler_module, "run", _failing_run(calls))
    first, second = e.decide(req()), e.decide(req())
    assert not first.allowed and first.errors and not second.allowed and second.errors
    assert "UnsafeCodeError" in first.errors[0].message
    assert len(calls) == 1


def test_validate_reports_code_generation_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "p.pdp").write_text(SCHEMA + "permit p action read;\n")
    assert main(["validate", str(tmp_path)]) == 0
    capsys.readouterr()
    monkeypatch.setattr(compiler_module, "run", _failing_run([]))
    assert main(["validate", str(tmp_path)]) != 0
    err = capsys.readouterr().err
    assert "internal_error" in err and "UnsafeCodeError" in err


def test_policy_store_keeps_serving_when_warm_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "p.pdp").write_text(SCHEMA + "permit p action read;\n")
    store = PolicyStore(tmp_path)
    assert store.reload(force=True)
    good = store.current
    assert good is not None
    (tmp_path / "p.pdp").write_text(SCHEMA + "permit q action read;\n")
    monkeypatch.setattr(compiler_module, "run", _failing_run([]))
    assert store.reload(force=True) is False
    assert store.current is good
    assert store.reload_errors == 1
    assert "generated code uses" in store.last_error
    assert good.engine.decide(req()).reasons == ("p",)


# ---- 3: `x in []` with an unhashable x --------------------------------------------------------


@pytest.mark.parametrize("expr", ["principal.addr in []", "principal.roles in []", "[].contains(principal.addr)"])
def test_unhashable_in_empty_set_is_type_error(expr: str) -> None:
    assert codes(f"forbid f action read when {expr};") == ["type_error"]


def test_hashable_in_empty_set_still_compiles() -> None:
    e = Engine.from_source(SCHEMA + "permit p action read;\nforbid f action read when principal.tenant in [];")
    assert e.decide(req()).reasons == ("p",)


# ---- 4: constants that are equal but of different types ---------------------------------------


def test_advice_sets_keep_their_element_types() -> None:
    e = Engine.from_source(
        SCHEMA + "forbid a action read when principal.n in [1] advice { ints = [1]; bools = [true]; secs = [1s]; };"
    )
    values = {a["name"]: a["value"] for a in e.decide(req()).advice}
    assert values == {"ints": [1], "bools": [True], "secs": [1.0]}
    assert type(values["ints"][0]) is int
    assert type(values["bools"][0]) is bool
    assert type(values["secs"][0]) is float


# ---- 5: the fast validator agrees with the slow one --------------------------------------------


class _Level(enum.StrEnum):
    restricted = "restricted"


def test_str_enum_value_gets_the_slow_paths_answer() -> None:
    e = Engine.from_source(SCHEMA + "permit p action read when principal.clearance == restricted;")
    alone = e.decide(req(user(clearance=_Level.restricted)))
    with_other_error = e.decide(req(user(clearance=_Level.restricted, n="x")))
    assert not alone.allowed
    assert [err.field for err in alone.errors] == ["principal.attributes.clearance"]
    assert alone.errors == with_other_error.errors
    assert e.decide(req(user(clearance="restricted"))).reasons == ("p",)
