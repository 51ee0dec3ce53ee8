"""What the rule indexes keep per field, shared by level 1 (rules/index.py) and level 2
(correlation/index.py): the rules filed under each fixed value their pins name, and bounded memories
of what a lookup worked out (per value, per class of event, per merged candidate list).

A memory is cleared when full rather than grown without bound or trimmed entry by entry: what it
held is worked out again on the next miss, and the usual traffic refills it within a few events.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")
V = TypeVar("V")


def file_under(table: dict[K, list[R]], values: Iterable[K], rule: R) -> None:
    """File `rule` under each of `values`; filed in rule order, each list stays in rule order."""
    for v in values:
        filed = table.get(v)
        if filed is None:
            table[v] = [rule]
        else:
            filed.append(rule)


def remember(memo: dict[K, V], key: K, value: V, limit: int) -> V:
    """Keep `value` for `key` in a memory of at most `limit` entries (cleared when full); returns it."""
    if len(memo) >= limit:
        memo.clear()
    memo[key] = value
    return value


def intern(pool: dict[V, V], value: V, limit: int) -> V:
    """The one object kept for values equal to `value` (a bounded pool, cleared when full)."""
    found = pool.get(value)
    return remember(pool, value, value, limit) if found is None else found
