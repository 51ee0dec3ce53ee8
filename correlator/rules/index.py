"""The level-1 rule index: which filter rules an event can meet, in set order, decided per class of event.

An event's class is what the rules' pins (correlator/rules/pins.py) can tell apart: for each of type,
source and host, the set of rules whose condition on that field holds for the event's value
(worked out once per distinct value and remembered), which of the attribute names some rule
needs are present, and for each attribute path some rule pins to text values, the set of rules
whose values hold it (remembered per value too). The candidate list of each class is merged once
and cached, so the common path is a few dictionary hits and one set intersection per event,
whatever the number of rules.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, cast

from correlator.event import Event
from correlator.rules.fields import compile_field
from correlator.rules.matchers import compile_matcher
from correlator.rules.pins import PIN_FIELDS, ValuePin, beyond_values
from correlator.rules.tables import file_under, intern, remember

if TYPE_CHECKING:
    from correlator.rules.filter import FilterRule

_CACHE_LIMIT = 200_000  # candidate lists kept (classes seen); cleared when full, never unbounded
_MEMO_LIMIT = 100_000  # remembered values per field (hosts are the many); cleared when full
_MEMO_NAMES = 32  # events with more attribute names work out the names present each time, not kept
_MEMO_VALUE_LEN = 256  # longer attribute values are classified each time, not kept (an event may be 128 KB)

Class = frozenset["FilterRule"]
# (type class, source class, host class, attribute names present, one class per value-pinned path)
Key = tuple[frozenset[Any], ...]
_NONE: Class = frozenset()
# (attribute name, name within it or None, getter or None, remembered values, path): a path of one
# or two names is read inline by the key function (the getter's work without its call); deeper
# paths through the getter.
_Lookup = tuple[str, str | None, Callable[[Event], Any] | None, dict[Any, Class], str]


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
        rules, self._decided = _value_pins(rules)
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
                    file_under(self._by[p.field], p.values, r)
        self._needs = _presence_pins(rules)
        self._needed = frozenset().union(*self._needs.values())
        # path -> the rules whose value pin on it the index decides, with that pin
        self._pinned: dict[str, list[tuple[FilterRule, ValuePin]]] = {}
        for r, vpins in self._decided.items():
            for vp in vpins:
                self._pinned.setdefault(vp.path, []).append((r, vp))
        self._paths = tuple(self._pinned)
        self._values: dict[str, dict[Any, Class]] = {p: {None: _NONE} for p in self._paths}
        self._lookup = {p: _lookup(p, self._values[p]) for p in self._paths}
        # class of type, source, host and presence -> the value-pinned paths its rules ask about
        self._relevant: dict[Key, tuple[_Lookup, ...]] = {}
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
        base = key[:4]
        paths = [lookup[-1] for lookup in self._lookups_for(base)]
        held = dict(zip(paths, key[4:], strict=True))
        decided = self._decided
        merged = [r for r in self._base_rules(base) if all(r in held[p.path] for p in decided.get(r, ()))]
        merged.sort(key=lambda r: r.info.order)
        return remember(self.cached, key, tuple(merged), _CACHE_LIMIT)

    def _make_key(self) -> Callable[[Event], Key]:
        tm, sm, hm = self._memo["type"], self._memo["source"], self._memo["host"]
        classify = self._classify
        needed = self._needed
        paths = bool(self._paths)
        # a value pin needs its attribute present: an event without any of these names has no
        # value to look up
        pinned_names = frozenset(vp.name for vpins in self._decided.values() for vp in vpins)
        relevant = self._relevant
        lookups_for = self._lookups_for
        classify_value = self._classify_value
        presence: dict[tuple[str, ...], frozenset[str]] = {}
        classes_of_names: dict[frozenset[str], frozenset[str]] = {}

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
            # The names present, remembered per tuple of the event's attribute names (one collector
            # writes them in one order): the class tuple then holds one shared set, hashed once and
            # compared by identity in the cache lookups, instead of a new set built, hashed and
            # compared element by element per event.
            attrs = ev.attributes
            if len(attrs) <= _MEMO_NAMES:
                names = tuple(attrs)
                present = presence.get(names)
                if present is None:
                    present = intern(classes_of_names, needed.intersection(names), _MEMO_LIMIT)
                    remember(presence, names, present, _MEMO_LIMIT)
            else:
                present = needed.intersection(attrs)
            base = (t, s, h, present)
            if not paths or present.isdisjoint(pinned_names):
                return base
            # only the paths some rule of this class pins: an event no such rule can meet
            # costs one more lookup, not one per path
            lookups = relevant.get(base)
            if lookups is None:
                lookups = lookups_for(base)
            if not lookups:
                return base
            out = list(base)
            for name, inner, get, memo, path in lookups:
                if get is None:
                    v = attrs.get(name)
                    if inner is not None:
                        v = v.get(inner) if isinstance(v, dict) else None
                else:
                    v = get(ev)
                # text (and a missing attribute) is remembered; a number or a mapping is not
                c = memo.get(v) if v.__class__ is str or v is None else None
                out.append(c if c is not None else classify_value(path, v, ev))
            return tuple(out)

        return key

    def _classify(self, field: str, value: str) -> Class:
        """The rules whose pin on `field` holds for `value` (remembered)."""
        probe = cast(Event, _Probe(field, value))
        tests = self._tests
        held = {r for r in self._by[field].get(value, ()) if (t := tests[r][field]) is None or t(probe)}
        held.update(r for r in self._tested[field] if cast(Any, tests[r][field])(probe))
        return remember(
            self._memo[field], value, intern(self._classes, frozenset(held), _MEMO_LIMIT), _MEMO_LIMIT
        )

    def _base_rules(self, base: Key) -> list[FilterRule]:
        """The rules whose type, source and host pins and needed attributes a class satisfies."""
        t, s, h, present = base
        held = {"type": t, "source": s, "host": h}
        needs = self._needs
        return [
            r
            for r in {*self._unpinned, *t, *s, *h}
            if needs[r] <= present and all(r in held[p.field] for p in r.pins)
        ]

    def _lookups_for(self, base: Key) -> tuple[_Lookup, ...]:
        """The value-pinned paths the rules of a class ask about, in a fixed order (remembered)."""
        found = self._relevant.get(base)
        if found is not None:
            return found
        decided = self._decided
        paths = {p.path for r in self._base_rules(base) for p in decided.get(r, ())}
        found = tuple(self._lookup[p] for p in self._paths if p in paths)
        return remember(self._relevant, base, found, _CACHE_LIMIT)

    def _classify_value(self, path: str, value: Any, ev: Event) -> Class:
        """The rules whose value pin on `path` holds for `value` (remembered when it is short text)."""
        pinned = self._pinned[path]
        if isinstance(value, str):
            found = frozenset(r for r, vp in pinned if value in vp.values)
        else:  # 2 against `in: ['2']`, as the condition itself compares it
            found = frozenset(r for r, vp in pinned if vp.test(ev))
        found = intern(self._classes, found, _MEMO_LIMIT)
        if isinstance(value, str) and len(value) <= _MEMO_VALUE_LEN:
            memo = self._values[path]
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
                memo[None] = _NONE
            memo[value] = found
        return found


def _lookup(path: str, memo: dict[Any, Class]) -> _Lookup:
    """How the key function reads a value-pinned path (`attributes.NAME...`), as compile_field's
    getter does."""
    names = path.split(".")[1:]
    if len(names) <= 2:
        return names[0], names[1] if len(names) == 2 else None, None, memo, path
    return names[0], None, compile_field(path), memo, path


def _value_pins(rules: list[FilterRule]) -> tuple[list[FilterRule], dict[FilterRule, tuple[ValuePin, ...]]]:
    """The rules as the index runs them, and the value pins it decides for each.

    A value pin is decided when no earlier rule may write its attribute (the index sees the event
    as it enters level 1). Such a rule is run as a copy whose `check` leaves those conditions out:
    the compiled rule itself may be shared with another rule set (a reload reuses unchanged files)
    where other rules come before it, so it is never changed.
    """
    decided: dict[FilterRule, tuple[ValuePin, ...]] = {}
    views: dict[FilterRule, FilterRule] = {}
    written: set[str] = set()
    for r in sorted(rules, key=lambda r: r.info.order):
        vpins = tuple(p for p in r.values if p.name not in written)
        written |= r.writes
        if not vpins:
            continue
        if len(vpins) == len(r.values):
            check = r.check_beyond_values
        else:
            left = beyond_values(r.spec, frozenset(p.path for p in vpins))
            check = compile_matcher(left, r.spec_at) if left is not None else None
        view = replace(r, check=check)
        views[r] = view
        decided[view] = vpins
    return [views.get(r, r) for r in rules], decided


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
