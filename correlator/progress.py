"""Is the pipeline moving? Seconds since the last progress while work waits, for /readyz and a gauge.

Progress is an acknowledged batch, or the queue found empty (nothing waits, so nothing is stuck).
A store that refuses every write, or a batch that never finishes, leaves work waiting without
progress: after `stall_after` seconds /readyz answers 503 (docs/operations.md "Stalled pipeline").
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client.metrics import Gauge

STALLED_SECONDS = Gauge(
    "correlator_pipeline_stalled_seconds",
    "Seconds since the pipeline last acknowledged a batch while events wait in the queue (0: moving or idle)",
)


class Progress:
    def __init__(
        self, waiting: Callable[[], int], stall_after: float, now: Callable[[], float] = time.monotonic
    ):
        self._waiting = waiting  # events accepted and not yet acknowledged
        self.stall_after = stall_after
        self._now = now
        self._mark = now()
        STALLED_SECONDS.set_function(self.stalled_seconds)

    def moved(self) -> None:
        self._mark = self._now()

    def stalled_seconds(self) -> float:
        if self._waiting() <= 0:
            self._mark = self._now()
            return 0.0
        return max(0.0, self._now() - self._mark)

    def stalled(self) -> bool:
        return self.stalled_seconds() > self.stall_after
