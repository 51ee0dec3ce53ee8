"""The availability pipeline stage and its Prometheus exporter.

Watches every event for down/up signals of the CIs and resources that services are built on, keeps
service state, persists changes before the batch is acknowledged, and renders the figures at scrape.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

from correlator import metrics
from correlator.availability.db import AvailabilityDB
from correlator.availability.model import ServiceModel
from correlator.availability.settings import AvailabilitySettings, parse_settings
from correlator.availability.state import AvailabilityState, breached
from correlator.clock import Clock
from correlator.errors import ConfigError
from correlator.event import Event

if TYPE_CHECKING:  # the pipeline package imports this stage
    from correlator.catalogue import CatalogueHolder
    from correlator.config import Config
    from correlator.pipeline import StageContext

log = logging.getLogger(__name__)


class AvailabilityStage:
    name = "availability"

    def __init__(self, settings: AvailabilitySettings, model: ServiceModel, data_dir: Path) -> None:
        self.state = AvailabilityState(settings, model)
        self.path = data_dir / "availability.db"
        self.db: AvailabilityDB | None = None
        self.clock: Clock | None = None
        self._restored = False

    @classmethod
    def from_config(cls, config: Config, catalogue: CatalogueHolder | None) -> AvailabilityStage | None:
        """None when no services file is configured: there is nothing to be available. `catalogue`
        holds the services file for the whole daemon (correlator/catalogue.py)."""
        settings = parse_settings(config.availability)
        if settings.services_file is None:
            return None
        if catalogue is None:
            raise ValueError("availability.services_file is set: pass its catalogue (load_catalogue)")
        check_maintenance(settings, catalogue.current.model)
        return cls(settings, catalogue.current.model, config.storage.data_dir)

    async def use(self, model: ServiceModel, now: float) -> None:
        """Serve a reloaded services file from the next batch on (AvailabilityState.swap); services
        added back find the history persisted before their removal."""
        services: list[tuple[str, float]] = []
        outages: list[tuple[str, float, float | None]] = []
        if self.db is not None:
            _, services, outages = await self.db.load()
        self.state.swap(model, services, outages, now)
        await self._flush()

    async def open(self, clock: Clock) -> None:
        """Live mode: load the persisted history (replay never opens, so it never writes)."""
        self.db = AvailabilityDB(self.path)
        await self.db.open()
        try:
            conds, services, outages = await self.db.load()
            self.state.restore(conds, services, outages, clock.now())
            self._restored = True
            await self._flush()
        except BaseException:
            await self.db.close()
            raise
        self.clock = clock
        EXPORTER.source = self
        log.info(
            "availability: %d services, %d CIs tracked from %s",
            len(self.state.model.services),
            len(self.state.model.cis),
            self.path,
        )

    async def close(self) -> None:
        if EXPORTER.source is self:
            EXPORTER.source = None
        if self.db is not None:
            await self.db.close()
            self.db = None

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        if not events:
            return events
        now = ctx.clock.now()
        if not self._restored:
            self.state.restore([], [], [], min(e.time for e in events))
            self._restored = True
        observe = self.state.observe
        for ev in events:
            observe(ev, now)
        await self._flush()
        return events

    async def _flush(self) -> None:
        ops, self.state.ops = self.state.ops, []  # a reload may queue more while this one is written
        if self.db is None or not ops:
            return
        try:
            await self.db.apply(ops)
        except BaseException:
            # Kept: the next batch retries them, and the stage error is counted meanwhile.
            self.state.ops[:0] = ops
            raise


def check_maintenance(settings: AvailabilitySettings, model: ServiceModel) -> None:
    """Raises ConfigError when `availability.maintenance` names a service the model does not define."""
    for m in settings.maintenance:
        unknown = sorted((m.services or frozenset()) - set(model.services))
        if unknown:
            raise ConfigError(
                f"{m.where}'availability.maintenance': unknown service '{unknown[0]}'"
                f" (not in {settings.services_file})"
            )


class AvailabilityExporter(Collector):
    """Computes every availability figure from the persisted history at scrape time."""

    source: AvailabilityStage | None = None

    @metrics.guarded
    def collect(self) -> Iterator[Any]:
        src = self.source
        if src is None or src.clock is None:
            return
        st = src.state
        figs = st.figures(src.clock.now())
        ci_up = GaugeMetricFamily(
            "correlator_ci_up", "1 while the CI has no active down condition", labels=["ci"]
        )
        for ci in st.model.cis:
            ci_up.add_metric([ci], 1.0 if st.ci_up(ci) else 0.0)
        svc_up = GaugeMetricFamily("correlator_service_up", "1 while the service is up", labels=["service"])
        outages = CounterMetricFamily(
            "correlator_outages", "Service outages (planned maintenance excluded)", labels=["service"]
        )
        seconds = CounterMetricFamily(
            "correlator_outage_seconds",
            "Service downtime in seconds, the open outage included (maintenance excluded)",
            labels=["service"],
        )
        target = GaugeMetricFamily(
            "correlator_sla_target_ratio", "SLA availability target", labels=["service"]
        )
        ratio = GaugeMetricFamily(
            "correlator_availability_ratio",
            "Availability over the SLA window (maintenance excluded; 1 = always up)",
            labels=["service", "window"],
        )
        breach = GaugeMetricFamily(
            "correlator_sla_breach",
            "1 while availability over the window is below the SLA target",
            labels=["service", "window"],
        )
        mtbf = GaugeMetricFamily(
            "correlator_mtbf_seconds",
            "Mean time between failures over the window (uptime / outages)",
            labels=["service", "window"],
        )
        mtrs = GaugeMetricFamily(
            "correlator_mtrs_seconds",
            "Mean time to restore service over the window (downtime / outages)",
            labels=["service", "window"],
        )
        for name, f in figs.items():
            svc_up.add_metric([name], 1.0 if f.up else 0.0)
            outages.add_metric([name], f.outages)
            seconds.add_metric([name], f.outage_seconds)
            target.add_metric([name], f.target)
            for window, w in f.windows.items():
                if math.isnan(w.ratio):
                    continue
                ratio.add_metric([name, window], w.ratio)
                breach.add_metric([name, window], breached(w, f.target))
                if w.outages:
                    mtbf.add_metric([name, window], w.mtbf)
                    mtrs.add_metric([name, window], w.mtrs)
        yield from (ci_up, svc_up, outages, seconds, target, ratio, breach, mtbf, mtrs)

    def describe(self) -> Iterator[Any]:
        return iter(())


EXPORTER = AvailabilityExporter()
REGISTRY.register(EXPORTER)
