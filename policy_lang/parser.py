"""Text -> AST. The only module that imports lark.

The grammar lives in `grammar.lark`; lark builds its LALR(1) tables once (and keeps them on
disk, `_lark_cache`, so that the next process loads them instead). Parsing is lark's LALR parser
with two parts of our own plugged in where lark takes them:

- the lexer (`_ContextualLexer`, lark's `lexer=`): lark's contextual lexer, same terminals,
  same terminal set per parser state, same order and keyword rules, built from the grammar's
  own terminal definitions; it does less per token (one regex match, whitespace folded into
  it, no line counting, tuples instead of `Token`s) and collects the comments, which the
  grammar ignores, for `PolicyFile.comments` (the formatter needs them);
- the tree builder (`_Builder`, lark's `transformer=`): lark calls one short method per rule
  as it reduces, so no parse tree is built and walked.

Spans are character offsets, turned into line/column (a bisect over the line starts) only
where a span is made. A node spans from the first to the last token of its rule, as lark's
`propagate_positions` had it: a reduction ends where the token shifted last ends (LALR
reduces only once it has seen the next token), and starts where its first token or first
child starts (a parenthesized child at its `(`).

A syntax error is reported by parsing the text again with lark's own contextual lexer and
tree builder (`_reference_parser`), so the messages are lark's, as before.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterator
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer, LexerState, TerminalDef

from policy_lang import nodes as n
from policy_lang.errors import Diagnostic, PolicyError, PolicySyntaxError
from policy_lang.spans import Source, Span
from policy_lang.values import parse_duration

_GRAMMAR = Path(__file__).with_name("grammar.lark")
_COMMENT_TERMINALS = frozenset({"COMMENT", "BLOCK_COMMENT"})
_WHITESPACE_TERMINAL = "WS"

_T = TypeVar("_T")


def _fast_constructor(cls: type[_T]) -> Callable[..., _T]:
    """`cls(*all_fields)` for a frozen, slotted dataclass, without the cost of its being frozen.

    A frozen dataclass's `__init__` sets every field through `object.__setattr__` (a call with
    an argument tuple each); a large policy makes a few hundred thousand spans and nodes, and
    that was a good part of parsing it. The twin class made here has the same slots and a plain
    `__init__`; the object it builds then takes `cls` as its class (Python allows it, the
    layouts being the same) and is from then on exactly what `cls(...)` returns.
    """
    names = tuple(field.name for field in dataclasses.fields(cls))  # type: ignore[arg-type]
    params = cls.__dataclass_params__  # type: ignore[attr-defined]
    if getattr(cls, "__slots__", None) != names or not (params.frozen and params.init) or hasattr(cls, "__post_init__"):
        return cls  # not the kind of class this is for: its own constructor
    source = f"def __init__(self, {', '.join(names)}):\n"
    source += "".join(f"    self.{name} = {name}\n" for name in names)
    source += "    self.__class__ = cls\n"
    namespace: dict[str, Any] = {}
    exec(source, {"cls": cls}, namespace)
    return type(f"_Building{cls.__name__}", (), {"__slots__": names, "__init__": namespace["__init__"]})


# the classes made most often (a 10,000-rule policy makes ~150,000 spans)
_Span = _fast_constructor(Span)
_Ident = _fast_constructor(n.Ident)
_Lit = _fast_constructor(n.Lit)
_Var = _fast_constructor(n.Var)
_Name = _fast_constructor(n.Name)
_Attr = _fast_constructor(n.Attr)
_Binary = _fast_constructor(n.Binary)
_And = _fast_constructor(n.And)
_Or = _fast_constructor(n.Or)
_Not = _fast_constructor(n.Not)
_Has = _fast_constructor(n.Has)
_Condition = _fast_constructor(n.Condition)
_Rule = _fast_constructor(n.Rule)
_NamedType = _fast_constructor(n.NamedType)
_AttrDecl = _fast_constructor(n.AttrDecl)


class _TokFields(NamedTuple):
    type: str
    value: str
    start_pos: int
    end_pos: int


class _Tok(_TokFields):
    """A token: what lark's parser needs of one (`type`), the text and where it is (offsets)."""

    __slots__ = ()

    # lark copies these from the last token into its end-of-input token; nothing reads them.
    line = None
    column = None
    end_line = None
    end_column = None


_new_tok = tuple.__new__


class _LexError(Exception):
    """No terminal the parser state accepts matches here; `_reference_parser` then reports it."""


# One parse at a time: the lexer and the builder hold the state of the parse running. Parsing
# is pure Python, so threads would only take turns anyway.
_lock = threading.Lock()


def _lark_cache(name: str) -> str | bool:
    """Where lark may keep the tables it built (loading them takes ~0.03 s, building ~1 s): a
    file in the user's cache directory, or nowhere. Not lark's `cache=True`, a file in the shared
    temporary directory: lark unpickles the file, and another user could have put it there."""
    try:
        directory = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pdp"
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        status = directory.stat()
        if status.st_mode & 0o022 or (hasattr(os, "getuid") and status.st_uid != os.getuid()):
            return False
    except (OSError, RuntimeError):  # no home, or a read-only one
        return False
    return str(directory / f"{name}.lark-cache")


@lru_cache(maxsize=1)
def _parser() -> tuple[Lark, _Builder]:
    builder = _Builder()
    lark = Lark(
        _GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        lexer=_ContextualLexer,
        transformer=builder,
        keep_all_tokens=True,  # the builder sees every token: spans start at keywords and `(`
        maybe_placeholders=False,
        cache=_lark_cache("grammar"),
    )
    # lark's rule names may be its grammar `Token`s (a str subclass with a Python `__eq__`),
    # looked up in its parse table, keyed by plain str, after every reduction.
    for rule in lark.rules:
        rule.origin.name = str(rule.origin.name)
    return lark, builder


@lru_cache(maxsize=1)
def _reference_parser() -> Lark:
    """lark's stock contextual lexer and tree builder on the same grammar: reports syntax errors."""
    grammar = _GRAMMAR.read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", maybe_placeholders=False, cache=_lark_cache("grammar-errors"))


def parse(text: str, *, filename: str = "<string>", namespace: str = "") -> n.PolicyFile:
    """Parse one `.pdp` file. `namespace` is used when the file declares none.

    Results are kept per (text, filename, namespace): the AST is immutable, and a reload
    then re-parses only the files that changed (LALR parsing in Python is the slow step).
    """
    return _parse_cached(text, filename, namespace)


@lru_cache(maxsize=4096)
def _parse_cached(text: str, filename: str, namespace: str) -> n.PolicyFile:
    lark, builder = _parser()
    with _lock:
        builder.begin(text, filename, namespace)
        try:
            return lark.parse(text)  # type: ignore[return-value]
        except (UnexpectedInput, _LexError):
            pass
        except PolicyError as exc:
            exc.sources[filename] = Source(filename, text)
            raise
        finally:
            builder.finish()
    try:
        _reference_parser().parse(text)
    except UnexpectedInput as exc:
        raise PolicySyntaxError([_syntax_diagnostic(exc, filename)], {filename: Source(filename, text)}) from None
    raise AssertionError(f"{filename}: lark parses what the fast path rejected")  # pragma: no cover


_FRIENDLY = {"NAME": "a name", "STRING": "a string", "INT": "a number", "DURATION": "a duration", "$END": "end of file"}


def _describe_terminal(name: str) -> str:
    if name in _FRIENDLY:
        return _FRIENDLY[name]
    for term in _reference_parser().terminals:
        if term.name == name and term.pattern.type == "str":
            return f"`{term.pattern.value}`"
    return name.lower()


def _syntax_diagnostic(exc: UnexpectedInput, filename: str) -> Diagnostic:
    line, col = max(exc.line, 1), max(exc.column, 1)
    if isinstance(exc, UnexpectedToken):
        found = "end of file" if exc.token.type == "$END" else f"`{exc.token}`"
        expected = sorted({_describe_terminal(t) for t in exc.expected})
        message = f"unexpected {found}"
        width = max(len(str(exc.token)), 1)
        if exc.token.type == "$END" and exc.token.end_line and exc.token.end_column:
            # lark places end of file on the last token; the caret belongs just after it.
            line, col = exc.token.end_line, exc.token.end_column
    elif isinstance(exc, UnexpectedCharacters):
        message = f"unexpected character `{exc.char}`"
        expected = []
        width = 1
    elif isinstance(exc, UnexpectedEOF):
        message = "unexpected end of file"
        expected = sorted({_describe_terminal(t) for t in exc.expected})
        width = 1
    else:  # pragma: no cover - lark has no other kinds today
        message, expected, width = str(exc), [], 1
    if expected:
        shown = ", ".join(expected[:8]) + (", ..." if len(expected) > 8 else "")
        message += f"; expected {shown}"
    span = Span(filename, line, col, line, col + width)
    return Diagnostic("syntax_error", message, span)


def unquote(token: str) -> str:
    body = token[1:-1]
    if "\\" not in body:
        return body
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


# ---- lexer ------------------------------------------------------------------------------

_COMMENT = object()  # in a scanner's `special`: the group is a comment


def _lark_order(term: TerminalDef) -> tuple[int, int, int, str]:
    # the order lark's BasicLexer tries terminals in (the first alternative that matches wins)
    return (-term.priority, -term.pattern.max_width, -len(term.pattern.value), term.name)


class _ContextualLexer(Lexer):
    """lark's contextual lexer, with less work per token (see the module docstring).

    What it matches is what lark's matches: per parser state the terminals the state accepts
    plus the ignored ones, tried in lark's order, a keyword the state accepts recognized in a
    NAME as lark's `_create_unless` does. The one liberty: whitespace is skipped by a prefix
    of the token regex, not matched as a token of its own, which needs that no other terminal
    starts with whitespace (asserted when a scanner is built).

    A scanner is `(match, types, special)`: `match(text, pos)` skips whitespace and matches
    one token, whose terminal is `types[m.lastindex]`; `special[m.lastindex]` is `_COMMENT`,
    or the keywords (text -> terminal) a match of that terminal may be, or None.
    """

    __future_interface__ = 2

    def __init__(self, conf: Any) -> None:
        self.conf = conf
        self._by_state: list[Any] = []  # parser state (lark numbers them) -> scanner, made when first needed
        self._by_terminals: dict[frozenset[str], tuple[Any, list[str | None], list[Any]]] = {}
        whitespace = conf.terminals_by_name[_WHITESPACE_TERMINAL]
        assert _WHITESPACE_TERMINAL in conf.ignore and whitespace.pattern.type == "re"
        self._whitespace = whitespace.pattern.to_regexp()
        self._rest_is_blank = re.compile(f"(?:{self._whitespace})?\\Z").match

    def _scanner(self, state: int, accepted: Any) -> tuple[Any, list[str | None], list[Any]]:
        names = frozenset(name for name in accepted if name in self.conf.terminals_by_name)
        scanner = self._by_terminals.get(names)
        if scanner is None:
            scanner = self._by_terminals[names] = self._build(names | frozenset(self.conf.ignore))
        self._by_state[state] = scanner
        return scanner

    def _build(self, names: frozenset[str]) -> tuple[Any, list[str | None], list[Any]]:
        flags = self.conf.g_regex_flags
        terminals = sorted((self.conf.terminals_by_name[name] for name in names), key=_lark_order)
        strings = [t for t in terminals if t.pattern.type == "str"]
        keywords: dict[str, dict[str, str]] = {}
        embedded: set[str] = set()
        for term in terminals:  # lark's _create_unless
            if term.pattern.type != "re":
                continue
            for word in strings:
                value = word.pattern.value
                if word.priority != term.priority:
                    continue
                matched = re.match(term.pattern.to_regexp(), value, flags)
                if matched is not None and matched.group(0) == value:
                    assert not word.pattern.flags, "keywords with regex flags are not implemented"
                    keywords.setdefault(term.name, {})[value] = word.name
                    if word.pattern.flags <= term.pattern.flags:
                        embedded.add(word.name)
        alternatives = [t for t in terminals if t.name not in embedded and t.name != _WHITESPACE_TERMINAL]
        for term in alternatives:
            for blank in " \t\f\r\n":
                assert not re.match(term.pattern.to_regexp(), blank, flags), f"{term.name} may start with whitespace"
        body = "|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in alternatives)
        regex = re.compile(f"(?>{self._whitespace})?(?:{body})", flags)
        types: list[str | None] = [None] * (regex.groups + 1)
        special: list[Any] = [None] * (regex.groups + 1)
        for name, index in regex.groupindex.items():
            types[index] = name
            special[index] = _COMMENT if name in _COMMENT_TERMINALS else keywords.get(name)
        return regex.match, types, special

    def lex(self, lexer_state: LexerState, parser_state: Any) -> Iterator[Any]:
        source = lexer_state.text
        text = source.text
        assert source.start == 0 and source.end == len(text)
        stack = parser_state.state_stack  # lark's, changed in place as it parses
        states = parser_state.parse_conf.states
        by_state = self._by_state
        if len(by_state) != len(states):
            assert sorted(states) == list(range(len(states))), "lark numbers its LALR states 0..n-1"
            by_state[:] = [None] * len(states)
        builder = _parser()[1]
        comments = builder.comments
        new, tok, comment = _new_tok, _Tok, _COMMENT
        pos = last_end = 0
        first = True
        while True:
            state = stack[-1]
            scanner = by_state[state]
            if scanner is None:
                scanner = self._scanner(state, states[state])
            match, types, special = scanner
            m = match(text, pos)
            if m is None:
                break
            index = m.lastindex
            value = m[index]
            pos = m.end()  # the terminal's group ends the match
            start = pos - len(value)
            kind = special[index]
            if kind is None:
                kind = types[index]
            elif kind is comment:
                comments.append((value, start, pos))
                continue
            else:
                kind = kind.get(value) or types[index]
            if first:
                builder.first = start
                first = False
            builder.end = last_end  # the reductions this token sets off end where the one before it ends
            last_end = pos
            yield new(tok, (kind, value, start, pos))
        if self._rest_is_blank(text, pos) is None:
            raise _LexError(pos)
        builder.end = last_end


# ---- tree builder -----------------------------------------------------------------------

_NAMESPACE = object()  # what `namespace_decl` leaves among `start`'s children


class _Builder:
    """One short method per grammar rule (or alias), called by lark with the rule's children:
    every token (`_Tok`) and the values of the child rules. The methods make `policy_lang.nodes`,
    each with its span (see the module docstring); the nodes made most often, and their spans,
    through `_fast_constructor`s. Some span arithmetic is repeated inline (in `_from_tok`,
    `_from_node`, `name_list`, `_var`) rather than called: it runs for most tokens."""

    def __init__(self) -> None:
        self.begin("", "<string>", "")
        self.finish()

    def begin(self, text: str, filename: str, namespace: str) -> None:
        self.file = filename
        self.namespace = namespace
        self.starts = [0, *accumulate(len(line) + 1 for line in text.split("\n"))]  # where each line starts
        self.comments: list[tuple[str, int, int]] = []
        self.parens: dict[int, tuple[Any, int, int, int, int, int, int]] = {}  # id(expr) -> expr, its `(` and `)`
        self.first = -1  # where the first token starts
        self.end = 0  # where the token before the one being parsed ends
        self._end_at = -1  # the last `end` turned into line and column, and those
        self._end_line = self._end_col = 0

    def finish(self) -> None:
        self.starts = [0]
        self.comments = []
        self.parens = {}

    # ---- spans ---------------------------------------------------------------------------
    def _to_end(self, start: int, line: int, col: int) -> Span:
        """From `start` (at `line`, `col`) to the end of the rule being reduced."""
        end = self.end
        if end != self._end_at:
            starts = self.starts
            end_line = bisect_right(starts, end)
            self._end_at, self._end_line, self._end_col = end, end_line, end - starts[end_line - 1] + 1
        return _Span(self.file, line, col, self._end_line, self._end_col, start, end)

    def _from_tok(self, tok: _Tok) -> Span:
        """From the start of `tok` to the end of the rule being reduced (`_to_end`, inline)."""
        start, end, starts = tok[2], self.end, self.starts
        line = bisect_right(starts, start)
        if end != self._end_at:
            end_line = bisect_right(starts, end)
            self._end_at, self._end_line, self._end_col = end, end_line, end - starts[end_line - 1] + 1
        return _Span(self.file, line, start - starts[line - 1] + 1, self._end_line, self._end_col, start, end)

    def _from_node(self, node: Any) -> Span:
        """From the start of the child `node` (its `(` if parenthesized) to the end of the rule
        being reduced (`_to_end`, inline)."""
        if self.parens:
            paren = self.parens.get(id(node))
            if paren is not None and paren[0] is node:
                return self._to_end(paren[1], paren[2], paren[3])
        span, end = node.span, self.end
        if end != self._end_at:
            starts = self.starts
            end_line = bisect_right(starts, end)
            self._end_at, self._end_line, self._end_col = end, end_line, end - starts[end_line - 1] + 1
        return _Span(self.file, span.line, span.col, self._end_line, self._end_col, span.start, end)

    def _tok_span(self, tok: _Tok) -> Span:
        """The span of one token (no token but a block comment holds a newline)."""
        start, end = tok[2], tok[3]
        starts = self.starts
        line = bisect_right(starts, start)
        col = start - starts[line - 1] + 1
        return _Span(self.file, line, col, line, col + end - start, start, end)

    def _ident(self, tok: _Tok) -> n.Ident:
        return _Ident(tok[1], self._tok_span(tok))

    def _comment(self, text: str, start: int, end: int) -> n.Comment:
        starts = self.starts
        line, end_line = bisect_right(starts, start), bisect_right(starts, end)
        span = _Span(
            self.file, line, start - starts[line - 1] + 1, end_line, end - starts[end_line - 1] + 1, start, end
        )
        return n.Comment(text, span)

    # ---- file ----------------------------------------------------------------------------
    def start(self, c: list[Any]) -> n.PolicyFile:
        items = tuple(item for item in c if item is not _NAMESPACE)
        if self.first < 0:
            span = Span(self.file, 0, 0, 0, 0)
        else:
            starts = self.starts
            line = bisect_right(starts, self.first)
            span = self._to_end(self.first, line, self.first - starts[line - 1] + 1)
        comments = tuple(self._comment(*comment) for comment in self.comments)
        return n.PolicyFile(self.file, self.namespace, items, span, comments)

    def namespace_decl(self, c: list[Any]) -> object:
        self.namespace = c[1]  # known before any rule is reduced: the grammar puts it first
        return _NAMESPACE

    def qual_name(self, c: list[_Tok]) -> str:
        return ".".join(tok[1] for tok in c[::2])

    def name_list(self, c: list[_Tok]) -> tuple[n.Ident, ...]:
        file, starts = self.file, self.starts
        idents = []
        for tok in c[::2]:
            start, end = tok[2], tok[3]
            line = bisect_right(starts, start)
            col = start - starts[line - 1] + 1
            idents.append(_Ident(tok[1], _Span(file, line, col, line, col + end - start, start, end)))
        return tuple(idents)

    # ---- schema --------------------------------------------------------------------------
    def ordered_enum(self, c: list[_Tok]) -> n.EnumDecl:
        return n.EnumDecl(c[1][1], tuple(self._ident(tok) for tok in c[3:-1:2]), True, self._from_tok(c[0]))

    def unordered_enum(self, c: list[_Tok]) -> n.EnumDecl:
        return n.EnumDecl(c[1][1], tuple(self._ident(tok) for tok in c[3:-1:2]), False, self._from_tok(c[0]))

    def principal_mark(self, c: list[_Tok]) -> _Tok:
        return c[0]

    def entity_decl(self, c: list[Any]) -> n.EntityDecl:
        is_principal = c[0][1] == "principal"
        name = c[2] if is_principal else c[1]
        i = 3 if is_principal else 2  # after the name: the parents, or `{`
        parents: tuple[n.Ident, ...] = ()
        if type(c[i]) is tuple:
            parents = c[i]
            i += 1
        return n.EntityDecl(name[1], tuple(c[i + 1 : -1]), parents, is_principal, self._from_tok(c[0]))

    def entity_parents(self, c: list[Any]) -> tuple[n.Ident, ...]:
        return c[1]  # type: ignore[no-any-return]

    def attr_decl(self, c: list[Any]) -> n.AttrDecl:
        optional = c[1][0] == "OPTIONAL"
        sensitive = type(c[-2]) is _Tok and c[-2][0] == "SENSITIVE"
        return _AttrDecl(c[0][1], c[3] if optional else c[2], optional, sensitive, self._from_tok(c[0]))

    def named_type(self, c: list[_Tok]) -> n.NamedType:
        return _NamedType(c[0][1], self._tok_span(c[0]))

    def set_type(self, c: list[Any]) -> n.SetType:
        return n.SetType(c[2], self._from_tok(c[0]))

    def map_type(self, c: list[Any]) -> n.MapType:
        return n.MapType(c[2], c[4], self._from_tok(c[0]))

    def record_type(self, c: list[Any]) -> n.RecordType:
        return n.RecordType(tuple(c[1:-1]), self._from_tok(c[0]))

    def context_decl(self, c: list[Any]) -> n.ContextDecl:
        return n.ContextDecl(tuple(c[2:-1]), self._from_tok(c[0]))

    def actions_decl(self, c: list[Any]) -> n.ActionsDecl:
        return n.ActionsDecl(self._ident(c[1]), c[3], self._from_tok(c[0]))

    # ---- RBAC ----------------------------------------------------------------------------
    def role_decl(self, c: list[Any]) -> n.RoleDecl:
        extends: tuple[n.Ident, ...] = ()
        rest = c[2:]
        if type(c[2]) is tuple:
            extends, rest = c[2], c[3:]
        grants = tuple(x for x in rest if type(x) is not _Tok)
        return n.RoleDecl(c[1][1], extends, grants, self._from_tok(c[0]))

    def role_extends(self, c: list[Any]) -> tuple[n.Ident, ...]:
        return c[1]  # type: ignore[no-any-return]

    def grant(self, c: list[Any]) -> n.Grant:
        return n.Grant(c[1], c[3], self._from_tok(c[0]))

    def binding_decl(self, c: list[Any]) -> n.BindingDecl:
        return n.BindingDecl(self._ident(c[2]), c[4], self._from_tok(c[0]))

    # ---- named values --------------------------------------------------------------------
    def const_decl(self, c: list[Any]) -> n.ConstDecl:
        type_ = value = None
        i = 2
        if c[i][1] == ":":
            type_ = c[i + 1]
            i += 2
        if c[i][1] == "=":
            value = c[i + 1]
        return n.ConstDecl(c[1][1], type_, value, self._from_tok(c[0]))

    def list_decl(self, c: list[Any]) -> n.ConstDecl:
        element = c[3]
        value = c[5] if len(c) == 7 else None
        return n.ConstDecl(c[1][1], n.SetType(element, element.span), value, self._from_tok(c[0]))

    def list_value(self, c: list[Any]) -> n.SetLit:
        return n.SetLit(tuple(x for x in c[1:-1] if type(x) is not _Tok), self._from_tok(c[0]))

    def window_decl(self, c: list[Any]) -> n.WindowDecl:
        return n.WindowDecl(c[1][1], tuple(c[3:-1]), self._from_tok(c[0]))

    def window_field(self, c: list[_Tok]) -> n.WindowField:
        return n.WindowField(c[0][1], unquote(c[1][1]), self._from_tok(c[0]))

    # ---- HTTP routes ---------------------------------------------------------------------
    def route_decl(self, c: list[Any]) -> n.RouteDecl:
        _, methods, pattern, _, action, rtype, assigns = c
        return n.RouteDecl(
            methods, unquote(pattern[1]), self._ident(action), self._ident(rtype), assigns, False, self._from_tok(c[0])
        )

    def default_route_decl(self, c: list[Any]) -> n.RouteDecl:
        action, rtype, assigns = c[3:]
        return n.RouteDecl((), "", self._ident(action), self._ident(rtype), assigns, True, self._from_tok(c[0]))

    def route_methods(self, c: list[_Tok]) -> tuple[n.Ident, ...]:
        return tuple(self._ident(tok) for tok in c[::2])

    def any_method(self, c: list[Any]) -> tuple[n.Ident, ...]:
        return ()

    def route_body(self, c: list[Any]) -> tuple[n.RouteAssign, ...]:
        return tuple(c[1:-1])

    def http_decl(self, c: list[Any]) -> n.HttpDecl:
        return n.HttpDecl(tuple(c[2:-1]), self._from_tok(c[0]))

    def route_assign(self, c: list[Any]) -> n.RouteAssign:
        root, target = c[0]
        return n.RouteAssign(root[1], target, c[2], self._from_tok(root))

    def route_target(self, c: list[_Tok]) -> tuple[_Tok, n.Ident]:
        return c[0], self._ident(c[2])

    def source_literal(self, c: list[_Tok]) -> n.RouteSource:
        return n.RouteSource("literal", unquote(c[0][1]), None, self._tok_span(c[0]))

    def source_path(self, c: list[_Tok]) -> n.RouteSource:
        return n.RouteSource("path", c[2][1], None, self._from_tok(c[0]))

    def source_query(self, c: list[_Tok]) -> n.RouteSource:
        return n.RouteSource("query", c[2][1], None, self._from_tok(c[0]))

    def source_header(self, c: list[_Tok]) -> n.RouteSource:
        default = unquote(c[4][1]) if len(c) == 6 else None
        return n.RouteSource("header", unquote(c[2][1]).lower(), default, self._from_tok(c[0]))

    def source_peer(self, c: list[_Tok]) -> n.RouteSource:
        return n.RouteSource("source", c[2][1], None, self._from_tok(c[0]))

    def source_now(self, c: list[_Tok]) -> n.RouteSource:
        return n.RouteSource("now", "now", None, self._tok_span(c[0]))

    # ---- rules ---------------------------------------------------------------------------
    def rule(self, c: list[Any]) -> n.Rule:
        i = 0  # the effect, after the annotations
        while type(c[i]) is not _Tok:
            i += 1
        effect = c[i][1]
        assert effect in ("permit", "forbid")
        principals: tuple[n.Ident, ...] = ()
        actions: tuple[n.Ident, ...] = ()
        resources: tuple[n.Ident, ...] = ()
        roles: tuple[n.Ident, ...] = ()
        conditions = []
        obligations: list[n.Obligation] = []
        advice: list[n.AdviceItem] = []
        j, last = i + 2, len(c) - 1
        while j < last:  # the scopes and conditions (keyword, value), then the blocks
            part = c[j]
            if type(part) is _Tok:
                keyword, value = part[1], c[j + 1]
                if keyword == "resource":
                    resources += value
                elif keyword == "action":
                    actions += value
                elif keyword == "principal":
                    principals += value
                elif keyword == "role":
                    roles += value
                else:
                    conditions.append(_Condition(keyword, value, self._condition_span(part, value)))
                j += 2
            else:
                if part[0] == "obligations":
                    obligations.extend(part[1])
                else:
                    advice.extend(part[1])
                j += 1
        return _Rule(
            self._ident(c[i + 1]),
            "permit" if effect == "permit" else "forbid",
            tuple(c[:i]),
            principals,
            actions,
            resources,
            roles,
            tuple(conditions),
            tuple(obligations),
            tuple(advice),
            self.namespace,
            self._from_node(c[0]) if i else self._from_tok(c[0]),
        )

    def _condition_span(self, keyword: _Tok, expr: Any) -> Span:
        """From `when` or `unless` to the end of the expression (its `)` if parenthesized)."""
        start = keyword[2]
        starts = self.starts
        line = bisect_right(starts, start)
        paren = self.parens.get(id(expr)) if self.parens else None
        if paren is not None and paren[0] is expr:
            end, end_line, end_col = paren[4], paren[5], paren[6]
        else:
            span = expr.span
            end, end_line, end_col = span.end, span.end_line, span.end_col
        return _Span(self.file, line, start - starts[line - 1] + 1, end_line, end_col, start, end)

    def annotation(self, c: list[_Tok]) -> n.Annotation:
        return n.Annotation(c[1][1], unquote(c[3][1]), self._from_tok(c[0]))

    def obligations(self, c: list[Any]) -> tuple[str, Any]:
        return ("obligations", c[2:-1])

    def mask(self, c: list[Any]) -> n.Mask:
        return n.Mask(tuple(c[1:-1:2]), self._from_tok(c[0]))

    def header(self, c: list[Any]) -> n.SetHeader:
        return n.SetHeader(unquote(c[1][1]), c[3], self._from_tok(c[0]))

    def advice(self, c: list[Any]) -> tuple[str, Any]:
        return ("advice", c[2:-1])

    def advice_item(self, c: list[Any]) -> n.AdviceItem:
        return n.AdviceItem(c[0][1], c[2], self._from_tok(c[0]))

    # ---- expressions ---------------------------------------------------------------------
    def paren(self, c: list[Any]) -> Any:
        """`( expr )`: the expression itself; a parent's span starts at the `(` (and a
        condition's ends at the `)`)."""
        expr, start, end = c[1], c[0][2], c[2][3]
        starts = self.starts
        line, end_line = bisect_right(starts, start), bisect_right(starts, end)
        col, end_col = start - starts[line - 1] + 1, end - starts[end_line - 1] + 1
        self.parens[id(expr)] = (expr, start, line, col, end, end_line, end_col)
        return expr

    def or_(self, c: list[Any]) -> n.Or:
        return _Or(c[0], c[2], self._from_node(c[0]))

    def and_(self, c: list[Any]) -> n.And:
        return _And(c[0], c[2], self._from_node(c[0]))

    def not_(self, c: list[Any]) -> n.Not:
        return _Not(c[1], self._from_tok(c[0]))

    def neg(self, c: list[Any]) -> n.Neg:
        return n.Neg(c[1], self._from_tok(c[0]))

    def _binary(self, c: list[Any]) -> n.Binary:
        return _Binary(c[1][1], c[0], c[2], self._from_node(c[0]))  # the operator's text is the op

    eq = ne = lt = le = gt = ge = add = sub = in_ = _binary

    def has(self, c: list[Any]) -> n.Has:
        return _Has(c[0], c[2][1], self._from_node(c[0]))

    def like(self, c: list[Any]) -> n.Like:
        return n.Like(c[0], unquote(c[2][1]), self._from_node(c[0]))

    def attr(self, c: list[Any]) -> n.Attr:
        return _Attr(c[0], c[2][1], self._from_node(c[0]))

    def method(self, c: list[Any]) -> n.Method:
        args = tuple(x for x in c[4:-1] if type(x) is not _Tok)
        return n.Method(c[0], c[2][1], args, self._from_node(c[0]))

    def index(self, c: list[Any]) -> n.Index:
        return n.Index(c[0], c[2], self._from_node(c[0]))

    def string(self, c: list[_Tok]) -> n.Lit:
        return _Lit(unquote(c[0][1]), "string", self._tok_span(c[0]))

    def int(self, c: list[_Tok]) -> n.Lit:
        return _Lit(int(c[0][1]), "int", self._tok_span(c[0]))

    def duration(self, c: list[_Tok]) -> n.Lit:
        return _Lit(parse_duration(c[0][1]), "duration", self._tok_span(c[0]))

    def true(self, c: list[_Tok]) -> n.Lit:
        return _Lit(True, "bool", self._tok_span(c[0]))

    def false(self, c: list[_Tok]) -> n.Lit:
        return _Lit(False, "bool", self._tok_span(c[0]))

    def _var(self, c: list[_Tok]) -> n.Var:
        tok = c[0]  # principal, resource, context or now: the name is the token's text
        start, end = tok[2], tok[3]
        starts = self.starts
        line = bisect_right(starts, start)
        col = start - starts[line - 1] + 1
        return _Var(tok[1], _Span(self.file, line, col, line, col + end - start, start, end))

    principal = resource = context = now = _var

    def role_ref(self, c: list[_Tok]) -> n.RoleRef:
        return n.RoleRef(c[1][1], self._from_tok(c[0]))

    def entity_ref(self, c: list[_Tok]) -> n.EntityRef:
        return n.EntityRef(c[0][1], unquote(c[2][1]), self._from_tok(c[0]))

    def call(self, c: list[Any]) -> n.Call:
        args = tuple(x for x in c[2:-1] if type(x) is not _Tok)
        return n.Call(c[0][1], args, self._from_tok(c[0]))

    def name(self, c: list[_Tok]) -> n.Name:
        return _Name(c[0][1], self._tok_span(c[0]))

    def set_lit(self, c: list[Any]) -> n.SetLit:
        return n.SetLit(tuple(x for x in c[1:-1] if type(x) is not _Tok), self._from_tok(c[0]))
