"""Policy test files (`*_test.toml`), read into runnable tests.

A test file lives beside the policies it tests (the policy loader ignores it) and is TOML:

    include = ["testdata/people.toml"]      # shared fixtures, paths relative to this file

    [defaults]                              # for every case that does not say otherwise
    now = 2026-11-25T10:00:00Z              # the clock: TOML datetime (with an offset), RFC 3339 text or epoch
    context = "office"

    [principals.bob]                        # named fixtures: principals, resources, contexts
    type = "User"                           # id defaults to the fixture's name
    attributes = { tenant = "acme", roles = { acme = ["viewer"] } }

    [principals.carol]
    extends = "bob"                         # bob's type, parents and attributes (merged one level
    attributes = { clearance = "restricted" }   # deep: an attribute given replaces bob's); id "carol"

    [resources.plan]
    type = "Document"
    id = "doc-plan"                         # attributes may come from the policies' data files

    [contexts.office]                       # a context fixture is the context itself
    ip = "10.1.2.3"

    [[case]]
    name = "only the owner writes"          # unique in the file
    principals = ["alice", "bob"]           # each axis: `x = item` or `xs = [items]`
    actions = ["write", "delete"]           # -> one test per principal x action x resource x context
    resource = "plan"                       # a fixture name, "Type::id", or an inline table
    with.principal = { auth_time = 2026-11-25T09:59:00Z }   # attribute overrides for this case
    expect = "deny"
      [[case.where]]                        # per-combination overrides, in order
      principal = "alice"
      expect = "allow"
      reasons = ["acme.owner_full_access"]

Expectations: `expect` ("allow" or "deny", required), and optionally `reasons` (rule ids and
`role:<name>`; order ignored), `obligations` (tables as in a decision, or "mask PATH" /
"header NAME = VALUE"), `advice` (tables with `name`, `value`, optional `rule`) and
`errors` (message substrings, or tables with `message` substring, `rule`, `field`). Without
`errors` the decision must have none, so a misspelt fixture attribute fails its test instead of
passing as a deny. Expectations cascade: case, then its `matrix` cell, then each matching
`where` entry in order; a level that sets `expect` drops the reasons, obligations, advice and
errors of the levels before it.

A `[case.matrix]` table has one row per principal (fixture name -> list of "allow"/"deny",
one per action of the case's `actions`), for role tables.
"""

from __future__ import annotations

import difflib
import itertools
import json
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

TEST_FILE_SUFFIX = "_test.toml"

AXES = ("principal", "action", "resource", "context")
PLURALS = {"principal": "principals", "action": "actions", "resource": "resources", "context": "contexts"}
FIXTURE_KINDS = ("principals", "resources", "contexts")
EXPECTATION_KEYS = ("expect", "reasons", "obligations", "advice", "errors")

_TOP_KEYS = ("include", "defaults", *FIXTURE_KINDS, "case")
_FIXTURE_FILE_KEYS = ("include", *FIXTURE_KINDS)
_DEFAULT_KEYS = ("principal", "action", "resource", "context", "now", "with")
_CASE_KEYS = ("name", *AXES, *PLURALS.values(), "now", "with", *EXPECTATION_KEYS, "where", "matrix")
_WHERE_KEYS = (*AXES, *PLURALS.values(), *EXPECTATION_KEYS)
_ENTITY_KEYS = ("type", "id", "attributes", "parents", "extends")
_WITH_KEYS = ("principal", "resource", "context")
_SINGULAR = {"principals": "principal", "resources": "resource", "contexts": "context"}


class PolicyTestError(Exception):
    """A test file that cannot be read: the file, the line, what is wrong."""

    def __init__(self, file: str, line: int, message: str):
        super().__init__(f"{file}:{line}: {message}")
        self.file = file
        self.line = line
        self.message = message

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class ErrorPattern:
    """An expected decision error; each given part must match (`message` as a substring)."""

    message: str | None = None
    rule: str | None = None
    field: str | None = None

    def matches(self, error: Mapping[str, Any]) -> bool:
        if self.message is not None and self.message not in str(error.get("message", "")):
            return False
        if self.rule is not None and error.get("rule") != self.rule:
            return False
        return self.field is None or error.get("field") == self.field

    def describe(self) -> str:
        parts = []
        if self.message is not None:
            parts.append(f"message containing {self.message!r}")
        if self.rule is not None:
            parts.append(f"rule {self.rule}")
        if self.field is not None:
            parts.append(f"field {self.field}")
        return "error with " + ", ".join(parts) if parts else "any error"


@dataclass(frozen=True, slots=True)
class Expectation:
    """What a test expects of the decision; None means `not checked`."""

    allowed: bool
    reasons: tuple[str, ...] | None = None
    obligations: tuple[dict[str, Any], ...] | None = None
    advice: tuple[dict[str, Any], ...] | None = None
    errors: tuple[ErrorPattern, ...] = ()  # exactly these errors (none unless given)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"decision": "allow" if self.allowed else "deny"}
        if self.reasons is not None:
            out["reasons"] = list(self.reasons)
        if self.obligations is not None:
            out["obligations"] = [dict(o) for o in self.obligations]
        if self.advice is not None:
            out["advice"] = [dict(a) for a in self.advice]
        out["errors"] = [
            {k: v for k, v in (("message", e.message), ("rule", e.rule), ("field", e.field)) if v is not None}
            for e in self.errors
        ]
        return out


@dataclass(frozen=True, slots=True)
class PolicyTest:
    """One request and the decision expected for it."""

    file: str  # the test file, as found (relative when the directory was given relative)
    line: int  # of the case, or of the `where` entry or matrix row that set the expectation
    case: str  # the case's name
    name: str  # unique in the file: the case's name, plus `[principal action resource]` for tables
    labels: Mapping[str, str]  # axis -> fixture name, "Type::id" or action
    request: dict[str, Any]
    expect: Expectation

    @property
    def id(self) -> str:
        return f"{self.file}::{self.name}"

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class PolicyTestFile:
    path: Path
    display: str
    tests: tuple[PolicyTest, ...]


def is_test_file(path: Path) -> bool:
    return path.name.endswith(TEST_FILE_SUFFIX) and path.is_file()


def discover(directory: str | Path) -> list[Path]:
    """Every `*_test.toml` under `directory`, sorted."""
    return sorted(p for p in Path(directory).rglob("*" + TEST_FILE_SUFFIX) if p.is_file())


def load_test_file(path: str | Path, display: str | None = None) -> PolicyTestFile:
    """Read one test file and its included fixtures; raises PolicyTestError naming file and line."""
    path = Path(path)
    shown = display if display is not None else str(path)
    return _FileReader(path, shown).read()


# ---- the text: where things are -------------------------------------------------------------


def _key_pattern(name: str) -> str:
    return "(?:" + "|".join(re.escape(q) for q in (name, f'"{name}"', f"'{name}'")) + ")"


class _Text:
    """The lines of a TOML file, for finding where a table or key was written."""

    def __init__(self, text: str):
        self.lines = _code_lines(text)

    def find(self, pattern: str, start: int = 0, end: int | None = None) -> int | None:
        """1-based number of the first line in [start, end) (0-based) matching `pattern`."""
        rx = re.compile(pattern)
        stop = len(self.lines) if end is None else min(end, len(self.lines))
        for i in range(start, stop):
            if rx.match(self.lines[i]):
                return i + 1
        return None

    def all(self, pattern: str, start: int = 0, end: int | None = None) -> list[int]:
        rx = re.compile(pattern)
        stop = len(self.lines) if end is None else min(end, len(self.lines))
        return [i + 1 for i in range(start, stop) if rx.match(self.lines[i])]

    def table(self, kind: str, name: str) -> int:
        """The line defining fixture `kind.name`: its `[kind.name]` header or its key."""
        header = rf"\s*\[\s*{_key_pattern(kind)}\s*\.\s*{_key_pattern(name)}\s*\]"
        dotted = rf"\s*{_key_pattern(kind)}\s*\.\s*{_key_pattern(name)}\s*[.=]"
        found = self.find(header) or self.find(dotted)
        if found:
            return found
        section = self.find(rf"\s*\[\s*{_key_pattern(kind)}\s*\]")
        if section:
            return self.find(rf"\s*{_key_pattern(name)}\s*[.=]", section) or section
        return 1

    def key(self, name: str) -> int:
        return self.find(rf"\s*{_key_pattern(name)}\s*[.=]") or self.find(rf"\s*\[+\s*{_key_pattern(name)}\b") or 1


def _code_lines(text: str) -> list[str]:
    """The lines, with those starting inside a multi-line string blanked, so they never look like keys."""
    out = []
    inside: str | None = None  # the delimiter of the multi-line string the scan is in
    for line in text.splitlines():
        out.append(line if inside is None else "")
        i = 0
        while i < len(line):
            if inside is not None:
                if line.startswith(inside, i):
                    i, inside = i + 3, None
                elif inside == '"""' and line[i] == "\\":
                    i += 2
                else:
                    i += 1
                continue
            c = line[i]
            if c == "#":
                break
            if line.startswith('"""', i) or line.startswith("'''", i):
                i, inside = i + 3, line[i : i + 3]
            elif c in "\"'":
                j = i + 1
                while j < len(line) and line[j] != c:
                    j += 2 if c == '"' and line[j] == "\\" else 1
                i = j + 1
            else:
                i += 1
    return out


# ---- reading ------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Definition:
    kind: str  # principals, resources, contexts
    name: str
    value: Any
    file: str
    line: int


@dataclass(slots=True)
class _Entity:
    """A resolved entity fixture or inline entity."""

    type: str | None
    id: str | None
    attributes: dict[str, Any] | None
    parents: list[dict[str, str]] | None


@dataclass(slots=True)
class _Axis:
    label: str
    value: Any  # _Entity, dict (context), str (action), or None (no context)


@dataclass(slots=True)
class _Level:
    """The expectation fields one level (case, matrix cell, `where` entry) sets."""

    fields: dict[str, Any] = field(default_factory=dict)
    line: int = 0


class _FileReader:
    def __init__(self, path: Path, display: str):
        self.path = path
        self.display = display
        self.fixtures: dict[str, dict[str, _Definition]] = {kind: {} for kind in FIXTURE_KINDS}
        self.resolved: dict[tuple[str, str], Any] = {}
        self.test_names: set[str] = set()
        self.included: set[Path] = set()

    def error(self, line: int, message: str, file: str | None = None) -> PolicyTestError:
        return PolicyTestError(file or self.display, line, message)

    # ---- files -------------------------------------------------------------------------------
    def parse(self, path: Path, display: str, line: int, file: str) -> tuple[dict[str, Any], _Text]:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise self.error(line, f"cannot read {display}: {reason}", file) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            found = re.search(r"\(at line (\d+)", str(exc))
            line = int(found[1]) if found else max(1, len(text.splitlines()))  # else "at end of document"
            message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
            raise self.error(line, f"not valid TOML: {message}", display) from None
        return data, _Text(text)

    def read(self) -> PolicyTestFile:
        data, text = self.parse(self.path, self.display, 1, self.display)
        self.check_keys(data, _TOP_KEYS, "the top level of a test file", text, self.display)
        self.read_includes(data, self.path, self.display, text, [self.path.resolve()])
        self.read_fixtures(data, self.display, text, local=True)
        for kind, definitions in self.fixtures.items():  # every fixture is checked, used or not
            for name, definition in definitions.items():
                if kind == "contexts":
                    self.context(name, definition.line)
                else:
                    self.entity(kind, name, definition.line)
        defaults = self.table(data.get("defaults", {}), "[defaults]", text.key("defaults"))
        self.check_keys(defaults, _DEFAULT_KEYS, "[defaults]", text, self.display)
        cases = data.get("case", [])
        if not isinstance(cases, list) or not all(isinstance(c, dict) for c in cases):
            raise self.error(text.key("case"), "`case` must be an array of tables: write each case as [[case]]")
        lines = self.case_lines(text, cases)
        tests: list[PolicyTest] = []
        names: dict[str, int] = {}
        for k, case in enumerate(cases):
            end = lines[k + 1] - 1 if k + 1 < len(lines) else None
            name = case.get("name")
            if not isinstance(name, str) or not name.strip():
                raise self.error(lines[k], "every case needs a `name` (a non-empty string)")
            if name in names:
                raise self.error(lines[k], f"duplicate case name {name!r} (first at line {names[name]})")
            names[name] = lines[k]
            tests += self.read_case(case, defaults, text, lines[k], end)
        return PolicyTestFile(self.path, self.display, tuple(tests))

    def case_lines(self, text: _Text, cases: list[dict[str, Any]]) -> list[int]:
        headers = text.all(rf"\s*\[\[\s*{_key_pattern('case')}\s*\]\]")
        if len(headers) == len(cases):
            return headers
        lines: list[int] = []
        start = 0
        for case in cases:
            name = case.get("name")
            found = None
            if isinstance(name, str):
                found = text.find(rf"\s*.*\bname\s*=\s*({re.escape(repr(name))}|{re.escape(_toml_quote(name))})", start)
            lines.append(found or (lines[-1] if lines else 1))
            start = found or start
        return lines

    def read_includes(self, data: dict[str, Any], path: Path, display: str, text: _Text, seen: list[Path]) -> None:
        include = data.get("include", [])
        if isinstance(include, str):
            include = [include]
        line = text.key("include")
        if not isinstance(include, list) or not all(isinstance(i, str) for i in include):
            raise self.error(line, "`include` must be a file name or a list of them", display)
        for name in include:
            target = path.parent / name
            shown = str(Path(display).parent / name)
            if target.resolve() in seen:
                raise self.error(line, f"{name} includes itself (through {' -> '.join(p.name for p in seen)})", display)
            if not target.is_file():
                raise self.error(line, f"no fixture file {shown} to include", display)
            if target.resolve() in self.included:
                continue  # included twice through different files: read once
            self.included.add(target.resolve())
            included, included_text = self.parse(target, shown, line, display)
            self.check_keys(included, _FIXTURE_FILE_KEYS, "a fixture file", included_text, shown)
            self.read_includes(included, target, shown, included_text, [*seen, target.resolve()])
            self.read_fixtures(included, shown, included_text, local=False)

    def read_fixtures(self, data: dict[str, Any], display: str, text: _Text, *, local: bool) -> None:
        for kind in FIXTURE_KINDS:
            table = data.get(kind, {})
            if not isinstance(table, dict):
                raise self.error(text.key(kind), f"`{kind}` must be a table of named fixtures", display)
            for name, value in table.items():
                line = text.table(kind, name)
                if not isinstance(value, dict):
                    raise self.error(line, f"{_SINGULAR[kind]} fixture `{name}` must be a table", display)
                previous = self.fixtures[kind].get(name)
                if previous is not None and not local:
                    raise self.error(
                        line,
                        f"{_SINGULAR[kind]} fixture `{name}` is also defined at {previous.file}:{previous.line}",
                        display,
                    )
                self.fixtures[kind][name] = _Definition(kind, name, value, display, line)

    # ---- checks ------------------------------------------------------------------------------
    def check_keys(
        self, table: Mapping[str, Any], allowed: tuple[str, ...], where: str, text: _Text, file: str
    ) -> None:
        for key in table:
            if key not in allowed:
                hint = _did_you_mean(key, allowed)
                raise self.error(text.key(key), f"unknown key `{key}` in {where}{hint}", file)

    def table(self, value: Any, where: str, line: int) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(line, f"{where} must be a table")
        return value

    # ---- fixtures ----------------------------------------------------------------------------
    def entity(self, kind: str, ref: Any, line: int, stack: tuple[str, ...] = ()) -> tuple[str, _Entity]:
        """A principal or resource reference -> (label, entity)."""
        what = _SINGULAR[kind]
        if isinstance(ref, str):
            definition = self.fixtures[kind].get(ref)
            if definition is None:
                if "::" in ref:
                    etype, _, eid = ref.partition("::")
                    return ref, _Entity(etype, eid, None, None)
                hint = _did_you_mean(ref, self.fixtures[kind])
                raise self.error(line, f"unknown {what} fixture `{ref}`{hint}")
            if ref in stack:
                raise self.error(definition.line, f"{what} fixture `{ref}` extends itself", definition.file)
            key = (kind, ref)
            if key not in self.resolved:
                self.resolved[key] = self.entity_table(
                    kind, definition.value, definition.line, definition.file, ref, (*stack, ref)
                )
            return ref, self.resolved[key]
        if isinstance(ref, dict):
            entity = self.entity_table(kind, ref, line, self.display, None, stack)
            return entity.id or f"inline {what}", entity
        raise self.error(line, f'a {what} is a fixture name, "Type::id" or an inline table, not {_shown(ref)}')

    def entity_table(
        self, kind: str, value: dict[str, Any], line: int, file: str, name: str | None, stack: tuple[str, ...]
    ) -> _Entity:
        what = _SINGULAR[kind]
        called = f"{what} fixture `{name}`" if name else f"inline {what}"
        for key in value:
            if key not in _ENTITY_KEYS:
                hint = _did_you_mean(key, _ENTITY_KEYS) or "; attributes go under `attributes`"
                raise self.error(line, f"unknown key `{key}` in {called}{hint}", file)
        base = _Entity(None, None, None, None)
        if "extends" in value:
            parent = value["extends"]
            if not isinstance(parent, str):
                raise self.error(line, f"`extends` in {called} must name another {what} fixture", file)
            _, base = self.entity(kind, parent, line, stack)
        etype = value.get("type", base.type)
        if not isinstance(etype, str):
            raise self.error(line, f"{called} needs a `type` (an entity type name)", file)
        eid = value.get("id", name if name is not None else base.id)
        if not isinstance(eid, str):
            raise self.error(line, f"{called} needs an `id` (a string)", file)
        attributes = base.attributes
        if "attributes" in value:
            own = value["attributes"]
            if not isinstance(own, dict):
                raise self.error(line, f"`attributes` of {called} must be a table", file)
            attributes = {**(attributes or {}), **own}
        parents = base.parents
        if "parents" in value:
            parents = self.parents(value["parents"], line, file, called)
        return _Entity(etype, eid, attributes, parents)

    def parents(self, value: Any, line: int, file: str, called: str) -> list[dict[str, str]]:
        if not isinstance(value, list):
            raise self.error(line, f"`parents` of {called} must be a list", file)
        out = []
        for item in value:
            if isinstance(item, str) and "::" in item:
                etype, _, eid = item.partition("::")
                out.append({"type": etype, "id": eid})
            elif isinstance(item, dict) and set(item) == {"type", "id"}:
                out.append({"type": str(item["type"]), "id": str(item["id"])})
            else:
                raise self.error(line, f'a parent of {called} is "Type::id" or {{ type = ..., id = ... }}', file)
        return out

    def context(self, ref: Any, line: int, stack: tuple[str, ...] = ()) -> tuple[str, dict[str, Any]]:
        if isinstance(ref, str):
            definition = self.fixtures["contexts"].get(ref)
            if definition is None:
                hint = _did_you_mean(ref, self.fixtures["contexts"])
                raise self.error(line, f"unknown context fixture `{ref}`{hint}")
            if ref in stack:
                raise self.error(definition.line, f"context fixture `{ref}` extends itself", definition.file)
            key = ("contexts", ref)
            if key not in self.resolved:
                self.resolved[key] = self.context_table(
                    definition.value, definition.line, definition.file, (*stack, ref)
                )
            return ref, self.resolved[key]
        if isinstance(ref, dict):
            return _inline_label(ref), self.context_table(ref, line, self.display, stack)
        raise self.error(line, f"a context is a fixture name or an inline table, not {_shown(ref)}")

    def context_table(self, value: dict[str, Any], line: int, file: str, stack: tuple[str, ...]) -> dict[str, Any]:
        base: dict[str, Any] = {}
        own = dict(value)
        if "extends" in own:
            parent = own.pop("extends")
            if not isinstance(parent, str):
                raise self.error(line, "`extends` in a context must name another context fixture", file)
            _, base = self.context(parent, line, stack)
        return {**base, **own}

    # ---- cases -------------------------------------------------------------------------------
    def axis(self, table: Mapping[str, Any], axis: str, line: int, where: str) -> tuple[list[Any] | None, str | None]:
        """The items given for `axis` in a case, `where` entry or [defaults]: (items, key used)."""
        plural = PLURALS[axis]
        if axis in table and plural in table:
            raise self.error(line, f"{where} gives both `{axis}` and `{plural}`: use one")
        key = axis if axis in table else plural if plural in table else None
        if key is None:
            return None, None
        value = table[key]
        items = value if isinstance(value, list) else [value]
        if not items:
            raise self.error(line, f"`{key}` in {where} is empty")
        return items, key

    def read_case(
        self, case: dict[str, Any], defaults: dict[str, Any], text: _Text, line: int, end: int | None
    ) -> list[PolicyTest]:
        name: str = case["name"]
        where = f"case {name!r}"
        for key in case:
            if key not in _CASE_KEYS:
                raise self.error(line, f"unknown key `{key}` in {where}{_did_you_mean(key, _CASE_KEYS)}")
        matrix = case.get("matrix")
        rows: dict[str, int] = {}
        values: dict[str, list[_Axis]] = {}
        for axis in AXES:
            items, given = self.axis(case, axis, line, where)
            if items is None and axis == "principal" and matrix is not None:
                continue
            if items is None and axis in defaults:
                items = [defaults[axis]]
            if items is None:
                if axis == "context":
                    values[axis] = [_Axis("", None)]
                    continue
                raise self.error(line, f"{where} needs a `{axis}` (or `{PLURALS[axis]}`, or one in [defaults])")
            if axis == "principal" and matrix is not None:
                raise self.error(line, f"{where} has a matrix, whose rows are the principals: drop `{given}`")
            values[axis] = [self.axis_item(axis, item, line) for item in items]
        if matrix is not None:
            if not isinstance(matrix, dict) or not matrix:
                raise self.error(line, f"`matrix` in {where} must be a table: principal = [one cell per action]")
            matrix_line = text.find(
                rf"\s*\[\s*{_key_pattern('case')}\s*\.\s*{_key_pattern('matrix')}\s*\]", line - 1, end
            )
            values["principal"] = []
            for row in matrix:
                rows[row] = (
                    text.find(rf"\s*{_key_pattern(row)}\s*=", (matrix_line or line) - 1, end) or matrix_line or line
                )
                values["principal"].append(self.axis_item("principal", row, rows[row]))

        now = case.get("now", defaults.get("now"))
        request_now = self.now(now, line) if now is not None else None
        overrides = self.overrides(defaults.get("with", {}), case.get("with", {}), line, where)

        base = self.level(case, line, where)
        cells = self.matrix_cells(matrix, values["action"], rows, where) if matrix is not None else {}
        wheres = self.where_entries(case, text, line, end, where)
        combos = list(itertools.product(*(values[axis] for axis in AXES)))
        used = [False] * len(wheres)
        tests = []
        multiple = len(combos) > 1
        seen = self.test_names
        for combo in combos:
            labels = {axis: item.label for axis, item in zip(AXES, combo, strict=True)}
            levels = [base]
            if matrix is not None:
                levels.append(cells[(labels["principal"], labels["action"])])
            for k, (selectors, level) in enumerate(wheres):
                if all(labels[axis] in allowed for axis, allowed in selectors.items()):
                    levels.append(level)
                    used[k] = True
            expect, at = self.expectation(levels, where, line)
            shown = [labels["principal"], labels["action"], labels["resource"]]
            if len(values["context"]) > 1:
                shown.append(labels["context"])
            test_name = f"{name} [{' '.join(shown)}]" if multiple else name
            unique, k = test_name, 2
            while unique in seen:
                unique, k = f"{test_name} #{k}", k + 1
            seen.add(unique)
            request = self.request(combo, request_now, overrides)
            tests.append(PolicyTest(self.display, at, name, unique, labels, request, expect))
        for k, was_used in enumerate(used):
            if not was_used:
                raise self.error(wheres[k][1].line, f"this `where` entry of {where} matches no combination")
        return tests

    def axis_item(self, axis: str, item: Any, line: int) -> _Axis:
        if axis == "action":
            if not isinstance(item, str):
                raise self.error(line, f"an action is a string, not {_shown(item)}")
            return _Axis(item, item)
        if axis == "context":
            label, context = self.context(item, line)
            return _Axis(label, context)
        label, entity = self.entity(PLURALS[axis], item, line)
        return _Axis(label, entity)

    def now(self, value: Any, line: int) -> Any:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise self.error(line, f"`now` = {value.isoformat()} has no offset: add one, e.g. Z for UTC")
            return _rfc3339(value)
        if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return value
        raise self.error(line, f"`now` is a datetime (2026-11-25T10:00:00Z) or epoch seconds, not {_shown(value)}")

    def overrides(self, defaults: Any, own: Any, line: int, where: str) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for source in (defaults, own):
            if not isinstance(source, dict):
                raise self.error(line, f"`with` in {where} must be a table: with.principal = {{ attribute = value }}")
            for key, value in source.items():
                if key not in _WITH_KEYS:
                    raise self.error(line, f"unknown key `with.{key}`{_did_you_mean(key, _WITH_KEYS)}")
                if not isinstance(value, dict):
                    raise self.error(line, f"`with.{key}` must be a table of attribute values")
                out[key] = {**out.get(key, {}), **value}
        return out

    def level(self, table: Mapping[str, Any], line: int, where: str) -> _Level:
        level = _Level(line=line)
        for key in EXPECTATION_KEYS:
            if key in table:
                level.fields[key] = self.expectation_field(key, table[key], line, where)
        return level

    def expectation_field(self, key: str, value: Any, line: int, where: str) -> Any:
        if key == "expect":
            if value not in ("allow", "deny"):
                raise self.error(line, f'`expect` in {where} is "allow" or "deny", not {_shown(value)}')
            return value == "allow"
        if not isinstance(value, list):
            raise self.error(line, f"`{key}` in {where} must be a list")
        if key == "reasons":
            if not all(isinstance(r, str) for r in value):
                raise self.error(line, f"`reasons` in {where} is a list of rule ids and role:<name> strings")
            return tuple(value)
        if key == "obligations":
            return tuple(self.obligation(o, line, where) for o in value)
        if key == "advice":
            for a in value:
                if (
                    not isinstance(a, dict)
                    or not {"name", "value"} <= set(a)
                    or not set(a) <= {"name", "value", "rule"}
                ):
                    raise self.error(line, f"each advice in {where} is a table with `name`, `value` and maybe `rule`")
            return tuple(_request_value(a) for a in value)
        patterns = []
        for e in value:
            if isinstance(e, str):
                patterns.append(ErrorPattern(message=e))
            elif isinstance(e, dict) and e and set(e) <= {"message", "rule", "field"}:
                if not all(isinstance(v, str) for v in e.values()):
                    raise self.error(line, f"the parts of an expected error in {where} are strings")
                patterns.append(ErrorPattern(e.get("message"), e.get("rule"), e.get("field")))
            else:
                raise self.error(
                    line, f"an expected error in {where} is a message substring or a table of message, rule, field"
                )
        return tuple(patterns)

    def obligation(self, value: Any, line: int, where: str) -> dict[str, Any]:
        if isinstance(value, str):
            found = re.fullmatch(r"\s*mask\s+(\S+)\s*", value)
            if found:
                return {"type": "mask", "path": found[1]}
            found = re.fullmatch(r"\s*header\s+(\S+)\s*=\s*(.*?)\s*", value)
            if found:
                return {"type": "header", "name": found[1], "value": found[2]}
        elif isinstance(value, dict):
            if value.get("type") == "mask" and set(value) == {"type", "path"}:
                return dict(value)
            if value.get("type") == "header" and set(value) == {"type", "name", "value"}:
                return {"type": "header", "name": value["name"], "value": str(value["value"])}
        raise self.error(
            line,
            f'an obligation in {where} is "mask PATH", "header NAME = VALUE", or a table like a decision\'s, '
            f"not {_shown(value)}",
        )

    def matrix_cells(
        self, matrix: dict[str, Any], actions: list[_Axis], rows: dict[str, int], where: str
    ) -> dict[tuple[str, str], _Level]:
        cells = {}
        for row, cells_given in matrix.items():
            line = rows[row]
            if not isinstance(cells_given, list) or len(cells_given) != len(actions):
                names = ", ".join(a.label for a in actions)
                raise self.error(line, f"matrix row `{row}` of {where} needs one cell per action ({names})")
            for action, cell in zip(actions, cells_given, strict=True):
                if cell not in ("allow", "deny"):
                    raise self.error(line, f'a matrix cell is "allow" or "deny", not {_shown(cell)}')
                cells[(row, action.label)] = _Level({"expect": cell == "allow"}, line)
        return cells

    def where_entries(
        self, case: dict[str, Any], text: _Text, line: int, end: int | None, where: str
    ) -> list[tuple[dict[str, set[str]], _Level]]:
        entries = case.get("where", [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise self.error(line, f"`where` in {where} must be an array of tables: [[case.where]]")
        headers = text.all(rf"\s*\[\[\s*{_key_pattern('case')}\s*\.\s*{_key_pattern('where')}\s*\]\]", line - 1, end)
        out = []
        for k, entry in enumerate(entries):
            at = headers[k] if len(headers) == len(entries) else line
            for key in entry:
                if key not in _WHERE_KEYS:
                    raise self.error(at, f"unknown key `{key}` in a `where` entry{_did_you_mean(key, _WHERE_KEYS)}")
            selectors: dict[str, set[str]] = {}
            for axis in AXES:
                items, _ = self.axis(entry, axis, at, "a `where` entry")
                if items is not None:
                    if not all(isinstance(i, str) for i in items):
                        raise self.error(at, 'a `where` entry selects by fixture name, "Type::id" or action')
                    selectors[axis] = set(items)
            if not selectors:
                raise self.error(at, "a `where` entry names the principal, action, resource or context it is for")
            level = self.level(entry, at, f"a `where` entry of {where}")
            if not level.fields:
                raise self.error(at, "a `where` entry sets `expect` or another expectation")
            out.append((selectors, level))
        return out

    def expectation(self, levels: list[_Level], where: str, line: int) -> tuple[Expectation, int]:
        fields: dict[str, Any] = {}
        at = line
        for level in levels:
            if "expect" in level.fields:
                fields = {}
            fields.update(level.fields)
            if level.fields:
                at = level.line
        if "expect" not in fields:
            raise self.error(line, f'{where} needs `expect = "allow"` or `expect = "deny"`')
        return (
            Expectation(
                fields["expect"],
                fields.get("reasons"),
                fields.get("obligations"),
                fields.get("advice"),
                fields.get("errors", ()),
            ),
            at,
        )

    def request(self, combo: tuple[_Axis, ...], now: Any, overrides: dict[str, dict[str, Any]]) -> dict[str, Any]:
        principal, action, resource, context = combo
        request: dict[str, Any] = {
            "principal": self.entity_request(principal.value, overrides.get("principal")),
            "action": action.value,
            "resource": self.entity_request(resource.value, overrides.get("resource")),
        }
        ctx = context.value
        if ctx is not None or "context" in overrides:
            request["context"] = {**(ctx or {}), **overrides.get("context", {})}
        if now is not None:
            request["now"] = now
        converted = _request_value(request)
        assert isinstance(converted, dict)
        return converted

    def entity_request(self, entity: _Entity, override: dict[str, Any] | None) -> dict[str, Any]:
        out: dict[str, Any] = {"type": entity.type, "id": entity.id}
        if entity.attributes is not None or override:
            out["attributes"] = {**(entity.attributes or {}), **(override or {})}
        if entity.parents is not None:
            out["parents"] = [dict(p) for p in entity.parents]
        return out


# ---- values ------------------------------------------------------------------------------------


def _rfc3339(value: datetime) -> str:
    if value.utcoffset() is not None and not value.utcoffset():
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return value.isoformat()


def _request_value(value: Any) -> Any:
    """TOML values -> the JSON values a request holds (datetimes as RFC 3339 text)."""
    if isinstance(value, dict):
        return {k: _request_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_request_value(v) for v in value]
    if isinstance(value, datetime):
        return _rfc3339(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, (date, time)):
        return value.isoformat()
    return value


def _inline_label(context: Mapping[str, Any]) -> str:
    """How an inline context is named in test names and `where` selectors: `office with ip=10.0.0.1`."""
    own = ", ".join(f"{k}={_plain(v)}" for k, v in context.items() if k != "extends")
    base = context.get("extends")
    if isinstance(base, str):
        return f"{base} with {own}" if own else base
    return own or "empty context"


def _plain(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(_request_value(value), separators=(",", ":"))


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _toml_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _did_you_mean(word: str, choices: Mapping[str, Any] | tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean `{close[0]}`?)" if close else ""


def iter_tests(files: list[PolicyTestFile]) -> Iterator[PolicyTest]:
    for f in files:
        yield from f.tests
