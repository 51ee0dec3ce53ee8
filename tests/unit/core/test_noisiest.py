from __future__ import annotations

from correlator.noisiest import NoisiestStage


def test_top_counts_the_last_hour_only():
    s = NoisiestStage()
    for i in range(10):
        s.count("old", 0.0 + i)
    for i in range(5):
        s.count("r1", 3000.0 + i)
        s.count("r2", 3000.0 + i) if i < 3 else None
    assert s.top(3100.0) == [("old", 10), ("r1", 5), ("r2", 3)]
    assert s.top(3700.0) == [("r1", 5), ("r2", 3)], "the first minute has left the hour"
    assert s.top(3700.0, n=1) == [("r1", 5)]
