"""The `correlator` command: one sub-command per module in correlator/commands/.

A command module has `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from correlator import __version__
from correlator.errors import ConfigError

COMMANDS = [
    "correlator.commands.run",
    "correlator.commands.replay",
    "correlator.commands.rules",
    "correlator.commands.mibs",
    "correlator.commands.incidents",
    "correlator.commands.changes",
    "correlator.commands.problems",
    "correlator.commands.dead_letters",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="correlator", description="NOC event-correlation daemon")
    parser.add_argument("--version", action="version", version=f"correlator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc: int = args.func(args)
    except ConfigError as e:
        print(f"correlator: configuration error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
