"""The dead-letter path behind the door, against SQLite and PostgreSQL alike: one event the store
cannot take among good ones -> the good ones are stored and acknowledged, the poison is set aside
with its reason, nothing stalls, and a restart with the poison still in the journal does not stall."""

from __future__ import annotations

import asyncio
import json

import orjson
import pytest

from correlator import deadletter
from correlator.clock import Clock
from correlator.deadletter import DEAD_LETTERED, DeadLetter
from correlator.event import Event, Severity, dumps_events
from correlator.pipeline import Pipeline, StageContext
from correlator.progress import Progress
from correlator.queue.journal import JournalQueue
from correlator.runner import PipelineRunner
from correlator.store import EventQuery
from correlator.store.postgres import PgEventStore
from correlator.store.sqlite import SqliteEventStore
from tests.support.postgres import pg_dsn
from tests.unit.store.test_event_store import store

__all__ = ["pg_dsn", "store"]  # the SQLite and PostgreSQL store fixture of the store contract tests

T0 = 1_800_000_000.0


def ev(name: str, host: str | None = None, message: str = "") -> Event:
    return Event(
        message=message,
        id=name,
        time=T0,
        received=T0,
        source="webhook:generic",
        host=host or f"{name}.example",
        type="T",
        severity=Severity.MINOR,
    )


def payload(events: list[Event]) -> bytes:
    """The journal form; the standard library (with escapes) for what orjson refuses to write."""
    try:
        return dumps_events(events)
    except TypeError:
        return json.dumps([e.to_dict() for e in events]).encode()


async def drain(
    q: JournalQueue, store, progress: Progress | None = None, pipeline: Pipeline | None = None
) -> PipelineRunner:
    runner = PipelineRunner(q, pipeline or Pipeline([]), store, Clock(T0), batch_events=100)
    if progress is not None:
        runner.progress = progress
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(20):
            while q.depth():
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return runner


def dead_count(reason: str) -> float:
    return DEAD_LETTERED.labels(reason)._value.get()


# -- the store's dead-letter table ----------------------------------------------------------------


async def test_dead_letters_are_kept_once_listed_newest_first_and_deleted(store):
    a = deadletter.of_event(ev("a", host="bad\x00host"), deadletter.STORE_REJECTED, "refused", T0)
    b = deadletter.of_payload(b'[{"id": "\\ud800"}] \xff', deadletter.UNDECODABLE, "no low surrogate", T0 + 1)
    assert await store.add_dead_letters([a, b]) == 2
    assert await store.add_dead_letters([a]) == 0  # the same batch delivered again after a crash
    page = await store.dead_letters(1, None, None)
    assert [d.reason for d in page.items] == [deadletter.UNDECODABLE]
    rest = await store.dead_letters(10, page.next_cursor, None)
    assert [d.event_id for d in rest.items] == ["a"] and rest.next_cursor is None
    got = rest.items[0]
    assert got.source == "webhook:generic" and got.at == T0 and got.error == "refused"
    assert orjson.loads(got.raw)["host"] == "bad\x00host"  # kept escaped in the text, whole again when read
    only = await store.dead_letters(10, None, deadletter.STORE_REJECTED)
    assert [d.id for d in only.items] == [got.id]
    assert await store.get_dead_letter(got.id) == got
    assert await store.delete_dead_letter(got.id)
    assert not await store.delete_dead_letter(got.id)
    assert await store.get_dead_letter(got.id) is None


async def test_a_claimed_dead_letter_is_busy_for_others_and_kept_when_the_retry_fails(store):
    await store.add_dead_letters([deadletter.of_event(ev("c"), deadletter.STORE_REJECTED, "refused", T0)])
    (held,) = (await store.dead_letters(10, None, None)).items
    with pytest.raises(RuntimeError):
        async with store.claim_dead_letter(held.id) as claim:
            assert claim.letter == held
            with pytest.raises(deadletter.DeadLetterBusy):
                async with store.claim_dead_letter(held.id):
                    pass
            raise RuntimeError("the queue was full")  # the retry failed: the dead letter stays
    async with store.claim_dead_letter(held.id) as claim:  # released: claimable again
        with pytest.raises(deadletter.DeadLetterBusy):
            await store.delete_dead_letter(held.id)  # not under the retry's feet
        await claim.delete()
    assert await store.get_dead_letter(held.id) is None
    async with store.claim_dead_letter(held.id) as claim:
        assert claim.letter is None


async def test_a_claim_whose_daemon_died_lapses_on_postgresql(store):
    """A claim is a token in the row, not a lock: one left by a daemon that died (or lost the
    database before its delete) is taken over after its lifetime, and its own delete then does nothing."""
    if not isinstance(store, PgEventStore):
        pytest.skip("one process owns a SQLite file: its claims end with it")
    await store.add_dead_letters([deadletter.of_event(ev("d"), deadletter.STORE_REJECTED, "refused", T0)])
    (held,) = (await store.dead_letters(10, None, None)).items
    async with store.claim_dead_letter(held.id) as stale:
        store.claim_seconds = 0.0  # the stale claim's lifetime is over
        async with store.claim_dead_letter(held.id) as fresh:
            await stale.delete()  # no longer its claim: deletes nothing
            assert await store.get_dead_letter(held.id) == held
            store.claim_seconds = 3600.0
            with pytest.raises(deadletter.DeadLetterBusy):
                await store.delete_dead_letter(held.id)
            await fresh.delete()
    assert await store.get_dead_letter(held.id) is None


def test_raw_text_survives_what_orjson_refuses():
    deep: dict[str, object] = {}
    node = deep
    for _ in range(400):
        node["a"] = {}
        node = node["a"]  # type: ignore[assignment]
    e = ev("deep")
    e.attributes["x"] = deep
    raw = deadletter.raw_event(e)
    assert raw.count("{") > 400
    s = deadletter.raw_event(ev("s", message="a\ud800b"))
    assert "\\ud800" in s
    assert isinstance(DeadLetter("r", "s", "i", "e", s, T0).key, str)


# -- the runner: bisect, store the good, set aside the poison ---------------------------------------


def poison_for(store) -> Event:
    # PostgreSQL text refuses U+0000 ("invalid byte sequence"); SQLite takes it, but no store can
    # take a lone surrogate (it is not UTF-8 at all).
    if isinstance(store, PgEventStore):
        return ev("poison", host="core\x00sw1")
    return ev("poison", message="link \ud800 down")


async def test_one_poison_event_among_good_ones_is_dead_lettered_and_the_rest_stored(store, tmp_path):
    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await q.open()
    poison = poison_for(store)
    batches = [[ev("g1"), ev("g2")], [ev("g3"), poison, ev("g4")], [ev("g5")]]
    for events in batches:
        await q.put(payload(events), len(events), events)
    before = dead_count(deadletter.STORE_REJECTED)
    await drain(q, store)
    await q.close()
    assert await store.known([f"g{i}" for i in range(1, 6)] + ["poison"]) == {f"g{i}" for i in range(1, 6)}
    (dead,) = (await store.dead_letters(10, None, None)).items
    assert (dead.reason, dead.event_id, dead.source) == (
        deadletter.STORE_REJECTED,
        "poison",
        "webhook:generic",
    )
    assert dead_count(deadletter.STORE_REJECTED) == before + 1
    # Acknowledged: nothing comes back at the next start.
    q2 = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    assert await q2.open() == 0
    await q2.close()


class FoldInto:
    """Folds every event named `repeat-*` into `into`, as de-duplication does."""

    name = "fold-into"

    def __init__(self, into: Event) -> None:
        self.into = into

    async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
        kept = [e for e in events if not e.id.startswith("repeat-")]
        for e in events:
            if e.id.startswith("repeat-"):
                self.into.count += 1
                ctx.updates.append(self.into)
                ctx.folded.append(e)
        return kept


async def test_a_poison_event_beside_folds_is_dead_lettered_and_the_folds_stored(store, tmp_path):
    """The batch's write and fold in one call fails on the poison; the two calls apart then bisect
    the write as they always did, and the fold follows, keeping the repeats' ids."""
    first = ev("first")
    await store.write([first])
    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await q.open()
    batch = [ev("g1"), ev("repeat-1"), poison_for(store), ev("repeat-2"), ev("g2")]
    await q.put(payload(batch), len(batch), batch)
    try:
        await drain(q, store, pipeline=Pipeline([FoldInto(first)]))
    finally:
        await q.close()
    known = await store.known(["first", "g1", "g2", "poison", "repeat-1", "repeat-2"])
    assert known == {"first", "g1", "g2", "repeat-1", "repeat-2"}
    (dead,) = (await store.dead_letters(10, None, None)).items
    assert dead.event_id == "poison"
    (stored,) = (await store.query(EventQuery(host="first.example"))).events
    assert stored.count == 3


async def test_a_restart_with_the_poison_in_the_journal_does_not_stall(store, tmp_path):
    """What the journal held at a crash is read back from its bytes (the surrogate one through the
    standard library, as orjson refuses it) and checked like at the door: the poison is set aside
    before the pipeline sees it (`undecodable`), the events around it stored."""
    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await q.open()
    poison = poison_for(store)
    for events in ([ev("g1")], [poison, ev("g2")], [ev("g3")]):
        await q.put(payload(events), len(events), events)
    await q.close()  # a stop before the pipeline ran: all three items stay in the journal

    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    assert await q.open() == 4
    await drain(q, store)
    await q.close()
    assert await store.known(["g1", "g2", "g3", "poison"]) == {"g1", "g2", "g3"}
    (dead,) = (await store.dead_letters(10, None, None)).items
    assert (dead.reason, dead.event_id) == (deadletter.UNDECODABLE, "poison")


async def test_an_id_the_store_cannot_be_asked_about_does_not_stop_a_restart(store, tmp_path):
    """Read back after a crash, a batch is checked against the store by id first: an id holding
    what the store refuses (NUL for PostgreSQL, a lone surrogate) cannot have been stored."""
    bad_id = "poi\x00son" if isinstance(store, PgEventStore) else "poi\ud800son"
    poison = ev("g0")
    poison.id = bad_id
    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await q.open()
    events = [ev("g1"), poison, ev("g2")]
    await q.put(payload(events), 3, events)
    await q.close()
    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await q.open()
    await drain(q, store)
    await q.close()
    assert await store.known(["g1", "g2"]) == {"g1", "g2"}
    dead = (await store.dead_letters(10, None, None)).items
    if isinstance(store, PgEventStore):
        assert [d.event_id for d in dead] == ["poi\\u0000son"]
    else:  # SQLite stores a NUL; the surrogate never gets this far in one piece
        assert len(dead) == 1 and dead[0].event_id.startswith("poi")


async def test_journal_items_that_are_no_events_are_set_aside(store, tmp_path):
    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await q.open()
    good = [ev("g1")]
    await q.put(b"{not json", 1)
    await q.put(b'[{"id": "half"}, ' + dumps_events(good)[1:], 2)
    await q.put(dumps_events(good), 1)
    await q.close()
    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await q.open()
    await drain(q, store)
    await q.close()
    assert await store.known(["g1", "half"]) == {"g1"}
    dead = (await store.dead_letters(10, None, None)).items
    assert [d.reason for d in dead] == [deadletter.UNDECODABLE] * 2
    assert "half" in dead[0].raw and "{not json" in dead[1].raw


class DownStore:
    """A store that refuses every write for its own reason (down / disk full): never dead-letter."""

    def __init__(self, real) -> None:
        self.real = real
        self.tries = 0

    async def write(self, events: list[Event]) -> int:
        self.tries += 1
        raise OSError(28, "No space left on device")

    def __getattr__(self, name):
        return getattr(self.real, name)


async def test_a_store_that_refuses_everything_is_retried_never_dead_lettered_and_reported_stalled(
    tmp_path,
):
    real = SqliteEventStore(tmp_path / "events.db")
    await real.open()
    store = DownStore(real)
    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await q.open()
    await q.put(payload([ev("g1"), ev("g2")]), 2, [ev("g1"), ev("g2")])
    now = [0.0]
    progress = Progress(q.depth, stall_after=60.0, now=lambda: now[0])
    runner = PipelineRunner(q, Pipeline([]), store, Clock(T0), batch_events=100)  # type: ignore[arg-type]
    runner.progress = progress
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(10):
            while store.tries < 5:  # past write_tries: still retried as a whole
                await asyncio.sleep(0.01)
        now[0] = 61.0
        assert progress.stalled() and progress.stalled_seconds() == 61.0
        assert q.depth() == 2
        assert (await real.dead_letters(10, None, None)).items == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await q.close()
        await real.close()
    idle = Progress(lambda: 0, stall_after=60.0, now=lambda: now[0])
    now[0] = 1000.0
    assert not idle.stalled()


async def test_journal_events_of_the_wrong_shape_are_set_aside_not_trusted(store, tmp_path):
    """Read back from the journal, an event is checked like one at the door (without the time
    policy): `host: null` would otherwise reach the stages and break /metrics for good."""
    good = ev("g1").to_dict()
    bad = [
        {**ev("null-host").to_dict(), "host": None},
        {**ev("text-time").to_dict(), "time": "2027-01-01T00:00:00Z"},
        {**ev("no-severity").to_dict(), "severity": "loud"},
        {**ev("year-10000").to_dict(), "time": 253402304399.0},
        {**ev("nul").to_dict(), "message": "a\x00b"},
        {**ev("bool-count").to_dict(), "count": True},
        {k: v for k, v in ev("no-type").to_dict().items() if k != "type"},
        ["not", "an", "event"],
    ]
    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await q.open()
    await q.put(orjson.dumps([good, *bad]), 1 + len(bad))
    await q.close()
    q = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await q.open()
    before = DEAD_LETTERED.labels(deadletter.UNDECODABLE)._value.get()
    await drain(q, store)
    await q.close()
    assert await store.known(["g1", "null-host", "text-time", "year-10000", "nul"]) == {"g1"}
    dead = (await store.dead_letters(20, None, None)).items
    assert {d.reason for d in dead} == {deadletter.UNDECODABLE}
    assert sorted(d.event_id for d in dead) == sorted(
        ["null-host", "text-time", "no-severity", "year-10000", "nul", "bool-count", "no-type", ""]
    )
    by_id = {d.event_id: d for d in dead}
    assert "host" in by_id["null-host"].error and "time" in by_id["year-10000"].error
    assert by_id["null-host"].source == "webhook:generic"
    assert DEAD_LETTERED.labels(deadletter.UNDECODABLE)._value.get() - before == len(bad)


async def test_a_letter_set_aside_again_during_its_retry_is_not_deleted_by_that_retry(store):
    """The retried event reached the store and was refused again before the retry deleted its
    letter: the letter (same key) must stay, or the event would be in neither place."""
    a = deadletter.of_event(ev("again", host="bad\x00host"), deadletter.STORE_REJECTED, "refused", T0)
    await store.add_dead_letters([a])
    (held,) = (await store.dead_letters(10, None, None)).items
    async with store.claim_dead_letter(held.id) as claim:
        again = deadletter.of_event(
            ev("again", host="bad\x00host"), deadletter.STORE_REJECTED, "still", T0 + 5
        )
        await store.add_dead_letters([again])
        await claim.delete()
    assert [d.event_id for d in (await store.dead_letters(10, None, None)).items] == ["again"]
    # Unclaimed, the same letter delivered again is kept once and a retry deletes it.
    assert await store.add_dead_letters([again]) == 0
    (kept,) = (await store.dead_letters(10, None, None)).items
    async with store.claim_dead_letter(kept.id) as claim:
        await claim.delete()
    assert (await store.dead_letters(10, None, None)).items == []


async def test_two_letters_with_one_key_in_a_batch_are_kept_once(store):
    """Two undecodable copies of one event in a journal item: one letter, and no error that would
    stop the runner's set-aside (it retries until the store takes the batch)."""
    a = deadletter.of_event(ev("twice", host="bad\x00host"), deadletter.STORE_REJECTED, "refused", T0)
    b = deadletter.of_event(ev("twice", host="bad\x00host"), deadletter.STORE_REJECTED, "refused", T0 + 1)
    assert await store.add_dead_letters([a, b]) == 1
    (held,) = (await store.dead_letters(10, None, None)).items
    async with store.claim_dead_letter(held.id):
        await store.add_dead_letters([a, b])  # refused again while claimed: still one row
    assert len((await store.dead_letters(10, None, None)).items) == 1
