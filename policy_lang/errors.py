"""One error family for the whole compiler, each error with a stable code and a span.

Messages follow Cedar's style: lowercase, no final period, user input in backticks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from policy_lang.spans import Source, Span


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span
    help: str | None = None

    def __str__(self) -> str:
        return f"{self.span}: {self.code}: {self.message}"

    def render(self, sources: Mapping[str, Source] | None = None) -> str:
        """`file:line:col: code: message`, then the source line and a caret under the column."""
        out = [str(self)]
        source = (sources or {}).get(self.span.file)
        if source is not None and self.span.line > 0:
            text = source.line(self.span.line)
            width = 1
            if self.span.end_line == self.span.line and self.span.end_col > self.span.col:
                width = self.span.end_col - self.span.col
            out.append(f"  {self.span.line:>4} | {text}")
            out.append("       | " + " " * (self.span.col - 1) + "^" * max(width, 1))
        if self.help:
            out.append(f"  help: {self.help}")
        return "\n".join(out)


class PolicyError(Exception):
    """Root of every error the compiler raises; carries all diagnostics found, sorted by place."""

    def __init__(self, diagnostics: Iterable[Diagnostic], sources: Mapping[str, Source] | None = None):
        diags = sorted(set(diagnostics), key=lambda d: (d.span.file, d.span.line, d.span.col, d.code, d.message))
        if not diags:
            raise ValueError("a PolicyError needs at least one diagnostic")
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diags)
        self.sources: dict[str, Source] = dict(sources or {})
        super().__init__(str(self.diagnostics[0]))

    def render(self) -> str:
        return "\n".join(d.render(self.sources) for d in self.diagnostics)

    def __str__(self) -> str:
        return "\n".join(str(d) for d in self.diagnostics)


class PolicySyntaxError(PolicyError):
    """The text does not follow the grammar."""


class PolicyCheckError(PolicyError):
    """The text parses but does not make sense against the schema."""


class PolicyDataError(PolicyError):
    """An entity data file does not match the schema."""
