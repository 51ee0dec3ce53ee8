"""One broker connection: persistent session, reconnect with capped backoff, ack after durable.

Messages are taken in batches (whatever arrived while the previous batch was being made durable),
decoded, emitted, and only then acknowledged: PUBACK leaves after `ctx.emit` returned, so the
broker keeps every message the daemon has not made durable (QoS 2 is subscribed as QoS 1 for that
reason, see `_session`). A full queue is waited out (no ack, nothing dropped); the broker's
in-flight window then throttles it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import ssl
import time
from typing import Any, cast

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.client import MQTTMessage
from prometheus_client.metrics import Counter, Gauge

from collectors.mqtt import fastread
from collectors.mqtt.decode import Decoder, Malformed
from collectors.mqtt.settings import BrokerSettings
from correlator import metrics
from correlator.collector import DeadLetterSink, Emit
from correlator.deadletter import JOURNAL_REJECTED
from correlator.errors import QueueFull, ShuttingDown
from correlator.event import Event
from correlator.logs import RateLimitedLog

log = logging.getLogger(__name__)
_ratelog = RateLimitedLog(log)

MQTT_CONNECTED = Gauge("correlator_mqtt_connected", "1 while connected to the MQTT broker", ["broker"])
MQTT_MESSAGES = Counter("correlator_mqtt_messages_total", "MQTT messages received", ["broker"])
MQTT_CONNECTS = Counter(
    "correlator_mqtt_connects_total", "MQTT connection attempts, by outcome", ["broker", "outcome"]
)
MQTT_PUSHBACK = Counter(
    "correlator_mqtt_pushback_total",
    "Batches held unacknowledged because ingest pushed back (queue full or journal unable to write)",
    ["broker"],
)


_ROUTE_CACHE = 10_000
_PIPELINE = 4  # batches being made durable at once per connection
EMIT_TRIES = 5  # failures (other than push-back) before a group is dead-lettered (about 1 s of tries)
_UNSEEN = object()
_sleep = asyncio.sleep  # every backoff waits through this name, so tests can step it without waiting


class BrokerConnection:
    def __init__(
        self,
        settings: BrokerSettings,
        decoders: list[Decoder],
        emit: Emit,
        dead_letter: DeadLetterSink | None = None,
    ) -> None:
        self.settings = settings
        self.decoders = decoders
        self._emit = emit
        self._dead_letter = dead_letter
        self.connected = False
        self._source = f"mqtt:{settings.name}"
        self._gauge = MQTT_CONNECTED.labels(settings.name)
        self._gauge.set(0)
        self._messages = MQTT_MESSAGES.labels(settings.name)
        self._rejected: dict[tuple[str, str], Any] = {}
        self._routes: dict[str, tuple[Decoder, dict[str, str]] | None] = {}

    async def run(self) -> None:
        """Connect, consume, and reconnect forever (until cancelled or the daemon shuts down)."""
        s = self.settings
        delay = s.reconnect_min
        while True:
            try:
                await self._session()
                return
            except ShuttingDown:
                return
            except aiomqtt.MqttError as e:
                if self.connected:
                    delay = s.reconnect_min  # it did work: start the backoff again
                    log.warning("mqtt %s: connection lost: %s", s.name, e)
                    MQTT_CONNECTS.labels(s.name, "lost").inc()
                elif _credentials_refused(e):
                    # Not a network blip: it will not pass until someone changes the password on one
                    # side, so it is an error, and it names what to check (never the password itself).
                    _ratelog.error(
                        f"auth:{s.name}",
                        "mqtt %s: %s:%d refused the credentials of user %r (%s): check username and"
                        " password/password_file of this broker, and the broker's password file and"
                        " ACL; retrying with backoff (at most every %gs)",
                        s.name,
                        s.host,
                        s.port,
                        s.username,
                        e,
                        s.reconnect_max,
                    )
                    MQTT_CONNECTS.labels(s.name, "not_authorized").inc()
                else:
                    _ratelog.warning(
                        f"connect:{s.name}", "mqtt %s: cannot connect to %s:%d: %s", s.name, s.host, s.port, e
                    )
                    MQTT_CONNECTS.labels(s.name, "failed").inc()
            except Exception:
                # A bug or an unexpected library error must not end collection for good.
                log.exception("mqtt %s: unexpected error; reconnecting", s.name)
                MQTT_CONNECTS.labels(s.name, "lost" if self.connected else "failed").inc()
            finally:
                self.connected = False
                self._gauge.set(0)
            # Full jitter keeps many daemons from hammering a broker that just came back in step.
            await _sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, s.reconnect_max)

    async def _session(self) -> None:
        s = self.settings
        # paho's own messages go straight into our inbox: aiomqtt's Message/Topic wrappers cost
        # more per message than the decoding, and we need the batch, not an async iterator.
        inbox: asyncio.Queue[MQTTMessage] = asyncio.Queue()
        client = aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=s.password,
            identifier=s.client_id,
            clean_session=s.clean_session,
            keepalive=max(1, int(s.keepalive)),
            tls_context=_tls_context(s),
            tls_insecure=True if s.tls is not None and s.tls.insecure else None,
            queue_type=cast(Any, lambda maxsize=0: inbox),
            timeout=10,
        )
        paho = _manual_ack(client)
        paho.on_message = lambda _client, _userdata, message: self._receive(inbox, message)
        if s.tls is None:
            fastread.install(paho)
        async with client:
            self.connected = True
            self._gauge.set(1)
            MQTT_CONNECTS.labels(s.name, "connected").inc()
            log.info("mqtt %s: connected to %s:%d as %s", s.name, s.host, s.port, s.client_id)
            filters: dict[str, int] = {}
            for d in self.decoders:
                # QoS 2 is subscribed as QoS 1: paho answers a QoS 2 PUBLISH with PUBREC on
                # receipt, which hands the message over before it is durable; at QoS 1 the
                # PUBACK waits for the journal. (Delivery QoS is min(publish, subscription).)
                qos = min(d.sub.qos, 1)
                filters[d.sub.topic.filter] = max(filters.get(d.sub.topic.filter, 0), qos)
            await client.subscribe(list(filters.items()))
            messages = client.messages  # its __anext__ raises MqttError when the connection drops
            # Batches are committed concurrently (the journal's group commit joins them) but
            # acknowledged strictly in arrival order, as MQTT requires.
            commits: collections.deque[asyncio.Task[None]] = collections.deque()
            try:
                while True:
                    batch: list[MQTTMessage] = [cast(MQTTMessage, await anext(messages))]
                    while len(batch) < s.max_batch:
                        try:
                            batch.append(inbox.get_nowait())
                        except asyncio.QueueEmpty:
                            break
                    self._messages.inc(len(batch))
                    groups = self._decode(batch)
                    previous = commits[-1] if commits else None
                    commits.append(asyncio.create_task(self._commit(groups, batch, paho, previous)))
                    while commits and (len(commits) > _PIPELINE or commits[0].done()):
                        await commits.popleft()
            finally:
                for task in commits:
                    task.cancel()

    async def _commit(
        self,
        groups: dict[str, list[Event]],
        batch: list[MQTTMessage],
        paho: Any,
        previous: asyncio.Task[None] | None,
    ) -> None:
        """Make a batch durable, wait for the batch before it, then acknowledge it."""
        if groups:
            await self._emit_durably(groups)
        if previous is not None:
            await previous  # raises if it failed: then this batch is not acknowledged either
        for m in batch:
            if m.qos:
                paho.ack(m.mid, m.qos)

    def _receive(self, inbox: asyncio.Queue[MQTTMessage], message: MQTTMessage) -> None:
        """paho's on_message. QoS 1/2 are bounded by the broker's in-flight window; QoS 0 has no
        flow control, so beyond `max_buffered_qos0` waiting messages they are dropped and counted
        rather than growing memory until the daemon dies."""
        if message.qos == 0 and inbox.qsize() >= self.settings.max_buffered_qos0:
            self._reject(self._source, "overload")
            return
        inbox.put_nowait(message)

    def _route(self, topic: str) -> tuple[Decoder, dict[str, str]] | None:
        """The first subscription matching `topic`, with its levels (cached: devices repeat topics)."""
        hit = self._routes.get(topic, _UNSEEN)
        if hit is not _UNSEEN:
            return hit  # type: ignore[return-value]
        route = None
        for d in self.decoders:
            levels = d.sub.topic.match(topic)
            if levels is not None:
                route = (d, levels)
                break
        if len(self._routes) >= _ROUTE_CACHE:
            self._routes.clear()
        self._routes[topic] = route
        return route

    def _decode(self, batch: list[MQTTMessage]) -> dict[str, list[Event]]:
        groups: dict[str, list[Event]] = {}
        received = time.time()
        for m in batch:
            try:
                topic = m.topic
            except UnicodeDecodeError:
                self._reject(self._source, "not_utf8")
                continue
            route = self._route(topic)
            if route is None:
                self._reject(self._source, "no_subscription")
                continue
            d, levels = route
            if m.retain and d.tracker is None:
                continue  # replayed at every (re)subscription: not a new occurrence
            try:
                ev = d.decode(topic, levels, bytes(m.payload), received)
            except Malformed as e:
                self._reject(d.source, e.reason)
                _ratelog.warning(
                    f"{d.source}:{e.reason}", "%s: dropped message on %r: %s", d.source, topic[:200], e
                )
                continue
            if ev is not None:
                group = groups.get(d.source)
                if group is None:
                    group = groups[d.source] = []
                group.append(ev)
        return groups

    async def _emit_durably(self, groups: dict[str, list[Event]]) -> None:
        """Emit every group; on push-back wait and retry the groups not yet durable (never drop).

        Push-back (a full queue, a full disk) is waited out however long it lasts. Any other
        failure is retried EMIT_TRIES times; then the group is set aside in the dead-letter table
        and acknowledged, so one message the journal refuses never holds up those behind it."""
        pending = dict(groups)
        wait = 0.05
        failures: dict[str, int] = {}
        while pending:
            names = list(pending)
            results = await asyncio.gather(
                *(self._emit(pending[n], n) for n in names), return_exceptions=True
            )
            retry_after = 0.0
            for name, result in zip(names, results, strict=True):
                if result is None:
                    del pending[name]
                elif isinstance(result, ShuttingDown):
                    raise result
                elif isinstance(result, QueueFull):
                    retry_after = max(retry_after, result.retry_after)
                elif isinstance(result, Exception):
                    failures[name] = failures.get(name, 0) + 1
                    if failures[name] >= EMIT_TRIES and await self._set_aside(pending[name], result):
                        del pending[name]
                        continue
                    log.error("mqtt %s: emit failed, retrying: %s", self.settings.name, result)
                    retry_after = max(retry_after, wait)
                else:
                    raise result  # CancelledError and friends
            if pending:
                MQTT_PUSHBACK.labels(self.settings.name).inc()
                await _sleep(min(retry_after, 5.0))
                wait = min(wait * 2, 5.0)

    async def _set_aside(self, events: list[Event], error: Exception) -> bool:
        """Dead-letter a group emit keeps refusing; False (keep retrying, unacknowledged) if that fails too."""
        if self._dead_letter is None:
            return False
        try:
            await self._dead_letter(events, JOURNAL_REJECTED, error)
        except Exception as e:
            log.error("mqtt %s: cannot set aside %d events: %s", self.settings.name, len(events), e)
            return False
        log.error(
            "mqtt %s: %d events refused %d times; dead-lettered: %s",
            self.settings.name,
            len(events),
            EMIT_TRIES,
            error,
        )
        return True

    def _reject(self, source: str, reason: str) -> None:
        child = self._rejected.get((source, reason))
        if child is None:
            child = self._rejected[(source, reason)] = metrics.EVENTS_REJECTED.labels(source, reason)
        child.inc()


# CONNACK refusals for credentials: MQTT 3.1.1 return codes 4 and 5, and the MQTT 5 reason codes
# paho maps them to (134 bad user name or password, 135 not authorized).
_AUTH_REFUSED = {4, 5, 134, 135}


def _credentials_refused(e: aiomqtt.MqttError) -> bool:
    rc = getattr(e, "rc", None)
    return isinstance(e, MqttConnectError) and getattr(rc, "value", rc) in _AUTH_REFUSED


def _manual_ack(client: aiomqtt.Client) -> Any:
    """Switch the underlying paho client to manual acks; aiomqtt 2.5 has no public switch for it."""
    paho = getattr(client, "_client", None)
    if paho is None or not hasattr(paho, "manual_ack_set") or not hasattr(paho, "ack"):
        raise RuntimeError("this aiomqtt/paho-mqtt version offers no manual acks; need paho-mqtt >= 2")
    paho.manual_ack_set(True)
    return paho


def _tls_context(s: BrokerSettings) -> ssl.SSLContext | None:
    if s.tls is None:
        return None
    ctx = ssl.create_default_context(cafile=str(s.tls.ca_file) if s.tls.ca_file else None)
    if s.tls.cert_file is not None and s.tls.key_file is not None:
        ctx.load_cert_chain(str(s.tls.cert_file), str(s.tls.key_file))
    if s.tls.insecure:
        ctx.check_hostname = False
    return ctx
