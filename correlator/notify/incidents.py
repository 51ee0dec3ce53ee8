"""Outbound incident notifications: each change notified by the incident service is rendered by the
notifier of every target it is routed to and handed to the outbox.

Bodies are rendered when the change is saved (a snapshot), then handed to an Outbox (outbox.py): one
queue and worker per target with retries, saved in outbox.db until sent, so a slow or dead receiver
never holds up the pipeline or another target, and a restart loses none. Alertmanager targets also
get their open incidents re-sent every `resend`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from prometheus_client.metrics import Counter, Gauge

from correlator.notify import targets
from correlator.notify.outbox import Endpoint, Meters, Outbox
from correlator.notify.targets import Module, NotifyTarget

if TYPE_CHECKING:
    from correlator.notify.alertmanager import Alertmanager

log = logging.getLogger(__name__)

NOTIFICATIONS = Counter(
    "correlator_incident_notifications_total",
    "Incident notifications by target and outcome (sent, failed after retries, expired, dropped: queue full)",
    ["target", "outcome"],
)

TARGETS = Gauge(
    "correlator_incident_notify_targets",
    "Incident notification targets configured, by notifier type (webhook, slack, email, pagerduty, alertmanager)",
    ["type"],
)

QUEUE_SIZE = 1000  # per target


class _Modules(Mapping[str, Module]):
    """`type:` of a target -> the module of its notifier, imported when a target names it: a process
    without targets (a replay, most commands) never loads the template engine or the mail client."""

    _NAMES = {
        kind: f"correlator.notify.{kind}"
        for kind in ("webhook", "slack", "email", "pagerduty", "alertmanager")
    }

    def __getitem__(self, kind: str) -> Module:
        return cast(Module, importlib.import_module(self._NAMES[kind]))

    def __iter__(self) -> Iterator[str]:
        return iter(self._NAMES)

    def __len__(self) -> int:
        return len(self._NAMES)


MODULES: Mapping[str, Module] = _Modules()


def parse_targets(raw: Any) -> dict[str, NotifyTarget]:
    """`incidents.notify` in correlator.yaml, each target parsed by its notifier module."""
    return targets.parse_targets(raw, MODULES)


def render(target: NotifyTarget, kind: str, doc: dict[str, Any]) -> bytes | None:
    """The request body for one target, by its notifier; None when it sends nothing for `kind`."""
    if target.channel is not None:
        return target.channel.render(kind, doc)
    from correlator.notify.webhook import substitute  # a target's module: imported once it exists

    return substitute(target.template, target.content_type, kind, doc)


def endpoint(target: NotifyTarget) -> Endpoint:
    """Where and how the outbox sends one target's notices."""
    return target.channel.endpoint(target) if target.channel is not None else targets.endpoint(target)


class Notifier:
    """Renders each notice for the targets that want it and queues it; one worker per target keeps
    a target's notices in order (open before resolve)."""

    def __init__(self, targets: dict[str, NotifyTarget], path: Path | None = None) -> None:
        self._targets = targets
        self._outbox = Outbox(
            {name: endpoint(t) for name, t in targets.items()},
            Meters(NOTIFICATIONS),
            label="incident notify",
            queue_size=QUEUE_SIZE,
            path=path,  # outbox.db; None: in memory only
        )
        self._alertmanagers: dict[str, Alertmanager] = {}
        if targets:  # only then: the notifier modules load the template engine
            from correlator.notify.alertmanager import Alertmanager

            self._alertmanagers = {
                name: t.channel for name, t in targets.items() if isinstance(t.channel, Alertmanager)
            }
        self._resend: list[asyncio.Task[None]] = []
        for kind in MODULES:
            TARGETS.labels(kind).set(sum(t.type == kind for t in targets.values()))

    @property
    def enabled(self) -> bool:
        return bool(self._targets)

    async def start(self) -> None:
        await self._outbox.start()
        if not self._resend:
            self._resend = [
                asyncio.create_task(self._resend_loop(name, am), name=f"incident notify:{name}:resend")
                for name, am in self._alertmanagers.items()
            ]

    def resume(self, docs: Iterable[dict[str, Any]]) -> None:
        """The active incidents at start-up: Alertmanager targets keep re-sending them (without
        this, their alerts would expire in Alertmanager after a restart until the next change)."""
        if not self._alertmanagers:
            return  # `docs` is lazy: nothing is rendered for nothing
        docs = list(docs)
        for name, am in self._alertmanagers.items():
            target = self._targets[name]
            for doc in docs:
                if target.match(doc):
                    am.open[str(doc.get("id", ""))] = (am.labels_of(doc), doc)

    def submit(self, kind: str, doc: dict[str, Any], extra_targets: tuple[str, ...] = ()) -> None:
        """Queue one notice for each target `kind` is routed to and each of `extra_targets`."""
        for name, target in self._targets.items():
            if target.wants(kind, doc) or name in extra_targets:
                body = render(target, kind, doc)
            elif (am := self._alertmanagers.get(name)) is not None and (
                kind in ("resolve", "close") or not target.match(doc)
            ):
                body = am.forget(doc)  # its alert ends even when not subscribed to the kind
            else:
                continue
            if body is not None:
                self._outbox.put(name, body)

    def resend_open(self, name: str) -> int:
        """Queue a re-send of every open incident of Alertmanager target `name`; how many. None while
        notices still wait for that target: a down Alertmanager must not fill its queue with copies
        (the alerts it missed are in the next round after it is back)."""
        if self._outbox.waiting(name):
            return 0
        bodies = self._alertmanagers[name].resend_bodies()
        for body in bodies:
            self._outbox.put(name, body)
        return len(bodies)

    async def drain(self, seconds: float) -> None:
        """Wait (bounded) until every queued notification has been tried."""
        await self._outbox.drain(seconds)

    async def stop(self, grace: float = 2.0) -> None:
        for task in self._resend:
            task.cancel()
        for task in self._resend:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._resend = []
        await self._outbox.aclose(grace)

    async def _resend_loop(self, name: str, am: Alertmanager) -> None:
        # Wall time on purpose: Alertmanager expires alerts by its own wall clock.
        while True:
            await asyncio.sleep(am.resend)
            try:
                self.resend_open(name)
            except Exception:
                log.exception("incident notify %s: re-sending open incidents failed", name)
