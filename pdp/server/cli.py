"""`pdp serve [DIR]`: the decision point. Every setting is a flag and a config-file key."""

from __future__ import annotations

import argparse
import sys

from pdp.cli import Command
from pdp.server.config import ConfigError, add_arguments, load_settings


def _arguments(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser)
    parser.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)


def cmd_serve(args: argparse.Namespace) -> int:
    from pdp.server.app import run

    try:
        settings = load_settings(args)
    except ConfigError as exc:
        print(f"pdp serve: {exc}", file=sys.stderr)
        return 2
    argv = [a for a in sys.argv[2:]] if len(sys.argv) > 1 and sys.argv[1] == "serve" else []
    return run(settings, argv, worker=args.worker_index)


COMMANDS = (Command("serve", "run the decision point (gRPC) on a policy directory", _arguments, cmd_serve),)
