"""`correlator changes list|show|create|approve|start|complete|fail|cancel|check-calendar`.

A client of /api/v1/changes (--url, --token as for `correlator incidents`), plus an offline check
of a calendar file that prints its windows' next occurrences or the first error with file:line.
"""

from __future__ import annotations

import argparse
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from correlator.changes.model import ACTIONS, POLICIES, RISKS
from correlator.commands.api_client import call, client_options, out, print_log, run, share_options
from correlator.errors import ConfigError
from correlator.event import iso


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("changes", help="list, create and move changes through their states via the API")
    client_options(p)
    cmds = p.add_subparsers(dest="changes_command", metavar="ACTION", required=True)
    ls = cmds.add_parser("list", help="changes, newest first")
    ls.add_argument("--state", help="comma-separated, e.g. approved,in_progress")
    ls.add_argument("--limit", type=int, default=50)
    show = cmds.add_parser("show", help="one change with its audit log")
    show.add_argument("id", help="CHG-000012 or 12")
    new = cmds.add_parser("create", help="request a change")
    new.add_argument("--title", required=True)
    new.add_argument("--start", required=True, help="ISO 8601, e.g. 2027-01-17T02:00:00Z")
    new.add_argument("--end", required=True)
    new.add_argument("--ci", action="append", default=[], help="affected CI (repeat)")
    new.add_argument("--service", action="append", default=[], help="affected service (repeat)")
    new.add_argument("--risk", choices=RISKS)
    new.add_argument("--implementer")
    new.add_argument("--description")
    new.add_argument("--policy", choices=POLICIES)
    new.add_argument("--dependents-policy", choices=POLICIES)
    for action in ACTIONS:
        a = cmds.add_parser(action, help=f"{action} a change")
        a.add_argument("id")
        a.add_argument("--note", default="")
    cal = cmds.add_parser("check-calendar", help="validate a calendar file and print the next occurrences")
    cal.add_argument("file", type=Path)
    share_options(cmds)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    cmd = args.changes_command
    if cmd == "check-calendar":
        return _check_calendar(args.file)

    def body() -> None:
        if cmd == "list":
            query = {k: str(v) for k, v in (("state", args.state), ("limit", args.limit)) if v}
            out(args, call(args, "GET", "/api/v1/changes", query=query), _table)
        elif cmd == "show":
            out(args, call(args, "GET", f"/api/v1/changes/{_quote(args.id)}"), _details)
        elif cmd == "create":
            doc: dict[str, Any] = {"title": args.title, "start": args.start, "end": args.end}
            if args.ci:
                doc["cis"] = args.ci
            if args.service:
                doc["services"] = args.service
            for key in ("risk", "implementer", "description", "policy", "dependents_policy"):
                if getattr(args, key):
                    doc[key] = getattr(args, key)
            out(args, call(args, "POST", "/api/v1/changes", doc), _changed)
        else:
            note = {"note": args.note} if args.note else {}
            out(args, call(args, "POST", f"/api/v1/changes/{_quote(args.id)}/{cmd}", note), _changed)

    return run("changes", args, body)


def _check_calendar(path: Path) -> int:
    from correlator.changes.calendar import load_calendar  # only this sub-command reads the calendar

    try:
        cal = load_calendar(path)
    except ConfigError as e:
        print(f"correlator changes: {e}", file=sys.stderr)
        return 1
    now = time.time()
    for w in cal.windows:
        nxt = w.next_occurrence(now)
        when = f"{iso(nxt[0])} .. {iso(nxt[1])}" if nxt else "none (all past or excluded)"
        print(f"{w.name}: {len(w.cis)} CIs, {len(w.services)} services; next {when}")
    print(f"{path}: {len(cal.windows)} windows OK")
    return 0


def _quote(ident: str) -> str:
    return urllib.parse.quote(ident, safe="")


def _table(doc: dict[str, Any]) -> None:
    print(f"{'ID':<11} {'STATE':<11} {'RISK':<6} {'START':<20} {'END':<20} TITLE")
    for c in doc["changes"]:
        print(
            f"{c['id']:<11} {c['state']:<11} {c['risk']:<6} {c['start'][:19]:<20} {c['end'][:19]:<20} {c['title']}"
        )


def _details(doc: dict[str, Any]) -> None:
    c = doc["change"]
    print(f"{c['id']}  {c['state']}  risk {c['risk']}  {c['title']}")
    for key in ("start", "end", "cis", "services", "implementer", "policy", "dependents_policy",
                "calendar", "started_at", "finished_at", "incidents"):  # fmt: skip
        if c.get(key) not in (None, "", []):
            print(f"  {key:>17}: {c[key]}")
    print_log(doc["log"])


def _changed(doc: dict[str, Any]) -> None:
    c = doc["change"]
    print(f"{c['id']} is {c['state']}")
