"""`correlator rules check|test|explain|schema`: the operator's tools for rule files (like promtool)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import orjson

from correlator.catalogue import load_catalogue
from correlator.config import Config, load_config, parse_duration
from correlator.inventory import load_inventory
from correlator.recording import parse_events
from correlator.rules.errors import RuleErrors
from correlator.rules.loader import load_rules
from correlator.rules.reload import RulesHolder
from correlator.rules.ruleset import RuleSet
from correlator.rules.schema import rules_schema
from correlator.rules.testing import Compiled, run_test_file


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("rules", help="check, test and explain rule files; print their JSON Schema")
    rsub = p.add_subparsers(dest="rules_command", metavar="ACTION", required=True)

    c = rsub.add_parser("check", help="validate every rule file; errors as file:line:column: message")
    c.add_argument("dir", type=Path, nargs="?", help="rule directory (default: rules_dir from the config)")
    _common(c)
    c.add_argument(
        "--cluster",
        action="store_true",
        help="also report level-2 rules whose keys cannot be partitioned (cluster.partition_by; docs/cluster.md)",
    )
    c.set_defaults(func=check)

    t = rsub.add_parser("test", help="run rule unit tests (YAML files of input and expected events)")
    t.add_argument(
        "files", type=Path, nargs="+", metavar="FILE", help="test files (directories: every *_test.yaml)"
    )
    t.add_argument("-v", "--verbose", action="store_true", help="print every test case, passing or not")
    t.set_defaults(func=test)

    e = rsub.add_parser(
        "explain", help="run events through the rules and show, rule by rule, what each did (levels 1 and 2)"
    )
    e.add_argument(
        "event",
        type=Path,
        metavar="EVENT.json",
        help="events in the generic format: one JSON object, a JSON array or NDJSON ('-': stdin)",
    )
    e.add_argument("--rules", type=Path, metavar="DIR", help="rule directory (default: rules_dir)")
    e.add_argument(
        "--wait",
        type=parse_duration,
        default=0.0,
        metavar="DURATION",
        help="after the last event, let this much event time pass so pending timers fire (e.g. 5m)",
    )
    e.add_argument("--all", action="store_true", help="also list the candidate rules that did not match")
    e.add_argument("--json", action="store_true", help="print the trace as JSON")
    _common(e)
    e.set_defaults(func=explain_cmd)

    s = rsub.add_parser("schema", help="print the JSON Schema of rule files")
    s.set_defaults(func=schema)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        type=Path,
        help="configuration file (for rules_dir, inventory_file and availability.services_file)",
    )
    p.add_argument("--inventory", type=Path, help="inventory file (default: inventory_file)")


def _settings(args: argparse.Namespace, rules_dir: Path | None) -> tuple[Config, Path, Path | None]:
    """The configuration, and the rule directory and inventory file the flags or it name."""
    config = load_config(args.config if args.config else _local_config())
    return config, rules_dir or config.rules_dir, args.inventory or config.inventory_file


def _local_config() -> Path | None:
    local = Path("correlator.yaml")
    return local if local.exists() else None


def check(args: argparse.Namespace) -> int:
    config, rules_dir, inventory = _settings(args, args.dir)
    try:
        rs = load_rules(rules_dir, inventory, load_catalogue(config))  # checked as the daemon does
    except RuleErrors as e:
        for err in e.errors:
            print(err, file=sys.stderr)
        print(f"{len(e.errors)} error(s) in {rules_dir}", file=sys.stderr)
        return 1
    kinds: dict[str, int] = {}
    for r in rs.rules:
        kinds[r.info.kind] = kinds.get(r.info.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no rules"
    for w in rs.warnings:  # disagreements with the service catalogue: the daemon loads the rules anyway
        print(f"warning: {w}", file=sys.stderr)
    warned = f", {len(rs.warnings)} warning(s)" if rs.warnings else ""
    print(f"{rules_dir}: OK: {len(rs.rules)} rules ({summary}) in {len(rs.files)} files{warned}")
    if getattr(args, "cluster", False):
        return _check_cluster(rs, config, inventory)
    return 0


def _check_cluster(rs: RuleSet, config: Config, inventory: Path | None) -> int:
    from correlator.cluster.check import unpartitionable

    by = config.cluster.partition_by
    problems = unpartitionable(rs, by, load_inventory(inventory))
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        print(f"cluster: {len(problems)} rule(s) cannot be partitioned by {by}", file=sys.stderr)
        return 1
    print(f"cluster: every level-2 rule can be partitioned by {by}")
    return 0


def test(args: argparse.Namespace) -> int:
    missing = next((f for f in args.files if not f.exists()), None)
    if missing is not None:  # a usage error like in the other commands, not a failed test
        print(f"correlator rules test: {missing}: no such file", file=sys.stderr)
        return 2
    files: list[Path] = []
    for f in args.files:
        files.extend(sorted(f.rglob("*_test.y*ml")) if f.is_dir() else [f])
    failed = passed = 0
    compiled: Compiled = {}  # rule directories compiled once for all the files
    for f in files:
        result = run_test_file(f, compiled)
        for err in result.errors:
            print(f"ERROR {err}")
            failed += 1
        for case in result.cases:
            if case.ok:
                passed += 1
                if args.verbose:
                    print(f"ok    {case.where}: {case.name}")
                continue
            failed += 1
            print(f"FAIL  {case.where}: {case.name}")
            for p in case.problems:
                print(f"        {p}")
            print("      actual output events:")
            for ev in case.actual:
                print("        " + orjson.dumps(ev).decode())
            if not case.actual:
                print("        (none)")
            if case.responses:
                print("      responses requested:")
                for r in case.responses:
                    print("        " + orjson.dumps(r, default=str).decode())
            for name, records in case.outcome.items():  # expect_incidents, expect_problems
                print(f"      actual {name}:")
                for rec in records:
                    print("        " + orjson.dumps({k: v for k, v in rec.items() if k != "events"}).decode())
                if not records:
                    print("        (none)")
    print(f"{passed} passed, {failed} failed ({len(files)} files)")
    return 1 if failed or not files else 0


def explain_cmd(args: argparse.Namespace) -> int:
    config, rules_dir, inventory = _settings(args, args.rules)
    if not rules_dir.is_dir():
        print(f"correlator rules explain: {rules_dir}: no such rule directory", file=sys.stderr)
        return 2
    if str(args.event) != "-" and not args.event.is_file():
        print(f"correlator rules explain: {args.event}: no such file", file=sys.stderr)
        return 2
    raw = sys.stdin.buffer.read() if str(args.event) == "-" else args.event.read_bytes()
    try:
        events = parse_events(raw, str(args.event), "explain", time.time())
    except ValueError as e:
        print(f"correlator rules explain: {e}", file=sys.stderr)
        return 2
    if not events:
        print(f"correlator rules explain: {args.event}: no events", file=sys.stderr)
        return 2
    holder = RulesHolder(rules_dir, inventory, load_catalogue(config))
    try:
        holder.load_initial()
    except RuleErrors as e:
        print(f"correlator rules explain: {len(e.errors)} error(s) in the rules:\n{e}", file=sys.stderr)
        return 2
    from correlator.rules.explain import explain  # only this sub-command needs the tracer

    result = asyncio.run(explain(holder, config, events, args.wait))
    if args.json:
        sys.stdout.write(orjson.dumps(result.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(result.text(args.all))
    return 0


def schema(args: argparse.Namespace) -> int:
    sys.stdout.write(orjson.dumps(rules_schema(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
