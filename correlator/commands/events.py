"""`correlator events`: query the stored events (GET /api/v1/events) of a running daemon.

Filters as the API has them; follows `next_cursor` until `--limit` events are printed (all of them
with `--limit 0`). One line per event for people, NDJSON (one event per line) with `--json`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from correlator.commands.api_client import call, client_options, run

PAGE = 1000  # the API's largest page


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("events", help="query stored events via the API (filters, paged)")
    client_options(p)
    p.add_argument("--host", help="exact host")
    p.add_argument("--type", help="exact event type")
    p.add_argument("--severity", help="comma-separated, e.g. critical,major")
    p.add_argument("--source", help="collector source, e.g. webhook:generic")
    p.add_argument("--fingerprint", help="de-duplication key")
    p.add_argument("--since", help="event time at or after (ISO 8601 or epoch seconds)")
    p.add_argument("--until", help="event time before (ISO 8601 or epoch seconds)")
    p.add_argument("--limit", type=int, default=100, help="most events to print; 0: all (default 100)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.limit < 0:
        print("correlator events: --limit must be 0 (all) or more", file=sys.stderr)
        return 2
    filters = {
        k: getattr(args, k) for k in ("host", "type", "severity", "source", "fingerprint", "since", "until")
    }
    query = {k: str(v) for k, v in filters.items() if v}
    as_json = getattr(args, "json", False)

    def body() -> None:
        printed = 0
        cursor: str | None = None
        if not as_json:
            print(f"{'TIME':<20} {'SEVERITY':<9} {'HOST':<20} {'TYPE':<28} {'COUNT':>5} MESSAGE")
        while True:
            want = PAGE if args.limit == 0 else min(PAGE, args.limit - printed)
            page = {**query, "limit": str(want), **({"cursor": cursor} if cursor else {})}
            doc = call(args, "GET", "/api/v1/events", query=page)
            for e in doc["events"]:
                _print(e, as_json)
            printed += len(doc["events"])
            cursor = doc.get("next_cursor")
            if not cursor or (args.limit and printed >= args.limit):
                return

    return run("events", args, body)


def _print(e: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(e).decode() + "\n")
        return
    message = (e.get("message") or "").replace("\n", " ")
    print(
        f"{e['time'][:19]:<20} {e['severity']:<9} {e['host'][:20]:<20} {e['type'][:28]:<28}"
        f" {e.get('count', 1):>5} {message}"
    )
