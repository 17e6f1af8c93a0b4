"""Policy text must never become code.

The compiler generates Python source (policy_lang.codegen / compiler) and runs it through
the sandbox (policy_lang.sandbox). Every piece of policy text an author or a data file controls
is pushed through: string literals, like patterns, header names and values, advice, entity ids,
map keys, constants, and names that happen to be Python's own. Each must either be rejected
with a PolicyError or compile and behave as plain data; the generated source never contains it.
"""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest

from pdp import Engine
from policy_lang.errors import PolicyError
from policy_lang.sandbox import UnsafeCodeError, run, validate

SCHEMA = """
namespace inj;
principal entity User { name: string; labels: map<string, string>; }
entity Group {}
entity Doc in Group { path: string; }
actions Doc { read }
"""

PAYLOADS = [
    '"); import os; os.system("touch /tmp/pwned")#',
    "__import__('os').system('id')",
    '\'; exec("print(1)") #',
    '" + __import__("os").getcwd() + "',
    '\\"); import os #',
    "\nimport os\n",
    "\r\n__import__('subprocess')",
    "line\\nbreak",
    "\\",
    "\\\\",
    '"',
    "'",
    '"""',
    "'''",
    "}{][)(",
    "#",
    "k0",
    "P[k1]",
    "X.now",
    "__class__.__mro__[1].__subclasses__()",
    "__builtins__",
    "lambda: 0",
    "{__import__}",
    "%s%n%x",
    "${jndi:ldap://x/a}",
    "{{7*7}}",
    "\t\x0b\x0c",
    "\x00",
    "\u202e\u2066evil\u2069",
    "雪 ✓ é 🙂 ﷽",
    "\ud7ff\ue000",
    "ｉｍｐｏｒｔ ｏｓ",  # fullwidth letters: NFKC-normalise to `import os`
    "",
    " ",
    "x" * 5000,
]

# The generated source legitimately holds names like `P` and `k0`; only search it for distinctive text.
DISTINCTIVE = [p for p in PAYLOADS if len(p.strip()) >= 4 and p not in ("P[k1]", "X.now")]


def lit(value: str) -> str:
    """`value` as a policy string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{escaped}"'


def engine(rules: str, data: dict[str, Any] | None = None) -> Engine:
    return Engine.from_source(SCHEMA + rules, data, filename="inj.pdp")


def request(
    name: str = "alice", labels: dict[str, str] | None = None, path: str = "/p", **extra: Any
) -> dict[str, Any]:
    resource: dict[str, Any] = {"type": "Doc", "id": extra.pop("rid", "d"), "attributes": {"path": path}}
    resource.update(extra)
    return {
        "principal": {"type": "User", "id": "u", "attributes": {"name": name, "labels": labels or {}}},
        "action": "read",
        "resource": resource,
    }


def assert_clean_source(e: Engine, *texts: str) -> None:
    source = e.policy.source
    validate(source)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant):
            assert node.value is None or type(node.value) in (int, bool), node.value
    for text in texts:
        if text in DISTINCTIVE:
            assert text not in source


def test_lit_round_trips_through_the_parser() -> None:
    from policy_lang import nodes as n
    from policy_lang.parser import parse

    for payload in PAYLOADS:
        rule = parse(f"permit r when x == {lit(payload)};").items[0]
        assert isinstance(rule, n.Rule)
        expr = rule.conditions[0].expr
        assert isinstance(expr, n.Binary) and expr.right == n.Lit(payload, "string")


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_string_literal_is_compared_literally(payload: str) -> None:
    e = engine(f"permit p when principal.name == {lit(payload)};")
    assert_clean_source(e, payload)
    assert e.decide(request(name=payload)).allowed
    assert not e.decide(request(name=payload + "x")).allowed
    assert not e.decide(request(name="alice")).allowed or payload == "alice"


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_payload_as_constant_list_member_and_map_key(payload: str) -> None:
    rules = f"""
    const c = {lit(payload)};
    list l: string = [{lit(payload)}, "other"];
    permit by_const when principal.name == c;
    permit by_list when principal.name in l;
    permit by_key when principal.labels[{lit(payload)}] == c;
    """
    e = engine(rules)
    assert_clean_source(e, payload)
    d = e.decide(request(name=payload, labels={payload: payload}))
    assert d.allowed and d.reasons == ("inj.by_const", "inj.by_list", "inj.by_key")
    d = e.decide(request(name="nobody", labels={payload: "x"}))
    assert not d.allowed and d.errors == ()


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_payload_from_a_data_file_constant(payload: str) -> None:
    e = engine(
        "const c: string; list l: string; permit p when principal.name == c and c in l;",
        {"constants": {"c": payload, "l": [payload]}},
    )
    assert_clean_source(e, payload)
    assert e.decide(request(name=payload)).allowed
    assert not e.decide(request(name=payload + "!")).allowed


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_header_name_header_value_and_advice(payload: str) -> None:
    # Header names must be HTTP tokens, so a payload cannot name a header ...
    with pytest.raises(PolicyError) as bad_name:
        engine(f'permit p obligations {{ header {lit(payload + " ")} = "v"; }};')
    assert [d.code for d in bad_name.value.diagnostics] == ["invalid_literal"]
    if set(payload) & set("\r\n\0"):
        # ... and a value that would split the header at the gateway denies the request.
        e = engine(f'permit p obligations {{ header "x-v" = {lit(payload)}; }};')
        assert_clean_source(e, payload)
        d = e.decide(request(name=payload))
        assert not d.allowed and d.errors and d.errors[0].rule == "inj.p"
        return
    rules = f"""
    permit p obligations {{ header "x-payload" = {lit(payload)}; header "x-name" = principal.name; }};
    forbid f when principal.name == "deny-me" advice {{ why = {lit(payload)}; who = principal.name; }};
    """
    e = engine(rules)
    assert_clean_source(e, payload)
    d = e.decide(request(name=payload))
    assert d.allowed
    assert d.obligations == (
        {"type": "header", "name": "x-payload", "value": payload},
        {"type": "header", "name": "x-name", "value": payload},
    )
    d = e.decide(request(name="deny-me"))
    assert not d.allowed
    assert d.advice == (
        {"rule": "inj.f", "name": "why", "value": payload},
        {"rule": "inj.f", "name": "who", "value": "deny-me"},
    )


@pytest.mark.parametrize("payload", [p for p in PAYLOADS if "*" not in p and "\x00" not in p], ids=str)
def test_like_pattern_without_stars_matches_only_itself(payload: str) -> None:
    e = engine(f"permit p when resource.path like {lit(payload)};")
    assert_clean_source(e, payload)
    assert e.decide(request(path=payload)).allowed
    assert not e.decide(request(path=payload + "x")).allowed


# `\*` is an escaped star, so a payload ending in a backslash would escape the closing star
@pytest.mark.parametrize(
    "payload", [p for p in PAYLOADS if "*" not in p and "\x00" not in p and not p.endswith("\\")], ids=str
)
def test_like_pattern_with_stars_around_a_payload(payload: str) -> None:
    e = engine(f"permit p when resource.path like {lit('*' + payload + '*')};")
    assert_clean_source(e, payload)
    assert e.decide(request(path="before" + payload + "after")).allowed
    if payload:
        assert not e.decide(request(path="before-after")).allowed


def test_like_pattern_with_a_nul_matches_a_nul() -> None:
    e = engine('permit p when resource.path like "a\x00b";')
    assert e.decide(request(path="a\x00b")).allowed
    assert not e.decide(request(path="a*b")).allowed


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_entity_ids_in_references_and_data(payload: str) -> None:
    data = {
        "entities": [
            {"type": "Group", "id": payload},
            {"type": "Doc", "id": payload, "attributes": {"path": "/p"}, "parents": [{"type": "Group", "id": payload}]},
        ]
    }
    e = engine(
        f"permit p when resource in Group::{lit(payload)} and Doc::{lit(payload)} in Group::{lit(payload)};", data
    )
    assert_clean_source(e, payload)
    assert e.decide(request(rid=payload)).allowed
    assert not e.decide(request(rid=payload + "-other")).allowed
    # a request may also name the payload as a parent
    assert e.decide(request(rid="fresh", parents=[{"type": "Group", "id": payload}])).allowed


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_annotation_values_never_reach_the_source(payload: str) -> None:
    e = engine(f"@description({lit(payload)}) @owner({lit(payload)}) permit p;")
    assert_clean_source(e, payload)
    assert e.decide(request()).allowed


# Keywords of the policy language cannot be names; these are Python's, and must stay data.
PYTHON_NAMES = [
    "__import__",
    "__class__",
    "__builtins__",
    "__dict__",
    "__globals__",
    "os",
    "sys",
    "eval",
    "exec",
    "compile",
    "open",
    "getattr",
    "globals",
    "lambda",
    "import",
    "None",
    "True",
    "k0",
    "k1",
    "P",
    "R",
    "X",
    "E",
    "e",
    "b0",
    "frozenset",
    "len",
    "type",
]


@pytest.mark.parametrize("word", PYTHON_NAMES)
def test_python_names_as_policy_names_are_data(word: str) -> None:
    """Attribute, constant, enum, role, rule and advice names that are Python's own."""
    text = f"""
    namespace {word}.{word};
    enum E_{word} {{ {word}, other_{word} }}
    principal entity U_{word} {{ {word}: string; choice: E_{word}; }}
    entity D_{word} {{ {word}: string; }}
    actions D_{word} {{ {word} }}
    const c_{word} = {lit(word)};
    role {word} {{ grant {word} on D_{word}; }}
    roles of U_{word} from [{lit(word)}];
    permit {word} action {word}
      when principal.{word} == c_{word} and resource.{word} == principal.{word} and principal.choice == {word}
      obligations {{ header {lit(word)} = principal.{word}; }};
    forbid f_{word} when principal.{word} == "no" advice {{ {word} = principal.choice; }};
    """
    e = Engine.from_source(text, filename="names.pdp")
    assert_clean_source(e)
    source = e.policy.source
    if len(word) > 2 or word.startswith("_"):
        assert f"{word}(" not in source and f".{word}" not in source

    def req(value: str) -> dict[str, Any]:
        return {
            "principal": {"type": f"U_{word}", "id": word, "attributes": {word: value, "choice": word}},
            "action": word,
            "resource": {"type": f"D_{word}", "id": word, "attributes": {word: value}},
        }

    d = e.decide(req(word))
    assert d.allowed
    assert d.reasons == (f"{word}.{word}.{word}", f"role:{word}")
    assert d.obligations == ({"type": "header", "name": word, "value": word},)
    d = e.decide(req("no"))
    assert not d.allowed
    assert d.advice == ({"rule": f"{word}.{word}.f_{word}", "name": word, "value": word},)


RAW_INSERTIONS = [
    '" or principal.name == "',  # compiles: just another comparison
    '"); import os; os.system("x")#',
    '" or __import__("os") or "',
    '" == "" or true or "',
    '"\nimport os\n"',
    '\\"); os.system(\\"x\\")#',
]


@pytest.mark.parametrize("raw", RAW_INSERTIONS)
def test_unescaped_insertion_is_rejected_or_harmless(raw: str) -> None:
    """Splicing text into a policy without escaping: a syntax error, or just another expression."""
    text = SCHEMA + f'permit p when principal.name == "{raw}";'
    try:
        e = Engine.from_source(text)
    except PolicyError:
        return
    assert_clean_source(e)
    for word in ("import", "system", "__", "os."):
        assert word not in e.policy.source


def test_request_attribute_names_and_types_are_data() -> None:
    e = engine("permit p;")
    for key in ["__class__", "__dict__", "name\x00", '"); import os #', "k0"]:
        req = request()
        req["principal"]["attributes"][key] = "x"
        d = e.decide(req)
        assert not d.allowed and d.errors[0].field == f"principal.attributes.{key}"
    req = request()
    req["principal"]["type"] = "__class__"
    d = e.decide(req)
    assert not d.allowed and d.errors[0].message == "unknown entity type `__class__`"


# ---- the sandbox rejects hand-written malicious sources ------------------------------------------

MALICIOUS = {
    "import": "import os\n",
    "from import": "from os import system\n",
    "import inside a function": "def b0(P, R, C, X):\n    import os\n    return os\n",
    "__import__ call": "def b0(P, R, C, X):\n    return __import__(k0)\n",
    "string literal": "def b0(P, R, C, X):\n    return 'os'\n",
    "bytes literal": "def b0(P, R, C, X):\n    return b'os'\n",
    "float literal": "def b0(P, R, C, X):\n    return 1.5\n",
    "f-string": "def b0(P, R, C, X):\n    return f'{P}'\n",
    "dunder attribute": "def b0(P, R, C, X):\n    return P.__class__\n",
    "mro walk": "def b0(P, R, C, X):\n    return k0.__class__.__mro__[1].__subclasses__()\n",
    "globals attribute": "def b0(P, R, C, X):\n    return b0.__globals__\n",
    "name os": "def b0(P, R, C, X):\n    return os\n",
    "name eval": "def b0(P, R, C, X):\n    return eval(k0)\n",
    "name exec": "exec(k0)\n",
    "name open": "def b0(P, R, C, X):\n    return open(k0)\n",
    "name getattr": "def b0(P, R, C, X):\n    return getattr(P, k0)\n",
    "name __builtins__": "def b0(P, R, C, X):\n    return __builtins__\n",
    "lambda": "def b0(P, R, C, X):\n    return lambda: 0\n",
    "comprehension": "def b0(P, R, C, X):\n    return [x for x in P]\n",
    "keyword argument": "def b0(P, R, C, X):\n    return frozenset(iterable=P)\n",
    "starred": "def b0(P, R, C, X):\n    return frozenset(*P)\n",
    "class": "class b0:\n    pass\n",
    "while loop": "def b0(P, R, C, X):\n    while 1:\n        pass\n",
    "for loop": "def b0(P, R, C, X):\n    for F in P:\n        pass\n",
    "with": "def b0(P, R, C, X):\n    with P:\n        pass\n",
    "global write": "def b0(P, R, C, X):\n    global k0\n    k0 = P\n",
    "attribute write": "def b0(P, R, C, X):\n    X.now = 0\n",
    "closure": "def b0(P, R, C, X):\n    def b1():\n        return P\n    return b1\n",
    "nested function with a bad name": "def b0(P, R, C, X):\n    def os():\n        return 0\n    return 0\n",
    "string in a nested constant": "def b0(P, R, C, X):\n    return (1, 'os')\n",
    "does not compile": "def b0(:\n",
    "function named os": "def os(P):\n    return P\n",
    "argument named os": "def b0(os):\n    return 0\n",
    "exception bound to os": "def b0(P, R, C, X):\n    try:\n        pass\n    except Exception as os:\n        pass\n",
    "attribute not on the list": "def b0(P, R, C, X):\n    return P.values()\n",
    "async": "async def b0(P, R, C, X):\n    return 0\n",
    "yield": "def b0(P, R, C, X):\n    yield 0\n",
    "ellipsis": "def b0(P, R, C, X):\n    return ...\n",
    "assert": "assert k0\n",
}


@pytest.mark.parametrize("source", list(MALICIOUS.values()), ids=list(MALICIOUS))
def test_sandbox_rejects_malicious_source(source: str) -> None:
    with pytest.raises(UnsafeCodeError):
        validate(source)


@pytest.mark.parametrize("source", list(MALICIOUS.values()), ids=list(MALICIOUS))
def test_sandbox_run_refuses_before_executing(source: str) -> None:
    marker: list[str] = []

    def spy(*args: object) -> None:
        marker.append("ran")

    with pytest.raises(UnsafeCodeError):
        run(source + "k0()\n", [spy], {})
    assert marker == []


UNUSED_OPERATORS = {
    "power": "def b0(P, R, C, X):\n    return k0 ** k1 ** k1\n",
    "multiplication": "def b0(P, R, C, X):\n    return k0 * k1\n",
    "left shift": "def b0(P, R, C, X):\n    return k0 << k1\n",
}


@pytest.mark.parametrize("source", list(UNUSED_OPERATORS.values()), ids=list(UNUSED_OPERATORS))
def test_sandbox_rejects_operators_the_compiler_never_emits(source: str) -> None:
    with pytest.raises(UnsafeCodeError):
        validate(source)


def test_sandbox_accepts_the_compilers_own_output() -> None:
    e = engine(
        'list l: string = ["a"]; permit p when principal.name in l and resource.path like "/x/*" '
        'obligations { header "h" = principal.name; };'
    )
    validate(e.policy.source)
    namespace = run("def b0(P, R, C, X):\n    return (k0 in P)\n", ["x"], {})
    assert namespace["b0"]({"x": 1}, None, None, None) is True


def test_sandbox_runs_with_only_a_few_builtins() -> None:
    namespace = run("def b0(P, R, C, X):\n    return len(P)\n", [], {})
    builtins_seen = namespace["__builtins__"]
    assert set(builtins_seen) <= {"frozenset", "len", "set", "type", "Exception", "LookupError"}
    assert "__import__" not in builtins_seen and "open" not in builtins_seen and "eval" not in builtins_seen


def test_generated_source_of_the_example_policies_holds_no_policy_text() -> None:
    from pathlib import Path

    e = Engine.load(Path(__file__).parents[2] / "policies" / "acme")
    source = e.policy.source
    validate(source)
    for text in ["x-tenant", "/public/*", "mfa", "owner", "business_hours", "Europe/Berlin", "viewer", "step_up"]:
        assert text not in source
    assert json.dumps(source)  # plain text, nothing exotic
