"""`pdp test DIR`: run the policy tests under DIR against the policies in DIR, with coverage.

    pdp test DIR [--filter PATTERN] [--json] [--junit-xml FILE] [--min-coverage N] [-v]

Prints each failure with the test's `file:line`, expected vs got and the explain trace of the
decision, then the coverage, and last, alone on its line, `N passed, N failed` (with `--json`,
stdout holds only the JSON document and the summary line goes to stderr).

Exit codes: 0 every test passed (and coverage meets `--min-coverage`); 1 a test failed, a test
file could not be read, there were no tests, coverage is below the minimum, or the policies do
not compile; 2 bad usage (no such directory, unwritable report file).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pdp.cli import EXIT_OK, EXIT_POLICY, CliError, Command, load_engine
from pdp.testing.reporters import format_text, junit_xml, suite_json, summary_line
from pdp.testing.runner import run_suite


def _percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value <= 100:
        raise argparse.ArgumentTypeError("a percentage between 0 and 100")
    return value


def _test_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="policy directory; its *_test.toml files are the tests")
    parser.add_argument(
        "--filter", "-k", metavar="PATTERN", help="run only tests whose name (or file::name) matches this glob"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    parser.add_argument("--junit-xml", metavar="FILE", help="also write the results as JUnit XML to FILE")
    parser.add_argument(
        "--min-coverage", metavar="N", type=_percent, help="fail unless tests cover at least N%% of rules and grants"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="list passing tests too")


def cmd_test(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    if not directory.is_dir():
        raise CliError(f"no policy directory at {args.dir}")
    engine, _ = load_engine(args.dir)
    suite = run_suite(engine, args.dir, pattern=args.filter)
    if args.junit_xml:
        try:
            Path(args.junit_xml).write_bytes(junit_xml(suite))
        except OSError as exc:
            raise CliError(f"cannot write {args.junit_xml}: {exc.strerror or exc}") from None
    minimum: float | None = args.min_coverage
    if args.json:
        sys.stdout.write(json.dumps(suite_json(suite, minimum=minimum), indent=2, ensure_ascii=False) + "\n")
        sys.stderr.write(summary_line(suite.passed, suite.failed) + "\n")
    else:
        sys.stdout.write(format_text(suite, verbose=args.verbose, minimum=minimum))
    failed = suite.failed or not suite.results or (minimum is not None and not suite.coverage.meets(minimum))
    return EXIT_POLICY if failed else EXIT_OK


COMMANDS: tuple[Command, ...] = (
    Command("test", "run the policy tests (*_test.toml) under a directory, with coverage", _test_arguments, cmd_test),
)
