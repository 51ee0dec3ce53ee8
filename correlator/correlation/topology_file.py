"""The topology file: configuration items (CIs), what each sits behind, and the services on them.

Read by the topology/root-cause rule (topology.py). Format (YAML, positions kept for errors):

    cis:
      core-1: {}
      dist-1: {parents: [core-1]}
      srv-1: {depends_on: [dist-1], services: [billing, web]}

`parents` (physical path) and `depends_on` (logical dependency) both make a CI upstream of this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from correlator import yamlfile
from correlator.errors import CorrelatorError, did_you_mean


class TopologyError(CorrelatorError):
    pass


@dataclass(frozen=True)
class Topology:
    upstream: dict[str, tuple[str, ...]] = field(default_factory=dict)
    services: dict[str, tuple[str, ...]] = field(default_factory=dict)
    downstream: dict[str, tuple[str, ...]] = field(default_factory=dict)
    _ancestors: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)

    def ancestors(self, ci: str) -> tuple[str, ...]:
        """Every CI upstream of `ci`, nearest first (breadth first), each once (computed at load)."""
        found = self._ancestors.get(ci)
        return found if found is not None else self._walk(ci)

    def _walk(self, ci: str) -> tuple[str, ...]:
        seen: set[str] = set()
        out: list[str] = []
        frontier = list(self.upstream.get(ci, ()))
        while frontier:
            nxt: list[str] = []
            for c in frontier:
                if c not in seen:
                    seen.add(c)
                    out.append(c)
                    nxt.extend(self.upstream.get(c, ()))
            frontier = nxt
        return tuple(out)

    def impacted_services(self, ci: str) -> list[str]:
        """Services on `ci` and on everything downstream of it, sorted."""
        seen = {ci}
        stack = [ci]
        services: set[str] = set()
        while stack:
            c = stack.pop()
            services.update(self.services.get(c, ()))
            for d in self.downstream.get(c, ()):
                if d not in seen:
                    seen.add(d)
                    stack.append(d)
        return sorted(services)


_CI_KEYS = ("parents", "depends_on", "services")


def load_topology(path: Path) -> Topology:
    try:
        doc = yamlfile.load(path)
    except FileNotFoundError:
        raise TopologyError(f"{path}: no such topology file") from None
    except yamlfile.YamlError as e:
        raise TopologyError(str(e)) from None
    return parse_topology(doc, str(path))


def parse_topology(doc: Any, file: str) -> Topology:
    if not isinstance(doc, yamlfile.YamlMap) or "cis" not in doc:
        raise TopologyError(f"{file}:1:1: a topology file is a mapping with a 'cis' mapping")
    cis = doc["cis"]
    if not isinstance(cis, yamlfile.YamlMap):
        raise TopologyError(f"{doc.where('cis')}: 'cis' must map CI names to their parents/services")
    upstream: dict[str, tuple[str, ...]] = {}
    services: dict[str, tuple[str, ...]] = {}
    for name, spec in cis.items():
        if spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise TopologyError(f"{cis.where(name)}: CI {name!r} must be a mapping (or {{}})")
        for k in spec:
            if k not in _CI_KEYS:
                hint = did_you_mean(k, _CI_KEYS)
                where = spec.where(k) if isinstance(spec, yamlfile.YamlMap) else cis.where(name)
                extra = f" (did you mean {hint!r}?)" if hint else ""
                raise TopologyError(f"{where}: unknown key {k!r}{extra}; expected {', '.join(_CI_KEYS)}")
        listed = [*_names(spec, "parents", cis, name), *_names(spec, "depends_on", cis, name)]
        upstream[name] = tuple(dict.fromkeys(listed))
        services[name] = tuple(_names(spec, "services", cis, name))
    for name, parents in upstream.items():
        for u in parents:
            if u not in upstream:
                hint = did_you_mean(u, upstream)
                extra = f" (did you mean {hint!r}?)" if hint else ""
                raise TopologyError(f"{cis.where(name)}: CI {name!r} refers to unknown CI {u!r}{extra}")
    downstream: dict[str, list[str]] = {}
    for name, parents in upstream.items():
        for u in parents:
            downstream.setdefault(u, []).append(name)
    topo = Topology(upstream, services, {k: tuple(v) for k, v in downstream.items()})
    for name in upstream:
        ancestors = topo._walk(name)
        if name in ancestors:
            raise TopologyError(f"{cis.where(name)}: CI {name!r} is upstream of itself (a cycle)")
        topo._ancestors[name] = ancestors
    return topo


def _names(spec: dict[str, Any], key: str, cis: yamlfile.YamlMap, ci: str) -> list[str]:
    v = spec.get(key, [])
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise TopologyError(f"{cis.where(ci)}: {ci}.{key} must be a list of names")
    return list(v)
