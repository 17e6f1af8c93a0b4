"""Canonical layout of `.pdp` text, comments kept: `format_text(text) -> text`. Pure.

The text is parsed (`policy_lang.parser`) and printed again from the AST, piece by piece with
`policy_lang.printer`; the result is checked to parse to an equal AST with the same comments
before it is returned, so formatting never changes what a policy says.

Style:

- Two spaces per indentation level. One declaration, attribute, grant, window field, rule
  clause, obligation, advice item and route assignment per line; a block's `{` ends its line
  and its `}` stands alone. Empty blocks print as `{}` (`role x;` for a role without grants,
  `route ... => action Type;` for a route without assignments).
- A route: `route`, its methods (`GET, HEAD`, or `*`) and its quoted pattern, or `default`;
  then `=> action Type` on the same line, however long; the `http` block like any other.
- A rule: its annotations, `permit|forbid id`, then its clauses indented by two in a fixed
  order: principal, action, resource, role, the conditions in their order, obligations,
  advice; `;` ends the last line. Repeated clauses of one kind are merged
  (`principal A principal B` -> `principal A, B`).
- Expressions as the printer prints them: single spaces, minimal parentheses, canonical
  strings and durations (`90m` -> `1h30m`). `list` declarations stay `list`.
- Lines are at most 80 columns where the language allows a break: a wider condition is split
  before each top-level `and` (or `or`), the operator right-aligned under `when`/`unless`; a
  wider list value or record type is split one element per line (list items end with `,`).
- Blank lines: at most one in a row. Kept where the author put one between top-level
  declarations and between the members of a block; always one around a top-level declaration
  that spans several lines and after `namespace`; none inside a rule or after a `{`.

Comments are attached by position. A comment alone on its line goes before the next line
printed (with that line's indentation), or before the line whose construct it sat inside.
A comment after code on its line stays at the end of the printed line holding that code,
two spaces after it, aligned in one column with the trailing comments of the neighbouring
lines (consecutive lines, no blank or comment line between). A comment between the operands
of a split condition or between the items of a list or record keeps that construct split;
one inside a construct printed on one line moves to the end of that line (or before it, when
the line already ends in a comment). No comment is ever dropped.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from policy_lang import nodes as n
from policy_lang import printer
from policy_lang.parser import parse

WIDTH = 80
STEP = 2

Blanks = Literal["all", "comments", "none"]


class FormatError(Exception):
    """Formatting would change a file's meaning or its comments: a formatter bug; nothing is written."""


def format_text(text: str, *, filename: str = "<string>") -> str:
    """The canonical layout of one file. Raises PolicySyntaxError when the text does not parse."""
    tree = parse(text, filename=filename)
    out = _Formatter(text, tree).run()
    again = parse(out, filename=filename)
    if again.items != tree.items or again.namespace != tree.namespace:
        raise FormatError(f"{filename}: formatting would change the policy (a formatter bug)")
    if sorted(comment_texts(again)) != sorted(comment_texts(tree)):
        raise FormatError(f"{filename}: formatting would lose or change a comment (a formatter bug)")
    return out


def comment_texts(f: n.PolicyFile) -> list[str]:
    """The file's comments as the formatter writes them: verbatim, line comments without trailing blanks."""
    return [_comment_text(c) for c in f.comments]


def _comment_text(c: n.Comment) -> str:
    return c.text if c.text.startswith("/*") else c.text.rstrip()


def _single_line_block(c: n.Comment) -> bool:
    return c.text.startswith("/*") and "\n" not in c.text


# ---- the source: where code is, with comments blanked out ------------------------------------


class _Source:
    def __init__(self, text: str, comments: tuple[n.Comment, ...]):
        self.text = text
        chars = list(text)
        for c in comments:
            for i in range(c.span.start, c.span.end):
                if chars[i] != "\n":
                    chars[i] = " "
        self.code = "".join(chars)
        self.line_starts = [0, *(i + 1 for i, ch in enumerate(text) if ch == "\n")]

    def prev_code(self, pos: int) -> int:
        """The offset of the last code character before `pos`, or -1."""
        i = pos - 1
        while i >= 0 and self.code[i].isspace():
            i -= 1
        return i

    def next_code(self, pos: int) -> int:
        """The offset of the first code character at or after `pos` (the length of the text if none)."""
        i = pos
        while i < len(self.code) and self.code[i].isspace():
            i += 1
        return i

    def keyword_before(self, pos: int, keyword: str) -> int:
        """Where `keyword` starts, given that it is the code just before `pos`."""
        return self.prev_code(pos) - len(keyword) + 1

    def line_of(self, pos: int) -> int:
        return bisect.bisect_right(self.line_starts, pos) - 1

    def starts_line(self, pos: int) -> bool:
        """Nothing but blanks before `pos` on its line (a comment counts as something)."""
        return self.text[self.line_starts[self.line_of(pos)] : pos].strip() == ""

    def blank_above(self, pos: int) -> bool:
        """The line above the one holding `pos` is empty; only asked for things that start their line."""
        line = self.line_of(pos)
        return line > 0 and self.text[self.line_starts[line - 1] : self.line_starts[line]].strip() == ""


# ---- printed lines ---------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Line:
    indent: int
    text: str
    anchor: int  # source offset of what this line prints: comments are placed by it
    end: int  # source offset just past it: comments alone on their line in between move before the line
    blanks: Blanks = "none"  # which source blank lines are kept before it: before it, before its comments, none
    lead: int = -1  # indentation of the comments put before it (-1: its own)
    opens: bool = False  # ends with `{` or `[`: no blank line follows
    group: int = -1  # the top-level declaration it belongs to (-1: the namespace line)
    suffix: str = ""  # the rule's `;`
    leading: list[n.Comment] = field(default_factory=list)
    trailing: list[n.Comment] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class _Fold:
    """Lines `first`..`last` that become one line, `text`, when no comment sits between them (and it fits)."""

    first: _Line
    last: _Line
    text: str
    width_limited: bool


@dataclass(slots=True)
class _Out:
    kind: Literal["blank", "comment", "code"]
    text: str = ""
    comment: str = ""


class _Formatter:
    def __init__(self, text: str, tree: n.PolicyFile):
        self.src = _Source(text, tree.comments)
        self.tree = tree
        self.lines: list[_Line] = []
        self.folds: list[_Fold] = []
        self.tail: list[n.Comment] = []
        self.group = -1

    def run(self) -> str:
        if self.tree.namespace:  # parsed without a namespace argument: this one is declared
            start = self.src.next_code(0)
            self.add(0, f"namespace {self.tree.namespace};", start, self.src.code.find(";", start) + 1, blanks="all")
        for index, item in enumerate(self.tree.items):
            self.group = index
            self.declaration(item)
        self.place_comments()
        self.fold()
        return self.emit()

    def add(
        self,
        indent: int,
        text: str,
        anchor: int,
        end: int,
        *,
        blanks: Blanks = "none",
        lead: int = -1,
        opens: bool = False,
    ) -> _Line:
        line = _Line(indent, text, anchor, end, blanks, lead, opens, self.group)
        self.lines.append(line)
        return line

    # ---- declarations --------------------------------------------------------------------
    def declaration(self, d: n.Declaration) -> None:
        span = d.span
        if isinstance(d, n.Rule):
            self.rule(d)
        elif isinstance(d, (n.EntityDecl, n.ContextDecl)):
            head = printer.entity_head(d) if isinstance(d, n.EntityDecl) else "context"
            first = self.open_block(head, span.start)
            for a in d.attrs:
                self.attr(STEP, a)
            last = self.close_block(0, "}", span.end - 1, span.end)
            if not d.attrs:
                self.folds.append(_Fold(first, last, head + " {}", False))
        elif isinstance(d, n.RoleDecl):
            head = printer.role_head(d)
            if d.grants or self.src.code[span.end - 1] == "}":
                first = self.open_block(head, span.start)
                for g in d.grants:
                    self.add(STEP, printer.grant(g), g.span.start, g.span.end, blanks="all")
                last = self.close_block(0, "}", span.end - 1, span.end)
                if not d.grants:
                    self.folds.append(_Fold(first, last, head + ";", False))
            else:
                self.add(0, head + ";", span.start, span.end, blanks="all")
        elif isinstance(d, n.WindowDecl):
            head = f"window {d.name}"
            first = self.open_block(head, span.start)
            for f in d.fields:
                self.add(STEP, printer.window_field(f), f.span.start, f.span.end, blanks="all")
            last = self.close_block(0, "}", span.end - 1, span.end)
            if not d.fields:
                self.folds.append(_Fold(first, last, head + " {}", False))
        elif isinstance(d, n.ConstDecl):
            self.constant(d)
        elif isinstance(d, n.EnumDecl):
            self.add(0, printer.enum_decl(d), span.start, span.end, blanks="all")
        elif isinstance(d, n.ActionsDecl):
            self.add(0, printer.actions_decl(d), span.start, span.end, blanks="all")
        elif isinstance(d, n.RouteDecl):
            self.route(d)
        elif isinstance(d, n.HttpDecl):
            first = self.open_block("http", span.start)
            self.route_assigns(d.assigns)
            last = self.close_block(0, "}", span.end - 1, span.end)
            if not d.assigns:
                self.folds.append(_Fold(first, last, "http {}", False))
        else:
            self.add(0, printer.binding(d), span.start, span.end, blanks="all")

    def route(self, d: n.RouteDecl) -> None:
        span, head = d.span, printer.route_head(d)
        body = self.src.next_code(d.resource_type.span.end)  # its `{` or `;` (the pattern may hold a `{`)
        if self.src.code[body] == ";":
            self.add(0, head + ";", span.start, span.end, blanks="all")
            return
        first = self.add(0, head + " {", span.start, body + 1, blanks="all", opens=True)
        self.route_assigns(d.assigns)
        last = self.close_block(0, "}", span.end - 1, span.end)
        if not d.assigns:
            self.folds.append(_Fold(first, last, head + ";", False))

    def route_assigns(self, assigns: tuple[n.RouteAssign, ...]) -> None:
        for a in assigns:
            self.add(STEP, printer.route_assign(a), a.span.start, a.span.end, blanks="all")

    def open_block(self, head: str, start: int) -> _Line:
        brace = self.src.code.find("{", start)
        return self.add(0, head + " {", start, brace + 1, blanks="all", opens=True)

    def close_block(self, indent: int, text: str, pos: int, end: int, blanks: Blanks = "comments") -> _Line:
        return self.add(indent, text, pos, end, blanks=blanks, lead=indent + STEP)

    def attr(self, indent: int, a: n.AttrDecl) -> None:
        flat = printer.attr_decl(a)
        t = a.type
        if not isinstance(t, n.RecordType):
            self.add(indent, flat, a.span.start, a.span.end, blanks="all")
            return
        head = f"{a.name}{'?' if a.optional else ''}: {{"
        first = self.add(indent, head, a.span.start, t.span.start + 1, blanks="all", opens=True)
        for inner in t.attrs:
            self.attr(indent + STEP, inner)
        last = self.close_block(indent, "}" + (" sensitive" if a.sensitive else "") + ";", t.span.end - 1, a.span.end)
        self.folds.append(_Fold(first, last, flat, True))

    def constant(self, d: n.ConstDecl) -> None:
        keyword = "list" if self.src.code.startswith("list", d.span.start) else "const"
        flat = printer.const_decl(d, keyword)
        value = d.value
        if not isinstance(value, n.SetLit):
            self.add(0, flat, d.span.start, d.span.end, blanks="all")
            return
        head = f"{printer.const_head(d, keyword)} = ["
        first = self.add(0, head, d.span.start, value.span.start + 1, blanks="all", opens=True)
        for item in value.items:
            self.add(STEP, printer.expr(item) + ",", item.span.start, item.span.end, blanks="all")
        last = self.close_block(0, "];", value.span.end - 1, d.span.end)
        self.folds.append(_Fold(first, last, flat, True))

    # ---- rules ---------------------------------------------------------------------------
    def rule(self, r: n.Rule) -> None:
        src = self.src
        blanks: Blanks = "all"  # for the rule's first line only
        for a in r.annotations:
            self.add(0, printer.annotation(a), a.span.start, a.span.end, blanks=blanks)
            blanks = "none"
        effect = src.keyword_before(r.id.span.start, r.effect)
        self.add(0, f"{r.effect} {r.id.name}", effect, r.id.span.end, blanks=blanks)
        for keyword, idents in (
            ("principal", r.principals),
            ("action", r.actions),
            ("resource", r.resources),
            ("role", r.roles),
        ):
            if idents:
                start = src.keyword_before(idents[0].span.start, keyword)
                self.add(STEP, f"{keyword} {printer.names(idents)}", start, idents[-1].span.end)
        for c in r.conditions:
            self.condition(c)
        blocks: tuple[tuple[str, tuple[n.Obligation, ...] | tuple[n.AdviceItem, ...]], ...] = (
            ("obligations", r.obligations),
            ("advice", r.advice),
        )
        for keyword, items in blocks:
            if not items:
                continue
            brace = src.prev_code(items[0].span.start)
            self.add(STEP, keyword + " {", src.keyword_before(brace, keyword), brace + 1, opens=True)
            for item in items:
                text = (
                    printer.obligation(item) if isinstance(item, (n.Mask, n.SetHeader)) else printer.advice_item(item)
                )
                self.add(2 * STEP, text, item.span.start, item.span.end)
            close = src.next_code(items[-1].span.end)
            self.close_block(STEP, "}", close, close + 1, blanks="none")
        last = self.lines[-1]
        last.suffix = ";"
        last.end = max(last.end, r.span.end)

    def condition(self, c: n.Condition) -> None:
        op, operands = printer.chain(c.expr)
        head, head_text = operands[0]
        if len(operands) == 1:
            self.add(STEP, f"{c.kind} {head_text}", c.span.start, c.span.end)
            return
        first = self.add(STEP, f"{c.kind} {head_text}", c.span.start, head.span.end)
        last = first
        indent = STEP + len(c.kind) - len(op)  # the operator ends under the end of `when`/`unless`
        for node, text in operands[1:]:
            pos = self.src.prev_code(node.span.start)
            while pos >= 0 and self.src.code[pos] == "(":
                pos = self.src.prev_code(pos)
            last = self.add(indent, f"{op} {text}", pos - len(op) + 1, node.span.end, lead=STEP)
        self.folds.append(_Fold(first, last, f"{c.kind} {printer.expr(c.expr)}", True))

    # ---- comments --------------------------------------------------------------------------
    def place_comments(self) -> None:
        src, lines = self.src, self.lines
        order = sorted(range(len(lines)), key=lambda k: (lines[k].anchor, k))
        anchors = [lines[k].anchor for k in order]
        for c in self.tree.comments:
            start = c.span.start
            before = src.prev_code(start)
            if before >= 0 and src.line_of(before) == src.line_of(start):
                # After code on its line: stays at the end of the line printing that code.
                k = bisect.bisect_right(anchors, before) - 1
                if k >= 0:
                    lines[order[k]].trailing.append(c)
                    continue
            inside = [line for line in lines if line.anchor < start < line.end]
            if inside:
                max(inside, key=lambda line: line.anchor).leading.append(c)
                continue
            after = next((line for line in lines if line.anchor > start), None)
            if after is None:
                self.tail.append(c)
            else:
                after.leading.append(c)

    def fold(self) -> None:
        replaced: dict[_Line, _Line] = {}

        def current(line: _Line) -> _Line:
            while line in replaced:
                line = replaced[line]
            return line

        for f in self.folds:  # inner ones were registered first
            first, last = current(f.first), current(f.last)
            i = self.lines.index(first)  # lines compare by identity
            j = self.lines.index(last, i)
            span = self.lines[i : j + 1]
            if any(line.trailing for line in span[:-1]) or any(line.leading for line in span[1:]):
                continue  # a comment sits between its parts: keep them apart
            if f.width_limited and first.indent + len(f.text) + len(last.suffix) > WIDTH:
                continue
            merged = _Line(
                first.indent,
                f.text,
                first.anchor,
                last.end,
                first.blanks,
                first.lead,
                False,
                first.group,
                last.suffix,
                first.leading,
                last.trailing,
            )
            self.lines[i : j + 1] = [merged]
            for line in span:
                replaced[line] = merged

    # ---- output ----------------------------------------------------------------------------
    def emit(self) -> str:
        src = self.src
        out: list[_Out] = []
        state = {"open": True}  # at the start of the file, as after `{`: no blank line

        def blank() -> None:
            if out and not state["open"] and out[-1].kind != "blank":
                out.append(_Out("blank"))

        def comment(indent: int, c: n.Comment) -> None:
            out.append(_Out("comment", " " * indent + _comment_text(c)))
            state["open"] = False

        sizes = Counter(line.group for line in self.lines)
        previous: int | None = None
        for line in self.lines:
            forced = (
                previous is not None
                and line.group != previous
                and (previous == -1 or sizes[previous] > 1 or sizes[line.group] > 1)
            )
            previous = line.group
            moved, trailing = _split_trailing(line.trailing)
            leading = sorted([*line.leading, *moved], key=lambda c: c.span.start)
            lead = line.indent if line.lead < 0 else line.lead
            want_blank = forced
            for c in (c for c in leading if c.span.start < line.anchor):
                if want_blank or (
                    line.blanks != "none" and src.starts_line(c.span.start) and src.blank_above(c.span.start)
                ):
                    blank()
                want_blank = False
                comment(lead, c)
            if want_blank or (line.blanks == "all" and src.starts_line(line.anchor) and src.blank_above(line.anchor)):
                blank()
            for c in (c for c in leading if c.span.start >= line.anchor):
                comment(lead, c)
            code = " " * line.indent + line.text + line.suffix
            out.append(_Out("code", code, " ".join(_comment_text(c) for c in trailing)))
            state["open"] = line.opens
        for c in self.tail:
            if src.starts_line(c.span.start) and src.blank_above(c.span.start):
                blank()
            comment(0, c)
        return _render(out)


def _split_trailing(comments: list[n.Comment]) -> tuple[list[n.Comment], list[n.Comment]]:
    """(those moved before the line, those kept at its end): a line ends in its last comment, after
    the single-line block comments just before it; a line comment cannot be followed on its line."""
    k = len(comments) - 1
    while k > 0 and _single_line_block(comments[k - 1]):
        k -= 1
    return comments[: max(k, 0)], comments[max(k, 0) :]


def _render(out: list[_Out]) -> str:
    """Join the lines, aligning trailing comments in a column over each run of consecutive code lines."""
    lines: list[str] = []
    run: list[_Out] = []

    def flush() -> None:
        commented = [o for o in run if o.comment]
        column = max((len(o.text) for o in commented), default=0) + 2
        lines.extend(o.text + " " * (column - len(o.text)) + o.comment if o.comment else o.text for o in run)
        run.clear()

    for o in out:
        if o.kind == "code":
            run.append(o)
            if "\n" in o.comment:
                flush()
            continue
        flush()
        lines.append(o.text)
    flush()
    return "\n".join(lines) + "\n" if lines else ""
