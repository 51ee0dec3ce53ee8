"""metrics.observe_many must leave a histogram exactly as n single observations would; Children
resolves each label child once and updates the very series `.labels()` names."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

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


def test_children_are_resolved_once_and_update_the_labelled_series():
    counter = Counter("things", "x", ["source", "reason"], registry=CollectorRegistry())
    by = metrics.Children(counter)
    first = by("webhook", "invalid")
    assert by("webhook", "invalid") is first  # cached, not looked up again
    first.inc()
    by("webhook", "invalid").inc(2)
    by("mqtt", "invalid").inc()
    assert counter.labels("webhook", "invalid")._value.get() == 3
    assert counter.labels("mqtt", "invalid")._value.get() == 1


def test_children_refuse_a_wrong_label_count_like_labels_does():
    by = metrics.Children(Counter("things", "x", ["source"], registry=CollectorRegistry()))
    with pytest.raises(ValueError):
        by("a", "b")


def test_a_collector_that_raises_is_left_out_and_every_other_metric_served():
    from prometheus_client import Counter, generate_latest
    from prometheus_client.core import GaugeMetricFamily
    from prometheus_client.registry import Collector

    class Broken(Collector):
        @metrics.guarded
        def collect(self):
            yield GaugeMetricFamily("half_done", "x", value=1)
            raise TypeError("'<' not supported between instances of 'NoneType' and 'str'")

    registry = CollectorRegistry()
    Counter("still_served", "x", registry=registry).inc()
    registry.register(Broken())
    before = metrics.COLLECT_ERRORS.labels("Broken")._value.get()
    text = generate_latest(registry).decode()
    assert "still_served_total 1.0" in text and "half_done" not in text
    assert metrics.COLLECT_ERRORS.labels("Broken")._value.get() == before + 1
