"""`correlator report`: the Service Review of a period as one self-contained HTML file, or JSON.

By default it reads the stores itself (offline): the SQLite files of the data directory
(`--data`, else `storage.data_dir` of the configuration) or the configured PostgreSQL ones, so it
works whether the daemon runs or not. `--api` (or `--url`) asks a running daemon instead
(GET /api/v1/report) and renders the same HTML from its answer (docs/report.md).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import orjson

from correlator.commands.api_client import call, client_options, run
from correlator.commands.run import default_config_path
from correlator.config import Config, load_config
from correlator.errors import CorrelatorError, FieldError
from correlator.report import AvailabilityInput, ReportStores, compute_report, render_report_html
from correlator.report.period import parse_period


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("report", help="the Service Review of a period: one HTML file (or JSON)")
    p.add_argument("--from", dest="start", metavar="TIME", help="start (ISO 8601 or epoch seconds)")
    p.add_argument("--to", dest="end", metavar="TIME", help="end, exclusive (default: now)")
    p.add_argument("--period", help="length, e.g. 7d or 4w (default 30d; at most 400d)")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here (default: stdout)")
    p.add_argument("--data", type=Path, metavar="DIR", help="data directory (default: storage.data_dir)")
    p.add_argument("--api", action="store_true", help="ask the running daemon instead of reading the stores")
    client_options(p)  # --url, --config, --token, --token-file, --json
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    params = {"from": args.start, "to": args.end, "period": args.period}
    try:
        if args.api or getattr(args, "url", None):
            doc: dict[str, Any] = {}

            def fetch() -> None:
                doc.update(call(args, "GET", "/api/v1/report", query={k: v for k, v in params.items() if v}))

            rc = run("report", args, fetch)
            if rc:
                return rc
        else:
            doc = asyncio.run(offline(_config(args), params))
    except FieldError as e:
        print(f"correlator report: --{e}", file=sys.stderr)  # "--period: expected ..."
        return 2
    if getattr(args, "json", False):
        text = orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n"
    else:
        text = render_report_html(doc)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"correlator report: wrote {args.output}", file=sys.stderr)
    return 0


def _config(args: argparse.Namespace) -> Config:
    overrides = {"storage.data_dir": str(args.data)} if args.data else {}
    return load_config(default_config_path(getattr(args, "config", None)), overrides)


async def offline(config: Config, params: dict[str, str | None]) -> dict[str, Any]:
    """Open the stores the daemon would (read-only use), compute, close. The period is checked
    before anything is opened."""
    now = time.time()
    start, end = parse_period(params, now)
    async with AsyncExitStack() as stack:
        stores = await open_stores(config, stack)
        return await compute_report(stores, start, end, now)


async def open_stores(config: Config, stack: AsyncExitStack) -> ReportStores:
    from correlator.availability.db import AvailabilityDB
    from correlator.availability.model import load_services
    from correlator.availability.settings import parse_settings as availability_settings
    from correlator.changes.settings import parse_settings as change_settings
    from correlator.incidents.backend import create_store
    from correlator.incidents.settings import parse_settings as incident_settings
    from correlator.records.backend import create_record_store
    from correlator.store.postgres import PgEventStore
    from correlator.store.sqlite import SqliteEventStore

    data = config.storage.data_dir
    dsn = config.storage.dsn
    incident_dsn = incident_settings(config.incidents).dsn or dsn
    # A SQLite file that is not there is not created: a wrong --data must not leave empty databases.
    if not incident_dsn and not (data / "incidents.db").exists():
        raise CorrelatorError(f"{data}: no incidents.db here; give the data directory with --data")
    incidents = create_store(incident_dsn, data)
    await incidents.open()
    stack.push_async_callback(incidents.close)
    record_dsn = change_settings(config.changes).dsn or dsn
    records = None
    if record_dsn or (data / "records.db").exists():
        records = create_record_store(record_dsn, data)
        await records.open()
        stack.push_async_callback(records.close)
    events = None
    if dsn or (data / "events.db").exists():
        events = PgEventStore(dsn) if dsn else SqliteEventStore(data / "events.db")
        await events.open()
        stack.push_async_callback(events.close)
    availability = None
    settings = availability_settings(config.availability)
    if settings.services_file is not None:
        rows: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
        if (data / "availability.db").exists():
            db = AvailabilityDB(data / "availability.db")
            await db.open()
            stack.push_async_callback(db.close)
            rows = await db.load()
        availability = AvailabilityInput(settings, load_services(settings.services_file), rows[1], rows[2])
    return ReportStores(incidents, records, events, availability)
