"""metrics.observe_many must leave a histogram exactly as n single observations would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Histogram

from correlator import metrics


def samples(h: Histogram) -> dict[tuple[str, str], float]:
    return {
        (s.name, s.labels.get("le", "")): s.value
        for m in h.collect()
        for s in m.samples
        if "created" not in s.name
    }


@pytest.mark.parametrize("amount", [0.0, 0.001, 0.003, 0.05, 9.0, 99.0])
def test_observe_many_equals_n_observes(amount):
    buckets = (0.001, 0.0025, 0.005, 0.01, 0.05, 10.0)
    one = Histogram("one", "x", buckets=buckets, registry=CollectorRegistry())
    many = Histogram("many", "x", buckets=buckets, registry=CollectorRegistry())
    for _ in range(7):
        one.observe(amount)
    metrics.observe_many(many, amount, 7)
    expected = {(n.replace("one", "many"), le): v for (n, le), v in samples(one).items()}
    assert samples(many) == pytest.approx(expected)  # the sum differs in float rounding only
