"""The static host inventory: host -> site, service, owner, criticality (and addresses, extra columns).

Configuration data (YAML or CSV, `inventory_file` in correlator.yaml) loaded once per rules reload;
rules enrich events from it, and collectors/correlation may look hosts up by name or address.
"""

from __future__ import annotations

import csv
import io
import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from correlator import yamlfile
from correlator.errors import CorrelatorError, did_you_mean
from correlator.yamlfile import Position, YamlMap

STANDARD_FIELDS = ("site", "service", "owner", "criticality")
CRITICALITIES = ("critical", "high", "medium", "low")
_KNOWN = (*STANDARD_FIELDS, "addresses")


class InventoryError(CorrelatorError):
    def __init__(self, position: Position, message: str) -> None:
        super().__init__(f"{position}: {message}")
        self.position = position
        self.message = message


@dataclass(frozen=True, slots=True)
class Asset:
    """One configuration item of the inventory. Empty strings mean 'not recorded'."""

    host: str
    site: str = ""
    service: str = ""
    owner: str = ""
    criticality: str = ""
    addresses: tuple[str, ...] = ()
    extra: Mapping[str, str] = field(default_factory=dict)
    where: Position | None = field(default=None, compare=False)  # its `service` (else its entry) in the file

    def fields(self) -> dict[str, str]:
        """The recorded standard fields and extra columns, by name (what enrichment copies)."""
        out = {k: v for k in STANDARD_FIELDS if (v := getattr(self, k))}
        out.update(self.extra)
        return out


class Inventory:
    """Immutable lookups by host name and by address; build with `load_inventory` or `Inventory(assets)`."""

    def __init__(self, assets: list[Asset] | None = None, source: str = "") -> None:
        self.source = source
        self._by_host = {a.host: a for a in assets or []}
        self._by_address: dict[str, Asset] = {}
        for a in assets or []:
            for addr in a.addresses:
                self._by_address[addr] = a

    def get(self, host: str) -> Asset | None:
        return self._by_host.get(host)

    def by_address(self, address: str) -> Asset | None:
        return self._by_address.get(address)

    def __len__(self) -> int:
        return len(self._by_host)

    def __iter__(self) -> Iterator[Asset]:
        return iter(self._by_host.values())


def load_inventory(path: Path | None) -> Inventory:
    """Read a .yaml/.yml or .csv inventory; None gives an empty one. Raises InventoryError with positions."""
    if path is None:
        return Inventory()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InventoryError(Position(str(path), 1, 1), f"cannot read the inventory: {e.strerror}") from None
    if path.suffix.lower() == ".csv":
        return Inventory(_from_csv(text, str(path)), str(path))
    try:
        doc = yamlfile.loads(text, str(path))
    except yamlfile.YamlError as e:
        raise InventoryError(e.position, e.message) from None
    return Inventory(_from_yaml(doc, str(path)), str(path))


def _from_yaml(doc: Any, file: str) -> list[Asset]:
    top = Position(file, 1, 1)
    if doc is None:
        return []
    if not isinstance(doc, YamlMap) or set(doc) != {"hosts"}:
        raise InventoryError(top, "expected a mapping with one key 'hosts': {HOST: {site: ..., owner: ...}}")
    hosts = doc["hosts"]
    if hosts is None:
        return []
    if not isinstance(hosts, YamlMap):
        raise InventoryError(doc.where_value("hosts"), "'hosts' must map each host name to its fields")
    assets = []
    for host, entry in hosts.items():
        where = hosts.where_value(host)
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise InventoryError(where, f"host {host!r}: expected a mapping of fields, got {entry!r}")
        values: dict[str, Any] = {}
        for key, value in entry.items():
            kpos = entry.where(key) if isinstance(entry, YamlMap) else where
            if key == "addresses":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise InventoryError(kpos, "'addresses' must be a list of IP addresses")
                values[key] = value
            elif isinstance(value, str | int | float) and not isinstance(value, bool):
                values[key] = str(value)
            else:
                raise InventoryError(kpos, f"{key!r} must be text, got {value!r}")
        service_at = where
        if isinstance(entry, YamlMap) and "service" in entry:
            service_at = entry.where_value("service")
        assets.append(_asset(host, values, where, service_at))
    return assets


def _from_csv(text: str, file: str) -> list[Asset]:
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if "host" not in header:
        raise InventoryError(
            Position(file, 1, 1), f"the first row must name the columns, including 'host'; got {header}"
        )
    assets = []
    for row in reader:
        where = Position(file, reader.line_num, 1)
        host = (row.get("host") or "").strip()
        if not host:
            raise InventoryError(where, "empty 'host' column")
        values: dict[str, Any] = {k: (v or "").strip() for k, v in row.items() if k and k != "host"}
        if "addresses" in values:
            values["addresses"] = [a for a in values["addresses"].replace(";", " ").split() if a]
        assets.append(_asset(host, values, where, where))
    return assets


def _asset(host: str, values: dict[str, Any], where: Position, service_at: Position) -> Asset:
    crit = values.get("criticality", "")
    if crit and crit not in CRITICALITIES:
        hint = did_you_mean(crit, CRITICALITIES)
        hint_text = f" (did you mean {hint!r}?)" if hint else ""
        raise InventoryError(
            where,
            f"host {host!r}: criticality must be one of {', '.join(CRITICALITIES)}, got {crit!r}{hint_text}",
        )
    addresses = tuple(values.get("addresses", ()))
    for addr in addresses:
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            raise InventoryError(where, f"host {host!r}: {addr!r} is not an IP address") from None
    extra = {k: v for k, v in values.items() if k not in _KNOWN and v != ""}
    return Asset(
        host,
        values.get("site", ""),
        values.get("service", ""),
        values.get("owner", ""),
        crit,
        addresses,
        extra,
        service_at,
    )
