"""Filtered, newest-first page queries shared by every store, for SQLite (`?`) and PostgreSQL (`$n`).

Each store says which conditions apply; this module writes the SQL once (keyset paging on an
increasing integer key: ask for limit + 1 rows, the extra one only says whether a next page exists).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

Row = TypeVar("Row")


class Where:
    """Collects conditions; a None value or an empty list adds none (the filter was not asked for)."""

    def __init__(self, postgres: bool) -> None:
        self.postgres = postgres
        self.conditions: list[str] = []
        self.args: list[Any] = []

    def _arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}" if self.postgres else "?"

    def cmp(self, column: str, op: str, value: Any) -> Where:
        if value is not None:
            self.conditions.append(f"{column} {op} {self._arg(value)}")
        return self

    def eq(self, column: str, value: Any) -> Where:
        return self.cmp(column, "=", value)

    def among(self, column: str, values: Sequence[str]) -> Where:
        if values:
            if self.postgres:
                self.conditions.append(f"{column} = ANY({self._arg(list(values))}::text[])")
            else:
                marks = ",".join(self._arg(v) for v in values)
                self.conditions.append(f"{column} IN ({marks})")
        return self

    def page(
        self, select: str, key: str, cursor: int | None, limit: int, probe: bool = True
    ) -> tuple[str, list[Any]]:
        """`select` + conditions, rows below `cursor` by `key`, newest first; `limit` rows, plus one
        with `probe` (see split_page)."""
        self.cmp(key, "<", cursor)
        sql = select
        if self.conditions:
            sql += " WHERE " + " AND ".join(self.conditions)
        sql += f" ORDER BY {key} DESC LIMIT {self._arg(limit + 1 if probe else limit)}"
        return sql, self.args


def split_page(rows: Sequence[Row], limit: int) -> tuple[list[Row], bool]:
    """The page's rows, and whether another page follows (the query asked for one row more)."""
    return list(rows[:limit]), len(rows) > limit
