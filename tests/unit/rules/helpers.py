"""Shared helpers for the rule tests: events and rule sets from inline YAML."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from correlator import yamlfile
from correlator.event import Event, Severity
from correlator.inventory import Inventory
from correlator.rules.loader import compile_texts
from correlator.rules.matchers import compile_matcher
from correlator.rules.registry import BuildContext
from correlator.rules.ruleset import RuleSet

_n = 0


def ev(host: str = "sw1", type: str = "IF-MIB::linkDown", **kw: Any) -> Event:
    global _n
    _n += 1
    sev = kw.pop("severity", Severity.INFO)
    return Event(
        kw.pop("id", f"e{_n}"),
        kw.pop("time", 1000.0),
        kw.pop("received", 1000.0),
        kw.pop("source", "snmp"),
        host,
        type,
        Severity(sev),
        **kw,
    )


def matcher(text: str):
    return compile_matcher(yamlfile.loads(textwrap.dedent(text), "m.yaml"))


def ruleset(text: str, inventory: Inventory | None = None, file: str = "r.yaml") -> RuleSet:
    ctx = BuildContext(Path("."), inventory or Inventory())
    rules = compile_texts({file: textwrap.dedent(text)}, ctx)
    return RuleSet(rules, [file], ctx.inventory)


def run(rs: RuleSet, *events: Event) -> tuple[list[Event], list[Event]]:
    """Events kept, and the fold updates, after the level-1 rules: one batch through RuleSet.run,
    the path the filter stage takes (correlator/rules/stage.py)."""
    updates: list[Event] = []
    kept = rs.run(list(events), updates)
    return kept, updates
