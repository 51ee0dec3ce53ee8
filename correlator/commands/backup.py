"""`correlator backup DIR` and `correlator restore DIR`: the data directory, copied consistently.

The data directory is `storage.data_dir` of ./correlator.yaml or --config, or --data.
Backup works while the daemon runs; restore refuses while a daemon uses the directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from correlator import backup as backups
from correlator.commands.run import default_config_path
from correlator.config import Config, load_config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    b = sub.add_parser("backup", help="copy every database of the data directory (the daemon may run)")
    b.add_argument("dir", type=Path, metavar="DIR", help="new or empty directory to write the backup to")
    _options(b)
    b.set_defaults(func=main_backup)
    r = sub.add_parser("restore", help="put a backup in place (the daemon must be stopped)")
    r.add_argument("dir", type=Path, metavar="DIR", help="a directory written by `correlator backup`")
    r.add_argument("--force", action="store_true", help="replace the databases the data directory holds")
    _options(r)
    r.set_defaults(func=main_restore)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="configuration file (default: ./correlator.yaml if present)")
    p.add_argument("--data", type=Path, metavar="DIR", help="data directory (storage.data_dir)")


def _config(args: argparse.Namespace) -> Config:
    overrides = {"storage.data_dir": str(args.data)} if args.data else {}
    return load_config(default_config_path(args.config), overrides)


def main_backup(args: argparse.Namespace) -> int:
    config = _config(args)
    copied = backups.backup(config.storage.data_dir, args.dir)
    for c in copied:
        print(f"{c.name:<20} {c.size:>12,} bytes{'' if c.sqlite else '  (plain copy)'}")
    print(f"backup of {config.storage.data_dir} in {args.dir}: {len(copied)} file(s)")
    _postgres_note(config)
    return 0


def main_restore(args: argparse.Namespace) -> int:
    config = _config(args)
    restored = backups.restore(args.dir, config.storage.data_dir, args.force)
    print(f"restored {len(restored)} file(s) from {args.dir} into {config.storage.data_dir}")
    _postgres_note(config)
    return 0


def _postgres_note(config: Config) -> None:
    dsns = [config.storage.dsn, config.incidents.get("dsn"), config.changes.get("dsn")]
    if any(dsns):
        print("note: what is kept in PostgreSQL (the dsn settings) is not in this copy; use pg_dump for it")
