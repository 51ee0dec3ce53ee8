"""The outbound webhook sender against a real local aiohttp server: retries, backoff cap, give-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from correlator.clock import Clock
from correlator.config import Config, ConfigError, CorrelationConfig, StorageConfig
from correlator.event import Event
from correlator.notify.stage import (
    NOTIFICATIONS,
    Notify,
    Target,
    WebhookSender,
    notify_stage,
    parse_targets,
    retry_delay,
)
from correlator.pipeline import StageContext
from correlator.responses import IncidentRequest, NotifyRequest
from tests.support.daemon import free_port
from tests.support.http import serve_posts


class Receiver:
    def __init__(self) -> None:
        self.answers: list[int] = []  # statuses to give, in order; then 200
        self.bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        self.headers.append(dict(request.headers))
        status = self.answers.pop(0) if self.answers else 200
        return web.Response(status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    async with serve_posts(rec.handle, "/hook") as base:
        yield rec, f"{base}/hook"


def request(target: str = "noc") -> NotifyRequest:
    ev = Event("e1", 0.0, 0.0, "test", "r1", "linkDown")
    return NotifyRequest(target, ev, "rule", orjson.dumps({"hello": "noc"}))


def counted(target: str, outcome: str) -> float:
    return NOTIFICATIONS.labels(target, outcome)._value.get()


async def test_delivers_after_server_errors_with_retries(receiver: tuple[Receiver, str]) -> None:
    rec, url = receiver
    rec.answers = [500, 503]
    sender = WebhookSender({"noc": Target("noc", url, backoff=0.01, headers={"X-Token": "t"})})
    await sender.start()
    before = counted("noc", "sent")
    assert sender.submit(request())
    await sender.drain()
    await sender.aclose()
    assert len(rec.bodies) == 3
    assert orjson.loads(rec.bodies[-1]) == {"hello": "noc"}
    assert rec.headers[-1]["X-Token"] == "t"
    assert counted("noc", "sent") == before + 1


async def test_gives_up_after_the_retries_and_never_retries_a_client_error(
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    rec.answers = [500] * 10
    sender = WebhookSender(
        {"bad": Target("bad", url, retries=2, backoff=0.01), "wrong": Target("wrong", url, backoff=0.01)}
    )
    await sender.start()
    before = counted("bad", "failed")
    sender.submit(request("bad"))
    await sender.drain()
    assert len(rec.bodies) == 3 and counted("bad", "failed") == before + 1
    rec.answers = [400]
    sender.submit(request("wrong"))
    await sender.drain()
    await sender.aclose()
    assert len(rec.bodies) == 4


async def test_unreachable_target_fails_without_crashing() -> None:
    port = free_port()
    sender = WebhookSender({"gone": Target("gone", f"http://127.0.0.1:{port}/x", retries=1, backoff=0.01)})
    await sender.start()
    before = counted("gone", "failed")
    sender.submit(request("gone"))
    await sender.drain()
    await sender.aclose()
    assert counted("gone", "failed") == before + 1


def test_backoff_doubles_and_is_capped_and_retry_after_wins() -> None:
    t = Target("x", "http://127.0.0.1:1/", backoff=1, max_backoff=10)
    assert [retry_delay(t, a) for a in range(6)] == [1, 2, 4, 8, 10, 10]
    assert retry_delay(t, 0, "3") == 3
    assert retry_delay(t, 0, "3600") == 10


async def test_stage_takes_only_notify_requests_and_never_sends_in_replay(
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    stage = Notify(WebhookSender({"noc": Target("noc", url)}))
    incident = IncidentRequest("open", "k", request().event, "rule")
    ctx = StageContext(Clock(0), live=False, responses=[request(), incident])
    await stage([], ctx)
    assert ctx.responses == [incident]
    ctx = StageContext(Clock(0), live=True, responses=[request()])
    await stage([], ctx)
    await stage.sender.drain()
    await stage.aclose()
    assert len(rec.bodies) == 1


async def test_replay_neither_saves_nor_sends_and_a_live_start_sends_what_was_saved(
    receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    rec, url = receiver
    config = Config(
        storage=StorageConfig(data_dir=tmp_path),
        correlation=CorrelationConfig(notify={"noc": {"url": url, "max_age": "1h"}}),
    )
    replay = notify_stage(config)  # replay and rule tests never open the pipeline
    await replay([], StageContext(Clock(0), live=False, responses=[request()]))
    await replay.close()
    assert not (tmp_path / "outbox.db").exists() and rec.bodies == []

    live = notify_stage(config)
    assert live.sender.targets["noc"].max_age == 3600
    await live.open(Clock(0))  # Pipeline.open, live only
    await live([], StageContext(Clock(0), live=True, responses=[request()]))
    await live.sender.drain()
    await live.aclose()
    await live.close()
    assert len(rec.bodies) == 1 and (tmp_path / "outbox.db").exists()


def test_target_configuration_errors_say_where() -> None:
    with pytest.raises(ConfigError, match=r"correlation.notify.noc.url: expected an http"):
        parse_targets({"noc": {"url": "ftp://x"}})
    with pytest.raises(ConfigError, match="did you mean 'retries'"):
        parse_targets({"noc": {"url": "http://127.0.0.1/", "retrys": 3}})
    assert parse_targets({"noc": {"url": "http://127.0.0.1/", "timeout": "2s"}})["noc"].timeout == 2.0
