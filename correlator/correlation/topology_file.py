"""The topology file: configuration items (CIs), what each sits behind, and the services on them.

Read by the topology/root-cause rule (topology.py). Format (YAML, positions kept for errors):

    cis:
      core-1: {}
      dist-1: {parents: [core-1]}
      srv-1: {depends_on: [dist-1], services: [billing, web]}

`parents` (physical path) and `depends_on` (logical dependency) both make a CI upstream of this one.
A parent may be a link naming the port on each side, `{ci: core-1, port: Gi0/48, parent_port: Te1/1}`
(`port` on this CI, `parent_port` on the parent): an event about either port is then known to face
the CI at the other end (`Topology.ports`), so it is a symptom when that CI is down.
With a service catalogue (correlator/catalogue.py, `availability.services_file`) the services of a CI
come from the catalogue serving at the time of the event instead (a services reload reaches it
without a rules reload), and per-CI `services:` that it does not back become warnings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from correlator import yamlfile
from correlator.catalogue import Catalogue, CatalogueHolder, Claim, disagreements
from correlator.errors import CorrelatorError, did_you_mean


class TopologyError(CorrelatorError):
    pass


@dataclass(frozen=True)
class Topology:
    upstream: dict[str, tuple[str, ...]] = field(default_factory=dict)
    services: dict[str, tuple[str, ...]] = field(default_factory=dict)  # the file's own `services:`
    downstream: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # (CI, port) -> the CI at the other end of the named link on that port
    ports: dict[tuple[str, str], str] = field(default_factory=dict)
    _ancestors: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)
    # What loading found against the catalogue, "file:line:col: ..." (the rule loader logs them).
    warnings: tuple[str, ...] = field(default=(), repr=False, compare=False)
    catalogue: CatalogueHolder | None = field(default=None, repr=False, compare=False)

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
        by_ci = self.services if self.catalogue is None else self.catalogue.current.by_ci
        seen = {ci}
        stack = [ci]
        services: set[str] = set()
        while stack:
            c = stack.pop()
            services.update(by_ci.get(c, ()))
            for d in self.downstream.get(c, ()):
                if d not in seen:
                    seen.add(d)
                    stack.append(d)
        return sorted(services)


_CI_KEYS = ("parents", "depends_on", "services")


def load_topology(path: Path, catalogue: CatalogueHolder | None = None) -> Topology:
    try:
        doc = yamlfile.load(path)
    except FileNotFoundError:
        raise TopologyError(f"{path}: no such topology file") from None
    except yamlfile.YamlError as e:
        raise TopologyError(str(e)) from None
    return parse_topology(doc, str(path), catalogue)


def parse_topology(doc: Any, file: str, catalogue: CatalogueHolder | None = None) -> Topology:
    """Without a catalogue a CI's services are its own `services:`; with one, the catalogue's."""
    if not isinstance(doc, yamlfile.YamlMap) or "cis" not in doc:
        raise TopologyError(f"{file}:1:1: a topology file is a mapping with a 'cis' mapping")
    cis = doc["cis"]
    if not isinstance(cis, yamlfile.YamlMap):
        raise TopologyError(f"{doc.where('cis')}: 'cis' must map CI names to their parents/services")
    upstream: dict[str, tuple[str, ...]] = {}
    services: dict[str, tuple[str, ...]] = {}
    claims: list[Claim] = []
    ports: dict[tuple[str, str], str] = {}
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
        linked = _links(spec, cis, name, ports)
        listed = [*linked, *_names(spec, "depends_on", cis, name)]
        upstream[name] = tuple(dict.fromkeys(listed))
        services[name] = tuple(_names(spec, "services", cis, name))
        claims.extend(_claims(name, services[name], spec, cis))
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
    warnings: list[str] = []
    if catalogue is not None:
        warnings = _against(catalogue.current, claims)
    downstream_of = {k: tuple(v) for k, v in downstream.items()}
    topo = Topology(upstream, services, downstream_of, ports, warnings=tuple(warnings), catalogue=catalogue)
    for name in upstream:
        ancestors = topo._walk(name)
        if name in ancestors:
            raise TopologyError(f"{cis.where(name)}: CI {name!r} is upstream of itself (a cycle)")
        topo._ancestors[name] = ancestors
    return topo


def _against(catalogue: Catalogue, claims: list[Claim]) -> list[str]:
    if not claims:
        return []
    outcome = f"impacted_services follow {catalogue.file}"
    found = disagreements(catalogue, claims, "CI {ci!r} lists service {service!r}", outcome)
    listing = len({c.ci for c in claims})
    deprecated = (
        f"{claims[0].where}: per-CI 'services' in a topology file are deprecated while"
        f" availability.services_file is set: impacted_services come from {catalogue.file}"
        f" ({listing} CIs here list services; remove them)"
    )
    return [deprecated, *found]


def _claims(ci: str, names: tuple[str, ...], spec: dict[str, Any], cis: yamlfile.YamlMap) -> list[Claim]:
    raw = spec.get("services")
    if isinstance(raw, yamlfile.YamlList):
        return [Claim(ci, n, p) for n, p in zip(names, raw.item_positions, strict=True)]
    where = spec.where_value("services") if isinstance(spec, yamlfile.YamlMap) else cis.where(ci)
    return [Claim(ci, n, where) for n in names]


_LINK_KEYS = ("ci", "port", "parent_port")


def _links(
    spec: dict[str, Any], cis: yamlfile.YamlMap, ci: str, ports: dict[tuple[str, str], str]
) -> list[str]:
    """The parents of `ci`, each a name or a link `{ci, port, parent_port}` whose ports go into `ports`."""
    v = spec.get("parents", [])
    if isinstance(v, (str, dict)):
        v = [v]
    if not isinstance(v, list):
        raise TopologyError(f"{cis.where(ci)}: {ci}.parents must be a list of names or links")
    names: list[str] = []
    for item in v:
        if isinstance(item, str):
            names.append(item)
            continue
        where = item.where("ci") if isinstance(item, yamlfile.YamlMap) and "ci" in item else cis.where(ci)
        if not isinstance(item, dict) or not isinstance(item.get("ci"), str):
            raise TopologyError(
                f"{where}: {ci}.parents: a link is a mapping with 'ci' (and optional 'port', 'parent_port')"
            )
        for k in item:
            if k not in _LINK_KEYS:
                hint = did_you_mean(k, _LINK_KEYS)
                extra = f" (did you mean {hint!r}?)" if hint else ""
                raise TopologyError(
                    f"{where}: unknown link key {k!r}{extra}; expected {', '.join(_LINK_KEYS)}"
                )
        parent = item["ci"]
        names.append(parent)
        for own, key in ((ci, "port"), (parent, "parent_port")):
            port = item.get(key)
            if port is not None:
                if not isinstance(port, str) or not port:
                    raise TopologyError(f"{where}: {ci}.parents: {key} must be an interface name")
                ports[(own, port)] = parent if own == ci else ci
    return names


def _names(spec: dict[str, Any], key: str, cis: yamlfile.YamlMap, ci: str) -> list[str]:
    v = spec.get(key, [])
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise TopologyError(f"{cis.where(ci)}: {ci}.{key} must be a list of names")
    return list(v)
