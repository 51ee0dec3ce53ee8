"""Scale-out mode, the unlucky paths, against real servers (the 3-node JetStream cluster and the
PostgreSQL the tests start, the real daemon as ingest and worker processes): a level-2 snapshot
larger than a NATS message, a worker paused past its lease that wakes up (a zombie), and a change
created through one process' API while the workers run."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import nats
import pytest

from correlator.cluster.partition import host_key, partition_of
from tests.integration.test_cluster import Start, cluster_node, incidents, owned, post
from tests.support.daemon import DaemonProcess
from tests.support.nats import nats_cluster
from tests.support.postgres import pg_server
from tests.support.storm import iso

__all__ = ["cluster_node", "nats_cluster", "pg_server"]

pytestmark = pytest.mark.integration

PAIRS = """
rules:
  - name: link
    kind: pair
    match: {{type: link.down}}
    close: {{type: link.up}}
    group_by: [host]
    within: {within}
    {when}: [{{incident: {{action: open, title: "{{host}} {title}", impact: 2, urgency: 2}}}}]
"""
LONG_PAIRS = PAIRS.format(within="1h", when="on_close", title="link bounced")
SHORT_PAIRS = PAIRS.format(within="10s", when="on_timeout", title="link down")


def rules_dir(tmp_path: Path, name: str, text: str) -> str:
    d = tmp_path / name
    d.mkdir()
    (d / "rules.yaml").write_text(text)
    return str(d)


async def _snapshot_storage(servers: str, stream: str, p: int) -> tuple[bytes, dict[str, int]]:
    """The value of `l2.<p>` and the objects in the snapshot object store (name -> size)."""
    nc = await nats.connect(servers=servers.split(","))
    try:
        js = nc.jetstream()
        kv = await js.key_value(f"{stream}_state")
        value = (await kv.get(f"l2.{p}")).value or b""
        try:
            objects = await js.object_store(f"{stream}_snapshots")
            found = {i.name or "": i.size or 0 for i in await objects.list(ignore_deletes=True)}
        except Exception:
            found = {}
        return value, found
    finally:
        await nc.close()


def snapshot_storage(worker: DaemonProcess, p: int) -> tuple[bytes, dict[str, int]]:
    c = worker.config["cluster"]
    return asyncio.run(_snapshot_storage(c["servers"], c["stream"], p))


def one_host_of(p: int, partitions: int) -> str:
    """A host whose events go to partition `p` (no inventory: the host is the partition key)."""
    return next(
        h for h in (f"h{n}" for n in range(1000)) if partition_of(host_key(h, None, "site"), partitions) == p
    )


def saves(d: DaemonProcess) -> float:
    return d.metric("correlator_cluster_state_save_seconds_count")


def test_a_snapshot_larger_than_a_nats_message_moves_with_its_partition(
    cluster_node: Start, tmp_path: Path
) -> None:
    """20,000 pending pairs with long, random fields: the partition's compressed snapshot is
    several MiB, above the 1 MiB a NATS message holds. It goes to the object store; worker-b
    restores it after worker-a is SIGKILLed, and the pairs close there."""
    config: dict[str, Any] = {
        "rules_dir": rules_dir(tmp_path, "pairs", LONG_PAIRS),
        "correlation": {"snapshot_interval": "1s"},
    }
    ingest = cluster_node("ingest", config=config, partitions=1)
    a = cluster_node("worker", name="worker-a", config=config, partitions=1)
    a.wait_for(lambda: owned(a) == 1, 20, "worker-a owning the partition")
    n = 20_000
    downs = [
        {
            "host": f"h{i}",
            "type": "link.down",
            "id": secrets.token_hex(32),
            "resource": secrets.token_hex(100),
        }
        for i in range(n)
    ]
    for i in range(0, n, 1000):  # a request is one message per partition: under max_payload
        post(ingest, downs[i : i + 1000])
    a.wait_for(lambda: a.metric("correlator_events_processed_total") >= n, 60, "every link down processed")
    after = saves(a)
    a.wait_for(lambda: saves(a) >= after + 2, 30, "a snapshot of the whole state")
    value, objects = snapshot_storage(a, 0)
    assert value.startswith(b"obj:"), value[:40]  # the bucket holds a pointer ...
    [(name, size)] = objects.items()  # ... to the one object left (older ones removed)
    assert name == value[4:].decode() and size > 2 << 20  # over 2 MiB compressed
    a.kill()
    b = cluster_node("worker", name="worker-b", config=config, partitions=1)
    b.wait_for(lambda: owned(b) == 1, 20, "worker-b taking the partition")
    assert b.metric("correlator_cluster_state_restored_total") == 1
    post(ingest, [{"host": f"h{i}", "type": "link.up", "id": f"up-{i}"} for i in range(0, n, 4000)])
    got = ingest.wait_for(lambda: len(incidents(ingest)) >= 5 and incidents(ingest), 30, "the bounces")
    assert sorted(i["title"] for i in got) == sorted(f"h{i} link bounced" for i in range(0, n, 4000))


def test_a_change_made_through_one_api_reaches_the_running_workers(cluster_node: Start) -> None:
    """A maintenance window created and approved through the ingest process' API while both
    workers run: each worker's maintenance stage sets aside the events of its CIs within the
    window, as the embedded mode does; a CI outside it opens its incident."""
    ingest = cluster_node("ingest")
    a = cluster_node("worker", name="worker-a")
    b = cluster_node("worker", name="worker-b")
    b.wait_for(lambda: owned(a) == 2 and owned(b) == 2, 20, "a fair share of the partitions")
    covered = [f"m{n}" for n in range(12)]  # spread over the four partitions, so over both workers
    now = time.time()
    body = {"title": "line cards", "cis": covered, "start": iso(now - 60), "end": iso(now + 3600)}
    status, doc = ingest.post_json("/api/v1/changes", body)
    assert status == 201, doc
    status, doc = ingest.post_json(f"/api/v1/changes/{doc['change']['id']}/approve", {})
    assert status == 200, doc

    def approved(d: DaemonProcess) -> bool:
        return d.metric("correlator_changes", {"state": "approved"}) == 1

    b.wait_for(lambda: approved(a) and approved(b), 10, "the change known to both workers")
    events = [
        {"host": h, "type": "cpu.high", "id": f"{h}-{i}"}
        for h in [*covered, "out1", "out2"]
        for i in range(2)
    ]
    post(ingest, events)
    got = ingest.wait_for(lambda: len(incidents(ingest)) >= 2 and incidents(ingest), 30, "the incidents")
    ingest.wait_for(lambda: len(ingest.events()) == len(events), 20, "every event stored")
    assert sorted(i["key"] for i in got) == ["cpu:out1", "cpu:out2"]
    inside = [e for e in ingest.events() if e["host"] in covered]
    assert {e["attributes"].get("maintenance") for e in inside} == {"suppress"}
    assert a.metric("correlator_maintenance_events_total", {"action": "suppressed"}) > 0
    assert b.metric("correlator_maintenance_events_total", {"action": "suppressed"}) > 0


def test_a_worker_paused_past_its_lease_writes_nothing_when_it_wakes(
    cluster_node: Start, tmp_path: Path
) -> None:
    """worker-a holds pending pairs and is paused (SIGSTOP) past its lease; worker-b takes its
    partitions, fences it out of the database and times the pairs out. worker-a wakes (SIGCONT)
    with the same pairs due: the database refuses what it makes of them, it gives its partitions
    up without a snapshot, and rejoins for a fair share. Each timeout is stored once, each
    incident counts one event."""
    config: dict[str, Any] = {
        "rules_dir": rules_dir(tmp_path, "pairs", SHORT_PAIRS),
        "correlation": {"snapshot_interval": "1s"},
    }
    ingest = cluster_node("ingest", config=config)
    a = cluster_node("worker", name="worker-a", config=config)
    a.wait_for(lambda: owned(a) == 4 and saves(a) >= 1, 20, "worker-a owning every partition")
    hosts = [f"l{n}" for n in range(8)]
    post(ingest, [{"host": h, "type": "link.down", "id": f"{h}-down"} for h in hosts])
    a.wait_for(lambda: a.metric("correlator_events_processed_total") >= 8, 20, "the link downs processed")
    assert a.proc is not None
    os.kill(a.proc.pid, signal.SIGSTOP)
    try:
        b = cluster_node("worker", name="worker-b", config=config)
        b.wait_for(lambda: owned(b) == 4, 20, "worker-b taking the paused worker's partitions")
        got = ingest.wait_for(lambda: len(incidents(ingest)) >= 8 and incidents(ingest), 30, "the timeouts")
    finally:
        os.kill(a.proc.pid, signal.SIGCONT)
    # worker-a's pairs are due as it wakes: what it makes of them is refused
    a.wait_for(lambda: a.metric("correlator_cluster_writes_fenced_total") >= 1, 20, "worker-a fenced out")
    b.wait_for(lambda: owned(a) == 2 and owned(b) == 2, 30, "worker-a rejoining for a fair share")

    def timeouts() -> list[str]:
        return sorted(e["host"] for e in ingest.events() if e["type"] == "link.timeout")

    assert ingest.wait_for(lambda: len(timeouts()) >= 8 and timeouts(), 20, "the timeouts") == hosts
    # One event per partition after the rejoin: once worker-a's are stored, a batch of its has gone
    # through its pipeline and store, and its writes land in order, so whatever it still held from
    # before the fence (timer events made as it woke) is written or refused by then.
    pings = {f"ping-{p}" for p in range(4)}
    post(ingest, [{"host": one_host_of(p, 4), "type": "ping", "id": f"ping-{p}"} for p in range(4)])
    ingest.wait_for(lambda: pings <= {e["id"] for e in ingest.events("type=ping")}, 20, "the pings stored")
    assert timeouts() == hosts
    got = incidents(ingest)
    assert sorted(i["title"] for i in got) == sorted(f"{h} link down" for h in hosts)
    assert all(i["event_count"] == 1 for i in got)
