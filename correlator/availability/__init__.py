"""Availability management: up/down state of CIs and services from events, SLA figures for Prometheus.

The stage (availability/stage.py) sits in the pipeline; services come from the services file
(availability/model.py); figures are computed from the persisted outage history (docs/metrics.md).
"""

from __future__ import annotations

from correlator.availability.model import ServiceModel, load_services, parse_services
from correlator.availability.settings import AvailabilitySettings, parse_settings
from correlator.availability.stage import EXPORTER, AvailabilityStage
from correlator.availability.state import AvailabilityState

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
