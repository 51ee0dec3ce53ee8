"""The `correlator` command: one sub-command per module in correlator/commands/.

A command module has `register(subparsers)`, which adds its parser and sets `func(args) -> int`.
Only the module of the command given is imported (`correlator rules test` never loads the daemon's
or the replay's modules); without a known command, all are, for the help and the error message.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import pkgutil
import sys
import threading
from typing import Any

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


def defer_prometheus_exposition() -> None:
    """Let `prometheus_client.metrics` and `.registry` load without the package's `__init__`.

    That `__init__` imports `exposition` first (http.server, wsgiref, urllib.request, email: 5% of
    the instructions of an empty replay), and importing any submodule runs it first. The
    offline commands need the metric objects, never the exposition; the code imports them from
    their submodules (ruff's banned-api rule keeps it so). Here the package is put in sys.modules
    without running its `__init__`; the first look-up of a name the package itself defines (not a
    submodule) runs it then, so `from prometheus_client import generate_latest` still works.
    """
    if "prometheus_client" in sys.modules:
        return
    spec = importlib.util.find_spec("prometheus_client")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return
    package = importlib.util.module_from_spec(spec)
    # Sources, byte-code only or a zip: whatever the package's own finder can load.
    submodules = {m.name for m in pkgutil.iter_modules(spec.submodule_search_locations)}
    lock = threading.RLock()
    state = {"loaded": False, "loading": False}

    def __getattr__(name: str) -> Any:
        # `from . import values` in a submodule asks the package first: a submodule is not
        # the package's to define, so the import system loads it on its own.
        if name in submodules:
            raise AttributeError(name)
        with lock:  # another thread asking meanwhile waits for the whole __init__
            if state["loading"]:  # asked by the __init__ itself, before it set the name
                raise AttributeError(name)
            if not state["loaded"]:
                state["loading"] = True
                try:
                    spec.loader.exec_module(package)  # type: ignore[union-attr]
                finally:
                    state["loading"] = False
                    state["loaded"] = True
                    del package.__getattr__
        return getattr(package, name)

    package.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules["prometheus_client"] = package


def main(argv: list[str] | None = None) -> int:
    """Every failure the operator can cause is one line on stderr and an exit code, no traceback."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] != "run":  # the daemon serves /metrics: it needs the exposition anyway
        defer_prometheus_exposition()
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
