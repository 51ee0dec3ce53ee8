"""The dead-letter path in the real daemon: a poison event behind the door (put in the journal, as a
crash or an older writer would leave it) among good ones, with SQLite and PostgreSQL; the API with
its roles, the CLI, the MQTT collector, and a disk that fills up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from correlator.api.auth import hash_token
from correlator.deadletter import DeadLetter
from correlator.queue.journal import JournalQueue
from correlator.store.sqlite import SqliteEventStore
from tests.integration.test_mqtt import broker
from tests.support.daemon import DaemonProcess
from tests.support.postgres import pg_dsn, reset_pg

__all__ = ["broker", "pg_dsn"]  # Mosquitto for this module, PostgreSQL for the session

pytestmark = pytest.mark.integration

TOKENS = {
    "wall": {"role": "viewer", "sha256": hash_token("view-1")},
    "boss": {"role": "admin", "sha256": hash_token("adm-1")},
}
VIEW = {"Authorization": "Bearer view-1"}
ADMIN = {"Authorization": "Bearer adm-1"}


def wire(name: str, **over: object) -> dict[str, object]:
    d: dict[str, object] = {
        "id": name,
        "time": 1_800_000_000.0,
        "received": 1_800_000_000.0,
        "source": "webhook:generic",
        "host": f"{name}.example",
        "type": "T",
        "severity": "minor",
        "resource": "",
        "message": "",
        "attributes": {},
        "fingerprint": name,
        "count": 1,
        "last_seen": 1_800_000_000.0,
    }
    d.update(over)
    return d


async def fill_journal(path: Path, items: list[list[dict[str, object]]]) -> None:
    q = JournalQueue(path, max_events=100, retry_after=1.0)
    await q.open()
    for events in items:
        await q.put(json.dumps(events).encode(), len(events))  # escapes what orjson refuses
    await q.close()


def stored(d: DaemonProcess, headers: dict[str, str]) -> list[dict]:
    status, _, body = d.request("GET", "/api/v1/events?limit=1000", headers=headers)
    assert status == 200, body
    return orjson.loads(body)["events"]


def dead_letters(d: DaemonProcess, headers: dict[str, str] | None = None) -> list[dict]:
    status, _, body = d.request("GET", "/api/v1/dead-letters", headers=headers)
    assert status == 200, body
    return orjson.loads(body)["dead_letters"]


@pytest.fixture(params=["sqlite", "postgres"])
def storage(request) -> dict[str, object]:
    if request.param == "sqlite":
        return {}
    dsn = request.getfixturevalue("pg_dsn")
    asyncio.run(reset_pg(dsn))
    return {"dsn": dsn}


def test_poison_in_the_journal_is_dead_lettered_the_rest_stored_and_a_restart_does_not_stall(
    make_daemon, tmp_path, storage
):
    # PostgreSQL refuses U+0000 in text (the reported stall); no store takes a lone surrogate.
    poison = wire("poison", host="core\x00sw1") if storage else wire("poison", message="link \ud800 down")
    items = [[wire("g1")], [wire("g2"), poison, wire("g3")], [wire("g4")]]
    asyncio.run(fill_journal(tmp_path / "var" / "journal.db", items))
    d = make_daemon(storage=storage, http={"tokens": TOKENS})
    d.wait_for(lambda: len(stored(d, VIEW)) == 4, what="the good events stored")
    assert sorted(e["id"] for e in stored(d, VIEW)) == ["g1", "g2", "g3", "g4"]
    (dead,) = d.wait_for(lambda: dead_letters(d, VIEW), what="the dead letter")
    # Read back from the journal, the poison is checked like at the door, before any stage sees it.
    assert (dead["reason"], dead["event_id"], dead["source"]) == (
        "undecodable",
        "poison",
        "webhook:generic",
    )
    assert dead["at"].endswith("Z") and json.loads(dead["raw"])["id"] == "poison"
    reason = {"reason": "undecodable"}
    # Counted right after the row is written, so a moment after the API lists it.
    d.wait_for(lambda: d.metric("correlator_events_dead_lettered_total", reason) == 1, what="counted")
    assert d.metric("correlator_queue_depth_events") == 0
    status, body = d.get("/readyz")
    assert status == 200, body
    d.stop()
    d.start()  # nothing left in the journal: the restart does not meet the poison again
    assert d.get("/readyz")[0] == 200
    assert d.metric("correlator_queue_depth_events") == 0
    assert len(dead_letters(d, VIEW)) == 1

    # Roles: viewers read, only admins delete or retry.
    url = f"/api/v1/dead-letters/{dead['id']}"
    assert d.request("DELETE", url, headers=VIEW)[0] == 403
    assert d.request("POST", url + "/retry", headers=VIEW)[0] == 403
    assert d.request("GET", url)[0] == 401
    status, _, body = d.request("GET", url, headers=VIEW)
    assert status == 200 and orjson.loads(body)["event_id"] == "poison"
    # Retried, the door still refuses it: a 409 naming the field, and the dead letter stays.
    status, _, body = d.request("POST", url + "/retry", headers=ADMIN)
    assert status == 409, body
    assert (orjson.loads(body)["reason"], orjson.loads(body)["field"]) == (
        "bad_text",
        "host" if storage else "message",
    )
    assert [x["id"] for x in dead_letters(d, VIEW)] == [dead["id"]]
    status, _, body = d.request("DELETE", url, headers=ADMIN)
    assert status == 200, body
    assert d.request("GET", url, headers=VIEW)[0] == 404
    assert dead_letters(d, VIEW) == []
    status, _, body = d.request("GET", "/api/v1/dead-letters?reason=nope", headers=VIEW)
    assert status == 400 and orjson.loads(body)["field"] == "reason"
    assert d.request("DELETE", "/api/v1/dead-letters/12x", headers=ADMIN)[0] == 404


def test_a_journal_event_of_the_wrong_type_cannot_break_metrics(make_daemon, tmp_path):
    """`host: null` read back from the journal used to reach the noisiest-CIs metric, and /metrics
    answered 500 from then on; it is set aside at read-back instead."""
    items = [[wire("g1"), wire("null-host", host=None), wire("text-time", time="2027-01-15T00:00:00Z")]]
    asyncio.run(fill_journal(tmp_path / "var" / "journal.db", items))
    d = make_daemon(http={"tokens": TOKENS})
    d.wait_for(lambda: len(stored(d, VIEW)) == 1, what="the good event stored")
    dead = d.wait_for(lambda: dead_letters(d, VIEW), what="the dead letters")
    assert sorted((x["reason"], x["event_id"]) for x in dead) == [
        ("undecodable", "null-host"),
        ("undecodable", "text-time"),
    ]
    for _ in range(2):
        assert d.get("/metrics")[0] == 200
    assert 'correlator_ci_events_recent{ci="g1.example"}' in d.request("GET", "/metrics")[2].decode()
    assert d.metric("correlator_metrics_collect_errors_total", {"collector": "NoisiestExporter"}) == 0


async def set_aside(db: Path, raws: list[tuple[str, str]]) -> None:
    """Dead letters as an earlier run left them (a store fault since fixed, or a poison)."""
    store = SqliteEventStore(db)
    await store.open()
    await store.add_dead_letters(
        [DeadLetter("store_rejected", "webhook:generic", ident, "refused", raw, 1.8e9) for ident, raw in raws]
    )
    await store.close()


def test_a_retry_passes_the_door_or_is_refused_in_json(make_daemon, tmp_path):
    raws = [
        json.dumps(wire("fixed")),  # the store's fault is gone: this one goes back in
        json.dumps(wire("nul", host="core\x00sw1")),
        json.dumps(wire("year-10000", time=253402304399.0)),
        json.dumps(wire("null-host", host=None)),
        json.dumps(wire("too-old", time=1_400_000_000.0)),  # past the time policy, from its receive time
        json.dumps(wire("deep", attributes=nested(40))),
        "[1, 2",  # cut: not JSON at all
    ]
    (tmp_path / "var").mkdir()
    named = [(f"e{i}" if i == len(raws) - 1 else json.loads(raw)["id"], raw) for i, raw in enumerate(raws)]
    asyncio.run(set_aside(tmp_path / "var" / "events.db", named))
    d = make_daemon(http={"tokens": TOKENS})
    ids = {x["event_id"]: x["id"] for x in dead_letters(d, VIEW)}
    expected = {
        "nul": ("host", "bad_text"),
        "year-10000": ("time", "time_out_of_range"),
        "null-host": ("host", "invalid"),
        "too-old": ("time", "time_out_of_range"),
        "deep": ("attributes", "too_deep"),
    }
    for name, (field, reason) in expected.items():
        status, headers, body = d.request("POST", f"/api/v1/dead-letters/{ids[name]}/retry", headers=ADMIN)
        doc = orjson.loads(body)
        assert status == 409 and headers["Content-Type"].startswith("application/json"), (name, body)
        assert (doc["field"].split(".")[0], doc["reason"]) == (field, reason), (name, doc)
        assert doc["error"].startswith(f"dead letter {ids[name]} cannot be retried: refused at the door")
    status, _, body = d.request("POST", f"/api/v1/dead-letters/{ids['e6']}/retry", headers=ADMIN)
    assert status == 409 and "cannot be retried" in orjson.loads(body)["error"]
    assert d.metric("correlator_events_rejected_total", {"source": "dead_letters", "reason": "bad_text"}) == 1
    status, _, body = d.request("POST", f"/api/v1/dead-letters/{ids['fixed']}/retry", headers=ADMIN)
    assert status == 202 and orjson.loads(body)["event_id"] == "fixed"
    d.wait_for(lambda: [e["id"] for e in stored(d, VIEW)] == ["fixed"], what="the retried event stored")
    assert sorted(x["event_id"] for x in dead_letters(d, VIEW)) == sorted([*expected, "e6"])
    assert d.get("/metrics")[0] == 200 and d.get("/readyz")[0] == 200


def nested(depth: int) -> dict[str, object]:
    doc: dict[str, object] = {}
    for _ in range(depth):
        doc = {"a": doc}
    return doc


def test_cli_lists_dead_letters(make_daemon, tmp_path):
    asyncio.run(fill_journal(tmp_path / "var" / "journal.db", [[wire("ok"), wire("bad", message="\udc00")]]))
    d = make_daemon()
    d.wait_for(lambda: dead_letters(d), what="the dead letter")
    cli = [sys.executable, "-m", "correlator", "dead-letters", "--url", d.url]
    out = subprocess.run([*cli, "list"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert "undecodable" in out and "bad" in out  # refused at read-back, before the store
    (dead,) = dead_letters(d)
    shown = subprocess.run([*cli, "show", str(dead["id"])], capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0 and '"id": "bad"' in shown.stdout
    gone = subprocess.run([*cli, "show", "999"], capture_output=True, text=True, timeout=30)
    assert gone.returncode == 1 and "HTTP 404" in gone.stderr


# -- MQTT: a message that cannot be made durable is set aside and acknowledged ----------------------


def test_mqtt_message_that_cannot_be_made_durable_does_not_stop_the_subscription(make_daemon, broker):
    subs = [{"name": "ev", "topic": "dl/{host}/events", "defaults": {"type": "t"}}]
    collectors = {
        "mqtt": {
            "brokers": [{"name": "lab", "host": "127.0.0.1", "port": broker.port, "client_id": "dl1"}],
            "subscriptions": subs,
        }
    }
    d = make_daemon(collectors=collectors)
    d.wait_for(lambda: d.metric("correlator_mqtt_connected", {"broker": "lab"}) == 1, what="connected")
    deep = "1"
    for _ in range(300):  # about 2 KB; orjson refuses to write it ("Recursion limit reached")
        deep = '{"a":' + deep + "}"
    messages: list[tuple[str, bytes | str]] = [("dl/h1/events", '{"message": "deep", "x": ' + deep + "}")]
    messages += [("dl/h2/events", orjson.dumps({"message": f"good {i}"})) for i in range(5)]
    broker.publish(messages)
    d.wait_for(lambda: len(d.events()) == 5, what="the messages behind the deep one")

    def set_aside() -> float:
        # Refused at the door (a nesting limit, any reason) or set aside behind it: never retried for ever.
        from prometheus_client.parser import text_string_to_metric_families

        _, _, body = d.request("GET", "/metrics")
        total = 0.0
        for fam in text_string_to_metric_families(body.decode()):
            for sample in fam.samples:
                if sample.name == "correlator_events_dead_lettered_total" or (
                    sample.name == "correlator_events_rejected_total"
                    and sample.labels.get("source") == "mqtt:ev"
                ):
                    total += sample.value
        return total

    assert set_aside() >= 1
    d.stop()
    d.start()  # acknowledged: the broker does not hand the deep message over again
    d.wait_for(lambda: d.metric("correlator_mqtt_connected", {"broker": "lab"}) == 1, what="reconnected")
    assert d.get("/readyz")[0] == 200
    assert len(d.events()) == 5


# -- Disk full: 503 + Retry-After and not ready, then back ----------------------------------------


@contextlib.contextmanager
def tiny_filesystem(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True)
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
            check=True,
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as e:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and mount permission): {e}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=10)


def fill(path: Path) -> None:
    with (path / "filler").open("wb") as f:
        chunk = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                f.write(chunk)
                f.flush()
    with contextlib.suppress(OSError), (path / "filler2").open("wb") as f:
        while True:
            f.write(b"\0" * 512)
            f.flush()


def test_disk_full_answers_503_with_retry_after_and_turns_not_ready(make_daemon, tmp_path):
    with tiny_filesystem(tmp_path / "var", "16m") as var:
        d = make_daemon(storage={"data_dir": str(var), "fsync": True})
        body = {"host": "h1", "type": "t", "message": "before"}
        assert d.post_json("/api/v1/events", body)[0] == 202
        d.wait_for(lambda: d.events(), what="the first event")
        fill(var)
        status, headers, raw = d.request(
            "POST",
            "/api/v1/events",
            orjson.dumps([{**body, "message": "x" * 16_000}] * 8),
            {"Content-Type": "application/json"},
        )
        assert status == 503, raw
        assert int(headers["Retry-After"]) >= 1
        assert orjson.loads(raw)["error"].startswith("storage unavailable")  # not "queue full"
        status, ready = d.get("/readyz")
        assert status == 503 and ready["checks"]["journal"] is False
        assert d.metric("correlator_events_rejected_total", {"reason": "storage_unavailable"}) >= 1
        (var / "filler").unlink()
        (var / "filler2").unlink()
        d.wait_for(lambda: d.post_json("/api/v1/events", {**body, "message": "after"})[0] == 202, what="202")
        d.wait_for(lambda: d.get("/readyz")[0] == 200, what="ready again")
        d.wait_for(lambda: len(d.events()) == 2, what="the event after")
        d.stop()
