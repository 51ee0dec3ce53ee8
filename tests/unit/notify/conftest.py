"""Fixtures: an incident service on SQLite whose notifications go to real local receivers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from correlator.clock import Clock
from correlator.incidents.service import IncidentService
from correlator.incidents.settings import parse_settings
from correlator.incidents.sqlite_store import SqliteIncidentStore
from correlator.notify.incidents import Notifier
from tests.support.http import serve_posts
from tests.unit.incidents.conftest import T0

__all__ = ["T0"]


class Receiver:
    """Records what is POSTed; answers each request with the next of `answers` (then `status`)."""

    def __init__(self) -> None:
        self.got: list[tuple[str, Any, dict[str, str]]] = []  # path, parsed JSON body, headers
        self.answers: list[web.Response] = []
        self.status = 202
        self.check: Callable[[Any], str | None] | None = None  # an error text: answered with 400

    async def handle(self, req: web.Request) -> web.Response:
        body = orjson.loads(await req.read())
        if self.answers:
            return self.answers.pop(0)
        if self.check is not None and (problem := self.check(body)) is not None:
            return web.json_response({"status": "invalid event", "errors": [problem]}, status=400)
        self.got.append((req.path, body, dict(req.headers)))
        return web.Response(status=self.status)

    def bodies(self, path: str | None = None) -> list[Any]:
        return [b for p, b, _ in self.got if path is None or p == path]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    async with serve_posts(rec.handle, "/{tail:.*}") as base:
        yield rec, base


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
async def service(
    tmp_path: Path, clock: Clock
) -> AsyncIterator[Callable[[dict[str, Any]], Awaitable[IncidentService]]]:
    """service({notify: {...}}) -> an opened IncidentService on SQLite with its outbox.db in tmp_path;
    closed after the test."""
    opened: list[IncidentService] = []

    async def factory(raw: dict[str, Any]) -> IncidentService:
        settings = parse_settings(raw)
        notifier = Notifier(settings.notify, tmp_path / "outbox.db")  # durable, as in the daemon
        svc = IncidentService(SqliteIncidentStore(tmp_path / "incidents.db"), settings, clock, notifier)
        await svc.open()
        opened.append(svc)
        return svc

    yield factory
    for svc in opened:
        await svc.close()


def secret(tmp_path: Path, name: str, value: str) -> str:
    path = tmp_path / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return str(path)
