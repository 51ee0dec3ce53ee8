"""What every API module shares: the application state key, JSON responses, and the push-back answer."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from correlator.collector import Collector
from correlator.errors import QueueFull, ShuttingDown
from correlator.queue import IngestQueue
from correlator.store import EventStore

if TYPE_CHECKING:
    from correlator.api.auth import TokenAuth
    from correlator.changes.service import ChangeService
    from correlator.incidents.service import IncidentService
    from correlator.ingest import Ingest
    from correlator.problems.service import ProblemService
    from correlator.progress import Progress


@dataclass
class AppState:
    store: EventStore
    queue: IngestQueue
    collectors: list[Collector] = field(default_factory=list)
    incidents: IncidentService | None = None
    changes: ChangeService | None = None
    problems: ProblemService | None = None
    auth: TokenAuth | None = None  # None or no tokens: the API is open (docs/api.md)
    progress: Progress | None = None  # the pipeline's progress, for /readyz (stalled)
    ingest: Ingest | None = None  # dead-letter retry puts the event back through it


STATE = web.AppKey("state", AppState)


def dumps_response(status: int, doc: object) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(doc), content_type="application/json")


SHUTDOWN_RETRY_AFTER = 5  # seconds: a restart, or the next process of the cluster taking over


def push_back(e: QueueFull | ShuttingDown) -> web.Response:
    """503 + Retry-After: the queue is full, the journal cannot write (each in its own words, so a
    disk full is never called a full queue) or the daemon is stopping. Nothing was accepted."""
    if isinstance(e, QueueFull):
        resp = dumps_response(503, {"error": e.answer})
        resp.headers["Retry-After"] = str(max(1, math.ceil(e.retry_after)))
    else:
        resp = dumps_response(503, {"error": "shutting down, retry later"})
        resp.headers["Retry-After"] = str(SHUTDOWN_RETRY_AFTER)
    return resp
