"""The `pdp` command line.

    pdp validate DIR                                  compile everything, report every error
    pdp check DIR --request FILE                      decide one request (JSON on stdout)
    pdp explain DIR --request FILE [--json]           why: each rule, what it compared
    pdp plan DIR --resource-type T --action A         the compiled decision tree

Exit codes: 0 done (for `check`, whether allowed or not); 1 the policies do not compile;
2 bad usage or input (unreadable file, bad JSON, unknown type or action).

Each subcommand is one `Command` in `COMMANDS`: a function that adds its arguments and a
function that runs it and returns the exit code. Add a subcommand by adding an entry.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pdp.engine import Engine
from pdp.explain import explain, format_explanation
from pdp.loader import read_directory
from policy_lang.errors import Diagnostic, PolicyError
from policy_lang.plan import PlanError, render_plan
from policy_lang.spans import Span

EXIT_OK, EXIT_POLICY, EXIT_USAGE = 0, 1, 2


class CliError(Exception):
    """A problem to report on one line of stderr, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


# ---- shared helpers ---------------------------------------------------------------------


def load_engine(directory: str) -> tuple[Engine, int]:
    """Compile a policy directory (or one file); returns the engine and how many policy files it read.

    Raises PolicyError when the policies do not compile, CliError when they cannot be read.
    """
    try:
        sources = read_directory(directory)
    except FileNotFoundError as exc:
        raise CliError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read policies under {directory}: {exc}") from None
    if not sources.policies:
        raise CliError(f"no policy files (*.pdp) under {directory}", EXIT_POLICY)
    return Engine.from_sources(sources), len(sources.policies)


def read_request(path: str) -> Any:
    """The JSON request in `path`, or on stdin for `-`."""
    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CliError(f"cannot read request {name}: {reason}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"request {name} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _json_out(value: Any) -> None:
    _out(json.dumps(value, indent=2, ensure_ascii=False))


def _add_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="policy directory (*.pdp and data.json files), or one .pdp file")


def _add_request(parser: argparse.ArgumentParser) -> None:
    _add_dir(parser)
    parser.add_argument("--request", "-r", required=True, metavar="FILE", help="JSON request file; `-` reads stdin")


# ---- validate ---------------------------------------------------------------------------


def _validate_arguments(parser: argparse.ArgumentParser) -> None:
    _add_dir(parser)


def cmd_validate(args: argparse.Namespace) -> int:
    engine, files = load_engine(args.dir)
    # Generate every leaf's code too (as the server does before serving), so a policy whose
    # generated code fails (e.g. the sandbox rejects it) is reported here, not at request time.
    problems = []
    for bucket in engine.policy.buckets.values():
        try:
            bucket.materialize()
        except Exception as exc:
            ptype, rtype, action = bucket.key
            message = f"cannot generate code for {ptype} -> {rtype} action {action}: {type(exc).__name__}: {exc}"
            span = bucket.rules[0].span if bucket.rules else Span("<policy>", 0, 0, 0, 0)
            problems.append(Diagnostic("internal_error", message, span))
    if problems:
        raise PolicyError(problems, engine.policy.checked.sources)
    rules = len(engine.policy.checked.rules)
    _out(f"ok: {rules} rules, {files} files, revision {engine.revision}")
    return EXIT_OK


# ---- check ------------------------------------------------------------------------------


def _check_arguments(parser: argparse.ArgumentParser) -> None:
    _add_request(parser)


def cmd_check(args: argparse.Namespace) -> int:
    request = read_request(args.request)
    engine, _ = load_engine(args.dir)
    _json_out(engine.decide(request).to_json())
    return EXIT_OK


# ---- explain ----------------------------------------------------------------------------


def _explain_arguments(parser: argparse.ArgumentParser) -> None:
    _add_request(parser)
    parser.add_argument("--json", action="store_true", help="print the explanation as JSON")
    parser.add_argument("--show-sensitive", action="store_true", help="show values of attributes declared `sensitive`")


def cmd_explain(args: argparse.Namespace) -> int:
    request = read_request(args.request)
    engine, _ = load_engine(args.dir)
    result = explain(engine, request, show_sensitive=args.show_sensitive)
    if args.json:
        _json_out(result)
    else:
        _out(format_explanation(result))
    return EXIT_OK


# ---- plan -------------------------------------------------------------------------------


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    _add_dir(parser)
    parser.add_argument("--resource-type", "-t", required=True, metavar="TYPE", help="resource entity type")
    parser.add_argument("--action", "-a", required=True, metavar="ACTION", help="action on that resource type")


def cmd_plan(args: argparse.Namespace) -> int:
    engine, _ = load_engine(args.dir)
    try:
        _out(render_plan(engine.policy, args.resource_type, args.action))
    except PlanError as exc:
        raise CliError(str(exc)) from None
    return EXIT_OK


# ---- the table --------------------------------------------------------------------------

COMMANDS: tuple[Command, ...] = (
    Command("validate", "compile every policy and data file and report all errors", _validate_arguments, cmd_validate),
    Command("check", "decide one request and print the decision as JSON", _check_arguments, cmd_check),
    Command(
        "explain", "show every rule considered for a request and what it compared", _explain_arguments, cmd_explain
    ),
    Command("plan", "print the compiled decision tree for a resource type and action", _plan_arguments, cmd_plan),
)


# Subcommands that live beside the part they drive; each module exposes `COMMANDS`.
# Imported when the parser is built, so that those modules may import this one.
COMMAND_MODULES = ("pdp.testing.cli", "pdp.tidy_cli", "pdp.logs_cli", "pdp.server.cli")


def all_commands() -> tuple[Command, ...]:
    found = list(COMMANDS)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if not (name == missing or name.startswith(missing + ".")):
                raise  # a real import error inside the module must surface
            continue
        found.extend(module.COMMANDS)
    return tuple(found)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pdp", description="Policy-as-code authorization: tools for .pdp policies.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in all_commands():
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors and --help; report the code instead of exiting
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        run: Callable[[argparse.Namespace], int] = args.run
        return run(args)
    except PolicyError as exc:
        sys.stderr.write(exc.render() + "\n")
        count = len(exc.diagnostics)
        sys.stderr.write(f"{count} error{'s' if count != 1 else ''}\n")
        return EXIT_POLICY
    except CliError as exc:
        sys.stderr.write(f"pdp: error: {exc.message}\n")
        return exc.code


if __name__ == "__main__":
    # Run as `python -m pdp.cli`, this file is `__main__`; subcommand modules import `pdp.cli`.
    # Going through that one module keeps a single CliError class, so their errors are caught.
    from pdp.cli import main as _main

    raise SystemExit(_main())
