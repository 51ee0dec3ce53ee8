"""The per-field tables both rule indexes keep: rules filed in order, memories bounded."""

from __future__ import annotations

from correlator.rules.tables import file_under, intern, remember


def test_rules_are_filed_under_each_value_in_the_order_they_are_filed() -> None:
    table: dict[str, list[str]] = {}
    file_under(table, ["a", "b"], "r1")
    file_under(table, ["b"], "r2")
    file_under(table, [], "r3")
    assert table == {"a": ["r1"], "b": ["r1", "r2"]}


def test_a_full_memory_is_cleared_before_it_keeps_the_next_entry() -> None:
    memo: dict[int, str] = {}
    for i in range(3):
        assert remember(memo, i, str(i), 3) == str(i)
    assert remember(memo, 3, "3", 3) == "3"
    assert memo == {3: "3"}


def test_equal_values_are_interned_as_one_object_within_the_bound() -> None:
    pool: dict[frozenset[int], frozenset[int]] = {}
    first = intern(pool, frozenset({1, 2}), 2)
    assert intern(pool, frozenset({2, 1}), 2) is first
    intern(pool, frozenset({3}), 2)
    intern(pool, frozenset({4}), 2)  # full: cleared first
    assert list(pool) == [frozenset({4})]
