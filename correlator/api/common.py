"""What every API module shares: the application state key and JSON responses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson
from aiohttp import web

from correlator.collector import Collector
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
