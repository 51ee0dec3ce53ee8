"""The level-1 rule index: which filter rules an event can meet, in set order, decided per class of event.

An event's class is what the rules' pins (correlator/rules/pins.py) can tell apart: for each of type,
source and host, the set of rules whose condition on that field holds for the event's value
(worked out once per distinct value and remembered), and which of the attribute names some rule
needs are present. The candidate list of each class is merged once and cached, so the common path
is three dictionary hits and one set intersection per event, whatever the number of rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from correlator.event import Event
from correlator.rules.pins import PIN_FIELDS

if TYPE_CHECKING:
    from correlator.rules.filter import FilterRule

_CACHE_LIMIT = 200_000  # candidate lists kept (classes seen); cleared when full, never unbounded
_MEMO_LIMIT = 100_000  # remembered values per field (hosts are the many); cleared when full

Class = frozenset["FilterRule"]
Key = tuple[Class, Class, Class, frozenset[str]]


class _Probe:
    """Stands in for an event when a pin's condition is asked about one value of its field."""

    __slots__ = PIN_FIELDS

    def __init__(self, field: str, value: str) -> None:
        for f in PIN_FIELDS:
            setattr(self, f, value if f == field else "")


class FilterIndex:
    def __init__(self, rules: list[FilterRule]) -> None:
        """`rules` in set order."""
        self.size = len(rules)
        self._unpinned: list[FilterRule] = [r for r in rules if not r.pins]
        # field -> value -> rules whose pin lists that value; field -> rules whose pin lists none
        self._by: dict[str, dict[str, list[FilterRule]]] = {f: {} for f in PIN_FIELDS}
        self._tested: dict[str, list[FilterRule]] = {f: [] for f in PIN_FIELDS}
        self._tests: dict[FilterRule, dict[str, Any]] = {}
        for r in rules:
            self._tests[r] = {p.field: p.test for p in r.pins}
            for p in r.pins:
                if p.values is None:
                    self._tested[p.field].append(r)
                else:
                    for v in p.values:
                        self._by[p.field].setdefault(v, []).append(r)
        self._needs = _presence_pins(rules)
        self._needed = frozenset().union(*self._needs.values())
        self._classes: dict[Class, Class] = {}  # interned: equal classes are one object
        self._memo: dict[str, dict[str, Class]] = {f: {} for f in PIN_FIELDS}
        self.cached: dict[Key, tuple[FilterRule, ...]] = {}
        self.key: Callable[[Event], Key] = self._make_key()

    def candidates(self, ev: Event) -> tuple[FilterRule, ...]:
        key = self.key(ev)
        found = self.cached.get(key)
        if found is None:
            found = self.merge(key)
        return found

    def merge(self, key: Key) -> tuple[FilterRule, ...]:
        """The candidates of a class (a cache miss of `candidates`), cached."""
        t, s, h, present = key
        held = {"type": t, "source": s, "host": h}
        needs = self._needs
        merged = [
            r
            for r in {*self._unpinned, *t, *s, *h}
            if needs[r] <= present and all(r in held[p.field] for p in r.pins)
        ]
        merged.sort(key=lambda r: r.info.order)
        found = tuple(merged)
        if len(self.cached) >= _CACHE_LIMIT:
            self.cached.clear()
        self.cached[key] = found
        return found

    def _make_key(self) -> Callable[[Event], Key]:
        tm, sm, hm = self._memo["type"], self._memo["source"], self._memo["host"]
        classify = self._classify
        needed = self._needed

        def key(ev: Event) -> Key:
            t = tm.get(ev.type)
            if t is None:
                t = classify("type", ev.type)
            s = sm.get(ev.source)
            if s is None:
                s = classify("source", ev.source)
            h = hm.get(ev.host)
            if h is None:
                h = classify("host", ev.host)
            return (t, s, h, needed.intersection(ev.attributes))

        return key

    def _classify(self, field: str, value: str) -> Class:
        """The rules whose pin on `field` holds for `value` (remembered)."""
        probe = cast(Event, _Probe(field, value))
        tests = self._tests
        held = {r for r in self._by[field].get(value, ()) if (t := tests[r][field]) is None or t(probe)}
        held.update(r for r in self._tested[field] if cast(Any, tests[r][field])(probe))
        found = frozenset(held)
        if len(self._classes) >= _MEMO_LIMIT:
            self._classes.clear()
        found = self._classes.setdefault(found, found)
        memo = self._memo[field]
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[value] = found
        return found


def _presence_pins(rules: list[FilterRule]) -> dict[FilterRule, frozenset[str]]:
    """The attribute names each rule needs present that the index may decide when the event enters
    level 1: those no earlier rule may write (a rule after the inventory enrichment cannot count on
    `site` being absent at the start)."""
    out: dict[FilterRule, frozenset[str]] = {}
    written: set[str] = set()
    for r in sorted(rules, key=lambda r: r.info.order):
        out[r] = r.needs - written
        written |= r.writes
    return out
