"""The YAML pieces every level-2 rule kind shares: `group_by` keys and `on_<hook>` response lists.

Used by kinds.py to describe each kind with the rule-file model (correlator/rules/model.py), so the
same spec both parses the operator's file (with file:line:col errors) and yields the JSON Schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from correlator.correlation import actions
from correlator.correlation.core import Action, KeyFn
from correlator.correlation.core import Key as StateKey
from correlator.event import Event, Severity
from correlator.rules.errors import RuleError, RuleErrors, suggest
from correlator.rules.fields import PLAIN_TEXT_FIELDS, compile_field
from correlator.rules.matchers import equality_values, glob_pin, is_plain_pin
from correlator.rules.model import Int, Key, ListOf, Obj, Spec, Str, Template
from correlator.yamlfile import Position, YamlList, key_where, value_where

SEVERITIES = tuple(s.value for s in Severity)

_EMIT = Obj(
    {
        "type": Key(Str(doc="type of the correlated event"), required=True),
        "severity": Key(Str(doc="its severity (default: the subject's)", choices=SEVERITIES)),
        "message": Key(Template(doc="its message template (default: the subject's message)")),
        "host": Key(Template(doc="its host template (default: the subject's host)")),
    },
    doc="make a correlated event from the subject; from an event hook it re-enters level 2",
)
_INCIDENT = Obj(
    {
        "action": Key(
            Str(doc="what to ask of the incident", choices=("open", "update", "resolve")), required=True
        ),
        "title": Key(Template(doc="incident title template")),
        "description": Key(Template(doc="incident description template")),
        "key": Key(Template(doc="correlation key template (default '<rule>:<group_by values>')")),
        "impact": Key(Int(minimum=1, doc="1 (high) .. 3 (low)")),
        "urgency": Key(Int(minimum=1, doc="1 (high) .. 3 (low)")),
        "assignment_group": Key(Str(doc="team the incident is assigned to")),
    },
    doc="open, update or resolve the incident of a correlation key",
)
_NOTIFY = Obj(
    {
        "target": Key(Str(doc="a target of correlation.notify in correlator.yaml"), required=True),
        "body": Key(Template(doc="request body template (default: the event and rule as JSON)")),
    },
    doc="POST to an outbound webhook, with retries",
)


@dataclass(frozen=True)
class Annotations(Spec):
    doc: str = "attributes to set on the subject, as templates"

    def parse(self, value: Any, where: Position | None) -> Any:
        if not isinstance(value, dict) or not value:
            raise RuleError(where, "annotate: expected a mapping of attribute names to templates")
        tmpl = Template()
        return {k: tmpl.parse(v, value_where(value, k, where)) for k, v in value.items()}

    def schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"type": "string"},
            "description": self.doc,
        }


_ACTIONS: dict[str, Spec] = {
    "emit": _EMIT,
    "incident": _INCIDENT,
    "notify": _NOTIFY,
    "annotate": Annotations(),
}
ACTION_NAMES = (*_ACTIONS, "suppress")


@dataclass(frozen=True)
class Responses(Spec):
    """A list of responses, each a one-key mapping: emit, incident, notify, annotate or `suppress: true`."""

    doc: str = ""

    def parse(self, value: Any, where: Position | None) -> Any:
        if not isinstance(value, list) or not value:
            raise RuleError(where, f"expected a list of responses ({', '.join(ACTION_NAMES)})")
        positions = value.item_positions if isinstance(value, YamlList) else [where] * len(value)
        out: list[Action] = []
        errors: list[RuleError] = []
        for item, pos in zip(value, positions, strict=True):
            try:
                out.append(_action(item, pos))
            except RuleErrors as e:
                errors.extend(e.errors)
            except RuleError as e:
                errors.append(e)
        if errors:
            raise errors[0] if len(errors) == 1 else RuleErrors(errors)
        return out

    def schema(self) -> dict[str, Any]:
        one_of = [
            {
                "type": "object",
                "properties": {name: spec.schema()},
                "required": [name],
                "additionalProperties": False,
            }
            for name, spec in _ACTIONS.items()
        ]
        one_of.append(
            {
                "type": "object",
                "properties": {"suppress": {"const": True}},
                "required": ["suppress"],
                "additionalProperties": False,
            }
        )
        return {"type": "array", "minItems": 1, "items": {"oneOf": one_of}, "description": self.doc}


def _action(item: Any, where: Position | None) -> Action:
    if not isinstance(item, dict) or len(item) != 1:
        raise RuleError(where, f"each response is a mapping with one key: {', '.join(ACTION_NAMES)}")
    ((name, arg),) = item.items()
    kpos, vpos = key_where(item, name, where), value_where(item, name, where)
    if name == "suppress":
        if arg is not True:
            raise RuleError(vpos, "suppress: expected true")
        return actions.suppress()
    spec = _ACTIONS.get(name)
    if spec is None:
        raise RuleError(
            kpos, f"unknown response {name!r}{suggest(name, ACTION_NAMES)}; known: {', '.join(ACTION_NAMES)}"
        )
    v = spec.parse(arg, vpos)
    if name == "emit":
        sev = Severity(v["severity"]) if v["severity"] else None
        return actions.emit(v["type"], sev, v["message"], v["host"])
    if name == "incident":
        for level in ("impact", "urgency"):
            if v[level] not in (None, 1, 2, 3):
                raise RuleError(value_where(arg, level, vpos), f"{level}: expected 1 (high), 2 or 3 (low)")
        return actions.incident(
            v["action"],
            v["title"],
            v["key"],
            v["description"],
            v["impact"],
            v["urgency"],
            v["assignment_group"],
        )
    if name == "notify":
        return actions.notify(v["target"], v["body"])
    return actions.annotate(v)


def group_by_spec(default: str = "host") -> Key:
    return Key(
        ListOf(Str(doc="a field path such as host or attributes.site")),
        default=[default],
    )


def hooks_keys(names: tuple[str, ...]) -> dict[str, Key]:
    return {f"on_{h}": Key(Responses(doc=f"responses when {h} happens")) for h in names}


def hooks_of(values: dict[str, Any], names: tuple[str, ...]) -> dict[str, list[Action]]:
    return {h: values[f"on_{h}"] for h in names if values.get(f"on_{h}")}


def key_fn(paths: list[str], where: Position | None) -> KeyFn:
    """The key of an event for `group_by: paths`: a tuple of the fields' values.

    One function per list of paths, shared by every rule naming it (they hold no state): with many
    rules an event's rule then runs a key function the rules before it kept warm, not one of its own
    (measured: the per-event key and its table lookup were a fifth of level 2 at 1,000 rules)."""
    if not all(isinstance(p, str) for p in paths):
        return _key_fn(paths, where)  # raises, naming the bad path
    found = _KEY_FNS.get(tuple(paths))
    if found is None:
        found = _key_fn(paths, where)
        if len(_KEY_FNS) >= _KEY_FNS_KEPT:
            _KEY_FNS.clear()
        _KEY_FNS[tuple(paths)] = found
    return found


_KEY_FNS: dict[tuple[str, ...], KeyFn] = {}
_KEY_FNS_KEPT = 10_000


def _key_fn(paths: list[str], where: Position | None) -> KeyFn:
    getters = [compile_field(p, where) for p in paths]  # first: a bad path raises, named
    made = _reads_key_fn(paths)  # plain fields and one-level attributes: every usual key
    if made is not None:
        return made
    if len(getters) == 1:
        g = getters[0]
        return lambda ev: (g(ev),)
    if len(getters) == 2:
        g1, g2 = getters
        return lambda ev: (g1(ev), g2(ev))
    return lambda ev: tuple(g(ev) for g in getters)


def _reads_key_fn(paths: list[str]) -> KeyFn | None:
    """The key as one tuple of attribute reads, `lambda ev: (ev.host, ev.attributes.get(k1))`,
    compiled once per list of paths; None unless every path is a plain text field or an attribute
    one level deep. The interpreter specialises the reads in a function's own code, where a getter
    it calls (attrgetter, a lambda per field) costs a call each (measured per key: `host` 1.3k -> 0.8k
    instructions, `host, attributes.user` 2.0k -> 1.2k, `host, resource` 1.1k -> 0.8k).
    The code holds only field names from PLAIN_TEXT_FIELDS; attribute names are bound as values."""
    reads: list[str] = []
    names: dict[str, Any] = {"__builtins__": {}}
    for i, p in enumerate(paths):
        if p in PLAIN_TEXT_FIELDS:
            reads.append(f"ev.{p}")
        elif p.startswith("attributes.") and p.count(".") == 1 and len(p) > len("attributes."):
            names[f"k{i}"] = p.removeprefix("attributes.")
            reads.append(f"ev.attributes.get(k{i})")
        else:
            return None
    if not reads:
        return None
    code = compile(f"lambda ev: ({', '.join(reads)},)", "<group_by>", "eval")
    fn: KeyFn = eval(code, names)  # noqa: S307  # the text is made of the fixed field names above
    return fn


def types_of(*match_specs: Any) -> frozenset[str] | None:
    """Event types a rule can see, when every one of its matchers pins `type` (else None: any type)."""
    return _pinned("type", match_specs)


def type_only(spec: Any) -> bool:
    """The matcher tests nothing but the event type against text values (`type: x`, `type: [x, y]`,
    `type: {equals: x}`, `type: {in: [x, y]}`): a type in those values is all it takes."""
    return (
        isinstance(spec, (dict, Mapping)) and len(spec) == 1 and "type" in spec and is_plain_pin(spec["type"])
    )


def hosts_of(*match_specs: Any) -> frozenset[str] | None:
    """Hosts a rule can see, when every one of its matchers pins `host` (else None: any host)."""
    return _pinned("host", match_specs)


def matchable_types(spec: Any) -> frozenset[str] | None:
    """The event types `spec` can match, when it says (a `type` pin at its top level, in every branch
    of an `any`, or in one entry of an `all`); None: any type."""
    pinned = equality_values(spec, "type")
    if pinned is not None or not isinstance(spec, Mapping):
        return pinned
    branches = spec.get("any")
    if isinstance(branches, list) and branches:
        out: set[str] = set()
        for branch in branches:
            types = matchable_types(branch)
            if types is None:
                break
            out |= types
        else:
            return frozenset(out)
    required = spec.get("all")
    if isinstance(required, list):
        for entry in required:
            types = matchable_types(entry)
            if types is not None:
                return types
    return None


def pattern_of(*match_specs: Any) -> tuple[str, Callable[[str], Any]] | None:
    """When every matcher pins the same field (source or type) by a glob: (field, test of a value
    that any of the globs admits); else None."""
    pins = [glob_pin(spec) for spec in match_specs]
    if not pins or any(p is None for p in pins):
        return None
    fields = {p[0] for p in pins if p is not None}
    if len(fields) != 1:
        return None
    tests = tuple(p[1] for p in pins if p is not None)
    if len(tests) == 1:
        return fields.pop(), tests[0]
    return fields.pop(), lambda value: any(test(value) for test in tests)


def _pinned(path: str, match_specs: tuple[Any, ...]) -> frozenset[str] | None:
    out: set[str] = set()
    for spec in match_specs:
        pinned = equality_values(spec, path)
        if pinned is None:
            return None
        out |= pinned
    return frozenset(out)


def describe_match(spec: Any) -> str:
    """A matcher for people, on one line: the type it waits for when that is all it says (`priv.change`),
    else the matcher as written in YAML flow style (`{type: priv.change, severity: {in: [major]}}`)."""
    if isinstance(spec, dict) and list(spec) == ["type"] and isinstance(spec["type"], str):
        return str(spec["type"])
    return _flow(spec)


def _flow(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def state_getter(path: str | None, where: Position | None) -> Callable[[Event], Any]:
    return compile_field(path or "severity", where)


def as_keys(rows: list[Any]) -> list[StateKey]:
    return [tuple(r) if isinstance(r, list) else (r,) for r in rows]
