"""Scale-out mode against real servers: a 3-node NATS JetStream cluster (R3 stream and buckets)
started by the tests, the tests' own PostgreSQL, and the real daemon as ingest and worker processes."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_storm import LIVE_SCALE, post_at_own_pace, wait_for_table, write_storm
from tests.support.daemon import DaemonProcess, base_config, free_port
from tests.support.nats import NatsCluster, nats_cluster
from tests.support.postgres import _run, pg_server
from tests.support.storm import storm, storm_changes

__all__ = ["nats_cluster", "pg_server"]

pytestmark = pytest.mark.integration

RULES = """
rules:
  - name: cpu
    kind: threshold
    match: {type: cpu.high}
    group_by: [host]
    count: 2
    within: 1h
    on_fire: [{incident: {action: open, title: "{host} CPU high", impact: 2, urgency: 2}}]
  - name: cpu-again
    kind: threshold
    match: {type: cpu.again}
    group_by: [host]
    count: 1
    within: 1s
    on_fire: [{incident: {action: update, key: "cpu:{host}"}}]
  - name: auth
    kind: threshold
    match: {type: auth.fail}
    group_by: [host]
    count: 3
    within: 1h
    on_fire: [{incident: {action: open, title: "{host} auth failures", impact: 2, urgency: 2}}]
  - name: link
    kind: pair
    match: {type: link.down}
    close: {type: link.up}
    group_by: [host]
    within: 5s
    on_close: [{incident: {action: open, title: "{host} link bounced", impact: 3, urgency: 3}}]
    on_timeout: [{incident: {action: open, title: "{host} link down", impact: 2, urgency: 2}}]
  - name: port
    kind: pair
    match: {type: port.down}
    close: {type: port.up}
    group_by: [host]
    within: 10m
    on_close: [{incident: {action: open, title: "{host} port bounced", impact: 3, urgency: 3}}]
"""

Start = Callable[..., DaemonProcess]


@pytest.fixture
def cluster_node(tmp_path: Path, nats_cluster: NatsCluster, pg_server: str) -> Iterator[Start]:
    """cluster_node(role, **cluster settings) -> a started ingest or worker process. Each test has
    its own stream and database, so the module shares one NATS cluster and one PostgreSQL."""
    stream = f"ev{secrets.token_hex(3)}"
    db = f"correlator_cluster_{secrets.token_hex(4)}"
    _run(pg_server, f'CREATE DATABASE "{db}"')
    rules = tmp_path / "myrules"
    rules.mkdir()
    (rules / "cpu.yaml").write_text(RULES)
    started: list[DaemonProcess] = []

    def start(
        role: str, name: str | None = None, config: dict[str, Any] | None = None, **cluster: Any
    ) -> DaemonProcess:
        name = name or f"{role}{len(started)}"
        workdir = tmp_path / name
        workdir.mkdir()
        port = free_port()
        settings = {
            "role": role,
            "servers": nats_cluster.servers,
            "stream": stream,
            "partitions": 4,
            "replicas": 3,
            "lease_ttl": "3s",
            "dsn": f"{pg_server}/{db}",
            "name": name,
            **cluster,
        }
        cfg = base_config(workdir, port, cluster=settings, **{"rules_dir": str(rules), **(config or {})})
        d = DaemonProcess(workdir, cfg, port)
        d.start(timeout=30)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()
    _run(pg_server, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def post(d: DaemonProcess, events: list[dict[str, Any]]) -> None:
    status, doc = d.post_json("/api/v1/events", events)
    assert status == 202, doc


def incidents(d: DaemonProcess) -> list[dict[str, Any]]:
    status, doc = d.get("/api/v1/incidents?limit=500")
    assert status == 200, doc
    return list(doc["incidents"])


def test_event_goes_through_the_cluster_to_an_incident(cluster_node: Start) -> None:
    ingest = cluster_node("ingest")
    worker = cluster_node("worker")
    post(
        ingest,
        [{"host": "r1", "type": "cpu.high", "id": "e1"}, {"host": "r1", "type": "cpu.high", "id": "e2"}],
    )
    [inc] = ingest.wait_for(lambda: incidents(ingest), timeout=30, what="the incident opened by the worker")
    assert inc["title"] == "r1 CPU high" and inc["key"] == "cpu:r1"
    ids = {e["id"] for e in ingest.wait_for(lambda: len(ingest.events()) >= 2 and ingest.events(), 20)}
    assert {"e1", "e2"} <= ids
    # the worker owns every partition, and says so in its metrics; ingest counted the publish
    assert ingest.metric("correlator_events_received_total") == 2
    assert worker.wait_for(lambda: worker.metric("correlator_cluster_partitions_owned") == 4, 15)
    # acknowledged through the ingest process' API, then updated by the worker: the ack stands
    status, doc = ingest.post_json(f"/api/v1/incidents/{inc['id']}/ack", {"note": "on it"})
    assert status == 200, doc
    post(ingest, [{"host": "r1", "type": "cpu.again", "id": f"e{n}"} for n in (3, 4)])
    ingest.wait_for(lambda: {"e3", "e4"} <= {e["id"] for e in ingest.events()}, 20, "the update stored")
    [inc] = ingest.wait_for(lambda: [i for i in incidents(ingest) if i["event_count"] > 1], 20, "the update")
    assert inc["status"] == "acknowledged"


def test_a_calendar_change_started_on_the_timer_leader_worker_has_its_event_stored(
    cluster_node: Start, tmp_path: Path
) -> None:
    """The worker owning partition 0 runs the change calendar. A worker runs no collector, but the
    change.started event it emits goes to the stream like an ingest process' events, is processed
    by the owner of its partition and stored: not refused and counted lost."""

    def utc(t: float) -> str:  # a one-off window's dated bound
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))

    now = time.time()
    window = {"name": "edge-works", "start": utc(now - 300), "end": utc(now + 3600), "cis": ["edge-1"]}
    calendar = tmp_path / "calendar.yaml"
    calendar.write_text(json.dumps({"windows": [window]}))  # JSON is YAML
    config = {"changes": {"calendar": str(calendar)}}
    ingest = cluster_node("ingest", config=config)
    worker = cluster_node("worker", config=config)
    worker.wait_for(lambda: owned(worker) == 4, 30, "the worker owning every partition")
    # A batch runs the calendar at once on the leader (else its next 10 s round does).
    post(ingest, [{"host": "r1", "type": "cpu.high", "id": "e1"}])
    [ev] = ingest.wait_for(lambda: ingest.events("type=change.started"), 30, "change.started stored")
    assert ev["source"] == "changes" and ev["host"] == "edge-1"
    assert ev["attributes"]["change_id"] == ev["resource"]
    assert worker.metric("correlator_change_events_total", {"result": "queued"}) == 1
    assert worker.metric("correlator_change_events_total", {"result": "lost"}) == 0


def cpu_events(phase: str, hosts: int = 20) -> list[dict[str, Any]]:
    return [
        {"host": f"h{h}", "type": "cpu.high", "id": f"{phase}-{h}-{i}"}
        for h in range(hosts)
        for i in range(2)
    ]


def stored_ids(d: DaemonProcess) -> set[str]:
    """The stored event ids; none yet while the API answers 503 (its database connection was lost)."""
    status, _ = d.get("/api/v1/events?limit=1")
    if status == 503:
        return set()
    return {e["id"] for e in d.events()}


def owned(d: DaemonProcess) -> float:
    return d.metric("correlator_cluster_partitions_owned")


def test_sigkill_of_a_worker_loses_nothing_and_opens_no_incident_twice(cluster_node: Start) -> None:
    ingest = cluster_node("ingest")
    a = cluster_node("worker", name="worker-a")
    b = cluster_node("worker", name="worker-b")
    # a joining worker takes a fair share: 4 partitions, 2 each
    b.wait_for(lambda: owned(a) == 2 and owned(b) == 2, 20, "a fair share of the partitions")
    post(ingest, cpu_events("one"))
    ingest.wait_for(lambda: len(incidents(ingest)) == 20, 30, "an incident per host")
    post(ingest, cpu_events("two"))  # acknowledged, and worker-a is killed while it may be processing
    a.kill()
    killed = time.monotonic()
    post(ingest, cpu_events("three"))
    b.wait_for(lambda: owned(b) == 4, 15, "worker-b taking worker-a's partitions")
    assert time.monotonic() - killed < 10.0  # the takeover bound of docs/cluster.md
    want = {e["id"] for phase in ("one", "two", "three") for e in cpu_events(phase)}
    ingest.wait_for(lambda: stored_ids(ingest) >= want, 30, "every acknowledged event stored")
    assert len(ingest.events()) == len(want)  # stored once each
    keys = [i["key"] for i in incidents(ingest)]
    assert sorted(keys) == sorted(f"cpu:h{h}" for h in range(20))  # none opened twice
    assert b.metric("correlator_cluster_partitions_taken_total") >= 4


def test_restart_of_one_nats_node_keeps_ingest_and_workers_going(
    cluster_node: Start, nats_cluster: NatsCluster
) -> None:
    ingest = cluster_node("ingest")
    worker = cluster_node("worker")
    post(ingest, cpu_events("before", hosts=5))
    ingest.wait_for(lambda: len(incidents(ingest)) == 5, 30, "incidents before the restart")
    node = nats_cluster.nodes[0]  # the first URL of every process' list: they were connected to it
    nats_cluster.stop_node(node)
    try:
        # two of three replicas answer: publishes are still acknowledged (after the client reconnects)
        ingest.wait_for(lambda: _try_post(ingest, cpu_events("during", hosts=5)), 30, "a publish acked")
    finally:
        nats_cluster.start_node(node)
        nats_cluster.wait_ready()
    post(ingest, cpu_events("after", hosts=5))
    want = {e["id"] for p in ("before", "during", "after") for e in cpu_events(p, hosts=5)}
    ingest.wait_for(lambda: stored_ids(ingest) >= want, 40, "every acknowledged event stored")
    assert len(incidents(ingest)) == 5
    assert worker.metric("correlator_cluster_partitions_owned") == 4


def _try_post(d: DaemonProcess, events: list[dict[str, Any]]) -> bool:
    status, doc = d.post_json("/api/v1/events", events)
    assert status in (202, 503), doc  # never a 500: the sender is told to retry
    return status == 202


def test_rolling_restart_of_the_workers(cluster_node: Start) -> None:
    ingest = cluster_node("ingest")
    a = cluster_node("worker", name="worker-a")
    b = cluster_node("worker", name="worker-b")
    b.wait_for(lambda: owned(a) == 2 and owned(b) == 2, 20, "a fair share of the partitions")
    phases = ["p0"]
    post(ingest, cpu_events("p0"))
    for w in (a, b):
        assert w.stop() == 0  # SIGTERM: drains, then hands its partitions over at once
        phases.append(f"p{len(phases)}")
        post(ingest, cpu_events(phases[-1]))
        w.start(timeout=30)
    want = {e["id"] for p in phases for e in cpu_events(p)}
    ingest.wait_for(lambda: stored_ids(ingest) >= want, 40, "every acknowledged event stored")
    assert len(ingest.events()) == len(want)
    assert sorted(i["key"] for i in incidents(ingest)) == sorted(f"cpu:h{h}" for h in range(20))
    b.wait_for(lambda: owned(a) + owned(b) == 4, 20, "every partition owned again")


def test_postgresql_connection_loss_is_retried_without_loss(cluster_node: Start, pg_server: str) -> None:
    ingest = cluster_node("ingest")
    worker = cluster_node("worker")
    post(ingest, cpu_events("one", hosts=3))
    ingest.wait_for(lambda: len(incidents(ingest)) == 3, 30, "incidents")
    db = worker.config["cluster"]["dsn"].rsplit("/", 1)[1]
    _run(pg_server, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'")
    post(ingest, cpu_events("two", hosts=3))
    want = {e["id"] for p in ("one", "two") for e in cpu_events(p, hosts=3)}
    ingest.wait_for(lambda: stored_ids(ingest) >= want, 40, "every event stored after the reconnect")
    assert len(incidents(ingest)) == 3


def test_level2_state_moves_to_the_worker_taking_a_partition(cluster_node: Start) -> None:
    """A pair opened on worker A closes on worker B, a pair A opened times out on B, a threshold
    half counted on A completes on B: A is SIGKILLed in between, B restores A's partition snapshots
    and feeds them the events stored after them.

    The pair that closes on B has a window (10 min) longer than any takeover, however loaded the
    machine: the kill, B's start and the lease's expiry take wall time, and live correlation runs
    on wall time. The one that times out has 5 s: on B, or on A when A was slow to snapshot; the
    incidents are the same either way. The waits are long for a loaded machine: they end as soon
    as their condition holds."""
    fast = {"correlation": {"snapshot_interval": "1s"}}
    ingest = cluster_node("ingest")
    a = cluster_node("worker", name="worker-a", config=fast)
    a.wait_for(lambda: owned(a) == 4, 60, "worker-a owning every partition")
    post(
        ingest,
        [
            {"host": "x1", "type": "port.down", "id": "x-down"},
            {"host": "z1", "type": "link.down", "id": "z-down"},
            {"host": "y1", "type": "auth.fail", "id": "y-1"},
            {"host": "y1", "type": "auth.fail", "id": "y-2"},
        ],
    )
    ingest.wait_for(lambda: len(stored_ids(ingest)) == 4, 60, "the first events stored")
    a.wait_for(lambda: a.metric("correlator_cluster_state_save_seconds_count") >= 1, 60, "a snapshot")
    a.kill()
    b = cluster_node("worker", name="worker-b", config=fast)
    b.wait_for(lambda: owned(b) == 4, 60, "worker-b taking worker-a's partitions")
    assert b.metric("correlator_cluster_state_restored_total") >= 1
    post(
        ingest,
        [{"host": "x1", "type": "port.up", "id": "x-up"}, {"host": "y1", "type": "auth.fail", "id": "y-3"}],
    )
    want = {"port:x1": "x1 port bounced", "link:z1": "z1 link down", "auth:y1": "y1 auth failures"}
    got = ingest.wait_for(lambda: len(incidents(ingest)) >= 3 and incidents(ingest), 60, "three incidents")
    assert {i["key"]: i["title"] for i in got} == want
    assert len(got) == 3  # none twice: the re-fed events made nothing again


def test_a_partition_handed_over_keeps_its_timers_on_its_new_owner_only(cluster_node: Start) -> None:
    """Rebalancing (a worker joins): worker A snapshots the partitions it gives up and forgets
    their keys; B restores them. Each pending pair times out once, on whichever worker owns it."""
    fast = {"correlation": {"snapshot_interval": "1h"}}  # only the hand-over snapshot counts here
    ingest = cluster_node("ingest")
    a = cluster_node("worker", name="worker-a", config=fast)
    a.wait_for(lambda: owned(a) == 4, 20, "worker-a owning every partition")
    hosts = [f"l{n}" for n in range(8)]
    post(ingest, [{"host": h, "type": "link.down", "id": f"{h}-down"} for h in hosts])
    ingest.wait_for(lambda: len(stored_ids(ingest)) == 8, 20, "the link downs stored")
    b = cluster_node("worker", name="worker-b", config=fast)
    b.wait_for(lambda: owned(a) == 2 and owned(b) == 2, 20, "a fair share of the partitions")
    got = ingest.wait_for(lambda: len(incidents(ingest)) >= 8 and incidents(ingest), 30, "the timeouts")
    assert sorted(i["title"] for i in got) == sorted(f"{h} link down" for h in hosts)

    def timeouts() -> list[str]:
        return sorted(e["host"] for e in ingest.events() if e["type"] == "link.timeout")

    # once each (stored after the incidents): the worker that gave a partition up forgot its keys
    assert ingest.wait_for(lambda: len(timeouts()) >= 8 and timeouts(), 20, "the timeouts") == hosts
    assert all(i["event_count"] == 1 for i in got)


def test_the_storm_with_two_workers_gives_the_embedded_incident_table(
    cluster_node: Start, tmp_path: Path
) -> None:
    """The storm acceptance suite (tests/integration/test_storm.py) through the cluster: each
    topology tree is one inventory site, the two sites land in the two partitions, one per worker.
    The change is made through the ingest process before the workers start (they read the
    calendar at start)."""
    events, topology, rules, expected = storm(0.0, LIVE_SCALE)  # for the hosts only
    rules_dir = write_storm(tmp_path / "storm", topology, rules)
    core1_tree = {"core-1", "dist-1", "dist-2", *(f"acc-{a}" for a in range(1, 9))}
    core1_tree |= {f"srv-{s}" for s in range(1, 17)}
    sites = {h: ("par1" if h in core1_tree else "lyo1") for h in {e["host"] for e in events}}
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text("hosts:\n" + "".join(f"  {h}: {{site: {s}}}\n" for h, s in sorted(sites.items())))
    config = {"rules_dir": str(rules_dir), "inventory_file": str(inventory)}
    ingest = cluster_node("ingest", config=config, partitions=2)
    start = time.time() + 15.0  # the workers start and share the partitions first
    events, _, _, expected = storm(start, LIVE_SCALE)
    for body in storm_changes(start, LIVE_SCALE):
        status, doc = ingest.post_json("/api/v1/changes", body)
        assert status == 201, doc
        status, doc = ingest.post_json(f"/api/v1/changes/{doc['change']['id']}/approve", {})
        assert status == 200, doc
    a = cluster_node("worker", name="worker-a", config=config, partitions=2)
    b = cluster_node("worker", name="worker-b", config=config, partitions=2)
    b.wait_for(lambda: owned(a) == 1 and owned(b) == 1, 20, "one partition each")
    assert time.time() < start, "the workers took too long to start"
    post_at_own_pace(ingest, events)
    wait_for_table(ingest, expected, 10.0)
    assert a.metric("correlator_events_processed_total") > 0 < b.metric("correlator_events_processed_total")
