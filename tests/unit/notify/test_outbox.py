"""The shared webhook outbox against a real aiohttp server on 127.0.0.1: retries, the final-4xx rule,
Retry-After, a full queue, targets that cannot hold each other up, and notices that outlive a restart
(outbox.db: an Outbox closed and opened again on the same file is a restart)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator
from email.utils import formatdate
from pathlib import Path

import pytest
from aiohttp import web
from prometheus_client import Counter

from correlator.notify.notice import Notice
from correlator.notify.outbox import Endpoint, Meters, Outbox, retry_delay
from correlator.notify.store import OutboxStore
from tests.support.http import serve_posts
from tests.support.threads import no_thread_left

GUARD = 30.0  # seconds: only a hang guard, never a speed assertion


class Receiver:
    """Answers POST /{name}: statuses queued per name (then 200); a held name waits for `release`."""

    def __init__(self) -> None:
        self.answers: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self.bodies: dict[str, list[bytes]] = {}
        self.held: set[str] = set()
        self.waiting = asyncio.Event()  # a held request has arrived
        self.release = asyncio.Event()
        self.arrived: dict[str, asyncio.Event] = {}

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self.bodies.setdefault(name, []).append(await request.read())
        self.arrived.setdefault(name, asyncio.Event()).set()
        if name in self.held:
            self.waiting.set()
            await self.release.wait()
        queued = self.answers.get(name)
        status, headers = queued.pop(0) if queued else (200, {})
        return web.Response(status=status, headers=headers)

    def got(self, name: str) -> asyncio.Event:
        return self.arrived.setdefault(name, asyncio.Event())


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    async with serve_posts(rec.handle) as base:
        yield rec, base
        rec.release.set()  # a held request must not keep the server from closing


def meters() -> Meters:
    """Counters of this test only (not registered), so that tests never see each other's counts."""
    return Meters(
        Counter("test_outbox_outcomes", "", ["target", "outcome"], registry=None),
        Counter("test_outbox_attempts", "", ["target"], registry=None),
    )


def count(m: Meters, target: str, outcome: str) -> float:
    return m.outcomes.labels(target, outcome)._value.get()


def attempts(m: Meters, target: str) -> float:
    assert m.attempts is not None
    return m.attempts.labels(target)._value.get()


async def test_server_errors_are_retried_until_delivered(receiver: tuple[Receiver, str]) -> None:
    rec, base = receiver
    rec.answers["a"] = [(500, {}), (503, {})]
    m = meters()
    box = Outbox({"a": Endpoint("a", f"{base}/a", backoff=0.01)}, m, label="test", queue_size=10)
    await box.start()
    assert box.put("a", b'{"n": 1}')
    await box.drain(GUARD)
    await box.aclose()
    assert rec.bodies["a"] == [b'{"n": 1}'] * 3
    assert count(m, "a", "sent") == 1 and count(m, "a", "failed") == 0
    assert attempts(m, "a") == 3


async def test_a_client_error_is_final_but_408_and_429_are_retried(receiver: tuple[Receiver, str]) -> None:
    rec, base = receiver
    rec.answers["wrong"] = [(400, {})]
    rec.answers["busy"] = [(429, {}), (408, {})]
    m = meters()
    box = Outbox(
        {name: Endpoint(name, f"{base}/{name}", backoff=0.01) for name in ("wrong", "busy")},
        m,
        label="test",
        queue_size=10,
    )
    await box.start()
    box.put("wrong", b"x")
    box.put("busy", b"y")
    await box.drain(GUARD)
    await box.aclose()
    assert len(rec.bodies["wrong"]) == 1 and count(m, "wrong", "failed") == 1
    assert len(rec.bodies["busy"]) == 3 and count(m, "busy", "sent") == 1


async def test_gives_up_after_the_retries(receiver: tuple[Receiver, str]) -> None:
    rec, base = receiver
    rec.answers["down"] = [(502, {})] * 10
    m = meters()
    box = Outbox(
        {"down": Endpoint("down", f"{base}/down", retries=2, backoff=0.01)}, m, label="t", queue_size=1
    )
    await box.start()
    box.put("down", b"x")
    await box.drain(GUARD)
    await box.aclose()
    assert len(rec.bodies["down"]) == 3 and count(m, "down", "failed") == 1


async def test_retry_after_is_honoured_instead_of_the_backoff(receiver: tuple[Receiver, str]) -> None:
    """The backoff is an hour: delivery within the guard means the two Retry-Afters (0 s, a date
    already past) were waited instead."""
    rec, base = receiver
    past = formatdate(0, usegmt=True)
    rec.answers["slow"] = [(503, {"Retry-After": "0"}), (429, {"Retry-After": past})]
    m = meters()
    ep = Endpoint("slow", f"{base}/slow", backoff=3600, max_backoff=3600)
    box = Outbox({"slow": ep}, m, label="test", queue_size=10)
    await box.start()
    box.put("slow", b"x")
    await box.drain(GUARD)
    await box.aclose()
    assert len(rec.bodies["slow"]) == 3 and count(m, "slow", "sent") == 1


def test_retry_delay_doubles_is_capped_and_takes_retry_after_in_seconds_or_as_a_date() -> None:
    ep = Endpoint("x", "http://127.0.0.1:1/", backoff=1, max_backoff=10)
    assert [retry_delay(ep, a) for a in range(6)] == [1, 2, 4, 8, 10, 10]
    assert retry_delay(ep, 3, "2") == 2
    assert retry_delay(ep, 0, "3600") == 10  # capped: a receiver cannot park a worker for an hour
    assert retry_delay(ep, 0, formatdate(0, usegmt=True)) == 0  # a date already past: at once
    assert retry_delay(ep, 2, "soon") == 4  # unreadable: the backoff
    assert retry_delay(ep, 2, "nan") == 4


async def test_a_full_queue_drops_and_counts(receiver: tuple[Receiver, str]) -> None:
    rec, base = receiver
    m = meters()
    box = Outbox({"a": Endpoint("a", f"{base}/a")}, m, label="test", queue_size=2)
    assert box.put("a", b"1") and box.put("a", b"2")  # not started: nothing takes them out yet
    assert not box.put("a", b"3")
    assert count(m, "a", "dropped") == 1
    await box.start()
    await box.drain(GUARD)
    await box.aclose()
    assert rec.bodies["a"] == [b"1", b"2"] and count(m, "a", "sent") == 2


async def test_a_dead_target_does_not_delay_another(receiver: tuple[Receiver, str]) -> None:
    rec, base = receiver
    rec.held.add("dead")
    m = meters()
    box = Outbox(
        {
            "dead": Endpoint("dead", f"{base}/dead", timeout=3600, retries=0),
            "live": Endpoint("live", f"{base}/live"),
        },
        m,
        label="test",
        queue_size=10,
        workers=2,
    )
    await box.start()
    for i in range(5):  # more than the workers, so every worker of "dead" is stuck
        box.put("dead", str(i).encode())
    await asyncio.wait_for(rec.waiting.wait(), GUARD)
    box.put("live", b"x")
    await asyncio.wait_for(rec.got("live").wait(), GUARD)
    # "live" got its notice while both workers of "dead" still wait for an answer
    assert len(rec.bodies["dead"]) == 2 and count(m, "dead", "sent") == 0
    rec.release.set()
    await box.drain(GUARD)
    await box.aclose()
    assert count(m, "live", "sent") == 1 and count(m, "dead", "sent") == 5


# --- durability (outbox.db) ---------------------------------------------------------------------


async def saved(path: Path, box: str = "test") -> list[Notice]:
    """What a restart would find in the file."""
    store = OutboxStore(path, box)
    try:
        return await store.open()
    finally:
        await store.close()


async def leave(path: Path, *notices: Notice, box: str = "test") -> None:
    """Notices as a previous run left them."""
    store = OutboxStore(path, box)
    await store.open()
    await store.write(list(notices), [], [])
    await store.close()


async def test_an_outbox_that_cannot_be_read_is_left_closed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    await leave(path, Notice("n1", "a", b"{}", time.time()))
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("UPDATE notices SET headers = '{'")  # a row no release wrote: unreadable
    store = OutboxStore(path, "test")
    async with no_thread_left():
        with pytest.raises(ValueError):
            await store.open()


async def test_a_notice_queued_while_the_target_is_down_is_delivered_after_a_restart(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    rec, base = receiver
    rec.held.add("a")  # the receiver takes the request and never answers: down
    db = tmp_path / "outbox.db"
    ep = Endpoint("a", f"{base}/a", timeout=3600)
    box = Outbox({"a": ep}, meters(), label="test", queue_size=10, path=db)
    await box.start()
    assert box.put("a", b'{"page": "noc"}')
    await asyncio.wait_for(rec.waiting.wait(), GUARD)
    await box.aclose(grace=0)  # the restart: the attempt in flight is abandoned
    assert [n.body for n in await saved(db)] == [b'{"page": "noc"}']

    rec.release.set()  # the target is back
    m = meters()
    box = Outbox({"a": ep}, m, label="test", queue_size=10, path=db)
    await box.start()
    await box.drain(GUARD)
    await box.aclose()
    assert rec.bodies["a"] == [b'{"page": "noc"}'] * 2  # at least once: the first try never answered
    assert count(m, "a", "sent") == 1
    assert await saved(db) == []


async def test_a_delivered_notice_is_not_sent_again_after_a_restart(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    rec, base = receiver
    rec.answers["a"] = [(503, {"Retry-After": "0"})]  # one retry saved, then the final outcome
    db = tmp_path / "outbox.db"
    ep = Endpoint("a", f"{base}/a")
    box = Outbox({"a": ep}, meters(), label="test", queue_size=10, path=db)
    await box.start()
    box.put("a", b"1")
    await box.drain(GUARD)
    await box.aclose()
    assert rec.bodies["a"] == [b"1", b"1"] and await saved(db) == []

    m = meters()
    box = Outbox({"a": ep}, m, label="test", queue_size=10, path=db)
    await box.start()
    await box.drain(GUARD)
    await box.aclose()
    assert rec.bodies["a"] == [b"1", b"1"] and count(m, "a", "sent") == 0


async def test_attempts_made_before_a_restart_count_towards_the_retries(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    rec, base = receiver
    rec.answers["a"] = [(503, {})] * 5
    db = tmp_path / "outbox.db"
    await leave(db, Notice("n1", "a", b"x", time.time(), attempts=2))
    m = meters()
    box = Outbox({"a": Endpoint("a", f"{base}/a", retries=2)}, m, label="test", queue_size=10, path=db)
    await box.start()
    await box.drain(GUARD)
    await box.aclose()
    assert len(rec.bodies["a"]) == 1 and count(m, "a", "failed") == 1
    assert await saved(db) == []


async def test_a_notice_older_than_max_age_is_dropped_not_sent_late(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    rec, base = receiver
    db = tmp_path / "outbox.db"
    day = 86400.0
    await leave(
        db,
        Notice("old", "a", b"stale", time.time() - day - 60),  # the default max_age is a day
        Notice("new", "a", b"fresh", time.time() - day + 3600),
    )
    m = meters()
    box = Outbox({"a": Endpoint("a", f"{base}/a")}, m, label="test", queue_size=10, path=db)
    await box.start()
    await box.drain(GUARD)
    await box.aclose()
    assert rec.bodies["a"] == [b"fresh"]
    assert count(m, "a", "expired") == 1 and count(m, "a", "sent") == 1
    assert await saved(db) == []


async def test_notices_for_a_target_no_longer_configured_are_dropped_at_start(
    receiver: tuple[Receiver, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rec, base = receiver
    db = tmp_path / "outbox.db"
    await leave(db, Notice("g1", "gone", b"1", time.time()), Notice("g2", "gone", b"2", time.time()))
    await leave(db, Notice("k1", "kept", b"3", time.time()), box="other feature")
    m = meters()
    box = Outbox({"a": Endpoint("a", f"{base}/a")}, m, label="test", queue_size=10, path=db)
    await box.start()
    await box.drain(GUARD)
    await box.aclose()
    assert count(m, "gone", "dropped") == 2 and rec.bodies == {}
    assert [r.getMessage() for r in caplog.records if "no longer configured" in r.getMessage()] == [
        "test: dropped notices left for targets no longer configured: gone (2)"
    ]
    assert await saved(db) == [] and len(await saved(db, "other feature")) == 1  # not this box's


async def test_the_queue_stays_bounded_while_notices_wait_to_be_saved(tmp_path: Path) -> None:
    m = meters()
    box = Outbox(
        {"a": Endpoint("a", "http://127.0.0.1:1/a")}, m, label="test", queue_size=2, path=tmp_path / "o.db"
    )
    assert box.put("a", b"1") and box.put("a", b"2")
    assert not box.put("a", b"3") and count(m, "a", "dropped") == 1
    await box.aclose()
