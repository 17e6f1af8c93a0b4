"""`pdp fmt` and `pdp lint`: keep policy files canonical and catch policy that cannot mean what it says.

    pdp fmt [--check] PATHS...     rewrite .pdp files in their canonical layout (comments kept)
    pdp lint DIR [--json]          static findings, `file:line:col: code: message`

Exit codes: 0 nothing to report; 1 `fmt --check` found a file to reformat, a file does not
parse, lint found something or the policies do not compile; 2 bad usage or unreadable input.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from pathlib import Path

from pdp.cli import EXIT_OK, EXIT_POLICY, CliError, Command, load_engine
from pdp.loader import is_policy_file
from policy_lang.errors import Diagnostic, PolicyError
from policy_lang.formatter import FormatError, format_text
from policy_lang.lint import lint
from policy_lang.spans import Source

# ---- fmt --------------------------------------------------------------------------------------


def _fmt_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help=".pdp files, or directories searched for them")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; show a diff of each file that would change, exit 1 if any"
    )


def policy_files(paths: list[str]) -> list[Path]:
    """The files named, and the policy files (`*.pdp`, not `*_test.pdp`) under the directories named."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.pdp") if p.is_file() and is_policy_file(p))
        elif path.is_file():
            found.append(path)
        else:
            raise CliError(f"no such file or directory: {name}")
    unique: dict[Path, None] = dict.fromkeys(found)
    return list(unique)


def _read(path: Path) -> str:
    try:
        with open(path, encoding="utf-8", newline="") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CliError(f"cannot read {path}: {reason}") from None


def cmd_fmt(args: argparse.Namespace) -> int:
    files = policy_files(args.paths)
    changed: list[Path] = []
    failed = 0
    for path in files:
        text = _read(path)
        try:
            formatted = format_text(text, filename=str(path))
        except PolicyError as exc:
            sys.stderr.write(exc.render() + "\n")
            failed += 1
            continue
        except FormatError as exc:
            sys.stderr.write(f"pdp: error: {exc}; {path} left as it is\n")
            failed += 1
            continue
        if formatted == text:
            continue
        changed.append(path)
        if args.check:
            diff = difflib.unified_diff(
                text.splitlines(keepends=True),
                formatted.splitlines(keepends=True),
                fromfile=str(path),
                tofile=f"{path} (formatted)",
            )
            sys.stdout.writelines(
                line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in diff
            )
        else:
            try:
                with open(path, "w", encoding="utf-8", newline="") as f:
                    f.write(formatted)
            except OSError as exc:
                raise CliError(f"cannot write {path}: {exc.strerror or exc}") from None
            sys.stdout.write(f"{path}\n")
    verb = "would reformat" if args.check else "reformatted"
    summary = f"{verb} {len(changed)} of {len(files)} file{'s' if len(files) != 1 else ''}"
    if failed:
        summary += f"; {failed} could not be formatted"
    sys.stderr.write(summary + "\n")
    if failed or (args.check and changed):
        return EXIT_POLICY
    return EXIT_OK


# ---- lint -------------------------------------------------------------------------------------


def _lint_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="policy directory (*.pdp and data.json files), or one .pdp file")
    parser.add_argument("--json", action="store_true", help="print the findings as a JSON list")


def _as_json(d: Diagnostic, severity: str) -> dict[str, object]:
    return {
        "file": d.span.file,
        "line": d.span.line,
        "col": d.span.col,
        "code": d.code,
        "message": d.message,
        "severity": severity,
    }


def cmd_lint(args: argparse.Namespace) -> int:
    sources: dict[str, Source] = {}
    try:
        engine, _ = load_engine(args.dir)
    except PolicyError as exc:  # it does not compile: those errors are the findings
        findings, severity = list(exc.diagnostics), "error"
        sources = exc.sources
    else:
        findings, severity = lint(engine.policy.checked), "warning"
    if args.json:
        sys.stdout.write(json.dumps([_as_json(d, severity) for d in findings], indent=2, ensure_ascii=False) + "\n")
    elif severity == "error":
        sys.stdout.write("".join(d.render(sources) + "\n" for d in findings))
    else:
        sys.stdout.write("".join(f"{d}\n" for d in findings))
    if findings:
        count = len(findings)
        noun = "error" if severity == "error" else "finding"
        sys.stderr.write(f"{count} {noun}{'s' if count != 1 else ''}\n")
        return EXIT_POLICY
    return EXIT_OK


COMMANDS: tuple[Command, ...] = (
    Command(
        "fmt", "rewrite .pdp files in the canonical layout, comments kept (--check: only show)", _fmt_arguments, cmd_fmt
    ),
    Command("lint", "report rules, roles and constants that cannot mean what they say", _lint_arguments, cmd_lint),
)
