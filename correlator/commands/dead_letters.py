"""`correlator dead-letters list|show|delete|retry`: a client of /api/v1/dead-letters.

--url and --token as for `correlator incidents`; deleting and retrying need an admin token.
"""

from __future__ import annotations

import argparse
from typing import Any

from correlator.commands.api_client import call, client_options, out, run
from correlator.deadletter import REASONS


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("dead-letters", help="inspect, retry or delete events the store could not take")
    client_options(p)
    cmds = p.add_subparsers(dest="dead_letters_command", metavar="ACTION", required=True)
    ls = cmds.add_parser("list", help="dead letters, newest first")
    ls.add_argument("--reason", choices=REASONS)
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--cursor", help="next_cursor printed by the previous page")
    for action, text in (
        ("show", "one dead letter with its raw event"),
        ("delete", "give the event up (admin)"),
        ("retry", "put the event back on the ingest queue (admin)"),
    ):
        a = cmds.add_parser(action, help=text)
        a.add_argument("id", type=int)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    cmd = args.dead_letters_command

    def body() -> None:
        if cmd == "list":
            query = {"limit": str(args.limit)}
            if args.reason:
                query["reason"] = args.reason
            if args.cursor:
                query["cursor"] = args.cursor
            out(args, call(args, "GET", "/api/v1/dead-letters", query=query), _table)
        elif cmd == "show":
            out(args, call(args, "GET", f"/api/v1/dead-letters/{args.id}"), _details)
        elif cmd == "delete":
            out(
                args,
                call(args, "DELETE", f"/api/v1/dead-letters/{args.id}"),
                lambda d: print(f"deleted {d['deleted']}"),
            )
        else:
            out(
                args,
                call(args, "POST", f"/api/v1/dead-letters/{args.id}/retry"),
                lambda d: print(f"retried {d['retried']}: event {d['event_id']} queued again"),
            )

    return run("dead-letters", args, body)


def _table(doc: Any) -> None:
    items = doc["dead_letters"]
    if not items:
        print("no dead letters")
        return
    print(f"{'ID':>6}  {'AT':<20} {'REASON':<16} {'SOURCE':<20} {'EVENT':<24} ERROR")
    for d in items:
        print(
            f"{d['id']:>6}  {d['at'][:19]:<20} {d['reason']:<16} {d['source'][:20]:<20}"
            f" {d['event_id'][:24]:<24} {d['error'][:60]}"
        )
    if doc.get("next_cursor"):
        print(f"more: --cursor {doc['next_cursor']}")


def _details(d: Any) -> None:
    for key in ("id", "at", "reason", "source", "event_id", "error"):
        print(f"{key + ':':<10}{d[key]}")
    print("raw:")
    print(d["raw"])
