"""An in-process API (aiohttp test client) with incidents on SQLite and three tokens, one per role;
`itsm_app` adds changes and problems (the ITSM API and console tests)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from correlator import daemon
from correlator.api.app import make_app
from correlator.api.auth import TokenAuth, hash_token, parse_tokens
from correlator.api.common import AppState
from correlator.changes.service import ChangeService, Emit, Full
from correlator.changes.settings import ChangeSettings
from correlator.clock import Clock
from correlator.config import load_config
from correlator.incidents.service import IncidentService
from correlator.incidents.settings import parse_settings
from correlator.incidents.sqlite_store import SqliteIncidentStore
from correlator.problems.service import ProblemService
from correlator.problems.settings import ProblemSettings
from correlator.records.sqlite import SqliteRecordStore
from correlator.store.sqlite import SqliteEventStore

T0 = 1_800_000_000.0
TOKENS = {"viewer": "v-secret", "operator": "o-secret", "admin": "a-secret"}


def bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def token_config() -> dict[str, dict[str, str]]:
    return {f"{role}-token": {"role": role, "sha256": hash_token(t)} for role, t in TOKENS.items()}


@contextlib.asynccontextmanager
async def daemon_app(tmp_path: Path, **overrides: Any) -> AsyncIterator[web.Application]:
    """The application exactly as `correlator run` assembles it (collectors' routes included),
    with dotted-key configuration overrides; its stores closed afterwards."""
    config = load_config(None, {"storage.data_dir": str(tmp_path / "var"), **overrides})
    d = await daemon.build(config)
    try:
        yield d.app
    finally:
        await d.incidents.close()
        await d.changes.store.close()
        await d.queue.close()
        await d.store.close()


@contextlib.asynccontextmanager
async def itsm_app(
    tmp_path: Path,
    clock: Clock,
    settings: ChangeSettings,
    emit: Emit,
    ingest: Any = None,
    full: Full | None = None,
) -> AsyncIterator[TestClient]:
    """The API app with incidents, changes (`settings`, their events given to `emit`, `full` asked
    first) and problems
    on SQLite, three tokens; `ingest` takes dead-letter retries. The client carries the services
    (`incidents`, `changes`, `problems`, `events`) and the clock; every store closed afterwards."""
    events = SqliteEventStore(tmp_path / "events.db")
    await events.open()
    incidents = IncidentService(SqliteIncidentStore(tmp_path / "incidents.db"), parse_settings({}), clock)
    await incidents.open()
    records = SqliteRecordStore(tmp_path / "records.db")
    await records.open()
    changes = ChangeService(records, settings, clock, emit, incidents, full)
    await changes.open()
    problems = ProblemService(records, ProblemSettings(), clock, incidents)
    await problems.open()
    state = AppState(
        store=events, queue=None, incidents=incidents, changes=changes, problems=problems,  # type: ignore[arg-type]
        auth=parse_tokens(token_config()), ingest=ingest,
    )  # fmt: skip
    client = TestClient(TestServer(make_app(state, 1 << 20), host="127.0.0.1"))
    await client.start_server()
    client.incidents, client.changes, client.problems = incidents, changes, problems  # type: ignore[attr-defined]
    client.events, client.clock = events, clock  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        await client.close()
        await incidents.close()
        await records.close()
        await events.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


async def _client(tmp_path: Path, clock: Clock, auth: TokenAuth):
    events = SqliteEventStore(tmp_path / "events.db")
    await events.open()
    svc = IncidentService(SqliteIncidentStore(tmp_path / "incidents.db"), parse_settings({}), clock)
    await svc.open()
    app = make_app(AppState(store=events, queue=None, incidents=svc, auth=auth), 1 << 20)  # type: ignore[arg-type]
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return client, svc, events


@pytest.fixture
async def api(tmp_path, clock):
    client, svc, events = await _client(tmp_path, clock, parse_tokens(token_config()))
    client.svc = svc
    yield client
    await client.close()
    await svc.close()
    await events.close()


@pytest.fixture
async def open_api(tmp_path, clock):
    """The same API with no token configured: open (local make run)."""
    client, svc, events = await _client(tmp_path, clock, TokenAuth())
    yield client
    await client.close()
    await svc.close()
    await events.close()
