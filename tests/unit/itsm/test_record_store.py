"""The record store's incident occurrences, the same on SQLite and PostgreSQL: a batch is added in
one go, and what was already recorded (a batch delivered again after a crash) is reported as not new."""

from __future__ import annotations

from typing import Any

from correlator.records.store import Occurrence

from .conftest import T0


async def _opened(backend: Any) -> Any:
    _, records = backend()
    await records.open()
    return records


async def test_a_batch_of_occurrences_is_added_and_each_reported_new(backend):
    records = await _opened(backend)
    try:
        batch = [
            Occurrence("sig-a", 1, 0, T0),
            Occurrence("sig-a", 1, 1, T0 + 60.5),  # its reopening
            Occurrence("sig-b", 2, 0, T0 + 0.123456789),
        ]
        assert await records.add_occurrences(batch) == {(1, 0), (1, 1), (2, 0)}
        assert await records.occurrences_since(T0) == [
            ("sig-a", 1, T0),
            ("sig-b", 2, T0 + 0.123456789),
            ("sig-a", 1, T0 + 60.5),
        ]
    finally:
        await records.close()


async def test_occurrences_already_recorded_are_not_new_and_not_added_twice(backend):
    records = await _opened(backend)
    try:
        await records.add_occurrences([Occurrence("sig-a", 1, 0, T0)])
        again = [Occurrence("sig-a", 1, 0, T0), Occurrence("sig-a", 3, 0, T0 + 1)]
        assert await records.add_occurrences(again) == {(3, 0)}
        assert await records.add_occurrences(again) == set()
        assert await records.add_occurrences([]) == set()
        trend = await records.trend(T0, 10)
        assert [(t.signature, t.count, t.last_at) for t in trend] == [("sig-a", 2, T0 + 1)]
    finally:
        await records.close()


async def test_a_pair_listed_twice_in_one_batch_is_added_once(backend):
    records = await _opened(backend)
    try:
        pair = Occurrence("sig-a", 7, 0, T0)
        assert await records.add_occurrences([pair, pair]) == {(7, 0)}
        assert await records.occurrences_since(0) == [("sig-a", 7, T0)]
    finally:
        await records.close()
