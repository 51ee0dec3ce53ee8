"""`correlator mibs compile DIR`: compile operators' MIB files for the SNMP collector's name lookup."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from correlator.config import load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("mibs", help="manage the SNMP collector's compiled MIBs")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    c = actions.add_parser("compile", help="compile the MIB files in DIR into the MIB cache")
    c.add_argument("dir", type=Path, help="directory of MIB files (.txt, .mib, .my or no suffix)")
    c.add_argument("--config", type=Path, help="configuration file (for storage.data_dir and mib_cache_dir)")
    c.add_argument("--cache", type=Path, help="write here instead of the configured MIB cache directory")
    c.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from collectors.snmp import mib_cache_dir
    from collectors.snmp.mibs import compile_dir
    from collectors.snmp.settings import parse

    if not args.dir.is_dir():
        print(f"correlator mibs: {args.dir}: no such directory", file=sys.stderr)
        return 2
    cache: Path = args.cache
    if cache is None:
        config = load_config(args.config)
        section: Any = config.collectors.get("snmp") or {}
        settings = parse({k: v for k, v in section.items() if k != "enabled"})
        cache = mib_cache_dir(settings, config.storage.data_dir)
    result = compile_dir(args.dir, cache)
    for err in result.errors:
        print(f"error: {err}", file=sys.stderr)
    compiled = ", ".join(result.compiled) or "-"
    print(f"compiled {len(result.compiled)} of {result.modules} MIB module(s) into {cache}: {compiled}")
    if result.errors:
        print(
            f"{len(result.errors)} file(s) or module(s) not compiled; see the errors above", file=sys.stderr
        )
    return 1 if result.errors else 0
