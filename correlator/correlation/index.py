"""The level-2 rule index: which rules an event can meet, found by its type and host, not by a scan.

Built by the correlate stage (stage.py) whenever its rules change. A rule whose every matcher pins
`type` to exact values is filed under those types; else, when every matcher pins `host`, under those
hosts; a rule that pins neither (patterns, attributes only) is on the scan list every event meets.
"""

from __future__ import annotations

from collections.abc import Sequence

from correlator.correlation.core import Engine

# Merged candidate tuples are kept per (type, host) pair seen; the pairs are limited to the values
# rules name, so this only guards against a rule set naming thousands of types *and* of hosts.
_CACHE_LIMIT = 200_000


class EngineIndex:
    """Candidates for an event: the scan list plus the rules filed under its type or host, in rule
    order. The set of rules a lookup returns never depends on the traffic; only which tuples are
    cached does, and the cache holds only values some rule names."""

    __slots__ = ("_by_host", "_by_type", "_by_type_merged", "_cache", "_position", "_scan", "size")

    def __init__(self, engines: Sequence[Engine]) -> None:
        self._position = {id(e): i for i, e in enumerate(engines)}
        by_type: dict[str, list[Engine]] = {}
        by_host: dict[str, list[Engine]] = {}
        scan: list[Engine] = []
        for e in engines:
            if e.types is not None:
                for t in e.types:
                    by_type.setdefault(t, []).append(e)
            elif e.hosts is not None:
                for h in e.hosts:
                    by_host.setdefault(h, []).append(e)
            else:
                scan.append(e)
        self._by_type = by_type
        self._by_host = by_host
        self._scan = tuple(scan)
        self._cache: dict[tuple[str | None, str | None], tuple[Engine, ...]] = {}
        # Merged lazily, per type a rule names: at most one entry per indexed type.
        self._by_type_merged: dict[str, tuple[Engine, ...]] = {}
        self.size = len(engines)

    def rules_for(self, type_: str, host: str) -> tuple[Engine, ...]:
        """The rules that can match an event of this type on this host, in rule order."""
        if not self._by_host:  # the usual set: one dict lookup per event
            found = self._by_type_merged.get(type_)
            if found is None:
                if type_ not in self._by_type:
                    return self._scan
                found = self._by_type_merged[type_] = self._merge(type_, None)
            return found
        key = (type_ if type_ in self._by_type else None, host if host in self._by_host else None)
        if key == (None, None):
            return self._scan
        found = self._cache.get(key)
        if found is None:
            found = self._merge(key[0], key[1])
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = found
        return found

    @property
    def scanned(self) -> int:
        """How many rules every event meets (they pin neither type nor host)."""
        return len(self._scan)

    def _merge(self, type_: str | None, host: str | None) -> tuple[Engine, ...]:
        if not self._scan:  # one list alone was filled in rule order when the index was built
            if host is None and type_ is not None:
                return tuple(self._by_type[type_])
            if type_ is None and host is not None:
                return tuple(self._by_host[host])
        merged = list(self._scan)
        if type_ is not None:
            merged.extend(self._by_type[type_])
        if host is not None:
            merged.extend(self._by_host[host])
        position = self._position
        merged.sort(key=lambda e: position[id(e)])
        return tuple(merged)
