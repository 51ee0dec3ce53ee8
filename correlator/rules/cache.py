"""Compiled rule files kept by content hash, so a reload recompiles only the files that changed.

The rules holder (reload.py) owns one; the loader (loader.py) asks it for each file's rules. A file
is taken from the cache when its text hashes the same, the context it was compiled in (inventory,
service catalogue) is the same, and its rules keep their numbers in the set (or it holds only
level-2 rules, which are numbered again: the numbers live outside them). Anything that may depend on
more than the file's text is never kept: rules that read other files (topology), rules whose load
warned, level-1 rules with de-duplication or rate-limit windows (their state moves by
`RuleSet.adopt_state`, which needs a new object). When a compile finds errors, the whole set is
compiled again without the cache, so error messages are exactly those of a first load.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any

from correlator.rules.errors import RuleError
from correlator.rules.filter import FilterRule
from correlator.rules.loader import compile_file, compile_texts
from correlator.rules.registry import BuildContext, kinds
from correlator.rules.ruleset import LoadedRule
from correlator.yamlfile import Position


@dataclass(frozen=True, slots=True)
class _Entry:
    digest: bytes
    base: int  # the number of the file's first rule
    count: int  # numbers the file used (disabled rules take one too)
    rules: list[LoadedRule]
    names: tuple[str, ...]  # every rule name in the file, disabled ones too
    movable: bool  # no level-1 rules: may be numbered again without being compiled again


class CompileCache:
    def __init__(self) -> None:
        self._files: dict[str, _Entry] = {}
        self._context: tuple[Any, ...] = ()
        self.compiled = 0  # files compiled by the last `compile` (the rest came from the cache)

    def compile(self, texts: dict[str, str], ctx: BuildContext, context: tuple[Any, ...]) -> list[LoadedRule]:
        """The rules of the files given as {file name: text}, in order, compiling only the files
        not in the cache; raises RuleErrors like `loader.compile_texts`."""
        if not _same_context(context, self._context):
            self._files = {}
        registry = kinds()
        kept: dict[str, _Entry] = {}
        rules: list[LoadedRule] = []
        owner: dict[str, str] = {}  # rule name -> file, for names defined twice across files
        order = 0
        self.compiled = 0
        for file, text in texts.items():
            digest = hashlib.blake2b(text.encode(), digest_size=16).digest()
            entry = self._reuse(file, digest, order)
            if entry is None:
                self.compiled += 1
                found: list[LoadedRule] = []
                errors: list[RuleError] = []
                seen: dict[str, Position] = {}
                warned, read = len(ctx.warnings), len(ctx.data_files)
                end = compile_file(file, text, order, registry, ctx, seen, found, errors, bare=True)
                if errors:  # raises, with every error as a first load gives
                    return compile_texts(texts, ctx, bare=False)
                entry = _Entry(digest, order, end - order, found, tuple(seen), _movable(found))
                if len(ctx.warnings) == warned and len(ctx.data_files) == read and _keepable(found):
                    kept[file] = entry
            else:
                kept[file] = entry
            for name in entry.names:
                if owner.setdefault(name, file) != file:
                    return compile_texts(
                        texts, ctx, bare=False
                    )  # a name defined twice: the loader says where
            rules.extend(entry.rules)
            order += entry.count
        self._files = kept
        self._context = context
        return rules

    def _reuse(self, file: str, digest: bytes, order: int) -> _Entry | None:
        entry = self._files.get(file)
        if entry is None or entry.digest != digest:
            return None
        if entry.base == order:
            return entry
        if not entry.movable:
            return None
        shift = order - entry.base
        rules = [LoadedRule(replace(r.info, order=r.info.order + shift), r.compiled) for r in entry.rules]
        return _Entry(digest, order, entry.count, rules, entry.names, True)


def _movable(rules: list[LoadedRule]) -> bool:
    """Level-1 rules carry their number themselves (`FilterRule.info`); others only in LoadedRule."""
    return not any(isinstance(r.compiled, FilterRule) for r in rules)


def _keepable(rules: list[LoadedRule]) -> bool:
    return not any(isinstance(r.compiled, FilterRule) and r.compiled.stateful for r in rules)


def _same_context(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    """Equal values, and the very same objects where the context holds objects (the catalogue)."""
    return len(a) == len(b) and all(
        x is y or (isinstance(x, str | bytes) and x == y) for x, y in zip(a, b, strict=True)
    )
