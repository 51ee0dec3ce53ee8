"""What the `changes`, `problems` and `known-errors` commands share: options, the HTTP call, errors.

The HTTP call itself is the incidents command's (`call`), so every client speaks to the API the same way.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import Any

import orjson

from correlator.commands.incidents import DEFAULT_URL, ApiError, call

__all__ = ["ApiError", "call", "client_options", "out", "run"]


def client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", default=os.environ.get("CORRELATOR_URL", DEFAULT_URL), help="daemon URL")
    p.add_argument(
        "--token", default=os.environ.get("CORRELATOR_TOKEN"), help="API token ($CORRELATOR_TOKEN)"
    )
    p.add_argument("--json", action="store_true", help="print the API's JSON answer")


def run(prog: str, args: argparse.Namespace, body: Callable[[], None]) -> int:
    try:
        body()
    except ApiError as e:
        print(f"correlator {prog}: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"correlator {prog}: cannot reach {args.url}: {e}", file=sys.stderr)
        return 2
    return 0


def out(args: argparse.Namespace, doc: Any, human: Callable[[Any], None]) -> None:
    if args.json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        human(doc)


def print_log(entries: list[dict[str, Any]]) -> None:
    print("log:")
    for e in entries:
        detail = " ".join(f"{k}={v}" for k, v in e["detail"].items())
        print(f"  {e['at'][:19]}  {e['actor']:<16} {e['action']:<14} {detail}")
