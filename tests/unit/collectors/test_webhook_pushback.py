"""Push-back answers say what happened: a full queue and a journal that cannot write (disk full)
are both 503 + Retry-After, but each in its own words and under its own metric reason."""

from __future__ import annotations

import orjson
import pytest

from collectors.webhook.generic import accept
from correlator.errors import QueueFull, ShuttingDown, StorageUnavailable
from correlator.event import Event


def refusing(error: Exception):
    async def emit(events: list[Event], source: str) -> None:
        raise error

    return emit


@pytest.mark.parametrize(
    ("error", "words", "retry_after"),
    [
        (QueueFull(10, 10, 2.5), "ingestion queue full", "3"),
        (StorageUnavailable("database or disk is full", 1.0), "storage unavailable", "1"),
        (ShuttingDown("stopping"), "shutting down", "5"),
    ],
)
async def test_each_push_back_is_a_503_in_its_own_words(error, words, retry_after):
    resp = await accept(refusing(error), [Event("e1", 1.0, 1.0, "t", "h", "x")], "webhook:generic")
    assert resp is not None and resp.status == 503
    assert resp.headers["Retry-After"] == retry_after
    assert resp.body is not None and orjson.loads(resp.body)["error"].startswith(words)  # type: ignore[arg-type]


def test_a_disk_full_is_never_called_a_full_queue():
    e = StorageUnavailable("database or disk is full", 1.0)
    assert (e.reason, QueueFull.reason) == ("storage_unavailable", "queue_full")
    assert "queue" not in e.answer and "queue" not in str(e)
