"""Rule unit tests (`correlator rules test FILE...`): input events at given times, expected output events,
and (when a case asks) the incidents and problems they lead to.

A rule directory is read and compiled once per run (test files that name the same directory and
inventory share it); each case gets the rules built again from that (new rule objects, empty
state: nothing leaks between cases) and feeds its events one by one
through the real pipeline on a virtual clock (replay.Stepper); the expected events are compared
field by field.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correlator import door, yamlfile
from correlator.config import Config, parse_duration
from correlator.errors import FieldError
from correlator.event import Event, event_from_dict, iso, parse_time
from correlator.pipeline.assemble import build_pipeline
from correlator.replay import ReplaySummary, Stepper
from correlator.responses import response_dict
from correlator.rules.errors import RuleError, RuleErrors, suggest
from correlator.rules.loader import ParsedRule, build_again, load_rules
from correlator.rules.reload import RulesHolder
from correlator.rules.ruleset import RuleSet
from correlator.yamlfile import Position, YamlMap

if TYPE_CHECKING:
    from correlator.replay_noc import NocReplay

DEFAULT_START = "2026-01-01T00:00:00Z"
FILE_KEYS = ("rules", "inventory", "start", "tests")
CASE_KEYS = ("name", "input", "expect", "expect_responses", "expect_incidents", "expect_problems", "end")
# Outcomes checked against what the incident and problem services did (replay_noc's report).
OUTCOME_KEYS = {"expect_incidents": "incidents", "expect_problems": "problems"}
INPUT_KEYS = ("at", "event")
_TIME_FIELDS = ("time", "received", "last_seen")
# ISO 8601 text in incidents and problems; compared as instants, so 10:00:30+00:00 equals 10:00:30Z.
_ISO_FIELDS = (
    "opened_at", "resolved_at", "reopened_at", "closed_at", "acknowledged_at", "updated_at",
    "first_occurrence", "last_occurrence",
)  # fmt: skip


@dataclass
class CaseResult:
    name: str
    where: str
    ok: bool
    problems: list[str] = field(default_factory=list)
    actual: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    outcome: dict[str, Any] = field(default_factory=dict)  # incidents and problems, when asserted


@dataclass
class FileResult:
    file: str
    cases: list[CaseResult] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the file itself, or the rules, could not be used

    @property
    def ok(self) -> bool:
        return not self.errors and all(c.ok for c in self.cases)


Compiled = dict[tuple[Path, Path | None], tuple[RuleSet, list[ParsedRule]]]
"""Rule sets compiled for earlier test files of a run, by rule directory and inventory file."""


def run_test_file(path: Path, compiled: Compiled | None = None) -> FileResult:
    """Run one test file; `compiled` (shared by the files of a run) saves compiling a rule
    directory again for each file."""
    result = FileResult(str(path))
    try:
        doc = _plain_times(yamlfile.load(path))
        spec = _check_keys(doc, FILE_KEYS, Position(str(path), 1, 1), "test file")
    except (OSError, yamlfile.YamlError, RuleError) as e:
        result.errors.append(str(e))
        return result
    base = path.parent
    rules_dir = base / spec.get("rules", ".." if base.name == "tests" else ".")
    inventory = base / spec["inventory"] if spec.get("inventory") else None
    try:
        start = parse_time(spec.get("start", DEFAULT_START), "start")
    except FieldError as e:
        result.errors.append(f"{spec.where_value('start')}: {e.message}")
        return result
    cases = spec.get("tests")
    if not isinstance(cases, list) or not cases:
        result.errors.append(f"{spec.where('tests')}: 'tests' must be a non-empty list of test cases")
        return result
    compiled = {} if compiled is None else compiled
    key = (rules_dir.resolve(), inventory.resolve() if inventory else None)
    if key not in compiled:
        parsed: list[ParsedRule] = []
        try:
            # As the daemon does (reload.py): no directory means no rules.
            loaded = load_rules(rules_dir, inventory, parsed=parsed) if rules_dir.exists() else RuleSet()
        except RuleErrors as e:
            result.errors.extend(str(err) for err in e.errors)
            return result
        compiled[key] = loaded, parsed
    loaded, parsed = compiled[key]
    for case in cases:
        holder = RulesHolder(rules_dir, inventory)
        holder.install(build_again(loaded, parsed))
        result.cases.append(asyncio.run(_run_case(case, start, holder)))
    return result


async def _run_case(case: Any, start: float, holder: RulesHolder) -> CaseResult:
    where = str(getattr(case, "position", "?"))
    try:
        c = _check_keys(case, CASE_KEYS, None, "test case")
        name = str(c.get("name") or where)
        inputs = _inputs(c, start)
        expected = c.get("expect")
        if expected is None and not any(key in c for key in OUTCOME_KEYS):
            expected = []
        if expected is not None and not isinstance(expected, list):
            raise RuleError(c.where_value("expect"), "'expect' must be a list of (partial) events")
        expected_responses = c.get("expect_responses")
        if expected_responses is not None and not isinstance(expected_responses, list):
            raise RuleError(c.where_value("expect_responses"), "'expect_responses' must be a list")
        end = start + parse_duration(c["end"]) if "end" in c else None
        outcomes = {key: c[key] for key in OUTCOME_KEYS if key in c}
        for key, value in outcomes.items():
            if not isinstance(value, list):
                raise RuleError(c.where_value(key), f"'{key}' must be a list of (partial) records")
    except (RuleError, FieldError, ValueError) as e:
        return CaseResult(str(where), where, False, [str(e)])
    first = min(e.time for e in inputs) if inputs else start
    config = Config(rules_dir=holder.rules_dir)
    # Incidents and problems only when the case asserts them: the other cases stay store-free and fast
    # (and the incident, notification and store modules are not even imported).
    noc: NocReplay | None = None
    if outcomes:
        from correlator import replay_noc

        noc = await replay_noc.start(config, holder, first)
    try:
        pipeline = noc.services.pipeline if noc else build_pipeline(config, holder)
        stepper = Stepper(pipeline, first, noc.clock if noc else None)
        out: list[Event] = []
        for ev in sorted(inputs, key=lambda e: e.time):
            out.extend(await stepper.feed(ev))
        if end is not None:
            out.extend(await stepper.advance(end))
        report: dict[str, Any] = {}
        if noc is not None:
            from correlator import replay_noc

            await replay_noc.finish(noc)
            report = await replay_noc.report(noc, ReplaySummary(events_in=len(inputs)))
    finally:
        if noc is not None:
            await noc.close()
    responses = [response_dict(r) for r in stepper.responses]
    actual = [e.to_dict() for e in out]
    # A case that asserts only incidents or problems leaves the events unchecked; otherwise a
    # missing `expect` means no event comes out.
    problems = compare(expected, actual) if expected is not None else []
    if expected_responses is not None:
        problems += compare(expected_responses, responses, what="response")
    outcome = {kind: report[kind] for key, kind in OUTCOME_KEYS.items() if key in outcomes}
    for key, kind in OUTCOME_KEYS.items():
        if key in outcomes:
            problems += compare(outcomes[key], report[kind], what=kind[:-1])
    return CaseResult(name, where, not problems, problems, actual, responses, outcome)


def compare(expected: list[Any], actual: list[dict[str, Any]], what: str = "event") -> list[str]:
    """Readable differences between expected partial events (or responses) and actual ones, in order."""
    problems: list[str] = []
    for i, exp in enumerate(expected):
        if i >= len(actual):
            problems.append(
                f"{what} #{i + 1}: expected {_short(exp)}, but only {len(actual)} {what}(s) came out"
            )
            continue
        if not isinstance(exp, dict):
            problems.append(f"{what} #{i + 1}: the expectation must be a mapping of fields")
            continue
        for key, want in exp.items():
            got = actual[i].get(key)
            if key in _TIME_FIELDS and isinstance(want, str) and isinstance(got, int | float):
                got = iso(got)
                want = iso(parse_time(want, key))
            elif key in _ISO_FIELDS and isinstance(want, str) and isinstance(got, str):
                with contextlib.suppress(FieldError):
                    want = iso(parse_time(want, key))
            diffs = _diff(key, want, got)
            label = actual[i].get("type") or actual[i].get("kind") or actual[i].get("id")
            problems.extend(f"{what} #{i + 1} ({label}): {d}" for d in diffs)
    for j in range(len(expected), len(actual)):
        problems.append(f"{what} #{j + 1}: unexpected {_short(actual[j])}")
    return problems


def _diff(path: str, want: Any, got: Any) -> list[str]:
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: expected a mapping {want!r}, got {got!r}"]
        out: list[str] = []
        for k, v in want.items():
            if k not in got:
                out.append(f"{path}.{k}: expected {v!r}, but it is absent")
            else:
                out.extend(_diff(f"{path}.{k}", v, got[k]))
        return out
    if want != got:
        return [f"{path}: expected {want!r}, got {got!r}"]
    return []


def _inputs(case: YamlMap, start: float) -> list[Event]:
    items = case.get("input")
    if not isinstance(items, list) or not items:
        raise RuleError(case.where("input"), "'input' must be a non-empty list of {at: 10s, event: {...}}")
    events = []
    for n, item in enumerate(items, start=1):
        spec = _check_keys(item, INPUT_KEYS, case.where("input"), "input item")
        offset = parse_duration(spec.get("at", 0))
        raw = spec.get("event")
        if not isinstance(raw, dict):
            raise RuleError(spec.where("event"), "'event' must be a mapping in the generic event format")
        doc = {"id": f"input-{n}", "source": "test", **raw}
        t = start + offset
        if "time" not in doc:
            doc["time"] = t
        try:
            ev = event_from_dict(dict(doc), "test", t, recorded=True)
        except FieldError as e:
            raise RuleError(spec.where_value("event"), f"event: {e}") from None
        ev.received = t
        if "last_seen" not in raw:
            ev.last_seen = ev.time
        try:
            door.check(ev, check_time=False)  # as in replay: the door without the time policy
        except FieldError as e:
            raise RuleError(spec.where_value("event"), f"event: {e}") from None
        events.append(ev)
    return events


def _plain_times(node: Any) -> Any:
    """YAML reads an unquoted 2026-11-30T10:00:00Z as a datetime; tests mean the ISO text."""
    if isinstance(node, dict):
        for k, v in node.items():
            node[k] = _plain_times(v)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            node[i] = _plain_times(v)
    elif isinstance(node, datetime | date):
        if isinstance(node, datetime) and node.tzinfo is None:
            node = node.replace(tzinfo=UTC)
        return node.isoformat()
    return node


def _check_keys(doc: Any, known: tuple[str, ...], where: Position | None, what: str) -> YamlMap:
    if not isinstance(doc, YamlMap):
        raise RuleError(
            getattr(doc, "position", where), f"a {what} must be a mapping with keys {', '.join(known)}"
        )
    for key in doc:
        if key not in known:
            raise RuleError(doc.where(key), f"unknown key {key!r} in {what}{suggest(key, known)}")
    return doc


def _short(d: Any) -> str:
    if not isinstance(d, dict):
        return repr(d)
    keys = (
        "type",
        "title",
        "status",
        "host",
        "resource",
        "severity",
        "count",
        "kind",
        "action",
        "key",
        "rule",
    )
    return "{" + ", ".join(f"{k}: {d[k]!r}" for k in keys if k in d) + "}"
