"""One MQTT message -> an Event (or nothing, for telemetry without a threshold crossing).

Malformed payloads raise `Malformed` with a short bounded `reason` for the metric label and a
message for the (rate-limited) log; the subscription carries on with the next message.
"""

from __future__ import annotations

import math

import orjson

from collectors.mqtt.settings import SubscriptionSettings
from collectors.mqtt.telemetry import TelemetryTracker
from correlator import door, jsonpath
from correlator.errors import FieldError
from correlator.event import Event

MAX_PAYLOAD_BYTES = 256 * 1024


class Malformed(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Decoder:
    """Decodes the messages of one subscription."""

    def __init__(self, sub: SubscriptionSettings) -> None:
        self.sub = sub
        self.source = f"mqtt:{sub.name}"
        self.tracker = TelemetryTracker(sub.name, sub.telemetry) if sub.telemetry is not None else None

    def decode(self, topic: str, levels: dict[str, str], payload: bytes, received: float) -> Event | None:
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise Malformed("too_large", f"payload of {len(payload)} bytes (limit {MAX_PAYLOAD_BYTES})")
        doc: object
        if self.sub.format == "json":
            try:
                doc = orjson.loads(payload)
            except orjson.JSONDecodeError as e:
                raise Malformed("malformed_json", f"malformed JSON: {e}") from None
        else:
            try:
                doc = payload.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                raise Malformed("not_utf8", f"payload is not UTF-8 text: {e}") from None
        if self.tracker is not None:
            return _checked(self._telemetry(doc, levels, received))
        try:
            if self.sub.format == "json":
                if not isinstance(doc, dict):
                    raise Malformed("not_object", f"expected a JSON object, got {type(doc).__name__}")
                event = self.sub.mapping.build(doc, self.source, received, levels)
            else:
                event = self.sub.mapping.build({}, self.source, received, levels)
                if not event.message:
                    event.message = str(doc)[:16384]
        except FieldError as e:
            raise Malformed("invalid_field", f"field {e.field!r}: {e.message}") from None
        event.attributes.setdefault("topic", topic)
        return _checked(event)

    def _telemetry(self, doc: object, levels: dict[str, str], received: float) -> Event | None:
        assert self.tracker is not None and self.sub.telemetry is not None
        path = self.sub.telemetry.value
        raw = doc if path is None else jsonpath.get(doc, path)
        try:
            value = float(raw) if not isinstance(raw, bool) else math.nan  # type: ignore[arg-type]
        except (TypeError, ValueError):
            where = "the payload" if path is None else jsonpath.render(path)
            raise Malformed("not_a_number", f"{where} is not a number: {str(raw)[:80]!r}") from None
        if not math.isfinite(value):
            raise Malformed("not_a_number", f"value is not a finite number: {raw!r}")
        try:
            event = self.sub.mapping.build(
                doc if isinstance(doc, dict) else {}, self.source, received, levels
            )
        except FieldError as e:
            raise Malformed("invalid_field", f"field {e.field!r}: {e.message}") from None
        _checked(event)  # before the tracker keeps a series for it
        try:
            return self.tracker.sample(event, value)
        except OverflowError as e:
            raise Malformed("too_many_series", str(e)) from None


def _checked(event: Event | None) -> Event | None:
    """The door (correlator/door.py): a refused message is counted and acknowledged like any
    malformed one, so a poison message never blocks the subscription behind it."""
    if event is not None:
        try:
            door.check(event)
        except door.Refused as e:
            raise Malformed(e.reason, f"field {e.field!r}: {e.message}") from None
    return event
