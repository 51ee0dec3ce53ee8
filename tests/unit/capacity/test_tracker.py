"""Capacity: given these readings at these times, expect this utilisation and this forecast."""

from __future__ import annotations

import math

import pytest

from correlator.capacity import CapacitySettings, CapacityTracker, parse_settings, reading, seconds_to_full
from correlator.capacity.tracker import SAMPLES_REJECTED, CapacityExporter
from correlator.errors import ConfigError
from correlator.event import Event
from correlator.yamlfile import loads

DAY = 86400.0


def test_rising_one_point_a_day_from_half_is_full_in_fifty_days():
    pts = [(i * DAY, 0.40 + 0.01 * i) for i in range(11)]  # reaches 0.50 on day 10
    assert seconds_to_full(pts) == pytest.approx(50 * DAY)


def test_flat_or_falling_or_too_few_points_give_no_forecast():
    assert math.isnan(seconds_to_full([(0, 0.5), (DAY, 0.5), (2 * DAY, 0.5)]))
    assert math.isnan(seconds_to_full([(0, 0.9), (DAY, 0.8), (2 * DAY, 0.7)]))
    assert math.isnan(seconds_to_full([(0, 0.1), (DAY, 0.2)]))


def test_already_full_is_zero_days():
    assert seconds_to_full([(0, 0.9), (DAY, 1.0), (2 * DAY, 1.1)]) == 0.0


def test_epoch_times_keep_precision():
    t0 = 1_790_000_000.0
    pts = [(t0 + i * 3600, 0.5 + 0.001 * i) for i in range(48)]  # 0.024 a day
    assert seconds_to_full(pts) == pytest.approx((1 - 0.547) / 0.024 * DAY, rel=1e-6)


def test_record_thins_and_bounds_the_history():
    t = CapacityTracker(CapacitySettings(trend_window=1000.0, max_points=10, min_points=3))
    for i in range(1000):  # one sample a second, 100 s apart are kept
        assert t.record("r1", "disk0", "disk", 0.1 + i / 10000, float(i))
    s = t.series[("r1", "disk0", "disk")]
    assert len(s.points) <= 11
    assert s.ratio == pytest.approx(0.1999)
    assert s.seconds_to_full == pytest.approx((1 - 0.1999) / 1e-4, rel=0.05)


def test_bad_values_labels_order_and_series_limit_are_refused_and_counted():
    t = CapacityTracker(CapacitySettings(max_series=2))
    before = {
        r: SAMPLES_REJECTED.labels(r)._value.get()
        for r in ("bad_value", "bad_label", "out_of_order", "series_limit")
    }
    assert not t.record("r1", "cpu", "cpu", -0.1, 1.0)
    assert not t.record("r1", "cpu", "cpu", math.nan, 1.0)
    assert not t.record("r1", "x" * 200, "cpu", 0.5, 1.0)
    assert t.record("r1", "cpu", "cpu", 0.5, 10.0)
    assert not t.record("r1", "cpu", "cpu", 0.6, 5.0)
    assert t.record("r2", "cpu", "cpu", 0.5, 10.0)
    assert not t.record("r3", "cpu", "cpu", 0.5, 10.0)
    after = {r: SAMPLES_REJECTED.labels(r)._value.get() for r in before}
    assert {r: after[r] - before[r] for r in before} == {
        "bad_value": 2,
        "bad_label": 1,
        "out_of_order": 1,
        "series_limit": 1,
    }


def test_exporter_omits_seconds_to_full_without_a_trend_and_expires_old_series():
    t = CapacityTracker(CapacitySettings(trend_window=10 * DAY, max_points=100))
    for i in range(5):
        t.record("r1", "ge-0/0/1", "bandwidth_in", 0.5 + 0.05 * i, i * DAY)
        t.record("r1", "disk0", "disk", 0.3, i * DAY)
    fams = {f.name: f for f in CapacityExporter(t).collect()}
    assert {s.labels["resource"] for s in fams["correlator_capacity_utilization_ratio"].samples} == {
        "ge-0/0/1",
        "disk0",
    }
    (sample,) = fams["correlator_capacity_time_to_full_seconds"].samples
    assert sample.labels == {"ci": "r1", "resource": "ge-0/0/1", "kind": "bandwidth_in"}
    assert sample.value == pytest.approx((1 - 0.7) / 0.05 * DAY)
    t.record("r2", "disk0", "disk", 0.3, 20 * DAY)  # r1's series are now older than the window
    fams = {f.name: f for f in CapacityExporter(t).collect()}
    assert [s.labels["ci"] for s in fams["correlator_capacity_utilization_ratio"].samples] == ["r2"]


def test_events_carry_readings():
    ev = Event(
        "1", 5.0, 5.0, "mqtt", "sw1", "capacity.disk", resource="/var", attributes={"used": 30, "total": 120}
    )
    assert reading(ev) == ("sw1", "/var", "disk", 0.25)
    ev = Event(
        "2",
        5.0,
        5.0,
        "snmp",
        "r1",
        "if.util",
        resource="ge-0/0/1",
        attributes={"utilization_ratio": 0.5, "kind": "bandwidth_out"},
    )
    assert reading(ev) == ("r1", "ge-0/0/1", "bandwidth_out", 0.5)
    assert reading(Event("3", 5.0, 5.0, "x", "h", "t")) is None


def test_settings_errors_say_where():
    assert parse_settings(loads("trend_window: 3d\nmax_series: 50\n")).trend_window == 3 * DAY
    with pytest.raises(ConfigError, match=r"c.yaml:2:1: 'capacity.max_points': expected a whole number"):
        parse_settings(loads("trend_window: 3d\nmax_points: lots\n", "c.yaml"))
    with pytest.raises(ConfigError, match=r"c.yaml:1:1: unknown key 'capacity.window'"):
        parse_settings(loads("window: 3d\n", "c.yaml"))


def test_forget_drops_a_series_at_once():
    t = CapacityTracker()
    t.record("sw7", "Gi0/1", "interface_in", 0.2, 1.0)
    assert t.forget("sw7", "Gi0/1", "interface_in")
    assert not t.forget("sw7", "Gi0/1", "interface_in")
    assert t.series == {}
