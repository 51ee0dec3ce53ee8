"""Rule kinds: each `kind:` of rule (level-1 `filter`, level-2 `threshold`, `pair`, ...) registers here.

The loader reads `name`, `kind`, `description` and `enabled` itself, parses the rest with the kind's
`model` (which also yields its JSON Schema) and calls the kind's `build` to get the compiled rule.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from correlator.inventory import Inventory
from correlator.rules.model import Bool, Key, Obj, Str
from correlator.yamlfile import Position, YamlMap

if TYPE_CHECKING:
    from correlator.catalogue import CatalogueHolder

DEFAULT_KIND = "filter"

# Modules imported before rules are loaded, each calling register_kind() at import.
# Level-2 correlation adds its module here.
KIND_MODULES = ["correlator.rules.filter", "correlator.correlation.kinds"]

COMMON_KEYS: dict[str, Key] = {
    "name": Key(Str(doc="unique name across the whole rule set"), required=True),
    "kind": Key(Str(doc=f"which kind of rule this is (default {DEFAULT_KIND})")),
    "description": Key(Str(doc="free text shown by GET /api/v1/rules and `rules explain`"), default=""),
    "enabled": Key(Bool(doc="false keeps the rule in the file (still checked) but inactive"), default=True),
}


# Treated as immutable, but not frozen (as yamlfile.Position): a frozen dataclass is several times
# slower to make, and a load makes one per rule.
@dataclass(slots=True, unsafe_hash=True)
class RuleInfo:
    """What every compiled rule knows about itself, whatever its kind."""

    name: str
    kind: str
    position: Position  # where the rule's mapping starts
    order: int  # position in the whole set: files sorted by path, rules in file order
    description: str = ""


@dataclass(frozen=True)
class BuildContext:
    """Shared data a kind may need while compiling (loaded once per reload)."""

    rules_dir: Path
    inventory: Inventory
    catalogue: CatalogueHolder | None = None  # availability.services_file, shared with the rest of the daemon
    warnings: list[str] = field(default_factory=list)  # "file:line:col: ..."; the load goes on
    # Files besides the rule files that rules read while compiling (topology files): watched too.
    data_files: list[Path] = field(default_factory=list)


Build = Callable[[RuleInfo, dict[str, Any], YamlMap, BuildContext], Any]
"""build(info, parsed values, the raw YAML mapping, context) -> compiled rule; raises RuleError(s)."""


@dataclass(frozen=True)
class RuleKind:
    name: str
    model: Obj  # the kind's own keys (the common keys are added by the loader)
    build: Build
    level: int  # 1: filter stage, 2: correlation
    doc: str = ""

    def full_model(self) -> Obj:
        """The kind's keys and the common ones; made once per kind (a load asks once per rule)."""
        full = self.__dict__.get("_full_model")
        if full is None:
            keys = dict(COMMON_KEYS)
            keys.update(self.model.keys)
            full = Obj(keys, doc=self.doc)
            object.__setattr__(self, "_full_model", full)  # a cache, not a field: frozen stays true
        return full


_KINDS: dict[str, RuleKind] = {}


def register_kind(kind: RuleKind) -> None:
    """Make `kind: NAME` valid in rule files. Registering the same name again replaces it."""
    clash = set(kind.model.keys) & set(COMMON_KEYS)
    if clash:
        raise ValueError(f"rule kind {kind.name!r} redefines common keys {sorted(clash)}")
    _KINDS[kind.name] = kind


def kinds() -> dict[str, RuleKind]:
    for module in KIND_MODULES:
        importlib.import_module(module)
    return dict(_KINDS)
