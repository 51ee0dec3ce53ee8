"""`correlator run`: start the daemon."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from correlator import logs
from correlator.config import load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="start the daemon")
    p.add_argument("--config", type=Path, help="configuration file (default: ./correlator.yaml if present)")
    p.add_argument("--http", metavar="HOST:PORT", help="HTTP listen address (http.listen)")
    p.add_argument("--rules", type=Path, metavar="DIR", help="rule directory (rules_dir)")
    p.add_argument("--data", type=Path, metavar="DIR", help="data directory (storage.data_dir)")
    p.add_argument(
        "--role",
        choices=("all", "ingest", "worker"),
        help="all: one process (default); ingest or worker: scale-out over NATS JetStream (cluster.role)",
    )
    p.set_defaults(func=main)


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.http:
        out["http.listen"] = args.http
    if args.rules:
        out["rules_dir"] = str(args.rules)
    if args.data:
        out["storage.data_dir"] = str(args.data)
    if getattr(args, "role", None):
        out["cluster.role"] = args.role
    return out


def default_config_path(explicit: Path | None) -> Path | None:
    if explicit is not None:
        return explicit
    local = Path("correlator.yaml")
    return local if local.exists() else None


def main(args: argparse.Namespace) -> int:
    config = load_config(default_config_path(args.config), overrides_from(args))
    logs.setup(config.logging.level, config.logging.format)
    from correlator import daemon

    try:
        import uvloop
    except ImportError:
        return asyncio.run(daemon.run(config))
    return int(uvloop.run(daemon.run(config)))
