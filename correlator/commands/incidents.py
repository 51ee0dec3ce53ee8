"""`correlator incidents list|show|ack|resolve|hash-token`: a small client of the daemon's incident API.

Talks HTTP to a running daemon (--url, $CORRELATOR_URL) with an API token (--token,
$CORRELATOR_TOKEN); prints tables for people and `--json` for scripts.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import orjson

DEFAULT_URL = "http://127.0.0.1:8080"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("incidents", help="list, show, acknowledge and resolve incidents via the API")
    p.add_argument("--url", default=os.environ.get("CORRELATOR_URL", DEFAULT_URL), help="daemon URL")
    p.add_argument(
        "--token", default=os.environ.get("CORRELATOR_TOKEN"), help="API token ($CORRELATOR_TOKEN)"
    )
    p.add_argument("--json", action="store_true", help="print the API's JSON answer")
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
    ack = cmds.add_parser("ack", help="acknowledge")
    ack.add_argument("id")
    ack.add_argument("--note", default="")
    res = cmds.add_parser("resolve", help="resolve with a code and notes")
    res.add_argument("id")
    res.add_argument("--code", default="resolved")
    res.add_argument("--notes", default="")
    ht = cmds.add_parser("hash-token", help="print the sha256 to put in http.tokens for a token")
    ht.add_argument("token")
    p.set_defaults(func=main)


class ApiError(Exception):
    pass


def main(args: argparse.Namespace) -> int:
    cmd = args.incidents_command
    if cmd == "hash-token":
        from correlator.api.auth import hash_token  # not at the top: it brings in aiohttp

        print(hash_token(args.token))
        return 0
    try:
        if cmd == "list":
            query = {k: getattr(args, k) for k in ("status", "priority", "host", "service", "since", "limit")}
            doc = call(args, "GET", "/api/v1/incidents", query={k: str(v) for k, v in query.items() if v})
            _out(args, doc, _table)
        elif cmd == "show":
            doc = call(args, "GET", f"/api/v1/incidents/{_quote(args.id)}")
            _out(args, doc, _details)
        elif cmd == "ack":
            body = {"note": args.note} if args.note else {}
            doc = call(args, "POST", f"/api/v1/incidents/{_quote(args.id)}/ack", body)
            _out(args, doc, _changed)
        elif cmd == "resolve":
            body = {"code": args.code, "notes": args.notes}
            doc = call(args, "POST", f"/api/v1/incidents/{_quote(args.id)}/resolve", body)
            _out(args, doc, _changed)
    except ApiError as e:
        print(f"correlator incidents: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"correlator incidents: cannot reach {args.url}: {e}", file=sys.stderr)
        return 2
    return 0


def call(
    args: argparse.Namespace, method: str, path: str, body: Any = None, query: dict[str, str] | None = None
) -> Any:
    url = args.url.rstrip("/") + path + (f"?{urllib.parse.urlencode(query)}" if query else "")
    headers = {"Accept": "application/json"}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    data = None
    if body is not None:
        data = orjson.dumps(body)
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - http(s) URL
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            message = orjson.loads(e.read()).get("error", "")
        except orjson.JSONDecodeError:
            message = ""
        raise ApiError(f"HTTP {e.code}: {message or e.reason}") from None


def _quote(ident: str) -> str:
    return urllib.parse.quote(ident, safe="")


def _out(args: argparse.Namespace, doc: Any, human: Any) -> None:
    if args.json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        human(doc)


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
                "first_occurrence", "last_occurrence", "opened_at", "acknowledged_at", "resolved_at",
                "closed_at", "escalation_level", "resolution_code", "resolution_notes"):  # fmt: skip
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
