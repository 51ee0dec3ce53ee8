"""`correlator replay FILE.ndjson`: run recorded events through the pipeline on a virtual clock, and
show what a NOC would have seen (incidents, problems, changes, maintenance; correlator/replay_noc.py)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import select
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson

from correlator import gctune
from correlator.catalogue import load_catalogue
from correlator.config import Config, load_config, parse_duration
from correlator.errors import ConfigError
from correlator.pipeline.assemble import build_pipeline
from correlator.recording import first_time
from correlator.recording_process import Reader, worthwhile
from correlator.replay import ReplaySummary, progress_stream, replay
from correlator.rules.errors import RuleErrors
from correlator.rules.reload import RulesHolder

T = TypeVar("T")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("replay", help="feed recorded events through the pipeline on a virtual clock")
    p.add_argument(
        "file", type=Path, help="NDJSON file of events (generic format or exported from the store)"
    )
    p.add_argument("--rules", type=Path, metavar="DIR", help="rule directory (default: rules_dir)")
    p.add_argument("--config", type=Path, help="configuration file")
    p.add_argument("--output", "-o", type=Path, help="write the resulting events here as NDJSON")
    p.add_argument("--json", action="store_true", help="print the report as one JSON document")
    p.add_argument(
        "--changes",
        type=Path,
        metavar="FILE",
        help="YAML file of change records (changes: [...]) to replay as approved changes",
    )
    p.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="keep the incident and record stores in this new directory, to browse with the API and CLI",
    )
    p.add_argument(
        "--events-only",
        action="store_true",
        help="rules and correlation only: no maintenance, incidents, changes or problems (faster)",
    )
    p.add_argument(
        "--wait",
        type=parse_duration,
        default=0.0,
        metavar="DURATION",
        help="after the last event, let this much event time pass so pending timers fire (e.g. 5m)",
    )
    p.set_defaults(func=main)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on uvloop when installed; its result comes back through a box, not as the main
    task's result. On its way out, Python 3.11's asyncio.Runner looks up its SIGINT handler as a
    `signal.Handlers` value, whose failure message formats the handler, the main task, and so the
    task's result: the whole summary, every counter sorted and printed, twice (measured: 1.3% of
    the instructions of a 100,000-event replay with 1,000 rules)."""
    box: list[T] = []

    async def main() -> None:
        box.append(await coro)

    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
    return box[0]


def main(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        print(f"correlator replay: {args.file}: no such file", file=sys.stderr)
        return 2
    # A big recording is read by a second process from now on, while this one loads the rules.
    reader = _start_reader(args.file)
    try:
        return _main(args, reader)
    finally:
        if reader is not None:
            reader.close()


def _start_reader(path: Path) -> Reader | None:
    if not worthwhile(path):
        return None
    try:
        return Reader(path, progress=progress_stream() is not None)
    except OSError as e:  # no process to be had: this one reads
        print(f"correlator replay: reading in this process ({e})", file=sys.stderr)
        return None


def _main(args: argparse.Namespace, reader: Reader | None) -> int:
    overrides: dict[str, Any] = {}
    if args.rules:
        overrides["rules_dir"] = str(args.rules)
    # No collection while the rules load: what start-up makes is frozen (never scanned) right after.
    with gctune.paused():
        try:
            config = load_config(args.config, overrides)
            if args.rules and not args.rules.is_dir():
                raise ConfigError(f"--rules {args.rules}: no such directory")
            changes: list[dict[str, Any]] = []
            if args.changes:
                from correlator.changes.changes_file import load_changes

                changes = load_changes(args.changes)
            rules = RulesHolder(config.rules_dir, config.inventory_file, load_catalogue(config))
            rules.load_initial()
        except RuleErrors as e:
            print(f"correlator replay: {len(e.errors)} error(s) in the rules:\n{e}", file=sys.stderr)
            return 2
        except ConfigError as e:
            print(f"correlator replay: {e}", file=sys.stderr)
            return 2
        gctune.tune()
    out = args.output.open("wb") if args.output else None
    try:
        if args.events_only:
            summary = _run(
                replay(
                    args.file, build_pipeline(config, rules), out, progress_stream(), args.wait, reader=reader
                )
            )
            noc: dict[str, Any] | None = None
        else:
            summary, noc = _run(_whole(args, config, rules, changes, out, reader))
    except ConfigError as e:
        print(f"correlator replay: {e}", file=sys.stderr)
        return 2
    finally:
        if out is not None:
            out.close()
    gctune.finished()  # only the report is left to make
    doc = {**summary.as_dict(), **(noc or {})}
    if args.json:
        _write_stdout(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        lines = [f"{key:>18}: {value}" for key, value in summary.as_dict().items() if key != "errors"]
        if noc is not None:
            from correlator.replay_noc import report_lines

            lines += ["", *report_lines(noc)]
        _write_stdout(("\n".join(lines) + "\n").encode())
        for err in summary.errors:
            print(f"invalid: {err}", file=sys.stderr)
    return 1 if summary.invalid else 0


def _write_stdout(data: bytes) -> None:
    """Write a report of any length to stdout, all of it.

    After uvloop has run, a large write into a pipe can come back short with no error, and
    Python's buffered stdout then drops the rest (seen: a 600 KB report cut at 64 KB, exit 0). So
    the bytes go out through os.write in a loop that resumes after short writes and waits when the
    pipe is full; a reader that went away (`| head`) ends the output quietly.
    """
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):  # captured or replaced stdout: no fd
        sys.stdout.write(data.decode())
        return
    view = memoryview(data)
    try:
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                select.select([], [fd], [])
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), fd)  # no second error when Python flushes at exit


async def _whole(
    args: argparse.Namespace,
    config: Config,
    rules: RulesHolder,
    changes: list[dict[str, Any]],
    out: IO[bytes] | None,
    reader: Reader | None,
) -> tuple[ReplaySummary, dict[str, Any]]:
    # Imported here: `--events-only` needs none of the incident, problem and change services.
    from correlator import replay_noc

    start = first_time(args.file)
    try:
        noc = await replay_noc.start(config, rules, start or 0.0, args.data, changes)
    except replay_noc.DataDirInUse as e:
        raise ConfigError(str(e)) from None  # said like a configuration problem, exit code 2
    try:
        summary = await replay(
            args.file, noc.services.pipeline, out, progress_stream(), args.wait, noc.clock, reader
        )
        await replay_noc.finish(noc)
        return summary, await replay_noc.report(noc, summary)
    finally:
        await noc.close()
