"""Reads the rule directory: every `*.yaml`/`*.yml` below it (not `*_test.yaml`), compiled as one set.

All files are parsed and every error collected before anything is returned, so a reload either gets
a complete new RuleSet or a list of `file:line:column: message` errors and keeps the old set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from correlator import gctune, yamlfile
from correlator.catalogue import Claim, disagreements
from correlator.inventory import Inventory, InventoryError, load_inventory
from correlator.rules import parsecache
from correlator.rules.errors import RuleError, RuleErrors, suggest
from correlator.rules.filter import FilterRule
from correlator.rules.registry import COMMON_KEYS, DEFAULT_KIND, BuildContext, RuleInfo, RuleKind, kinds
from correlator.rules.ruleset import LoadedRule, RuleSet
from correlator.yamlfile import Position, YamlList, YamlMap

if TYPE_CHECKING:
    from correlator.catalogue import Catalogue, CatalogueHolder

TEST_SUFFIXES = ("_test.yaml", "_test.yml")


class Compiler(Protocol):
    """What load_rules needs of a compile cache (rules/cache.py, which builds on this module)."""

    def compile(
        self, texts: dict[str, str], ctx: BuildContext, context: tuple[Any, ...]
    ) -> list[LoadedRule]: ...


FILE_KEYS = ("rules",)


@dataclass(slots=True, unsafe_hash=True)  # immutable by convention, not frozen: see RuleInfo
class ParsedRule:
    """One rule as the model read it: matchers, templates and actions compiled, but no rule
    object yet. Those compiled parts hold no state, so `build` can make the rule again and again,
    each time with empty state (level-2 keys, de-duplication windows)."""

    kind: RuleKind
    info: RuleInfo
    values: dict[str, Any]  # the kind's own keys, parsed
    raw: YamlMap

    def build(self, ctx: BuildContext) -> LoadedRule:
        return LoadedRule(self.info, self.kind.build(self.info, self.values, self.raw, ctx))


def rule_files(rules_dir: Path) -> list[Path]:
    """Rule files in load order: sorted by path; hidden directories and rule tests are skipped."""
    found = []
    for p in rules_dir.rglob("*"):
        rel = p.relative_to(rules_dir)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.endswith(TEST_SUFFIXES):
            found.append(p)
    return sorted(found)


EMPTY_WHILE_WRITTEN = (
    "the file is empty; it held rules before, so it is taken as being written (an editor truncates,"
    " then writes): to remove its rules, delete the file or write 'rules: []'"
)


def load_rules(
    rules_dir: Path,
    inventory_file: Path | None = None,
    catalogue: CatalogueHolder | None = None,
    had_rules: frozenset[str] = frozenset(),
    cache: Compiler | None = None,
    parsed: list[ParsedRule] | None = None,
) -> RuleSet:
    """Compile the whole directory; raises RuleErrors listing every problem found. With a service
    catalogue, what the inventory and topology files say against it is in `RuleSet.warnings`.
    With a cache, files unchanged since the last load are not compiled again (cache.py). Without
    one, `parsed` (if given) receives every enabled rule as parsed, for `build_again`."""
    if not rules_dir.is_dir():
        raise RuleErrors([RuleError(Position(str(rules_dir), 1, 1), "the rules directory does not exist")])
    try:
        inventory = load_inventory(inventory_file)
    except InventoryError as e:
        raise RuleErrors([RuleError(e.position, f"inventory: {e.message}")]) from None
    files = rule_files(rules_dir)
    texts = {}
    errors: list[RuleError] = []
    for path in files:
        try:
            texts[str(path)] = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            errors.append(RuleError(Position(str(path), 1, 1), f"cannot read: {e}"))
            continue
        if str(path) in had_rules and not texts[str(path)].strip():
            errors.append(RuleError(Position(str(path), 1, 1), EMPTY_WHILE_WRITTEN))
    ctx = BuildContext(rules_dir, inventory, catalogue)
    if catalogue is not None:
        ctx.warnings.extend(inventory_disagreements(inventory, catalogue.current))
    try:
        with gctune.paused(keep=True):  # a big set makes ~50 objects per rule, all kept
            if cache is None:
                rules = compile_texts(texts, ctx, parsed)
            else:
                context = (str(rules_dir), _digest(inventory_file), catalogue.current if catalogue else None)
                rules = cache.compile(texts, ctx, context)
    except RuleErrors as e:
        errors.extend(e.errors)
        rules = []
    if errors:
        raise RuleErrors(errors)
    # Rules sharing a topology file load it once each: say each thing once.
    warnings = list(dict.fromkeys(ctx.warnings))
    return RuleSet(
        rules, [str(p) for p in files], inventory, rules_dir, data_files=ctx.data_files, warnings=warnings
    )


def build_again(rs: RuleSet, parsed: list[ParsedRule], catalogue: CatalogueHolder | None = None) -> RuleSet:
    """The rules of `rs` made again from what `load_rules(parsed=...)` read, without reading or
    parsing a file: new rule objects with empty state, nothing shared with `rs` but what holds no
    state (compiled matchers and templates, level-1 rules without de-duplication or rate limit).
    `rules test` runs each case on such a set (cases must not share state)."""
    assert len(parsed) == len(rs.rules), "parsed must come from the load that made rs"
    ctx = BuildContext(rs.rules_dir or Path("."), rs.inventory, catalogue)
    rules = [
        r if isinstance(r.compiled, FilterRule) and not r.compiled.stateful else p.build(ctx)
        for r, p in zip(rs.rules, parsed, strict=True)
    ]
    return RuleSet(
        rules, rs.files, rs.inventory, rs.rules_dir, data_files=rs.data_files, warnings=rs.warnings
    )


def _digest(path: Path | None) -> bytes | None:
    """The inventory's content as the cache sees it (the inventory was just read: it exists)."""
    if path is None:
        return None
    try:
        return hashlib.blake2b(path.read_bytes(), digest_size=16).digest()
    except OSError:
        return None


def inventory_disagreements(inventory: Inventory, catalogue: Catalogue) -> list[str]:
    """Hosts whose `service` the catalogue does not back; enrichment still copies the column."""
    claims = [Claim(a.host, a.service, a.where or inventory.source) for a in inventory if a.service]
    return disagreements(
        catalogue, claims, "host {ci!r} has service {service!r}", "events are still enriched with it"
    )


def compile_texts(
    texts: dict[str, str], ctx: BuildContext, parsed: list[ParsedRule] | None = None, bare: bool = True
) -> list[LoadedRule]:
    """Compile rule files given as {file name: text}, in that order; raises RuleErrors. `parsed`
    (if given) receives the enabled rules as parsed (see `ParsedRule`).

    The files are first read without positions (`yamlfile.loads_bare`), the fastest way. At the
    first error anywhere the whole set is compiled again with positions (`bare=False` does only
    that), so the errors are exactly those a load with positions gives, down to the column."""
    if bare:
        warned, read, kept = len(ctx.warnings), len(ctx.data_files), len(parsed or ())
        try:
            return _compile_all(texts, ctx, parsed, bare=True)
        except RuleErrors:
            del ctx.warnings[warned:], ctx.data_files[read:]
            if parsed is not None:
                del parsed[kept:]
    return _compile_all(texts, ctx, parsed, bare=False)


def _compile_all(
    texts: dict[str, str], ctx: BuildContext, parsed: list[ParsedRule] | None, bare: bool
) -> list[LoadedRule]:
    registry = kinds()
    errors: list[RuleError] = []
    rules: list[LoadedRule] = []
    seen: dict[str, Position] = {}
    order = 0
    for file, text in texts.items():
        order = compile_file(file, text, order, registry, ctx, seen, rules, errors, parsed, bare)
        if bare and errors:
            break  # compiled again with positions
    if errors:
        raise RuleErrors(errors)
    return rules


def compile_file(
    file: str,
    text: str,
    order: int,
    registry: dict[str, Any],
    ctx: BuildContext,
    seen: dict[str, Position],
    rules: list[LoadedRule],
    errors: list[RuleError],
    parsed: list[ParsedRule] | None = None,
    bare: bool = False,
) -> int:
    """Compile one file's rules into `rules` (errors into `errors`), numbering them from `order`;
    returns the next number. `seen` holds every rule name met so far, disabled rules too.
    `bare`: read the file without positions when it can be (see `compile_texts`): the positions
    of errors are then only roughly right."""
    try:
        doc = _read(text, file, bare)
    except yamlfile.YamlError as e:
        errors.append(RuleError(e.position, e.message))
        return order
    for item, where in _rule_items(doc, file, errors):
        try:
            rule, enabled = _parse_rule(item, where, order, registry, seen)
            loaded = rule.build(ctx)  # a disabled rule is built too: its errors are reported
        except RuleErrors as e:
            errors.extend(e.errors)
            continue
        except RuleError as e:
            errors.append(e)
            continue
        order += 1
        if enabled:
            rules.append(loaded)
            if parsed is not None:
                parsed.append(rule)
    return order


def _read(text: str, file: str, bare: bool) -> Any:
    if bare:
        try:
            return parsecache.load_bare(text, file)  # from the cache when read before
        except yamlfile.NotBare:
            pass  # anchors, tags, a syntax error...: the loader that knows positions reads it
    return yamlfile.loads(text, file)


def _rule_items(doc: Any, file: str, errors: list[RuleError]) -> list[tuple[Any, Position]]:
    top = Position(file, 1, 1)
    if doc is None:
        return []
    if not isinstance(doc, dict):
        errors.append(RuleError(top, "a rule file must be a mapping with a 'rules:' list"))
        return []
    for key in doc:
        if key not in FILE_KEYS:
            errors.append(
                RuleError(_where(doc, key), f"unknown top-level key {key!r}{suggest(key, FILE_KEYS)}")
            )
    rules = doc.get("rules")
    if rules is None:
        return []
    if not isinstance(rules, list):
        where = doc.where_value("rules") if isinstance(doc, YamlMap) else top
        errors.append(RuleError(where, "'rules' must be a list of rules (items start with '-')"))
        return []
    if isinstance(rules, YamlList):
        return list(zip(rules, rules.item_positions, strict=True))
    return [(item, item.position if isinstance(item, YamlMap) else top) for item in rules]  # bare


def _where(doc: dict[str, Any], key: str) -> Position | None:
    return doc.where(key) if isinstance(doc, YamlMap) else None


def _parse_rule(
    item: Any, where: Position, order: int, registry: dict[str, Any], seen: dict[str, Position]
) -> tuple[ParsedRule, bool]:
    if not isinstance(item, YamlMap):
        raise RuleError(where, "each rule must be a mapping with at least 'name' and 'match'")
    name = item.get("name")
    kind_name = item.get("kind", DEFAULT_KIND)
    if isinstance(name, str) and name:
        if name in seen:
            raise RuleError(
                item.where("name"), f"duplicate rule name {name!r} (first defined at {seen[name]})"
            )
        seen[name] = item.where("name")
    if not isinstance(kind_name, str) or kind_name not in registry:
        hint = suggest(str(kind_name), registry)
        raise RuleError(
            item.where_value("kind"),
            f"unknown rule kind {kind_name!r}{hint}; kinds: {', '.join(sorted(registry))}",
        )
    kind = registry[kind_name]
    values = kind.full_model().parse(item, where)
    info = RuleInfo(values["name"], kind_name, where, order, values["description"])
    own = dict(values)  # every key of the full model is in `values`: drop the common ones
    for k in COMMON_KEYS:
        del own[k]
    return ParsedRule(kind, info, own, item), values["enabled"]
