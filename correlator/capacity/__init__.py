"""Capacity management: THE one place the capacity metrics are declared, and the API collectors use.

Collectors (SNMP polling, MQTT telemetry, ...) report readings; Prometheus scrapes the result.

API (for collectors)::

    from correlator import capacity
    capacity.record(ci="r1", resource="ge-0/0/1", kind="bandwidth_in", ratio=0.42, at=event_time)
    capacity.forget(ci="r1", resource="ge-0/0/1", kind="bandwidth_in")  # the interface is gone

`record` sets `correlator_capacity_utilization_ratio{ci,resource,kind}` to `ratio` (0..1, above 1 when
oversubscribed) and keeps a bounded, thinned history of the series (at most `max_points` points over
`trend_window`). A least-squares line through that history gives
`correlator_capacity_time_to_full_seconds{ci,resource,kind}`: seconds from the newest sample until the
line reaches 1.0 (the issue's `correlator_capacity_days_to_full`, renamed to the base unit because
`promtool check metrics` refuses "days"; Grafana shows it in days/weeks); the sample is absent while the trend is flat or falling or fewer than `min_points` points exist.
`at` is event time (epoch seconds), never wall time, so replay and tests are exact; a sample older than
the series' newest is refused. At most `max_series` series exist; beyond that, and for bad values
(negative, NaN, not a number) or labels longer than 128 characters, `record` returns False and counts
`correlator_capacity_samples_rejected_total{reason}`. Series not updated within `trend_window` are
dropped; `forget` drops one at once. No other module may declare these metric names (the exporter
renders them; a second declaration would make /metrics invalid). Events can carry readings too (see capacity/stage.py and docs/metrics.md).
"""

from __future__ import annotations

from correlator.capacity.stage import CapacityStage, reading
from correlator.capacity.tracker import (
    EXPORTER,
    TRACKER,
    CapacitySettings,
    CapacityTracker,
    parse_settings,
)
from correlator.capacity.trend import seconds_to_full

__all__ = [
    "EXPORTER",
    "TRACKER",
    "CapacitySettings",
    "CapacityStage",
    "CapacityTracker",
    "configure",
    "forget",
    "parse_settings",
    "reading",
    "record",
    "seconds_to_full",
]


def record(ci: str, resource: str, kind: str, ratio: float, at: float) -> bool:
    """Report one utilisation reading to the daemon's tracker; False when refused (and counted)."""
    return TRACKER.record(ci, resource, kind, ratio, at)


def forget(ci: str, resource: str, kind: str) -> bool:
    """Stop exporting one series (its history goes too); False if it was not tracked."""
    return TRACKER.forget(ci, resource, kind)


def configure(settings: CapacitySettings) -> CapacityTracker:
    """Apply the `capacity:` settings to the daemon's tracker (kept series stay) and return it."""
    TRACKER.settings = settings
    return TRACKER
