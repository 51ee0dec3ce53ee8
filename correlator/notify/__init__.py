"""Outbound delivery: the durable outbox (outbox.py, store.py), the notify stage of level-2 rules
(stage.py) and incident notifications (incidents.py) through one module per notifier: webhook,
slack, email, pagerduty, alertmanager.

The stage's names are still importable from here (`from correlator.notify import parse_targets`);
they load on first use so that importing one notifier does not pull in the pipeline.
"""

from __future__ import annotations

from typing import Any

_STAGE_NAMES = frozenset(
    {"NOTIFICATIONS", "Notify", "Target", "WebhookSender", "notify_stage", "parse_targets", "retry_delay"}
)


def __getattr__(name: str) -> Any:
    if name in _STAGE_NAMES:
        from correlator.notify import stage

        return getattr(stage, name)
    raise AttributeError(f"module 'correlator.notify' has no attribute {name!r}")
