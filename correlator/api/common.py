"""What every API module shares: the application state key and JSON responses."""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from aiohttp import web

from correlator.collector import Collector
from correlator.queue import IngestQueue
from correlator.store import EventStore


@dataclass
class AppState:
    store: EventStore
    queue: IngestQueue
    collectors: list[Collector] = field(default_factory=list)


STATE = web.AppKey("state", AppState)


def dumps_response(status: int, doc: object) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json")
