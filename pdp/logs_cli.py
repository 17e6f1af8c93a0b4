"""`pdp logs FILE...`: read decision logs (JSON lines or msgpack), filter them, print them.

    pdp logs decisions.jsonl                         every event: the file and its rotated siblings
    pdp logs 'logs/decisions.w*.jsonl' --decision deny --since 15m
    pdp logs decisions.msgpack --principal bob --rule acme.owner_full_access --json --limit 20

One line per event by default (time, decision, principal, action, resource, reasons, latency,
cached, and the first error); `--json` prints each event as one JSON line instead. A damaged or
truncated record (a writer that crashed mid-write) ends that file with a warning on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime

from pdp.cli import EXIT_OK, EXIT_USAGE, Command
from pdp.decision_log import format_event, matches, parse_time, read_events


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, found {text!r}")
    return value


def _logs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="decision log files or globs; a file's rotated siblings (FILE.N ... FILE.1) are read too, oldest first",
    )
    parser.add_argument("--decision", choices=("allow", "deny"), help="only allowed or only denied requests")
    parser.add_argument("--principal", metavar="ID", help="only requests by this principal id (or Type:id)")
    parser.add_argument("--rule", metavar="ID", help="only decisions this rule id determined (reasons) or failed in")
    parser.add_argument(
        "--since", metavar="TIME", help="from this time on: 2026-11-27T10:00:00Z, 2026-11-27, or a duration ago (15m)"
    )
    parser.add_argument("--until", metavar="TIME", help="before this time (same forms as --since)")
    parser.add_argument("--limit", type=_positive_int, metavar="N", help="stop after N matching events")
    parser.add_argument("--json", action="store_true", help="print each event as one JSON line")


class _Usage(Exception):
    pass


def _time(text: str | None, option: str) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise _Usage(f"{option}: {exc}") from None


def _warn(message: str) -> None:
    sys.stderr.write(f"pdp logs: warning: {message}\n")


def _error(message: str) -> int:
    # Reported here rather than by raising pdp.cli.CliError: under `python -m pdp.cli` the running
    # main() is __main__'s, whose CliError is another class than the one this module imports.
    sys.stderr.write(f"pdp: error: {message}\n")
    return EXIT_USAGE


def cmd_logs(args: argparse.Namespace) -> int:
    try:
        since = _time(args.since, "--since")
        until = _time(args.until, "--until")
        events = read_events(args.files, on_warning=_warn)
    except _Usage as exc:
        return _error(str(exc))
    except FileNotFoundError as exc:
        return _error(str(exc.args[0] if exc.args else exc))
    limit: int | None = args.limit
    shown = 0
    out = sys.stdout
    try:
        for event in events:
            if not matches(
                event, decision=args.decision, principal=args.principal, rule=args.rule, since=since, until=until
            ):
                continue
            if args.json:
                out.write(json.dumps(event, separators=(",", ":"), ensure_ascii=False) + "\n")
            else:
                out.write(format_event(event) + "\n")
            shown += 1
            if limit is not None and shown >= limit:
                break
        out.flush()
    except BrokenPipeError:  # `pdp logs ... | head`: the reader has seen enough
        _silence_stdout()
        return EXIT_OK
    except OSError as exc:
        return _error(f"cannot read the decision log: {exc}")
    return EXIT_OK


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's final flush does not fail again."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError, AttributeError):
        pass


COMMANDS: tuple[Command, ...] = (
    Command("logs", "read, filter and print decision logs (JSON lines or msgpack)", _logs_arguments, cmd_logs),
)
