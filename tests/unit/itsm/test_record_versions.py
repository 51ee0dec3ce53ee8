"""Optimistic concurrency of the record store, on SQLite and PostgreSQL: a save names the version it
read and is refused when another process saved since; two service instances over one database (two
processes of the cluster) each keep their copies, and an edit made through one is never lost by a
save through the other."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from correlator.changes.model import Change, IllegalTransition, State
from correlator.changes.service import EMITTED, ChangeService
from correlator.errors import Conflict, QueueFull, ShuttingDown
from correlator.ingest import Ingest
from correlator.problems.model import IllegalTransition as ProblemTransition
from correlator.problems.model import KnownError, Problem, ProblemState
from correlator.problems.service import KE_MATCHES, ProblemService
from correlator.problems.settings import ProblemSettings
from correlator.queue.journal import JournalQueue
from correlator.records import postgres as records_pg
from correlator.records import sqlite as records_sqlite
from correlator.records.sqlite import SqliteRecordStore
from correlator.records.store import CONFLICTS, LogEntry, RecordConflict

from .conftest import HOUR, MIN, T0


async def test_a_save_names_the_version_it_read(backend):
    _, records = backend()
    await records.open()
    try:
        rid = await records.save("problems", 0, "open", {"title": "a"}, T0, [LogEntry(T0, "x", "open")])
        assert (await records.get("problems", rid))["version"] == 1
        await records.save(
            "problems", rid, "open", {"title": "b"}, T0, [LogEntry(T0, "x", "edit")], version=1
        )
        assert [v for _, d in await records.records("problems") for v in (d["title"], d["version"])] == [
            "b",
            2,
        ]
        with pytest.raises(RecordConflict):  # a copy read at version 1: someone saved since
            await records.save(
                "problems", rid, "open", {"title": "c"}, T0, [LogEntry(T0, "x", "lost")], version=1
            )
        doc = await records.get("problems", rid)
        assert (doc["title"], doc["version"]) == ("b", 2)  # nothing written, not even the log entry
        assert [e.action for e in await records.log("problems", rid)] == ["open", "edit"]
    finally:
        await records.close()


async def test_records_stored_before_versions_start_at_version_1(backend, monkeypatch):
    _, probe = backend()
    module: Any = records_sqlite if isinstance(probe, SqliteRecordStore) else records_pg
    monkeypatch.setattr(module, "MIGRATIONS", module.MIGRATIONS[:-1])
    _, old = backend()
    await old.open()
    rid = await old.save("changes", 0, "requested", {"title": "old", "start": T0, "end": T0 + HOUR}, T0, [])
    await old.close()
    monkeypatch.undo()
    _, records = backend()
    await records.open()
    try:
        assert (await records.get("changes", rid))["version"] == 1
        await records.save("changes", rid, "approved", {"title": "old", "start": T0, "end": T0 + HOUR}, T0, [],
                           version=1)  # fmt: skip
        assert (await records.get("changes", rid))["version"] == 2
    finally:
        await records.close()


async def _stored(w: Any, change_id: int) -> Change:
    doc = await w.records.get("changes", change_id)
    assert doc is not None
    return Change.from_doc(doc)


async def _second_changes(w: Any, backend: Any) -> ChangeService:
    """Another process's change service on the same database (its own connection)."""
    _, records = backend()
    await records.open()
    other = ChangeService(records, w.changes.settings, w.clock, None, w.incidents)
    await other.open()
    return other


async def _running_change_and_incident(w: Any) -> tuple[Any, Any]:
    c = await w.changes.create(
        "alice", {"title": "upgrade", "start": T0, "end": T0 + HOUR, "cis": ["core-1"]}
    )
    await w.changes.act(c.id, "approve", "alice")
    await w.changes.act(c.id, "start", "alice")
    w.clock.advance_to(T0 + 10 * MIN)
    inc = await w.incidents.create("noc", {"title": "core down", "host": "core-1"})
    return c, inc


async def test_an_operator_action_is_applied_over_an_incident_another_process_linked(make_world, backend):
    w = await make_world()
    c, inc = await _running_change_and_incident(w)
    worker = await _second_changes(w, backend)  # holds the change in progress, as the API node does
    try:
        before = CONFLICTS.labels("changes", "reapplied")._value.get()
        assert await worker.link_incidents([inc]) == 1
        done = await w.changes.act(c.id, "complete", "alice")  # the API node's copy has no incident
        assert done.state is State.COMPLETED and done.incidents == [inc.id]
        stored = await _stored(w, c.id)
        assert stored.state is State.COMPLETED and stored.incidents == [inc.id]
        assert [e.action for e in await w.records.log("changes", c.id)][-2:] == ["link_incident", "state"]
        assert CONFLICTS.labels("changes", "reapplied")._value.get() == before + 1
        # one event per transition saved, describing the change as saved (the incident linked)
        assert [e.type for e in w.emitted] == ["change.started", "change.completed"]
        assert w.emitted[-1].attributes["incidents"] == 1
    finally:
        await worker.store.close()


async def test_a_transition_refused_on_the_stored_change_queues_no_event(make_world, backend):
    w = await make_world()
    c = await w.changes.create(
        "alice", {"title": "upgrade", "start": T0 + HOUR, "end": T0 + 2 * HOUR, "cis": ["core-1"]}
    )
    await w.changes.act(c.id, "approve", "alice")
    other = await _second_changes(w, backend)
    try:
        await other.act(c.id, "cancel", "bob")
        with pytest.raises(IllegalTransition):  # legal on the copy in memory (approved), not stored
            await w.changes.act(c.id, "start", "alice")
        assert (await _stored(w, c.id)).state is State.CANCELLED
        assert w.emitted == []  # no change.started for a change that never started
    finally:
        await other.store.close()


async def test_a_full_queue_refuses_a_transition_reapplied_after_a_conflict_before_saving(
    make_world, backend
):
    w = await make_world()
    c, inc = await _running_change_and_incident(w)
    worker = await _second_changes(w, backend)
    try:
        assert await worker.link_incidents([inc]) == 1
        refusal = QueueFull(10, 10, 2.0)
        w.changes.full = lambda: refusal
        with pytest.raises(QueueFull):
            await w.changes.act(c.id, "complete", "alice")
        stored = await _stored(w, c.id)
        assert stored.state is State.IN_PROGRESS and stored.incidents == [inc.id]
        assert [e.type for e in w.emitted] == ["change.started"]
        w.changes.full = lambda: None
        assert (await w.changes.act(c.id, "complete", "alice")).state is State.COMPLETED
        assert [e.type for e in w.emitted] == ["change.started", "change.completed"]
    finally:
        await worker.store.close()


async def test_a_transition_asked_while_the_daemon_stops_is_refused_before_it_saves(
    make_world, tmp_path: Path
):
    """The daemon stops taking input before it drains: a transition asked then (an operator's
    click during a restart) answers "shutting down" and leaves the change as it was, instead of
    saving it and losing its event."""
    w = await make_world()
    queue = JournalQueue(tmp_path / "journal.db", max_events=100, retry_after=1.0, fsync=False)
    await queue.open()
    try:
        ingest = Ingest(queue)
        w.changes.emit, w.changes.full = ingest.emit, ingest.full
        c = await w.changes.create(
            "alice", {"title": "upgrade", "start": T0, "end": T0 + HOUR, "cis": ["core-1"]}
        )
        await w.changes.act(c.id, "approve", "alice")
        ingest.close_for_input()
        lost = EMITTED.labels("lost")._value.get()
        with pytest.raises(ShuttingDown):
            await w.changes.act(c.id, "start", "alice")
        assert (await _stored(w, c.id)).state is State.APPROVED
        assert EMITTED.labels("lost")._value.get() == lost
        assert queue.depth() == 0
    finally:
        await queue.close()


async def test_a_link_another_process_made_meanwhile_counts_nothing_left_not_reapplied(make_world, backend):
    w = await make_world()
    c, inc = await _running_change_and_incident(w)
    worker = await _second_changes(w, backend)  # its copy of the change, read before the link
    try:
        assert await w.changes.link_incidents([inc]) == 1
        reapplied = CONFLICTS.labels("changes", "reapplied")._value.get()
        nothing_left = CONFLICTS.labels("changes", "nothing_left")._value.get()
        # the worker saw the incident before it was linked: a conflict, and the stored change has the link
        assert await worker.link_incidents([dataclasses.replace(inc, change_id=None)]) == 1
        assert CONFLICTS.labels("changes", "reapplied")._value.get() == reapplied
        assert CONFLICTS.labels("changes", "nothing_left")._value.get() == nothing_left + 1
        assert (await _stored(w, c.id)).incidents == [inc.id]
    finally:
        await worker.store.close()


async def test_an_incident_linked_by_a_stale_worker_keeps_the_operators_action(make_world, backend):
    w = await make_world()
    c, inc = await _running_change_and_incident(w)
    worker = await _second_changes(w, backend)
    try:
        await w.changes.act(c.id, "complete", "alice")
        assert await worker.link_incidents([inc]) == 1  # its copy is still in progress
        stored = await _stored(w, c.id)
        assert stored.state is State.COMPLETED and stored.incidents == [inc.id]
        # the fail a completed change allows only with an incident linked: the operator's process
        # never saw the link, the stored change has it
        failed = await w.changes.act(c.id, "fail", "alice")
        assert failed.state is State.FAILED and failed.incidents == [inc.id]
    finally:
        await worker.store.close()


async def test_an_action_that_no_longer_applies_to_the_stored_change_is_refused(make_world, backend):
    w = await make_world()
    c = await w.changes.create("alice", {"title": "upgrade", "start": T0 + HOUR, "end": T0 + 2 * HOUR})
    other = await _second_changes(w, backend)
    try:
        await other.act(c.id, "approve", "bob")
        with pytest.raises(IllegalTransition) as e:  # approved meanwhile: a 409, as in one process
            await w.changes.act(c.id, "approve", "alice")
        assert "is approved: cannot go to approved" in str(e.value)
        stored = await _stored(w, c.id)
        log = await w.records.log("changes", c.id)
        assert stored.state is State.APPROVED and [x.actor for x in log] == ["alice", "bob"]
        # an action that still applies is made on the stored change
        cancelled = await w.changes.act(c.id, "cancel", "alice")
        assert cancelled.state is State.CANCELLED
    finally:
        await other.store.close()


async def test_the_calendar_starts_and_finishes_a_change_another_process_linked_to(make_world, backend):
    w = await make_world(
        calendar="windows:\n  - {name: upgrade, days: daily, start: '09:00', end: '10:00', cis: [core-1]}\n"
    )
    await w.changes.run_due(T0)  # the occurrence at 09:00, approved
    [c] = await w.changes.query((), 10, None)
    worker = await _second_changes(w, backend)
    try:
        w.clock.advance_to(T0 + HOUR + 10 * MIN)
        inc = await w.incidents.create("noc", {"title": "core down", "host": "core-1"})
        assert await worker.link_incidents([inc]) == 1  # within the window about to open
        await w.changes.run_due(w.clock.now())  # its copy: approved, no incident
        stored = await _stored(w, c.id)
        assert stored.state is State.IN_PROGRESS and stored.incidents == [inc.id]
        w.clock.advance_to(T0 + 2 * HOUR)
        await w.changes.run_due(w.clock.now())
        stored = await _stored(w, c.id)
        assert stored.state is State.COMPLETED and stored.incidents == [inc.id]
    finally:
        await worker.store.close()


async def test_edits_racing_through_two_processes_are_all_kept(make_world, backend):
    """Each process links its own incidents with a copy the other keeps outdating."""
    w = await make_world()
    c, _ = await _running_change_and_incident(w)
    worker = await _second_changes(w, backend)
    try:
        incidents = [await w.incidents.create("noc", {"title": f"i{n}", "host": "core-1"}) for n in range(6)]
        for n, inc in enumerate(incidents):
            await (w.changes if n % 2 else worker).link_incidents([inc])
        assert sorted((await _stored(w, c.id)).incidents) == [inc.id for inc in incidents]
    finally:
        await worker.store.close()


async def test_a_conflict_that_keeps_recurring_gives_up_with_a_conflict(make_world, monkeypatch):
    w = await make_world()
    c = await w.changes.create("alice", {"title": "upgrade", "start": T0 + HOUR, "end": T0 + 2 * HOUR})
    _always_outdated(w, monkeypatch, "changes")
    with pytest.raises(Conflict):  # the API's 409
        await w.changes.act(c.id, "approve", "alice")


def _always_outdated(w: Any, monkeypatch: Any, outdated: str) -> None:
    """Another process saves each `outdated` record just before every attempt to save it."""
    save = w.records.save

    async def always_outdated(
        kind: Any, rid: int, state: str, doc: Any, at: float, log: Any, version: int = 0
    ) -> int:
        if rid and kind == outdated:
            now = await w.records.get(kind, rid)
            await save(kind, rid, now["state"], now, at, [], version=now["version"])
        return await save(kind, rid, state, doc, at, log, version=version)

    monkeypatch.setattr(w.records, "save", always_outdated)


async def _second_problems(w: Any, backend: Any) -> ProblemService:
    _, records = backend()
    await records.open()
    other = ProblemService(records, ProblemSettings(), w.clock, w.incidents)
    await other.open()
    return other


async def test_a_problem_resolved_over_an_incident_another_process_linked_keeps_it(make_world, backend):
    w = await make_world()
    i1 = await w.incidents.create("noc", {"title": "slow", "host": "san-1"})
    i2 = await w.incidents.create("noc", {"title": "slower", "host": "san-1"})
    p = await w.problems.create_problem("alice", "storage latency", "", [i1.id])
    other = await _second_problems(w, backend)
    try:
        await other.link_incident(p.id, i2.id, "bob")
        resolved, _ = await w.problems.resolve(p.id, "alice", "firmware")
        assert resolved.state is ProblemState.RESOLVED and resolved.incidents == [i1.id, i2.id]
        stored = Problem.from_doc(await w.records.get("problems", p.id))
        assert stored.incidents == [i1.id, i2.id] and stored.root_cause == "firmware"
        with pytest.raises(ProblemTransition):  # linking to it through the stale copy: resolved now
            await other.link_incident(p.id, i1.id + 100, "bob")
        with pytest.raises(ProblemTransition):
            await other.resolve(p.id, "bob")
    finally:
        await other.store.close()


async def test_known_error_matches_counted_by_two_processes_are_all_counted(make_world, backend):
    w = await make_world()
    ke = await w.problems.create_known_error("alice", "fan", {"host": "core-1"}, "Swap the fan tray", None)
    other = await _second_problems(w, backend)
    try:
        for n in range(4):
            inc = await w.incidents.create("noc", {"title": f"fan {n}", "host": "core-1"})
            await (w.problems if n % 2 else other).on_opened([(inc, None)])
        stored = KnownError.from_doc(await w.records.get("known_errors", ke.id))
        log = await w.records.log("known_errors", ke.id)
        assert stored.matched == 4 and [e.action for e in log].count("attach") == 4
        await other.retire_known_error(ke.id, "bob")  # its copy counted 2 of the 4
        retired = KnownError.from_doc(await w.records.get("known_errors", ke.id))
        assert (retired.state.value, retired.matched) == ("retired", 4)
    finally:
        await other.store.close()


async def test_a_known_error_retired_by_another_process_is_not_attached(make_world, backend):
    w = await make_world()
    ke = await w.problems.create_known_error("alice", "fan", {"host": "core-1"}, "Swap the fan tray", None)
    other = await _second_problems(w, backend)
    try:
        await other.retire_known_error(ke.id, "bob")  # this process still holds it active
        matches = KE_MATCHES._value.get()
        inc = await w.incidents.create("noc", {"title": "fan", "host": "core-1"})
        await w.problems.on_opened([(inc, None)])
        stored = KnownError.from_doc(await w.records.get("known_errors", ke.id))
        assert (stored.state.value, stored.matched) == ("retired", 0)
        assert [e.action for e in await w.records.log("known_errors", ke.id)] == ["create", "retire"]
        assert (await w.incidents.get(inc.id))[0].known_error_id is None
        assert KE_MATCHES._value.get() == matches
        assert ke.id not in w.problems._known  # no longer matched here afterwards
    finally:
        await other.store.close()


async def test_a_known_error_saved_is_answered_though_its_problem_kept_conflicting(
    make_world, backend, monkeypatch
):
    """A retry of a 409 would create a second known error: the one saved is the answer."""
    w = await make_world()
    p = await w.problems.create_problem("alice", "fans", "", [])
    _always_outdated(w, monkeypatch, "problems")
    ke = await w.problems.create_known_error("alice", "fan", {"host": "core-1"}, "Swap it", p.id)
    assert ke.id and len(await w.problems.query_known_errors(("active",), 10, None)) == 1
    stored = Problem.from_doc(await w.records.get("problems", p.id))
    assert stored.known_error_id is None  # logged; the known error still matches
    assert ke.id in w.problems._known


async def test_a_problem_saved_resolved_is_answered_though_its_known_error_kept_conflicting(
    make_world, backend, monkeypatch
):
    w = await make_world()
    p = await w.problems.create_problem("alice", "fans", "", [])
    ke = await w.problems.create_known_error("alice", "fan", {"host": "core-1"}, "Swap it", p.id)
    _always_outdated(w, monkeypatch, "known_errors")
    resolved, _ = await w.problems.resolve(p.id, "alice", "firmware")
    assert resolved.state is ProblemState.RESOLVED
    assert Problem.from_doc(await w.records.get("problems", p.id)).state is ProblemState.RESOLVED
    assert KnownError.from_doc(await w.records.get("known_errors", ke.id)).state.value == "active"
