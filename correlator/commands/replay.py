"""`correlator replay FILE.ndjson`: run recorded events through the pipeline on a virtual clock."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import orjson

from correlator import gctune
from correlator.config import load_config, parse_duration
from correlator.pipeline import build_pipeline
from correlator.replay import ReplaySummary, progress_stream, replay
from correlator.rules.errors import RuleErrors


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="feed recorded events through the pipeline on a virtual clock")
    p.add_argument(
        "file", type=Path, help="NDJSON file of events (generic format or exported from the store)"
    )
    p.add_argument("--rules", type=Path, metavar="DIR", help="rule directory (default: rules_dir)")
    p.add_argument("--config", type=Path, help="configuration file")
    p.add_argument("--output", "-o", type=Path, help="write the resulting events here as NDJSON")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--wait",
        type=parse_duration,
        default=0.0,
        metavar="DURATION",
        help="after the last event, let this much event time pass so pending timers fire (e.g. 5m)",
    )
    p.set_defaults(func=main)


def _run(coro: Coroutine[Any, Any, ReplaySummary]) -> ReplaySummary:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    result: ReplaySummary = uvloop.run(coro)
    return result


def main(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        print(f"correlator replay: {args.file}: no such file", file=sys.stderr)
        return 2
    overrides: dict[str, Any] = {}
    if args.rules:
        overrides["rules_dir"] = str(args.rules)
    config = load_config(args.config, overrides)
    if args.rules and not args.rules.is_dir():
        print(f"correlator replay: --rules {args.rules}: no such directory", file=sys.stderr)
        return 2
    # No collection while the rules load: what start-up makes is frozen (never scanned) right after.
    with gctune.paused():
        try:
            pipeline = build_pipeline(config)  # loads config.rules_dir, which --rules overrides
        except RuleErrors as e:
            print(f"correlator replay: {len(e.errors)} error(s) in the rules:\n{e}", file=sys.stderr)
            return 2
        gctune.tune()
    out = args.output.open("wb") if args.output else None
    try:
        summary = _run(replay(args.file, pipeline, out, progress_stream(), args.wait))
    finally:
        if out is not None:
            out.close()
    doc = summary.as_dict()
    if args.json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        for key, value in doc.items():
            if key == "errors":
                continue
            print(f"{key:>18}: {value}")
        for err in summary.errors:
            print(f"invalid: {err}", file=sys.stderr)
    return 1 if summary.invalid else 0
