"""Capacity series: the latest utilisation per (ci, resource, kind), a bounded history, the forecast.

Collectors (SNMP polling, MQTT telemetry) and the capacity pipeline stage call `record()`; the
Prometheus exporter at the bottom reads the tracker at scrape time. See correlator/capacity/__init__.py.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics import Counter
from prometheus_client.registry import REGISTRY, Collector

from correlator import metrics, yamlfile
from correlator.capacity.trend import seconds_to_full
from correlator.config import parse_duration
from correlator.errors import ConfigError

MAX_LABEL_LEN = 128

SAMPLES_REJECTED = Counter(
    "correlator_capacity_samples_rejected_total",
    "Capacity samples refused by record(), by reason (bad_value, bad_label, out_of_order, series_limit)",
    ["reason"],
)
SAMPLES = Counter("correlator_capacity_samples_total", "Capacity samples accepted by record()")

SeriesKey = tuple[str, str, str]  # (ci, resource, kind)


@dataclass(frozen=True, slots=True)
class CapacitySettings:
    trend_window: float = 7 * 86400.0  # seconds of history the trend line is fitted over
    max_points: int = 240  # points kept per series; samples closer than window/max_points are thinned
    min_points: int = 3  # fewer points give no forecast
    max_series: int = 10_000  # new series beyond this are refused and counted

    @property
    def min_spacing(self) -> float:
        return self.trend_window / self.max_points


@dataclass(slots=True)
class Series:
    ratio: float
    at: float
    points: deque[tuple[float, float]] = field(default_factory=deque)
    seconds_to_full: float = math.nan


class CapacityTracker:
    def __init__(self, settings: CapacitySettings | None = None) -> None:
        self.settings = settings or CapacitySettings()
        self.series: dict[SeriesKey, Series] = {}

    def record(self, ci: str, resource: str, kind: str, ratio: float, at: float) -> bool:
        """Set the utilisation of one resource at event time `at`; False (and counted) if refused."""
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0.0 <= ratio < math.inf:
            SAMPLES_REJECTED.labels("bad_value").inc()
            return False
        if not ci or any(len(v) > MAX_LABEL_LEN for v in (ci, resource, kind)):
            SAMPLES_REJECTED.labels("bad_label").inc()
            return False
        key = (ci, resource, kind)
        s = self.series.get(key)
        if s is None:
            if len(self.series) >= self.settings.max_series:
                SAMPLES_REJECTED.labels("series_limit").inc()
                return False
            s = self.series[key] = Series(float(ratio), at)
        elif at < s.at:
            SAMPLES_REJECTED.labels("out_of_order").inc()
            return False
        SAMPLES.inc()
        s.ratio, s.at = float(ratio), at
        cfg = self.settings
        pts = s.points
        if pts and at - pts[-1][0] < cfg.min_spacing:
            pts[-1] = (pts[-1][0], float(ratio))  # thin: the kept point takes the newest value
            if len(pts) < 2:
                return True
        else:
            pts.append((at, float(ratio)))
        while pts and (pts[0][0] < at - cfg.trend_window or len(pts) > cfg.max_points):
            pts.popleft()
        s.seconds_to_full = seconds_to_full(pts, cfg.min_points)
        return True

    def forget(self, ci: str, resource: str, kind: str) -> bool:
        """Drop one series now (an interface gone, a target unreachable); False if it was not tracked."""
        return self.series.pop((ci, resource, kind), None) is not None

    def expire(self, now: float) -> int:
        """Forget series not updated within the trend window (a removed disk, a retired CI)."""
        cutoff = now - self.settings.trend_window
        dead = [k for k, s in self.series.items() if s.at < cutoff]
        for k in dead:
            del self.series[k]
        return len(dead)

    def latest_time(self) -> float:
        return max((s.at for s in self.series.values()), default=0.0)


def parse_settings(raw: Mapping[str, Any]) -> CapacitySettings:
    """The `capacity:` section of correlator.yaml (kept raw by config.py) -> settings, with file:line errors."""
    kwargs: dict[str, Any] = {}
    known = {"trend_window", "max_points", "min_points", "max_series"}
    for key, value in raw.items():
        where = f"{raw.where(key)}: " if isinstance(raw, yamlfile.YamlMap) else ""
        if key not in known:
            raise ConfigError(
                f"{where}unknown key 'capacity.{key}' (expected one of {', '.join(sorted(known))})"
            )
        if key == "trend_window":
            try:
                kwargs[key] = parse_duration(value)
            except ValueError as e:
                raise ConfigError(f"{where}'capacity.{key}': {e}") from None
            if kwargs[key] <= 0:
                raise ConfigError(f"{where}'capacity.{key}': must be longer than 0s")
        elif isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ConfigError(f"{where}'capacity.{key}': expected a whole number >= 2, got {value!r}")
        else:
            kwargs[key] = value
    return CapacitySettings(**kwargs)


class CapacityExporter(Collector):
    """Renders the tracker at scrape time, so time_to_full is simply absent where there is no forecast."""

    def __init__(self, tracker: CapacityTracker) -> None:
        self.tracker = tracker

    @metrics.guarded
    def collect(self) -> Iterator[GaugeMetricFamily]:
        t = self.tracker
        t.expire(t.latest_time())
        util = GaugeMetricFamily(
            "correlator_capacity_utilization_ratio",
            "Latest utilisation of a resource (0..1; above 1 when oversubscribed)",
            labels=["ci", "resource", "kind"],
        )
        full = GaugeMetricFamily(
            "correlator_capacity_time_to_full_seconds",
            "Seconds until the utilisation trend reaches 1.0 (absent when flat, falling or too few samples)",
            labels=["ci", "resource", "kind"],
        )
        count = GaugeMetricFamily("correlator_capacity_series", "Capacity series currently tracked")
        for key, s in list(t.series.items()):
            util.add_metric(key, s.ratio)
            if not math.isnan(s.seconds_to_full):
                full.add_metric(key, s.seconds_to_full)
        count.add_metric([], len(t.series))
        yield util
        yield full
        yield count

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # names are fixed; no need to collect at registration


TRACKER = CapacityTracker()
EXPORTER = CapacityExporter(TRACKER)
REGISTRY.register(EXPORTER)
