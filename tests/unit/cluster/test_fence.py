"""Fencing of PostgreSQL writes (cluster/fence.py) against the tests' PostgreSQL: a worker taking a
partition that was not handed over fences its previous owner; what that owner writes afterwards is
refused, the ingest processes' writes never are, and a hand-over fences no one."""

from __future__ import annotations

import asyncio
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import pytest

from correlator.cluster.fence import Owners, worker_dsn
from correlator.event import Event
from correlator.incidents.pg_store import PgIncidentStore
from correlator.store.faults import fenced
from correlator.store.postgres import PgEventStore
from tests.support.postgres import pg_dsn, reset_pg

__all__ = ["pg_dsn"]
asyncpg = pytest.importorskip("asyncpg")


def test_a_worker_dsn_names_the_process_and_keeps_the_rest() -> None:
    dsn = worker_dsn("postgresql://u:pw@db:5432/corr?sslmode=require&application_name=x", "w" * 80)
    parts = urllib.parse.urlsplit(dsn)
    query = dict(urllib.parse.parse_qsl(parts.query))
    assert parts.netloc == "u:pw@db:5432" and parts.path == "/corr" and query["sslmode"] == "require"
    assert query["application_name"].startswith("cw:www") and len(query["application_name"]) <= 63
    assert worker_dsn("postgresql://db/corr", "w") != worker_dsn("postgresql://db/corr", "w")  # per start


@pytest.fixture
async def stores(pg_dsn: str) -> AsyncIterator[dict[str, PgEventStore]]:
    """The event store of two workers and of an ingest process, on one migrated database."""
    await reset_pg(pg_dsn)
    incidents = PgIncidentStore(pg_dsn)  # the fenced tables must exist: incidents, incident_log
    await incidents.open()
    out = {"a": PgEventStore(worker_dsn(pg_dsn, "a")), "b": PgEventStore(worker_dsn(pg_dsn, "b"))}
    out["ingest"] = PgEventStore(pg_dsn)
    for s in out.values():
        await s.open()
    yield out
    for s in out.values():
        await s.close()
    await incidents.close()


def ev(n: int) -> Event:
    return Event(f"e{n}", 1.0, 1.0, "test", "h1", "t")


async def refused(store: PgEventStore, n: int, folded: bool = False) -> bool:
    """Whether writing event `n` (or, `folded`, keeping its id as a repeat folded away) is refused."""
    errors: list[Exception] = []
    for _ in range(5):  # a session the fence ended first fails as a lost connection, then is replaced
        try:
            if folded:
                await store.fold([], [ev(n)])
            else:
                await store.write([ev(n)])
            return False
        except Exception as e:
            if fenced(e):
                return True
            errors.append(e)
    raise AssertionError(f"neither written nor refused: {errors}")


async def test_the_previous_owner_is_refused_once_another_worker_took_its_partition(
    stores: dict[str, Any],
) -> None:
    a, b, ingest = stores["a"], stores["b"], stores["ingest"]
    await Owners(a).claim(0)
    await Owners(a).claim(1)
    assert not await refused(a, 1)
    await Owners(b).claim(1)  # a paused past its lease: b takes partition 1
    assert await refused(a, 2)  # every write of a, whichever partition
    assert await refused(a, 6, folded=True)  # the fold's statement writes `events` too
    assert not await refused(b, 3)
    assert not await refused(b, 7, folded=True)
    assert not await refused(ingest, 4)  # not a worker: never checked
    assert await b.known(["e1", "e2", "e3", "e4", "e6", "e7"]) == {"e1", "e3", "e4", "e7"}
    await Owners(a).claim(2)  # a rejoins (its pipeline settled): it lifts its own mark
    assert not await refused(a, 5)


async def test_a_partition_handed_over_fences_no_one(stores: dict[str, Any]) -> None:
    a, b = stores["a"], stores["b"]
    owners_a = Owners(a)
    await owners_a.claim(0)
    await owners_a.release(0)  # SIGTERM or rebalancing
    await Owners(b).claim(0)
    assert not await refused(a, 1)
    assert not await refused(b, 2)


async def identity(store: PgEventStore) -> str:
    return str(await store.pool.fetchval("SELECT current_setting('application_name')"))


async def members(store: PgEventStore) -> list[str]:
    rows = await store.pool.fetch("SELECT member FROM cluster_members ORDER BY member")
    return [r["member"] for r in rows]


async def test_rows_of_workers_gone_are_swept_and_a_live_one_stays(
    stores: dict[str, Any], pg_dsn: str
) -> None:
    """A worker's identity is new at each start: without a sweep, one row per start would stay.
    A claim deletes the rows of identities that own no partition and have no session; a worker
    with sessions keeps its row even when it owns nothing at the moment."""
    a, b = stores["a"], stores["b"]
    gone = PgEventStore(worker_dsn(pg_dsn, "gone"))
    await gone.open()
    for store, p in ((gone, 0), (a, 1)):
        owners = Owners(store)
        await owners.claim(p)
        await owners.release(p)  # handed over: SIGTERM, or rebalancing
    gone_id = await identity(gone)
    await gone.close()  # that worker's process ended
    await sessions_end(b, gone_id)  # its server processes exit a moment after the client closes
    await Owners(b).claim(0)
    assert await members(b) == sorted([await identity(a), await identity(b)])
    assert not await refused(a, 1)  # a, alive, is still allowed


async def sessions_end(store: PgEventStore, member: str) -> None:
    """Until the server lists no session of `member` (a closed client's backend exits by itself)."""
    sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1"
    async with asyncio.timeout(30):
        while await store.pool.fetchval(sql, member):
            await asyncio.sleep(0.01)


async def test_a_sweep_after_a_fence_keeps_a_worker_that_entered_meanwhile(
    stores: dict[str, Any], pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fence reads pg_stat_activity in the claim's transaction; a worker whose session starts
    after that read and enters the list before the sweep is alive: its row stays."""
    a, b = stores["a"], stores["b"]
    await Owners(a).claim(0)  # a then pauses past its lease: b fences it
    late_dsn = worker_dsn(pg_dsn, "late")
    late_id = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(late_dsn).query))["application_name"]
    fence = Owners._fence
    late: list[Any] = []

    async def fence_then_start(self: Owners, conn: Any, member: str, p: int) -> None:
        await fence(self, conn, member, p)
        # A worker starting now: its first session, and its row (it takes a partition next).
        late.append(await asyncpg.connect(late_dsn))
        await late[0].execute("INSERT INTO cluster_members(member, fenced) VALUES ($1, false)", late_id)

    monkeypatch.setattr(Owners, "_fence", fence_then_start)
    try:
        await Owners(b).claim(0)
        assert late_id in await members(b)
    finally:
        for conn in late:
            await conn.close()
