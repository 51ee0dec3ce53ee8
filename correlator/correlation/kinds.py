"""The level-2 rule kinds in the rule files: threshold, pair, absence, flapping, group, topology, sequence.

Each kind is declared with the rule-file model (so `rules check` and `rules schema` know it) and
built into an engine; the correlate stage takes them from the live rule set (`of_kind`).
"""

from __future__ import annotations

import marshal
from collections.abc import Mapping
from typing import Any

from correlator.correlation.absence import Absence
from correlator.correlation.core import Engine
from correlator.correlation.flapping import Flapping
from correlator.correlation.group import Group
from correlator.correlation.pair import Pair
from correlator.correlation.rulespec import (
    SEVERITIES,
    as_keys,
    describe_match,
    group_by_spec,
    hooks_keys,
    hooks_of,
    hosts_of,
    key_fn,
    matchable_types,
    pattern_of,
    state_getter,
    type_only,
    types_of,
)
from correlator.correlation.sequence import SequenceRule
from correlator.correlation.threshold import Threshold
from correlator.correlation.topology import TopologyRule, a_problem
from correlator.correlation.topology_file import TopologyError, load_topology
from correlator.event import Severity
from correlator.rules.errors import RuleError
from correlator.rules.fields import compile_field
from correlator.rules.matchers import Matcher, compile_matcher
from correlator.rules.model import Bool, Duration, Either, Int, Key, ListOf, Match, Obj, Str, Template
from correlator.rules.registry import BuildContext, RuleInfo, RuleKind, register_kind
from correlator.rules.stats import STATS
from correlator.yamlfile import YamlMap

MAX_KEYS = Key(
    Int(minimum=1, doc="most keys with state; the least recently seen is evicted beyond"), default=100_000
)
_SEV = Str(doc="severity of the rule-made event", choices=SEVERITIES)
TIMEOUT_TYPE = Key(Str(doc="type of the timeout event (default '<rule>.timeout')"))


def _finish(
    engine: Engine,
    raw: YamlMap,
    *matches: Any,
    extra: Any = None,
    any_of: bool = True,
    compiled_match: bool = False,
) -> Engine:
    """`any_of`: the engine's `match` is true exactly when one of `matches` is (not so for topology);
    `compiled_match`: the engine's `match` is the rule's `match` compiled, as it is written."""
    types = _just_types(matches)
    if types is not None:  # what the general code below finds for them, at a fraction of its cost
        engine.types = types
        engine.pinned_only = any_of
    else:
        engine.types = types_of(*matches)
        engine.hosts = hosts_of(*matches)
        if engine.types is None and engine.hosts is None:
            engine.pattern = pattern_of(*matches)
        engine.pinned_only = any_of and engine.types is not None and all(map(type_only, matches))
    engine.check = None if engine.pinned_only else engine.match
    if compiled_match and engine.pattern is not None and engine.pattern[0] == "source":
        engine.check = _beyond_source_glob(raw, engine.match)
    engine.signature = rule_signature(raw, extra)
    by = raw.get("group_by")
    engine.group_by = tuple(by) if isinstance(by, list) else ("host",)  # the kinds' default key
    # correlator_rule_matches_total and GET /api/v1/rules; the engine's own (new, zero) when the
    # name is not counted yet, rather than a second new one
    engine.counters = STATS.counters(engine.name, engine.counters)
    return engine


def _just_types(matches: tuple[Any, ...]) -> frozenset[str] | None:
    """The types, when every matcher is `{type: <text>}` (most rules); else None."""
    types = []
    for spec in matches:
        if not isinstance(spec, dict) or len(spec) != 1:
            return None
        t = spec.get("type")
        if not isinstance(t, str):
            return None
        types.append(t)
    return frozenset(types)


def rule_signature(raw: YamlMap, extra: Any) -> str:
    """The rule's mapping (and what else it was built from) as a text equal exactly when they are:
    marshal's version 0 writes each value with its type (1, 1.0 and True differ, as in `repr`) and
    no references to shared objects, so equal values always give the same bytes; it writes them
    at twice the speed of `repr`, a twentieth of a load. Values marshal cannot write (a YAML
    date) are printed; a printed text never equals a marshalled one (it holds no NUL)."""
    try:
        return marshal.dumps((dict(raw), extra), 0).decode("latin-1")
    except ValueError:
        pass  # a file read with positions: mappings and lists below the top are subclasses too
    try:
        return marshal.dumps((_plain(raw), extra), 0).decode("latin-1")
    except ValueError:
        return repr((raw, extra))  # the mapping prints as the plain dict it is


def _plain(v: Any) -> Any:
    """`v` with its mappings and lists made plain, as marshal wants them."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _beyond_source_glob(raw: YamlMap, match: Matcher) -> Matcher | None:
    """The rule's `match` without its `source: {glob: ...}`, which the index tests once per source
    (a rule filed by that pattern only ever meets events of the sources it admits); `match` when
    the source condition says more than the glob."""
    spec = raw.get("match")
    if not isinstance(spec, Mapping):
        return match
    cond = spec.get("source")
    if not isinstance(cond, Mapping) or len(cond) != 1 or not isinstance(cond.get("glob"), str):
        return match
    rest = {k: c for k, c in spec.items() if k != "source"}
    return compile_matcher(rest, raw.where_value("match")) if rest else None


def _threshold(info: RuleInfo, v: dict[str, Any], raw: YamlMap, ctx: BuildContext) -> Engine:
    e = Threshold(
        info.name,
        v["match"],
        key_fn(v["group_by"], raw.where("group_by")),
        v["count"],
        v["within"],
        hooks_of(v, Threshold.hook_names),
        v["max_keys"],
    )
    return _finish(e, raw, raw.get("match"), compiled_match=True)


def _pair(info: RuleInfo, v: dict[str, Any], raw: YamlMap, ctx: BuildContext) -> Engine:
    e = Pair(
        info.name,
        v["match"],
        v["close"],
        key_fn(v["group_by"], raw.where("group_by")),
        v["within"],
        hooks_of(v, Pair.hook_names),
        v["max_keys"],
        v["timeout_type"],
        v["recover_within"],
        matchable_types(raw.get("close")) if type_only(raw.get("close")) else None,
    )
    return _finish(e, raw, raw.get("match"), raw.get("close"))


def _absence(info: RuleInfo, v: dict[str, Any], raw: YamlMap, ctx: BuildContext) -> Engine:
    expect = as_keys(v["expect"] or [])
    if v["expect_inventory"]:
        if v["group_by"] != ["host"]:
            raise RuleError(raw.where("expect_inventory"), "expect_inventory needs group_by: [host]")
        expect += [(a.host,) for a in ctx.inventory]
    e = Absence(
        info.name,
        v["match"],
        key_fn(v["group_by"], raw.where("group_by")),
        v["every"],
        hooks_of(v, Absence.hook_names),
        v["max_keys"],
        expect,
        v["missed_type"],
        Severity(v["severity"]),
        v["forget_after"],
    )
    return _finish(e, raw, raw.get("match"), extra=sorted(expect, key=repr), compiled_match=True)


def _flapping(info: RuleInfo, v: dict[str, Any], raw: YamlMap, ctx: BuildContext) -> Engine:
    low = v["low"]
    if low is not None and low >= v["high"]:
        raise RuleError(
            raw.where("low"), f"low ({low}) must be below high ({v['high']}): that is the hysteresis"
        )
    e = Flapping(
        info.name,
        v["match"],
        key_fn(v["group_by"], raw.where("group_by")),
        v["within"],
        v["high"],
        low,
        state_getter(v["state"], raw.where("state")),
        hooks_of(v, Flapping.hook_names),
        v["max_keys"],
        v["flapping_type"],
        Severity(v["severity"]),
    )
    return _finish(e, raw, raw.get("match"), compiled_match=True)


def _group(info: RuleInfo, v: dict[str, Any], raw: YamlMap, ctx: BuildContext) -> Engine:
    e = Group(
        info.name,
        v["match"],
        key_fn(v["group_by"], raw.where("group_by")),
        v["group_wait"],
        hooks_of(v, Group.hook_names),
        v["max_keys"],
        v["close_after"],
        v["max_members"],
        v["group_type"],
    )
    return _finish(e, raw, raw.get("match"), compiled_match=True)


def _topology(info: RuleInfo, v: dict[str, Any], raw: YamlMap, ctx: BuildContext) -> Engine:
    path = ctx.rules_dir / v["topology"]
    ctx.data_files.append(path)  # a broken file must trigger a reload once fixed, too
    try:
        topo = load_topology(path, ctx.catalogue)
    except TopologyError as err:
        raise RuleError(raw.where_value("topology"), f"topology: {err}") from None
    ctx.warnings.extend(topo.warnings)
    ci = compile_field(v["ci"] or "host", raw.where("ci"))  # not state_getter: its default is severity
    e = TopologyRule(
        info.name,
        v["down"],
        v["up"],
        topo,
        lambda ev: str(ci(ev)),
        hooks_of(v, TopologyRule.hook_names),
        v["max_keys"],
        v["title"],
        v["incidents"],
        v["symptoms"] or a_problem,
        v["settle"],
        v["adopt_within"],
        v["suppress"],
        _union(matchable_types(raw.get("down")), matchable_types(raw.get("up"))),
    )
    # Without `symptoms:` any problem event may be a symptom: the rule sees every type.
    symptoms = raw.get("symptoms") or {}
    return _finish(e, raw, raw.get("down"), raw.get("up"), symptoms, extra=repr(topo), any_of=False)


def _union(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    return None if a is None or b is None else a | b


def _sequence(info: RuleInfo, v: dict[str, Any], raw: YamlMap, ctx: BuildContext) -> Engine:
    if len(v["steps"]) < 2:
        raise RuleError(raw.where("steps"), "a sequence needs at least two steps")
    hooks = hooks_of(v, SequenceRule.hook_names)
    for option in ("timeout_type", "severity"):
        if v[option] is not None and "timeout" not in hooks:
            raise RuleError(
                raw.where(option), f"{option} is for the timeout event: it needs on_timeout responses"
            )
    e = SequenceRule(
        info.name,
        v["steps"],
        key_fn(v["group_by"], raw.where("group_by")),
        v["within"],
        hooks,
        v["max_keys"],
        v["timeout_type"],
        Severity(v["severity"]) if v["severity"] else None,
        [describe_match(s) for s in raw["steps"]],
    )
    return _finish(e, raw, *(raw.get("steps") or []))


def _kind(name: str, keys: dict[str, Key], hooks: tuple[str, ...], build: Any, doc: str) -> RuleKind:
    all_keys = {**keys, "max_keys": MAX_KEYS, **hooks_keys(hooks)}
    return RuleKind(name, Obj(all_keys), build, level=2, doc=doc + " See docs/correlation.md.")


KINDS = [
    _kind(
        "threshold",
        {
            "match": Key(Match(), required=True),
            "group_by": group_by_spec(),
            "count": Key(Int(minimum=1, doc="events needed within the window"), required=True),
            "within": Key(Duration(doc="sliding window"), required=True),
        },
        Threshold.hook_names,
        _threshold,
        "level-2: N matching events per key within a sliding window fire once (SEC SingleWithThreshold).",
    ),
    _kind(
        "pair",
        {
            "match": Key(Match(doc="the opening event (A)"), required=True),
            "close": Key(Match(doc="the closing event (B)"), required=True),
            "group_by": group_by_spec(),
            "within": Key(Duration(doc="time B has to arrive"), required=True),
            "timeout_type": TIMEOUT_TYPE,
            "recover_within": Key(
                Duration(doc="how long a late B still recovers a timeout"), default=86400.0
            ),
        },
        Pair.hook_names,
        _pair,
        "level-2: A opens, B with the same key closes within T; responses on open, close, timeout, recover.",
    ),
    _kind(
        "absence",
        {
            "match": Key(Match(doc="the heartbeat events"), required=True),
            "group_by": group_by_spec(),
            "every": Key(Duration(doc="longest allowed silence per key"), required=True),
            "expect": Key(
                ListOf(
                    Either(((str, Str()), (list, ListOf(Str())))),
                    doc="keys expected from the start: a host, or a list of the group_by values",
                )
            ),
            "expect_inventory": Key(
                Bool(doc="expect every inventory host (needs group_by: [host])"), default=False
            ),
            "missed_type": Key(Str(doc="type of the missed event"), default="heartbeat.missed"),
            "severity": Key(_SEV, default="major"),
            "forget_after": Key(Duration(doc="stop watching an unlisted silent key after"), default=604800.0),
        },
        Absence.hook_names,
        _absence,
        "level-2: expect a matching event per key at least every T; heartbeat.missed, then a clear.",
    ),
    _kind(
        "flapping",
        {
            "match": Key(Match(), required=True),
            "group_by": group_by_spec(),
            "state": Key(Str(doc="field whose changes count (default severity)")),
            "within": Key(Duration(doc="window the changes are counted in"), required=True),
            "high": Key(Int(minimum=2, doc="changes within the window that start flapping"), required=True),
            "low": Key(Int(minimum=0, doc="changes at or below which flapping stops (default high/2)")),
            "flapping_type": Key(Str(doc="type of the flapping event"), default="flapping"),
            "severity": Key(_SEV, default="warning"),
        },
        Flapping.hook_names,
        _flapping,
        "level-2: too many state changes per key enter flapping (suppressed), with hysteresis to leave.",
    ),
    _kind(
        "group",
        {
            "match": Key(Match(), required=True),
            "group_by": group_by_spec(),
            "group_wait": Key(
                Duration(doc="wait after the first member before the group event"), required=True
            ),
            "close_after": Key(Duration(doc="an idle group closes after"), default=3600.0),
            "max_members": Key(Int(minimum=1, doc="member ids listed at most"), default=100),
            "group_type": Key(Str(doc="type of the group event (default '<rule>.group')")),
        },
        Group.hook_names,
        _group,
        "level-2: matching events per key within group_wait merge into one event; later ones join.",
    ),
    _kind(
        "topology",
        {
            "down": Key(Match(doc="an event saying a CI is down"), required=True),
            "up": Key(Match(doc="an event saying a CI is up again"), required=True),
            "topology": Key(Str(doc="topology file, relative to the rules directory"), required=True),
            "ci": Key(Str(doc="field naming the CI (default host)")),
            "title": Key(Template(doc="incident title template (default '<ci> down')")),
            "incidents": Key(Bool(doc="ask for incidents (open/update/resolve)"), default=True),
            "symptoms": Key(
                Match(
                    doc="events of a CI behind a down CI that are its symptoms (default: severity warning and above)"
                )
            ),
            "settle": Key(
                Duration(
                    doc="symptoms stay attached this long after the root is up (0: none)", positive=False
                ),
                default=60.0,
            ),
            "adopt_within": Key(
                Duration(
                    doc="a root down this soon after its descendants' incidents takes them", positive=False
                ),
                default=300.0,
            ),
            "suppress": Key(
                Bool(doc="symptoms skip later level-2 rules; other rules' incidents on them join the root's"),
                default=True,
            ),
        },
        TopologyRule.hook_names,
        _topology,
        "level-2: events behind a down upstream CI become symptoms of its incident.",
    ),
    _kind(
        "sequence",
        {
            "steps": Key(
                ListOf(Match(), min_items=2, doc="matchers, in the order they must arrive"), required=True
            ),
            "group_by": group_by_spec(),
            "within": Key(
                Duration(doc="from the first step to the last; a run not complete then times out"),
                required=True,
            ),
            "timeout_type": TIMEOUT_TYPE,
            "severity": Key(
                Str(doc="severity of the timeout event (default: the run's last event's)", choices=SEVERITIES)
            ),
        },
        SequenceRule.hook_names,
        _sequence,
        "level-2: A then B then C for the same key within T, in order; on_timeout when a run does not"
        " complete in time.",
    ),
]

for _k in KINDS:
    register_kind(_k)
