"""Services built on CIs with redundancy (`all_of` / `any_of`, nestable), read from the services file.

The availability stage asks `Service.is_down(down)` whenever a member's state changes; the file is
validated once at start with `file:line:col` errors (docs/metrics.md shows its format).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from correlator import yamlfile
from correlator.errors import ConfigError

Element = tuple[str, str]  # (ci, resource); resource "" means the CI itself
MAX_NAME_LEN = 128


@dataclass(frozen=True, slots=True)
class Group:
    mode: str  # "all_of": down when any member is down; "any_of": down only when every member is down
    members: tuple[Element | Group, ...]

    def elements(self) -> Iterator[Element]:
        for m in self.members:
            if isinstance(m, Group):
                yield from m.elements()
            else:
                yield m


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    target: float | None  # SLA availability target, None = availability.default_target
    root: Group
    where: yamlfile.Position | None = field(default=None, compare=False)  # its name in the file

    def is_down(self, element_down: Callable[[Element], bool]) -> bool:
        return _down(self.root, element_down)


def _down(node: Element | Group, element_down: Callable[[Element], bool]) -> bool:
    if not isinstance(node, Group):
        return element_down(node)
    if node.mode == "all_of":
        return any(_down(m, element_down) for m in node.members)
    return all(_down(m, element_down) for m in node.members)


@dataclass(frozen=True, slots=True)
class ServiceModel:
    services: dict[str, Service]
    cis: tuple[str, ...]  # every CI whose up state is exported (members of services and `cis:`)

    def elements(self) -> set[Element]:
        out = {(ci, "") for ci in self.cis}
        for s in self.services.values():
            out.update(s.root.elements())
        return out


def load_services(path: Path) -> ServiceModel:
    try:
        doc = yamlfile.load(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such services file ('availability.services_file')") from None
    except yamlfile.YamlError as e:
        raise ConfigError(str(e)) from None
    return parse_services(doc, str(path))


def parse_services(doc: Any, file: str = "<services>") -> ServiceModel:
    if doc is None:
        return ServiceModel({}, ())
    if not isinstance(doc, yamlfile.YamlMap):
        raise ConfigError(f"{file}:1:1: the services file must be a mapping with 'services' (and 'cis')")
    for key in doc:
        if key not in ("services", "cis"):
            raise ConfigError(f"{doc.where(key)}: unknown key '{key}' (expected 'services' or 'cis')")
    cis: list[str] = []
    raw_cis = doc.get("cis")
    if raw_cis is not None:
        if not isinstance(raw_cis, yamlfile.YamlList):
            raise ConfigError(f"{doc.where_value('cis')}: 'cis' must be a list of CI names")
        for i, ci in enumerate(raw_cis):
            cis.append(_name(ci, raw_cis.item_positions[i], "a CI name"))
    services: dict[str, Service] = {}
    raw = doc.get("services")
    if raw is None:
        raw = {}
    elif not isinstance(raw, yamlfile.YamlMap):
        raise ConfigError(f"{doc.where_value('services')}: 'services' must be a mapping of service names")
    for name, body in raw.items():
        where = raw.where(name) if isinstance(raw, yamlfile.YamlMap) else file
        _name(name, where, "a service name")
        if not isinstance(body, yamlfile.YamlMap):
            raise ConfigError(f"{where}: service '{name}' must be a mapping with 'all_of' or 'any_of'")
        target = body.get("target")
        if target is not None and (
            isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target <= 1
        ):
            raise ConfigError(
                f"{body.where_value('target')}: 'target' must be a ratio in (0, 1] such as 0.999, got {target!r}"
            )
        extra = set(body) - {"target", "description", "all_of", "any_of"}
        if extra:
            key = sorted(extra)[0]
            raise ConfigError(
                f"{body.where(key)}: unknown key '{key}' in service '{name}'"
                " (expected all_of, any_of, target, description)"
            )
        position = where if isinstance(where, yamlfile.Position) else None
        services[name] = Service(
            name, None if target is None else float(target), _group(body, name), position
        )
    seen = dict.fromkeys(cis)
    for s in services.values():
        seen.update(dict.fromkeys(ci for ci, _ in s.root.elements()))
    return ServiceModel(services, tuple(seen))


def _group(body: yamlfile.YamlMap, what: str) -> Group:
    modes = [m for m in ("all_of", "any_of") if m in body]
    if len(modes) != 1:
        raise ConfigError(f"{body.position}: '{what}' needs exactly one of 'all_of' or 'any_of'")
    mode = modes[0]
    items = body[mode]
    if not isinstance(items, yamlfile.YamlList) or not items:
        raise ConfigError(f"{body.where_value(mode)}: '{mode}' must be a non-empty list of members")
    members: list[Element | Group] = []
    for i, item in enumerate(items):
        pos = items.item_positions[i]
        if isinstance(item, str):
            members.append((_name(item, pos, "a CI name"), ""))
        elif isinstance(item, yamlfile.YamlMap) and ("all_of" in item or "any_of" in item):
            if set(item) - {"all_of", "any_of"}:
                raise ConfigError(f"{pos}: a nested group holds only 'all_of' or 'any_of'")
            members.append(_group(item, f"{what}/{mode}[{i}]"))
        elif isinstance(item, yamlfile.YamlMap) and "ci" in item:
            if set(item) - {"ci", "resource"}:
                key = sorted(set(item) - {"ci", "resource"})[0]
                raise ConfigError(
                    f"{item.where(key)}: unknown key '{key}' (a member has 'ci' and 'resource')"
                )
            ci = _name(item["ci"], item.where_value("ci"), "a CI name")
            res = item.get("resource", "")
            if res != "":
                res = _name(res, item.where_value("resource"), "a resource name")
            members.append((ci, res))
        else:
            raise ConfigError(
                f"{pos}: a member is a CI name, {{ci: NAME, resource: NAME}} or a nested all_of/any_of group"
            )
    return Group(mode, tuple(members))


def _name(value: Any, where: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_LEN:
        raise ConfigError(f"{where}: expected {what} (1 to {MAX_NAME_LEN} characters), got {value!r}")
    return value
