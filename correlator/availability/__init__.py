"""Availability management: up/down state of CIs and services from events, SLA figures for Prometheus.

The stage (availability/stage.py) sits in the pipeline; services come from the services file
(availability/model.py); figures are computed from the persisted outage history (docs/metrics.md).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from correlator.availability.model import ServiceModel, load_services, parse_services
from correlator.availability.settings import AvailabilitySettings, parse_settings

if TYPE_CHECKING:
    from correlator.availability.stage import EXPORTER, AvailabilityStage
    from correlator.availability.state import AvailabilityState

# Imported when first asked for: the services file's model is read by every process that loads
# rules (the service catalogue), the stage with its outage store only where it runs.
_LAZY = {
    "EXPORTER": "correlator.availability.stage",
    "AvailabilityStage": "correlator.availability.stage",
    "AvailabilityState": "correlator.availability.state",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EXPORTER",
    "AvailabilitySettings",
    "AvailabilityStage",
    "AvailabilityState",
    "ServiceModel",
    "load_services",
    "parse_services",
    "parse_settings",
]
