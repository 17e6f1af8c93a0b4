"""policy_lang.formatter: golden layouts for every construct, comments in every position."""

from __future__ import annotations

from pathlib import Path

import pytest

from policy_lang.errors import PolicySyntaxError
from policy_lang.formatter import comment_texts, format_text
from policy_lang.parser import parse

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "policies").rglob("*.pdp") if not p.stem.endswith("_test"))


def fmt(text: str) -> str:
    out = format_text(text)
    assert format_text(out) == out, "formatting is not idempotent"
    assert parse(out).items == parse(text).items
    assert comment_texts(parse(out)) == comment_texts(parse(text)), "comments lost, changed or reordered"
    return out


def check(source: str, expected: str) -> None:
    assert fmt(source) == expected


# ---- declarations ---------------------------------------------------------------------------

GOLDEN = {
    "namespace": ("namespace   acme.docs ;permit p;", "namespace acme.docs;\n\npermit p;\n"),
    "enum": (
        "enum  Level{low<mid <high}\nenum Region {eu,us}",
        "enum Level { low < mid < high }\nenum Region { eu, us }\n",
    ),
    "entity": (
        "principal entity User in Group,Team{name:string;tags?:set< string >sensitive;m:map<string,int>;}",
        "principal entity User in Group, Team {\n  name: string;\n  tags?: set<string> sensitive;\n"
        "  m: map<string, int>;\n}\n",
    ),
    "empty entity": ("entity Group { }", "entity Group {}\n"),
    "record": (
        "entity E { address: {city:string;zip?:string;} sensitive; }",
        "entity E {\n  address: { city: string; zip?: string; } sensitive;\n}\n",
    ),
    "wide record": (
        "entity E { address: { street: string; city: string; zip?: string; country: string; region: string; }; }",
        "entity E {\n  address: {\n    street: string;\n    city: string;\n    zip?: string;\n    country: string;\n"
        "    region: string;\n  };\n}\n",
    ),
    "context": ("context{ip:ip;mfa:bool;}", "context {\n  ip: ip;\n  mfa: bool;\n}\n"),
    "actions": ("actions Doc{read,write}", "actions Doc { read, write }\n"),
    "roles": (
        "role viewer{grant read on Doc,Project;}\nrole admin extends viewer,auditor;\nrole auditor { }",
        "role viewer {\n  grant read on Doc, Project;\n}\n\nrole admin extends viewer, auditor;\nrole auditor;\n",
    ),
    "binding": (
        "roles  of User from principal.roles[ resource.tenant ];",
        "roles of User from principal.roles[resource.tenant];\n",
    ),
    "constants": (
        'const a=15m;const b : set<string>;const c = 90m;const d = "x\\ty";',
        'const a = 15m;\nconst b: set<string>;\nconst c = 1h30m;\nconst d = "x\\ty";\n',
    ),
    "lists keep their keyword": (
        'list nets:ip=["10.0.0.0/8","192.168.0.0/16",];list blocked: ip;const s: set<ip> = ["10.0.0.0/8"];',
        'list nets: ip = ["10.0.0.0/8", "192.168.0.0/16"];\nlist blocked: ip;\nconst s: set<ip> = ["10.0.0.0/8"];\n',
    ),
    "wide list": (
        'list nets: ip = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fd00::/8"];',
        'list nets: ip = [\n  "10.0.0.0/8",\n  "172.16.0.0/12",\n  "192.168.0.0/16",\n  "100.64.0.0/10",\n  "fd00::/8",\n];\n',
    ),
    "window": (
        'window hours{days "mon-fri";hours "08:00-19:00";zone "Europe/Berlin";}',
        'window hours {\n  days "mon-fri";\n  hours "08:00-19:00";\n  zone "Europe/Berlin";\n}\n',
    ),
    "empty window": ("window w {}", "window w {}\n"),
    "bare rule": ("permit   p ;", "permit p;\n"),
    "rule": (
        '@description("owners") @id( "x" ) permit owner principal User action read,write resource Document '
        "role viewer when resource.owner==principal.id unless context.mfa "
        'obligations{header "x-tenant"=resource.tenant;mask resource.ssn,resource.salary;} advice{step_up="mfa";};',
        '@description("owners")\n@id("x")\npermit owner\n  principal User\n  action read, write\n  resource Document\n'
        "  role viewer\n  when resource.owner == principal.id\n  unless context.mfa\n  obligations {\n"
        '    header "x-tenant" = resource.tenant;\n    mask resource.ssn, resource.salary;\n  }\n  advice {\n'
        '    step_up = "mfa";\n  };\n',
    ),
    "clauses in canonical order, repeated ones merged": (
        "forbid f action read resource Doc principal User action write when a when b;",
        "forbid f\n  principal User\n  action read, write\n  resource Doc\n  when a\n  when b;\n",
    ),
    "expressions": (
        'permit p when ((a)) and (b == (c)) and not (x in y) and -(1 + 2) < 3 and s like "/a/*";',
        'permit p\n  when a and b == c and not (x in y) and -(1 + 2) < 3 and s like "/a/*";\n',
    ),
    "wide condition splits at and": (
        'permit p when resource.classification == public and resource.path like "/public/*" '
        "and principal.tenant == resource.tenant;",
        'permit p\n  when resource.classification == public\n   and resource.path like "/public/*"\n'
        "   and principal.tenant == resource.tenant;\n",
    ),
    "wide condition splits at or": (
        'forbid f unless principal.department == "security-operations" or principal.department == "platform";',
        'forbid f\n  unless principal.department == "security-operations"\n      or principal.department == "platform";\n',
    ),
    "split condition is joined when it fits": ("permit p\n  when a\n   and b;", "permit p\n  when a and b;\n"),
    "route": (
        'route GET,HEAD "/t/{tenant}/d/{id}"=>read Doc{resource.id=path.id;resource.tenant=path.tenant;}',
        'route GET, HEAD "/t/{tenant}/d/{id}" => read Doc {\n  resource.id = path.id;\n'
        "  resource.tenant = path.tenant;\n}\n",
    ),
    "route sources": (
        'route POST "/a" => write Doc { context.mfa = header( "X-Auth-MFA" , "no" ); context.h = header("x-h"); '
        'context.at=now; context.ip=source.ip; context.p = source.principal; context.q=query.q; resource.id="a\\"b"; }',
        'route POST "/a" => write Doc {\n  context.mfa = header("x-auth-mfa", "no");\n  context.h = header("x-h");\n'
        "  context.at = now;\n  context.ip = source.ip;\n  context.p = source.principal;\n  context.q = query.q;\n"
        '  resource.id = "a\\"b";\n}\n',
    ),
    "route for any method": (
        'route  *  "/" => read Doc {resource.id = "root";}',
        'route * "/" => read Doc {\n  resource.id = "root";\n}\n',
    ),
    "empty routes end in a semicolon": (
        'route default=>read Doc{ }\nroute DELETE "/x" => read Doc ;',
        'route default => read Doc;\nroute DELETE "/x" => read Doc;\n',
    ),
    "wide route heads stay on one line": (
        'route GET, HEAD, OPTIONS "/tenants/{tenant}/documents/{document}/versions/{version}" => read Document;',
        'route GET, HEAD, OPTIONS "/tenants/{tenant}/documents/{document}/versions/{version}" => read Document;\n',
    ),
    "http": (
        'http{context.ip=source.ip;context.mfa=header("x-auth-mfa","false");}',
        'http {\n  context.ip = source.ip;\n  context.mfa = header("x-auth-mfa", "false");\n}\n',
    ),
    "empty http": ("http { }", "http {}\n"),
}


@pytest.mark.parametrize("name", list(GOLDEN))
def test_golden(name: str) -> None:
    source, expected = GOLDEN[name]
    check(source, expected)


# ---- blank lines --------------------------------------------------------------------------------


def test_blank_lines_between_one_line_declarations_are_kept_single_and_multi_line_ones_get_one() -> None:
    source = "const a = 1;\nconst b = 2;\n\n\n\nconst c = 3;\nentity E { x: int; }\nconst d = 4;\n"
    assert fmt(source) == "const a = 1;\nconst b = 2;\n\nconst c = 3;\n\nentity E {\n  x: int;\n}\n\nconst d = 4;\n"


def test_blank_lines_between_members_are_kept_but_not_after_the_brace_or_inside_rules() -> None:
    source = "entity E {\n\n  a: int;\n\n\n  b: int;\n\n}\npermit p\n\n  when a\n\n  when b;\n"
    assert fmt(source) == "entity E {\n  a: int;\n\n  b: int;\n}\n\npermit p\n  when a\n  when b;\n"


# ---- comments ----------------------------------------------------------------------------------


def test_file_header_comment_and_its_blank_line() -> None:
    source = "// Header.\n// Second line.\n\nconst a = 1;\n"
    assert fmt(source) == source


def test_comment_styles_are_kept_verbatim() -> None:
    source = "# hash\n/* block\n   on two lines */\nconst a = 1;  // slash\n"
    assert fmt(source) == source


def test_own_line_comments_go_before_the_next_line_at_its_indentation() -> None:
    source = """entity E {
// about a
      a: int;
        // before the brace
}
permit p
// about the clause
  when x
      // about obligations
  obligations {
  // about the mask
    mask resource.a;
// before the brace
  };
"""
    expected = """entity E {
  // about a
  a: int;
  // before the brace
}

permit p
  // about the clause
  when x
  // about obligations
  obligations {
    // about the mask
    mask resource.a;
    // before the brace
  };
"""
    assert fmt(source) == expected


def test_trailing_comments_stay_on_their_line_and_align() -> None:
    source = """principal entity User {
  tenant: string; // home tenant
  roles: map<string, set<string>>;    // tenant -> roles
  clearance: Level;
}
const a = 1; # one
const longer_name = 2; /* two */
"""
    expected = """principal entity User {
  tenant: string;                   // home tenant
  roles: map<string, set<string>>;  // tenant -> roles
  clearance: Level;
}

const a = 1;            # one
const longer_name = 2;  /* two */
"""
    assert fmt(source) == expected


def test_trailing_comments_on_rule_clauses_and_block_braces() -> None:
    source = """permit p // the rule
  action read // reads
  when a // first
   and b // second
  obligations { // masks
    mask resource.x; // x
  }; // end
"""
    expected = """permit p              // the rule
  action read         // reads
  when a              // first
   and b              // second
  obligations {       // masks
    mask resource.x;  // x
  };                  // end
"""
    assert fmt(source) == expected


def test_a_comment_between_operands_keeps_the_condition_split() -> None:
    source = "permit p\n  when a\n   // why b\n   and b\n   and c;\n"
    assert fmt(source) == "permit p\n  when a\n  // why b\n   and b\n   and c;\n"


def test_a_comment_after_the_last_operand_does_not_split() -> None:
    assert fmt("permit p when a and b; // both\n") == "permit p\n  when a and b;  // both\n"


def test_comments_inside_one_line_constructs_move_to_the_end_or_before_the_line() -> None:
    source = "enum Level { low < // lowest\n  high }\nenum Region {\n  // where\n  eu, us }\n"
    assert fmt(source) == "enum Level { low < high }  // lowest\n// where\nenum Region { eu, us }\n"


def test_a_comment_inside_an_expression_moves_before_its_line() -> None:
    source = "permit p\n  when x in [1,\n    // note\n    2];\n"
    assert fmt(source) == "permit p\n  // note\n  when x in [1, 2];\n"
    # inside an operand of an `and` chain: before that operand's line
    source = "permit p\n  when x and (a or\n    // note\n    b);\n"
    assert fmt(source) == "permit p\n  when x\n  // note\n   and (a or b);\n"


def test_two_trailing_comments_for_one_line() -> None:
    # A line comment must end its line: the earlier one moves before the line; block comments may share it.
    source = "permit p\n  principal User // users\n  principal Admin // admins\n  when x /* a */ /* b */ // c\n;"
    expected = (
        "permit p\n  // users\n  principal User, Admin  // admins\n  when x;                /* a */ /* b */ // c\n"
    )
    assert fmt(source) == expected


def test_comments_keep_list_and_record_split() -> None:
    source = 'list nets: ip = ["10.0.0.0/8", // office\n "10.1.0.0/16"];\nentity E { r: { a: int; // a\n }; }\n'
    expected = (
        'list nets: ip = [\n  "10.0.0.0/8",  // office\n  "10.1.0.0/16",\n];\n\n'
        "entity E {\n  r: {\n    a: int;  // a\n  };\n}\n"
    )
    assert fmt(source) == expected


def test_comments_in_empty_blocks() -> None:
    source = "entity E {\n  // nothing yet\n}\nrole r { /* later */ }\n"
    assert fmt(source) == "entity E {\n  // nothing yet\n}\n\nrole r {  /* later */\n}\n"


def test_comments_in_routes_and_http_blocks() -> None:
    source = """http { // every route
// the peer
context.ip = source.ip; # address
  context.mfa = header("x-mfa",
      "false"); // set by the gateway
    // end of http
}
route GET /* m */ "/d/{id}" // about
  => read /* t */ Doc {
  resource.id = // the id
    path.id;

  resource.tenant = path.id;
}
route * "/x" => read Doc { /* nothing yet */ }
route default => read Doc { // catch-all
}
"""
    expected = """http {  // every route
  // the peer
  context.ip = source.ip;                  # address
  context.mfa = header("x-mfa", "false");  // set by the gateway
  // end of http
}

/* m */
// about
route GET "/d/{id}" => read Doc {  /* t */
  resource.id = path.id;           // the id

  resource.tenant = path.id;
}

route * "/x" => read Doc {  /* nothing yet */
}

route default => read Doc {  // catch-all
}
"""
    assert fmt(source) == expected


def test_a_brace_in_a_route_pattern_is_not_the_block() -> None:
    source = 'route GET "/{a}/{b}" => read Doc // no body\n;\nroute GET "/{c}" => read Doc { resource.id = path.c; }'
    expected = (
        'route GET "/{a}/{b}" => read Doc;  // no body\n\nroute GET "/{c}" => read Doc {\n  resource.id = path.c;\n}\n'
    )
    assert fmt(source) == expected


def test_comments_between_annotations_and_rule_and_at_the_end() -> None:
    source = '@a("x")\n// between\npermit p;\n\n// the end\n'
    assert fmt(source) == source


def test_comment_after_namespace() -> None:
    assert fmt("namespace a; // ns\npermit p;") == "namespace a;  // ns\n\npermit p;\n"


def test_line_comments_lose_trailing_blanks_and_crlf() -> None:
    assert fmt("// a   \r\npermit p;\r\n") == "// a\npermit p;\n"


def test_comment_count_and_text_are_preserved_in_every_example_file() -> None:
    for path in EXAMPLES:
        text = path.read_text(encoding="utf-8")
        out = format_text(text, filename=str(path))
        assert comment_texts(parse(out)) == comment_texts(parse(text))


# ---- files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_files(text: str) -> None:
    assert fmt(text) == ""


def test_only_comments() -> None:
    assert fmt("/* a */") == "/* a */\n"
    assert fmt("\n\n// a\n\n\n// b\n\n") == "// a\n\n// b\n"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_policies_are_canonical(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert format_text(text, filename=str(path)) == text


def test_syntax_errors() -> None:
    with pytest.raises(PolicySyntaxError) as info:
        format_text("entity X {\n  a: string\n}\n", filename="bad.pdp")
    assert str(info.value).startswith("bad.pdp:3:1: syntax_error: unexpected `}`")
    with pytest.raises(PolicySyntaxError):
        format_text("enum Region {eu,us,}")
