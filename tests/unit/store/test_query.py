"""The shared page-query builder writes the same conditions for SQLite and PostgreSQL."""

from __future__ import annotations

from correlator.store.query import Where, split_page


def test_sqlite_placeholders_and_skipped_filters():
    w = Where(postgres=False).eq("host", "sw1").eq("type", None).among("severity", ("major", "minor"))
    sql, args = w.cmp("time", ">=", 5.0).page("SELECT pos, body FROM events", "pos", 42, 10)
    assert sql == (
        "SELECT pos, body FROM events WHERE host = ? AND severity IN (?,?) AND time >= ? AND pos < ?"
        " ORDER BY pos DESC LIMIT ?"
    )
    assert args == ["sw1", "major", "minor", 5.0, 42, 11]


def test_postgres_placeholders_are_numbered():
    sql, args = (
        Where(postgres=True).among("state", ("open",)).eq("key", "k").page("SELECT id FROM t", "id", None, 5)
    )
    assert sql == "SELECT id FROM t WHERE state = ANY($1::text[]) AND key = $2 ORDER BY id DESC LIMIT $3"
    assert args == [["open"], "k", 6]


def test_no_conditions_and_no_probe_row():
    sql, args = Where(postgres=False).among("state", ()).page("SELECT id FROM t", "id", None, 5, probe=False)
    assert sql == "SELECT id FROM t ORDER BY id DESC LIMIT ?" and args == [5]


def test_split_page():
    assert split_page([3, 2, 1], 2) == ([3, 2], True)
    assert split_page([3, 2], 2) == ([3, 2], False)
