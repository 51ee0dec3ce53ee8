"""Level-2 tracing for `rules explain`: what each rule did with an event, in an operator's words.

Only `rules explain` installs a `Level2Tracer` on the correlate stage (`Correlate.tracer`). It runs
each matching rule's `on_event` itself, noting the key's state before and after (`Engine.describe`),
the hooks that fired and what they asked for (`Sink.trace`); hooks that timers fire between events
stay in the sink until `take_timer_fires`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from correlator.correlation.core import Engine, Fired, Key
from correlator.correlation.stage import Correlate
from correlator.event import Event, iso
from correlator.responses import IncidentRequest, Response, response_dict

ABSENT = object()  # a field missing before or after a change
Change = tuple[str, Any, Any]  # (field, before, after)


@dataclass
class Reached:
    """One level-2 rule that took one event (the input, or an event a rule emitted from it)."""

    rule: str
    kind: str
    key: Key
    event: Event
    depth: int  # 0: the input event; n: emitted n re-entries deep
    before: str  # the key's state before the event ('' when the kind does not describe it)
    after: str = ""
    fired: list[Fired] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)  # attributes the rule set on the event
    responses: list[Response] = field(default_factory=list)  # asked outside any hook (topology)
    suppressed: bool = False
    error: str | None = None


class Level2Tracer:
    def __init__(self, stage: Correlate) -> None:
        self.stage = stage
        self.reached: list[Reached] = []
        stage.tracer = self
        stage.sink.trace = []

    def on_event(self, engine: Engine, ev: Event, t: float, depth: int) -> None:
        sink = engine.sink
        trace = sink.trace if sink.trace is not None else []
        key = engine.key(ev)
        now = engine.clock.now() if engine.clock is not None else t
        rec = Reached(engine.name, engine.kind, key, ev, depth, describe(engine, key, now))
        self.reached.append(rec)
        attributes = copy.deepcopy(ev.attributes)
        mark, asked = len(trace), len(sink.responses)
        try:
            engine.on_event(ev, t)
        except Exception as e:
            rec.error = repr(e)
            raise
        finally:
            rec.fired = trace[mark:]
            del trace[mark:]  # what is left in the sink afterwards was fired by timers
            rec.after = describe(engine, key, now)
            rec.changes = field_changes(flat(attributes, "attributes."), flat(ev.attributes, "attributes."))
            hooked = {id(r) for f in rec.fired for r in f.responses}
            rec.responses = [r for r in sink.responses[asked:] if id(r) not in hooked]
            rec.suppressed = sink.suppressed == engine.name

    def take_reached(self) -> list[Reached]:
        out, self.reached = self.reached, []
        return out

    def take_timer_fires(self) -> list[Fired]:
        trace = self.stage.sink.trace
        if not trace:
            return []
        out = list(trace)
        trace.clear()
        return out

    def engine(self, name: str) -> Engine | None:
        return next((e for e in self.stage.engines if e.name == name), None)

    def state(self, f: Fired) -> str:
        """The key's state now, for a hook a timer fired."""
        e = self.engine(f.rule)
        return describe(e, f.key, f.at) if e is not None else ""

    def not_reached(self, ev: Event, reached: list[Reached]) -> list[tuple[str, str]]:
        """Level-2 rules that could have met the event (by type) but did not take it, and why."""
        took = {r.rule for r in reached if r.event is ev}
        by = ev.attributes.get("suppressed_by")
        out = []
        for e in self.stage.engines:
            if e.name in took or (e.types is not None and ev.type not in e.types):
                continue
            try:
                matched = e.match(ev)
            except Exception as err:
                out.append((e.name, f"error: {err!r}"))
                continue
            out.append((e.name, f"not reached: suppressed by {by}" if matched and by else "no match"))
        return out


def describe(engine: Engine, key: Key, now: float) -> str:
    try:
        return engine.describe(key, now)
    except Exception as e:  # a describe bug must not hide the trace of what the rule did
        return f"(could not describe the state: {e!r})"


# -- rendering ------------------------------------------------------------------------------------
Where = Callable[[str], str]  # rule name -> file:line:column


def key_text(key: Key) -> str:
    return "/".join(str(k) for k in key)


def reached_lines(rec: Reached, where: Where) -> list[str]:
    lines = [f"  {rec.rule} ({where(rec.rule)}), key {key_text(rec.key)}"]
    if rec.before or rec.after:
        lines.append(f"       {_state_change(rec.kind, rec.before, rec.after)}")
    for f in rec.fired:
        lines.extend(fired_lines(f))
    lines.extend(f"       the rule asks: {_response_text(r)}" for r in rec.responses)
    lines.extend(f"       {name}: {show(b)} -> {show(a)}" for name, b, a in rec.changes)
    if rec.suppressed:
        lines.append("       suppressed: the later level-2 rules do not see the event")
    if rec.error:
        lines.append(f"       error: {rec.error} (counted; the event goes on to the next rule)")
    return lines


def timer_lines(f: Fired, state: str, where: Where) -> list[str]:
    lines = [f"== timer at {iso(f.at)}: {f.rule} ({where(f.rule)}), key {key_text(f.key)}"]
    lines.extend(fired_lines(f))
    if state:
        lines.append(f"       now {state}")
    return lines


def fired_lines(f: Fired) -> list[str]:
    head = f"       hook {f.hook}"
    if f.made is not None:
        head += f": made {_event_text(f.made)}"
    if not f.actions:
        head += f" (the rule has no on_{f.hook})"
    return [
        head,
        *_topology_lines(f.extra),
        *(f"         emit {_event_text(ev)}" for ev in f.events),
        *(f"         {_response_text(r)}" for r in f.responses),
    ]


def _topology_lines(extra: dict[str, Any]) -> list[str]:
    """What a topology hook did to other rules' incidents, and why a CI became a root."""
    root = extra.get("root_cause")
    if "held" in extra:
        return [
            f"         holds incident open {extra['held']!r}: an update of {root}'s until {root} has"
            " settled (then opened if not cleared)"
        ]
    if "adopted" in extra:
        return [f"         takes incident {extra['adopted']!r}: resolved into {root}'s (the root came late)"]
    if "promoted_from" in extra:
        return [
            f"         still down after {extra['promoted_from']} came back and settled: a root cause of its own"
        ]
    return []


def reached_dict(rec: Reached, where: Where) -> dict[str, Any]:
    return {
        "rule": rec.rule,
        "where": where(rec.rule),
        "key": list(rec.key),
        "event": rec.event.id,
        "depth": rec.depth,
        "before": rec.before,
        "after": rec.after,
        "hooks": [fired_dict(f) for f in rec.fired],
        "responses": [response_dict(r) for r in rec.responses],
        "changes": change_dicts(rec.changes),
        "suppressed": rec.suppressed,
        "error": rec.error,
    }


def fired_dict(f: Fired) -> dict[str, Any]:
    return {
        "hook": f.hook,
        "at": iso(f.at),
        "from_timer": f.from_timer,
        "details": f.extra,
        "made": f.made.to_api() if f.made is not None else None,
        "events": [ev.to_api() for ev in f.events],
        "responses": [response_dict(r) for r in f.responses],
    }


def flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted field paths (attributes.site), so a change names the field."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):  # an empty one adds no field: {} -> {site: x} is one new field
            out.update(flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def field_changes(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    return [
        (k, before.get(k, ABSENT), after.get(k, ABSENT))
        for k in sorted(set(before) | set(after))
        if before.get(k, ABSENT) != after.get(k, ABSENT)
    ]


def show(v: Any) -> str:
    return "(absent)" if v is ABSENT else repr(v)


def change_dicts(changes: list[Change]) -> list[dict[str, Any]]:
    """Changes for JSON; a value that was (or became) absent is null."""
    return [
        {"field": n, "before": None if b is ABSENT else b, "after": None if a is ABSENT else a}
        for n, b, a in changes
    ]


def _state_change(kind: str, before: str, after: str) -> str:
    if before == after:
        return f"{after} (unchanged)"
    prefix = f"{kind}: "
    if before.startswith(prefix) and after.startswith(prefix):
        after = after[len(prefix) :]
    return f"{before} -> {after}"


def _event_text(ev: Event) -> str:
    on = ev.host + (f"/{ev.resource}" if ev.resource else "")
    return f"{ev.type} ({ev.severity.value}) on {on}: {ev.message!r}"


def _response_text(r: Response) -> str:
    if isinstance(r, IncidentRequest):
        return f"incident {r.action} {r.key!r}" + (f": {r.title!r}" if r.title else "")
    return f"notify {r.target}"
