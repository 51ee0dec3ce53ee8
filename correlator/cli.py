"""The `correlator` command: one sub-command per module in correlator/commands/.

A command module has `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
Only the module of the command given is imported (`correlator rules test` never loads the daemon's
or the replay's modules); without a known command, all are, for the help and the error message.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from correlator import __version__
from correlator.errors import ConfigError, CorrelatorError

# command name -> the module that registers it, in the order `correlator --help` lists them
COMMANDS = {
    "run": "correlator.commands.run",
    "backup": "correlator.commands.backup",
    "restore": "correlator.commands.backup",
    "replay": "correlator.commands.replay",
    "rules": "correlator.commands.rules",
    "mibs": "correlator.commands.mibs",
    "incidents": "correlator.commands.incidents",
    "events": "correlator.commands.events",
    "changes": "correlator.commands.changes",
    "problems": "correlator.commands.problems",
    "known-errors": "correlator.commands.problems",
    "dead-letters": "correlator.commands.dead_letters",
    "report": "correlator.commands.report",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or only of `command` when it names one."""
    parser = argparse.ArgumentParser(prog="correlator", description="NOC event-correlation daemon")
    parser.add_argument("--version", action="version", version=f"correlator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = [COMMANDS[command]] if command in COMMANDS else COMMANDS.values()
    for name in dict.fromkeys(modules):
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Every failure the operator can cause is one line on stderr and an exit code, no traceback."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv[0] if argv else None).parse_args(argv)
    try:
        rc: int = args.func(args)
        sys.stdout.flush()  # here, so that a closed pipe is reported below and not at exit
    except ConfigError as e:
        print(f"correlator: configuration error: {e}", file=sys.stderr)
        return 2
    except CorrelatorError as e:  # refused on purpose (e.g. the data directory in use): one line
        print(f"correlator: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `correlator incidents list | head -1`: the reader has what it wanted. Python would
        # report the closed pipe again when it flushes stdout at exit, so point stdout elsewhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # a file named on the command line: missing, unreadable, a directory
        where = f"{e.filename}: " if e.filename else ""
        print(f"correlator: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
