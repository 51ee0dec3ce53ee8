"""`correlator incidents list|show|ack|status|assign|comment|resolve|close|reopen|hash-token`.

A small client of the daemon's incident API (where the daemon is and the token: see
correlator/commands/api_client.py); prints tables for people and `--json` for scripts.
"""

from __future__ import annotations

import argparse
from typing import Any

from correlator.commands.api_client import call, client_options, out, quote, run, share_options


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("incidents", help="list, show and work incidents via the API")
    client_options(p)
    cmds = p.add_subparsers(dest="incidents_command", metavar="ACTION", required=True)
    ls = cmds.add_parser("list", help="incidents, newest first")
    ls.add_argument("--status", help="comma-separated, e.g. new,acknowledged")
    ls.add_argument("--priority", help="comma-separated, e.g. P1,P2")
    ls.add_argument("--host")
    ls.add_argument("--service")
    ls.add_argument("--since", help="opened at or after (ISO 8601 or epoch seconds)")
    ls.add_argument("--limit", type=int, default=50)
    show = cmds.add_parser("show", help="one incident with its timeline")
    show.add_argument("id", help="INC-000123 or 123")
    ack = cmds.add_parser("ack", help="acknowledge (new -> acknowledged)")
    ack.add_argument("id")
    ack.add_argument("--note", default="")
    st = cmds.add_parser("status", help="set a working status")
    st.add_argument("id")
    st.add_argument("status", choices=("acknowledged", "in_progress", "on_hold"))
    st.add_argument("--note", default="")
    assign = cmds.add_parser("assign", help="set the assignment group and/or the assignee")
    assign.add_argument("id")
    assign.add_argument("--group")
    assign.add_argument("--assignee")
    comment = cmds.add_parser("comment", help="add a comment to the timeline")
    comment.add_argument("id")
    comment.add_argument("text")
    res = cmds.add_parser("resolve", help="resolve with a code and notes")
    res.add_argument("id")
    res.add_argument("--code", default="resolved")
    res.add_argument("--notes", default="")
    close = cmds.add_parser("close", help="close a resolved incident (final)")
    close.add_argument("id")
    close.add_argument("--note", default="")
    reopen = cmds.add_parser("reopen", help="reopen a resolved incident")
    reopen.add_argument("id")
    reopen.add_argument("--reason", default="")
    ht = cmds.add_parser("hash-token", help="print the sha256 to put in http.tokens for a token")
    ht.add_argument("secret", metavar="TOKEN")
    share_options(cmds)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    cmd = args.incidents_command
    if cmd == "hash-token":
        from correlator.api.auth import hash_token  # not at the top: it brings in aiohttp

        print(hash_token(args.secret))
        return 0

    def body() -> None:
        if cmd == "list":
            query = {k: getattr(args, k) for k in ("status", "priority", "host", "service", "since", "limit")}
            doc = call(args, "GET", "/api/v1/incidents", query={k: str(v) for k, v in query.items() if v})
            out(args, doc, _table)
        elif cmd == "show":
            out(args, call(args, "GET", f"/api/v1/incidents/{quote(args.id)}"), _details)
        else:
            doc = call(args, "POST", f"/api/v1/incidents/{quote(args.id)}/{cmd}", _action_body(cmd, args))
            out(args, doc, _changed)

    return run("incidents", args, body)


def _action_body(cmd: str, args: argparse.Namespace) -> dict[str, Any]:
    """The API's body of an action: only what was given (the API's defaults for the rest)."""
    fields = {
        "ack": ("note",),
        "status": ("status", "note"),
        "assign": ("group", "assignee"),
        "comment": ("text",),
        "resolve": ("code", "notes"),
        "close": ("note",),
        "reopen": ("reason",),
    }[cmd]
    return {k: getattr(args, k) for k in fields if getattr(args, k) not in (None, "")}


def _table(doc: dict[str, Any]) -> None:
    rows = doc["incidents"]
    print(f"{'ID':<11} {'PRI':<3} {'STATUS':<12} {'EVENTS':>6} {'OPENED':<20} {'HOST':<20} TITLE")
    for i in rows:
        opened = (i["opened_at"] or "")[:19]
        major = "!" if i["major"] else " "
        print(
            f"{i['id']:<11} {i['priority']:<3} {i['status']:<12} {i['event_count']:>6} {opened:<20}"
            f" {i['host'][:20]:<20} {major}{i['title']}"
        )
    if doc.get("next_cursor"):
        print(f"(more: use --json and the API's cursor={doc['next_cursor']})")


def _details(doc: dict[str, Any]) -> None:
    i = doc["incident"]
    print(f"{i['id']}  {i['priority']}  {i['status']}{'  MAJOR' if i['major'] else ''}  {i['title']}")
    for key in ("host", "service", "category", "assignment_group", "assignee", "key", "rule", "event_count",
                "problem_id", "change_id", "first_occurrence", "last_occurrence", "opened_at",
                "acknowledged_at", "resolved_at", "closed_at", "escalation_level", "resolution_code",
                "resolution_notes"):  # fmt: skip
        if i.get(key) not in (None, ""):
            print(f"  {key:>18}: {i[key]}")
    if i.get("description"):
        print(f"  {'description':>18}: {i['description']}")
    print("timeline:")
    for e in doc["timeline"]:
        detail = " ".join(f"{k}={v}" for k, v in e["detail"].items())
        print(f"  {e['at'][:19]}  {e['actor']:<16} {e['action']:<9} {detail}")


def _changed(doc: dict[str, Any]) -> None:
    i = doc["incident"]
    print(f"{i['id']} is now {i['status']}")
