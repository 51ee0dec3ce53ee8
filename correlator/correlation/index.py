"""The level-2 rule index: which rules an event can meet, found by its type and host, not by a scan.

Built by the correlate stage (stage.py) whenever its rules change. A rule whose every matcher pins
`type` to exact values is filed under those types; else, when every matcher pins `host`, under those
hosts; else, when every matcher pins `source` (or `type`) by a glob (`webhook:*`), under that
pattern, tested once per distinct source (or type); a rule that pins nothing (regular expressions,
attributes only) is on the scan list every event meets.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from correlator.correlation.core import Engine
from correlator.rules.tables import file_under, remember

# Merged candidate tuples are kept per (type, host, source) seen; the values are limited to those
# rules name (sources: those a pattern is tested on), so this only guards against a rule set naming
# thousands of types *and* of hosts.
_CACHE_LIMIT = 200_000
_SOURCES_KEPT = 256  # per-source tables (sources are the collectors: a handful)

Rules = tuple[Engine, ...]
Table = tuple[dict[str, Rules], Rules]
"""Rules of the events of one source: by type, and for every type not in the dictionary."""


class EngineIndex:
    """Candidates for an event: the scan list plus the rules filed under its type or host, or whose
    pattern its source or type meets, in rule order. The set of rules a lookup returns never depends
    on the traffic; only which tuples are cached does, and the cache holds only values some rule
    names (and the sources patterns were tested on)."""

    __slots__ = (
        "_by_host",
        "_by_type",
        "_cache",
        "_position",
        "_shared",
        "_source_patterns",
        "_tables",
        "_type_patterns",
        "_typed",
        "scan",
        "size",
    )

    def __init__(self, engines: Sequence[Engine]) -> None:
        self._position = {id(e): i for i, e in enumerate(engines)}
        by_type: dict[str, list[Engine]] = {}
        by_host: dict[str, list[Engine]] = {}
        scan: list[Engine] = []
        source_patterns: list[Engine] = []
        type_patterns: list[Engine] = []
        for e in engines:
            if e.types is not None:
                file_under(by_type, e.types, e)
            elif e.hosts is not None:
                file_under(by_host, e.hosts, e)
            elif e.pattern is not None:
                (source_patterns if e.pattern[0] == "source" else type_patterns).append(e)
            else:
                scan.append(e)
        self._by_type = by_type
        self._by_host = by_host
        self._source_patterns = tuple(source_patterns)
        self._type_patterns = tuple(type_patterns)
        self.scan = tuple(scan)
        self._cache: dict[tuple[str | None, str | None, str | None], Rules] = {}
        # Each indexed type's own rules, shared by the per-source tables.
        self._typed = {t: tuple(rules) for t, rules in by_type.items()}
        self._tables: dict[str, Table] | None = {} if not by_host and not type_patterns else None
        self._shared: dict[Rules, Table] = {}
        self.size = len(engines)

    def tables(self) -> dict[str, Table] | None:
        """The per-source tables made so far (see `table`), or None when rules are filed under hosts
        or type patterns: then ask `rules_for`. The correlate stage reads it directly."""
        return self._tables

    def table(self, source: str) -> Table:
        """The rules of the events of `source`: by type, and for any other type (only when `tables()`
        is not None). Made on the source's first event: the scan list and the source patterns it
        meets, merged into each indexed type's rules."""
        tables = self._tables
        assert tables is not None
        extra = tuple(e for e in self._source_patterns if e.pattern is not None and e.pattern[1](source))
        found = self._shared.get(extra)  # sources meeting the same patterns share one table
        if found is None:
            common = self._sorted([*self.scan, *extra])
            if common:
                by_type = {t: self._sorted([*common, *rules]) for t, rules in self._typed.items()}
            else:
                by_type = self._typed
            found = remember(self._shared, extra, (by_type, common), _SOURCES_KEPT)
        # Past the bound only the source -> table map is forgotten: the tables themselves, one per
        # set of patterns met (merging every indexed type's rules: a dictionary of 20,000 entries
        # with 20,000 types), stay shared, so a new source after the bound costs two lookups.
        return remember(tables, source, found, _SOURCES_KEPT)

    def rules_for(self, type_: str, host: str, source: str = "") -> Rules:
        """The rules that can match an event of this type on this host from this source, in order."""
        tables = self._tables
        if tables is not None:
            by_type, other = tables.get(source) or self.table(source)
            return by_type.get(type_, other)
        key = (
            type_ if self._type_patterns or type_ in self._by_type else None,
            host if host in self._by_host else None,
            source if self._source_patterns else None,
        )
        found = self._cache.get(key)
        if found is None:
            found = remember(self._cache, key, self._merge(*key), _CACHE_LIMIT)
        return found

    @property
    def scanned(self) -> int:
        """How many rules every event meets (they pin neither type nor host nor a pattern)."""
        return len(self.scan)

    def _merge(self, type_: str | None, host: str | None, source: str | None) -> Rules:
        merged = list(self.scan)
        if type_ is not None:
            merged.extend(self._by_type.get(type_, ()))
            merged.extend(e for e in self._type_patterns if e.pattern is not None and e.pattern[1](type_))
        if host is not None:
            merged.extend(self._by_host.get(host, ()))
        if source is not None:
            merged.extend(e for e in self._source_patterns if e.pattern is not None and e.pattern[1](source))
        return self._sorted(merged)

    def _sorted(self, engines: Iterable[Engine]) -> Rules:
        position = self._position
        return tuple(sorted(engines, key=lambda e: position[id(e)]))
