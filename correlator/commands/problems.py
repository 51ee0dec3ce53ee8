"""`correlator problems list|show|trend|create|link|resolve` and `correlator known-errors list|show|create|retire`.

Clients of /api/v1/problems and /api/v1/known-errors (--url, --token as for `correlator incidents`).
Known-error conditions are given as a YAML or JSON file in the rules' `match:` syntax.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from correlator import yamlfile
from correlator.commands.api_client import call, client_options, out, print_log, run, share_options


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("problems", help="problems: list, recurring-signature trend, open, link, resolve")
    client_options(p)
    cmds = p.add_subparsers(dest="problems_command", metavar="ACTION", required=True)
    ls = cmds.add_parser("list", help="problems, newest first")
    ls.add_argument("--state", help="comma-separated: open,known_error,resolved")
    ls.add_argument("--limit", type=int, default=50)
    cmds.add_parser("show", help="one problem with its log").add_argument("id", help="PRB-000003 or 3")
    tr = cmds.add_parser("trend", help="top recurring incident signatures")
    tr.add_argument("--since", help="duration back from now (7d) or ISO 8601")
    tr.add_argument("--limit", type=int, default=10)
    new = cmds.add_parser("create", help="open a problem by hand")
    new.add_argument("--title", required=True)
    new.add_argument("--description")
    new.add_argument("--incident", action="append", default=[], help="INC-000123 (repeat)")
    link = cmds.add_parser("link", help="link an incident to a problem")
    link.add_argument("id")
    link.add_argument("incident")
    res = cmds.add_parser("resolve", help="resolve a problem")
    res.add_argument("id")
    res.add_argument("--root-cause", default="")
    res.add_argument("--resolve-incidents", action="store_true", help="also resolve its active incidents")
    share_options(cmds)
    p.set_defaults(func=main)

    k = sub.add_parser(
        "known-errors", help="known errors: list, show, create (match file + workaround), retire"
    )
    client_options(k)
    kc = k.add_subparsers(dest="ke_command", metavar="ACTION", required=True)
    kl = kc.add_parser("list", help="known errors, newest first")
    kl.add_argument("--state", help="active or retired")
    kl.add_argument("--limit", type=int, default=50)
    kc.add_parser("show", help="one known error with its log").add_argument("id", help="KE-000002 or 2")
    kn = kc.add_parser("create", help="record a known error")
    kn.add_argument("--title", required=True)
    kn.add_argument("--match", required=True, type=Path, help="YAML/JSON file holding the match conditions")
    kn.add_argument("--workaround", required=True)
    kn.add_argument("--problem", help="PRB-000003: the problem becomes a known error")
    kc.add_parser("retire", help="stop matching new incidents").add_argument("id")
    share_options(kc)
    k.set_defaults(func=main_known_errors)


def main(args: argparse.Namespace) -> int:
    cmd = args.problems_command

    def body() -> None:
        if cmd == "list":
            query = {k: str(v) for k, v in (("state", args.state), ("limit", args.limit)) if v}
            out(args, call(args, "GET", "/api/v1/problems", query=query), _table)
        elif cmd == "show":
            out(args, call(args, "GET", f"/api/v1/problems/{_q(args.id)}"), _details)
        elif cmd == "trend":
            query = {k: str(v) for k, v in (("since", args.since), ("limit", args.limit)) if v}
            out(args, call(args, "GET", "/api/v1/problems/trend", query=query), _trend)
        elif cmd == "create":
            doc: dict[str, Any] = {"title": args.title, "incidents": args.incident}
            if args.description:
                doc["description"] = args.description
            out(args, call(args, "POST", "/api/v1/problems", doc), _changed)
        elif cmd == "link":
            doc = {"incident": args.incident}
            out(args, call(args, "POST", f"/api/v1/problems/{_q(args.id)}/link", doc), _changed)
        elif cmd == "resolve":
            doc = {"root_cause": args.root_cause, "resolve_incidents": args.resolve_incidents}
            out(args, call(args, "POST", f"/api/v1/problems/{_q(args.id)}/resolve", doc), _resolved)

    return run("problems", args, body)


def main_known_errors(args: argparse.Namespace) -> int:
    cmd = args.ke_command
    if cmd == "create":
        try:
            match = yamlfile.load(args.match)
        except (OSError, yamlfile.YamlError) as e:
            print(f"correlator known-errors: {e}", file=sys.stderr)
            return 1

    def body() -> None:
        if cmd == "list":
            query = {k: str(v) for k, v in (("state", args.state), ("limit", args.limit)) if v}
            out(args, call(args, "GET", "/api/v1/known-errors", query=query), _ke_table)
        elif cmd == "show":
            out(args, call(args, "GET", f"/api/v1/known-errors/{_q(args.id)}"), _ke_details)
        elif cmd == "create":
            doc = {"title": args.title, "match": match, "workaround": args.workaround}
            if args.problem:
                doc["problem_id"] = args.problem
            out(args, call(args, "POST", "/api/v1/known-errors", doc), _ke_changed)
        elif cmd == "retire":
            out(args, call(args, "POST", f"/api/v1/known-errors/{_q(args.id)}/retire", {}), _ke_changed)

    return run("known-errors", args, body)


def _q(ident: str) -> str:
    return urllib.parse.quote(ident, safe="")


def _table(doc: dict[str, Any]) -> None:
    print(f"{'ID':<11} {'STATE':<12} {'INCIDENTS':>9} {'OPENED':<20} TITLE")
    for p in doc["problems"]:
        print(
            f"{p['id']:<11} {p['state']:<12} {len(p['incidents']):>9} {p['opened_at'][:19]:<20} {p['title']}"
        )


def _details(doc: dict[str, Any]) -> None:
    p = doc["problem"]
    print(f"{p['id']}  {p['state']}  {p['title']}")
    for key in (
        "signature",
        "incidents",
        "known_error_id",
        "root_cause",
        "opened_at",
        "resolved_at",
        "description",
    ):
        if p.get(key) not in (None, "", []):
            print(f"  {key:>15}: {p[key]}")
    print_log(doc["log"])


def _trend(doc: dict[str, Any]) -> None:
    print(f"since {doc['since']}")
    print(f"{'COUNT':>5} {'PROBLEM':<11} {'HOST':<20} {'RULE':<20} KEY")
    for s in doc["signatures"]:
        sig = s["signature"]
        print(
            f"{s['count']:>5} {s['problem_id'] or '-':<11} {sig['host'][:20]:<20} {sig['rule'][:20]:<20} {sig['key']}"
        )


def _changed(doc: dict[str, Any]) -> None:
    p = doc["problem"]
    print(f"{p['id']} is {p['state']} ({len(p['incidents'])} incidents)")


def _resolved(doc: dict[str, Any]) -> None:
    _changed(doc)
    if doc["resolved_incidents"]:
        print(f"resolved: {', '.join(doc['resolved_incidents'])}")


def _ke_table(doc: dict[str, Any]) -> None:
    print(f"{'ID':<10} {'STATE':<8} {'MATCHED':>7} {'PROBLEM':<11} TITLE")
    for k in doc["known_errors"]:
        print(f"{k['id']:<10} {k['state']:<8} {k['matched']:>7} {k['problem_id'] or '-':<11} {k['title']}")


def _ke_details(doc: dict[str, Any]) -> None:
    k = doc["known_error"]
    print(f"{k['id']}  {k['state']}  {k['title']}")
    print(f"  workaround: {k['workaround']}")
    print(f"       match: {k['match']}")
    print_log(doc["log"])


def _ke_changed(doc: dict[str, Any]) -> None:
    k = doc["known_error"]
    print(f"{k['id']} is {k['state']}")
