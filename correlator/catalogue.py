"""The service catalogue: which CIs make up which business service, the one source of truth for it.

It is the availability services file (`availability.services_file`, docs/metrics.md), loaded at
start-up into one CatalogueHolder shared by availability (service state) and topology root cause
(`impacted_services`); a reload (availability/reload.py) swaps `holder.current`. The other files that
name a CI's services (topology `services:`, the inventory's `service` column) are checked against it
at each load: `disagreements` turns what they claim into warnings with their file:line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from correlator.availability.model import ServiceModel, load_services
from correlator.availability.settings import parse_settings
from correlator.errors import did_you_mean
from correlator.yamlfile import Position

if TYPE_CHECKING:
    from correlator.config import Config


@dataclass(frozen=True)
class Catalogue:
    model: ServiceModel
    file: str  # the services file, named in warnings
    by_ci: Mapping[str, tuple[str, ...]]  # CI -> the services it is a member of, sorted
    members: Mapping[str, frozenset[str]]  # service -> its member CIs, at any depth of all_of/any_of

    @classmethod
    def of(cls, model: ServiceModel, file: str) -> Catalogue:
        members = {name: frozenset(ci for ci, _ in s.root.elements()) for name, s in model.services.items()}
        by_ci: dict[str, list[str]] = {}
        for name, cis in members.items():
            for ci in cis:
                by_ci.setdefault(ci, []).append(name)
        return cls(model, file, {ci: tuple(sorted(names)) for ci, names in by_ci.items()}, members)

    def services_of(self, ci: str) -> tuple[str, ...]:
        """The services that have `ci` as a member (itself or a resource of it), sorted."""
        return self.by_ci.get(ci, ())

    def cis_of(self, service: str) -> frozenset[str]:
        """The member CIs of `service`; empty for a service the catalogue does not define."""
        return self.members.get(service, frozenset())

    def __contains__(self, service: object) -> bool:
        return service in self.members


@dataclass
class CatalogueHolder:
    """The catalogue serving now: readers take `current` when they use it, so a reload that swaps it
    reaches availability and topology impact at once."""

    current: Catalogue


def load_catalogue(config: Config) -> CatalogueHolder | None:
    """The catalogue of `availability.services_file`; None when none is configured. Raises ConfigError."""
    path = parse_settings(config.availability).services_file
    return None if path is None else CatalogueHolder(catalogue_file(path))


def catalogue_file(path: Path) -> Catalogue:
    return Catalogue.of(load_services(path), str(path))


@dataclass(frozen=True, slots=True)
class Claim:
    """Another file saying that `ci` belongs to `service`, at `where`."""

    ci: str
    service: str
    where: Position | str


def disagreements(catalogue: Catalogue, claims: Iterable[Claim], says: str, outcome: str) -> list[str]:
    """One warning per (CI, service) claimed that the catalogue does not back: an unknown service,
    or a service that does not have the CI as a member. `says` words the claim ("CI {ci!r} lists
    service {service!r}"); `outcome` tells what the daemon does about it."""
    out: list[str] = []
    seen: set[tuple[str, str]] = set()
    for c in claims:
        if (c.ci, c.service) in seen or c.ci in catalogue.members.get(c.service, ()):
            continue
        seen.add((c.ci, c.service))
        claim = says.format(ci=c.ci, service=c.service)
        if c.service not in catalogue:
            hint = did_you_mean(c.service, catalogue.members)
            extra = f" (did you mean {hint!r}?)" if hint else ""
            out.append(f"{c.where}: {claim}, a service {catalogue.file} does not define{extra}; {outcome}")
            continue
        defined = catalogue.model.services[c.service].where
        at = f" ({defined})" if defined is not None else ""
        listed = ", ".join(catalogue.services_of(c.ci)) or "no service"
        out.append(
            f"{c.where}: {claim}, but {c.service!r} in {catalogue.file}{at} does not have {c.ci!r}"
            f" as a member ({c.ci!r} is in: {listed}); {outcome}"
        )
    return out
