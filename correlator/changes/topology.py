"""Which CIs depend on which: the one place Change management asks, for dependents and upstream.

The map joins the correlation topology file (`changes.topology`: `parents` and `depends_on` make a
CI upstream of another, docs/correlation.md) and the calendar file's `dependencies:` section
(CI -> CIs depending on it). Nothing else in correlator/changes reads dependencies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from correlator.errors import ConfigError


class DependencyMap:
    def __init__(self, dependents: Mapping[str, Iterable[str]] | None = None) -> None:
        self._down: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in (dependents or {}).items()}
        up: dict[str, set[str]] = {}
        for ci, deps in self._down.items():
            for d in deps:
                up.setdefault(d, set()).add(ci)
        self._up = {k: frozenset(v) for k, v in up.items()}

    @classmethod
    def from_edges(cls, depends_on: Iterable[tuple[str, str]]) -> DependencyMap:
        """(child, parent) pairs: `child` depends on `parent` (topology file: parents/depends_on)."""
        down: dict[str, set[str]] = {}
        for child, parent in depends_on:
            down.setdefault(parent, set()).add(child)
        return cls(down)

    def merged(self, other: DependencyMap) -> DependencyMap:
        down = {k: set(v) for k, v in self._down.items()}
        for k, v in other._down.items():
            down.setdefault(k, set()).update(v)
        return DependencyMap(down)

    def dependents_of(self, ci: str) -> frozenset[str]:
        """Every CI that depends on `ci`, directly or through others (not `ci` itself)."""
        return _walk(self._down, ci)

    def upstream_of(self, ci: str) -> frozenset[str]:
        """Every CI that `ci` depends on, directly or through others."""
        return _walk(self._up, ci)


def load_dependencies(calendar: DependencyMap, topology_file: Path | None) -> DependencyMap:
    """The calendar's map, joined with the topology file's edges when one is configured."""
    if topology_file is None:
        return calendar
    from correlator.correlation.topology_file import TopologyError, load_topology

    try:
        topo = load_topology(topology_file)
    except TopologyError as e:
        raise ConfigError(f"'changes.topology': {e}") from None
    edges = [(child, parent) for child, parents in topo.upstream.items() for parent in parents]
    return calendar.merged(DependencyMap.from_edges(edges))


def _walk(graph: Mapping[str, frozenset[str]], start: str) -> frozenset[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen and nxt != start:
                seen.add(nxt)
                todo.append(nxt)
    return frozenset(seen)
