"""Telemetry subscriptions: numbers update bounded gauges; only threshold crossings become events.

One state (ok / warning / critical) is kept per series (host, resource, type); an event is emitted
only when a sample moves a series to another state, with hysteresis, so a sensor reporting every
second yields a handful of events, not a flood. The rules then correlate those events.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client.metrics import Counter, Gauge

from collectors.mqtt.settings import Telemetry, Thresholds
from correlator import capacity
from correlator.event import Event, Severity

TELEMETRY_SAMPLES = Counter(
    "correlator_telemetry_samples_total", "Telemetry samples received, by subscription", ["subscription"]
)
TELEMETRY_SERIES = Gauge(
    "correlator_telemetry_series",
    "Telemetry series (host, resource, type) by threshold state",
    ["subscription", "state"],
)
TELEMETRY_MAX = Gauge(
    "correlator_telemetry_value_max", "Highest latest value among a subscription's series", ["subscription"]
)
TELEMETRY_UTILIZATION = Gauge(
    "correlator_telemetry_utilization_ratio",
    "Highest latest value divided by the subscription's configured capacity",
    ["subscription"],
)

STATES = ("ok", "warning", "critical")
_SEVERITY = (Severity.CLEAR, Severity.WARNING, Severity.CRITICAL)


@dataclass(slots=True)
class _Series:
    value: float
    state: int


class TelemetryTracker:
    """Per subscription: latest value and threshold state of every series."""

    def __init__(self, subscription: str, settings: Telemetry) -> None:
        self.subscription = subscription
        self.settings = settings
        self._series: dict[tuple[str, str, str], _Series] = {}
        self._samples = TELEMETRY_SAMPLES.labels(subscription)
        self._counts = [TELEMETRY_SERIES.labels(subscription, s) for s in STATES]
        for c in self._counts:
            c.set(0)
        TELEMETRY_MAX.labels(subscription).set_function(self.max_value)
        if settings.capacity is not None:
            capacity = settings.capacity
            TELEMETRY_UTILIZATION.labels(subscription).set_function(lambda: self.max_value() / capacity)

    def max_value(self) -> float:
        return max((s.value for s in self._series.values()), default=0.0)

    def sample(self, event: Event, value: float) -> Event | None:
        """Record `value` for the event's series; returns the event to emit on a state change.

        Returns None when nothing changed, and raises OverflowError when the series is new and
        `max_series` series are already tracked (memory stays bounded; the caller counts it).
        """
        self._samples.inc()
        key = (event.host, event.resource, event.type)
        series = self._series.get(key)
        th = self.settings.thresholds
        if series is None:
            if len(self._series) >= self.settings.max_series:
                raise OverflowError(f"more than {self.settings.max_series} telemetry series")
            state = level(value, th, 0)
            self._series[key] = _Series(value, state)
            self._capacity(event, value)
            self._counts[state].inc()
            if state == 0:
                return None  # a healthy first sample is not news
            return self._crossing(event, value, state, th)
        series.value = value
        self._capacity(event, value)
        state = level(value, th, series.state)
        if state == series.state:
            return None
        self._counts[series.state].dec()
        self._counts[state].inc()
        series.state = state
        return self._crossing(event, value, state, th)

    def _capacity(self, event: Event, value: float) -> None:
        """With `capacity` set, each series feeds correlator.capacity (utilisation and time to full),
        kind = the subscription name; a negative value is refused and counted there."""
        if self.settings.capacity is not None:
            capacity.record(
                event.host, event.resource, self.subscription, value / self.settings.capacity, event.time
            )

    def _crossing(self, event: Event, value: float, state: int, th: Thresholds | None) -> Event:
        event.severity = _SEVERITY[state]
        what = event.resource or event.type
        if state == 0 or th is None:
            event.message = f"{what} back to normal at {value:g}"
        else:
            limit = th.critical if state == 2 else th.warning
            side = "below" if th.below else "above"
            event.message = f"{what} {value:g} {side} {STATES[state]} threshold {limit:g}"
            event.attributes["threshold"] = limit
        event.attributes["value"] = value
        event.attributes["state"] = STATES[state]
        return event


def level(value: float, th: Thresholds | None, current: int) -> int:
    """The new state (0 ok, 1 warning, 2 critical) of a series now in `current`.

    Going up needs the threshold itself; going down needs to pass it by `hysteresis`, so a value
    hovering at a threshold does not flap.
    """
    if th is None:
        return 0
    sign = -1.0 if th.below else 1.0
    raw = _raw(sign * value, th, sign)
    if raw >= current:
        return raw
    return max(raw, min(current, _raw(sign * value + th.hysteresis, th, sign)))


def _raw(v: float, th: Thresholds, sign: float) -> int:
    if th.critical is not None and v >= sign * th.critical:
        return 2
    if th.warning is not None and v >= sign * th.warning:
        return 1
    return 0
