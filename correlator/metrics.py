"""The daemon's own health metrics, declared once (Prometheus naming: base units, `_total`, bounded labels).

Feature modules declare their own metrics beside their code; these are the ones the core updates.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from prometheus_client.metrics import Counter, Gauge, Histogram, MetricWrapperBase
from prometheus_client.metrics_core import Metric

from correlator.logs import RateLimitedLog

log = logging.getLogger(__name__)
_limited = RateLimitedLog(log)
W = TypeVar("W", bound=MetricWrapperBase)


class Children(Generic[W]):
    """The label children of one metric, each resolved once: `RECEIVED_BY(source).inc()`.

    prometheus-client's `.labels()` validates and joins the values and takes a lock on every call
    (~5 µs), which on a per-event path cost more than the update itself. Label values must be a
    bounded set (as they must be for any metric), since every child is kept. A child the metric
    dropped (`.remove()`, `.clear()`) would be kept here, so use it only for metrics never pruned.
    """

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: W) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], W] = {}

    def __call__(self, *values: str) -> W:
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


EVENTS_RECEIVED = Counter(
    "correlator_events_received_total", "Events accepted durably from a source", ["source"]
)
EVENTS_REJECTED = Counter(
    "correlator_events_rejected_total",
    "Events or requests refused at ingest, by source and reason",
    ["source", "reason"],
)
RECEIVED_BY = Children(EVENTS_RECEIVED)
REJECTED_BY = Children(EVENTS_REJECTED)
EVENTS_PROCESSED = Counter("correlator_events_processed_total", "Events that went through the pipeline")
EVENTS_STORED = Counter("correlator_events_stored_total", "Events written to the event store")
QUEUE_DEPTH = Gauge("correlator_queue_depth_events", "Events acknowledged but not yet processed")
QUEUE_CAPACITY = Gauge("correlator_queue_capacity_events", "Queue depth at which ingest answers 503")
JOURNAL_COMMIT_SECONDS = Histogram(
    "correlator_journal_commit_seconds",
    "Time of one durable group commit of the ingest journal",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
STORE_WRITE_SECONDS = Histogram(
    "correlator_store_write_seconds",
    "Time of one batched write to the event store",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
PIPELINE_LATENCY_SECONDS = Histogram(
    "correlator_pipeline_latency_seconds",
    "Time from an event's receipt to its storage",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
STAGE_ERRORS = Counter(
    "correlator_stage_errors_total",
    "Batches a pipeline stage failed on (events passed on unchanged)",
    ["stage"],
)
COLLECTOR_UP = Gauge("correlator_collector_up", "1 while a collector is running and healthy", ["collector"])
RETENTION_DELETED = Counter("correlator_retention_deleted_events_total", "Events removed by retention")
PG_MIGRATION_LOCK_WAITS = Counter(
    "correlator_pg_migration_lock_waits_total",
    "Times a PostgreSQL store's start-up migrations waited MIGRATION_LOCK_TIMEOUT for a lock another"
    " process held, then tried again",
)


def observe_many(histogram: Histogram, amount: float, n: int) -> None:
    """`histogram.observe(amount)` n times, in one step.

    prometheus-client has no weighted observe; this touches the same internals its `observe` does
    (a sum and one bucket per upper bound), which tests/unit/test_metrics.py checks against n calls.
    """
    histogram._sum.inc(amount * n)
    for i, bound in enumerate(histogram._upper_bounds):
        if amount <= bound:
            histogram._buckets[i].inc(n)
            break


COLLECT_ERRORS = Counter(
    "correlator_metrics_collect_errors_total",
    "Scrapes in which a collector of the daemon's own metrics failed and was left out (a bug: see the log)",
    ["collector"],
)

C = TypeVar("C")
M = TypeVar("M", bound=Metric)


def guarded(collect: Callable[[C], Iterable[M]]) -> Callable[[C], Iterator[M]]:
    """For `collect` of a custom collector: one that raises would turn every /metrics scrape into a
    500 for as long as its state stays bad, so its families are left out of that scrape instead,
    counted and logged (rate-limited), and every other metric is still served."""

    @functools.wraps(collect)
    def safe(self: C) -> Iterator[M]:
        name = type(self).__name__  # a handful of collector classes: a bounded label
        try:
            families = list(collect(self))
        except Exception as e:
            COLLECT_ERRORS.labels(name).inc()
            _limited.warning(f"collect:{name}", "metrics of %s left out of this scrape: %r", name, e)
            return iter(())
        return iter(families)

    return safe
