"""The real daemon with level-2 rules: timer events reach the store with no further event, and a
restart (SIGTERM, then start) keeps a pending pair, whose timeout then fires."""

from __future__ import annotations

import pytest

from correlator.correlation.snapshot import read_rows
from correlator.event import parse_time

pytestmark = pytest.mark.integration

RULES = """
rules:
  - name: link-down
    kind: pair
    match: {type: linkDown}
    close: {type: linkUp}
    group_by: [host]
    within: %s
    timeout_type: link.down
    on_timeout: [{incident: {action: open, title: "{host} link down", impact: 2, urgency: 2}}]
    on_recover: [{incident: {action: resolve}}]
"""


def stored(d, type_):
    return [e for e in d.events() if e["type"] == type_]


def test_live_timeout_is_stored_without_another_event(make_daemon, tmp_path):
    rules = tmp_path / "myrules"
    rules.mkdir()
    (rules / "pair.yaml").write_text(RULES % "2s")
    d = make_daemon(rules_dir=str(rules))
    status, _ = d.post_json("/api/v1/events", {"host": "r1", "type": "linkDown"})
    assert status == 202
    keys = {"rule": "link-down"}
    d.wait_for(lambda: d.metric("correlator_correlation_keys", keys) == 1, what="pending pair")
    [timeout] = d.wait_for(lambda: stored(d, "link.down"), what="the timeout event in the store")
    assert timeout["host"] == "r1" and timeout["source"] == "correlator"
    assert timeout["attributes"]["correlation"]["rule"] == "link-down"
    # the timeout's response reached the incident stage: one incident for the key, resolved by linkUp
    [inc] = d.wait_for(lambda: incidents(d, "link-down:r1"), what="the incident of the timeout")
    assert inc["title"] == "r1 link down" and inc["status"] == "new"
    d.post_json("/api/v1/events", {"host": "r1", "type": "linkUp"})
    d.wait_for(lambda: [i for i in incidents(d, "link-down:r1") if i["status"] == "resolved"], what="resolve")


def incidents(d, key):
    status, doc = d.get(f"/api/v1/incidents?key={key}")
    assert status == 200, doc
    return doc["incidents"]


def test_restart_keeps_the_pending_pair(make_daemon, tmp_path):
    rules = tmp_path / "myrules"
    rules.mkdir()
    (rules / "pair.yaml").write_text(RULES % "6s")
    d = make_daemon(rules_dir=str(rules))
    d.post_json("/api/v1/events", {"host": "r2", "type": "linkDown"})
    [down] = d.wait_for(lambda: stored(d, "linkDown"), what="linkDown stored")
    assert d.stop() == 0
    saved, _ = read_rows(tmp_path / "var" / "correlation.db")
    assert [k for k, _ in saved["link-down"][1]["pending"]] == [["r2"]]
    d.start()
    [timeout] = d.wait_for(lambda: stored(d, "link.down"), timeout=30, what="the timeout after restart")
    # the restored deadline: exactly 6 s after the linkDown, whenever the new process saw it pass
    assert timeout["host"] == "r2"
    assert timeout["attributes"]["correlation"]["opened_by"] == down["id"]
    assert parse_time(timeout["time"]) - parse_time(down["time"]) == pytest.approx(6.0)


def test_notify_response_posts_to_the_configured_webhook(make_daemon, tmp_path):
    import http.server
    import json
    import threading

    from tests.support.daemon import free_port

    got: list[dict] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(500 if len(got) == 1 else 200)  # the first attempt fails: retried
            self.end_headers()

        def log_message(self, *args):
            pass

    port = free_port()
    server = http.server.HTTPServer(("127.0.0.1", port), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rules = tmp_path / "myrules"
        rules.mkdir()
        (rules / "pair.yaml").write_text((RULES % "1s") + "    on_close: [{notify: {target: noc}}]\n")
        d = make_daemon(
            rules_dir=str(rules),
            correlation={"notify": {"noc": {"url": f"http://127.0.0.1:{port}/hook", "backoff": "50ms"}}},
        )
        batch = [{"host": "r3", "type": "linkDown"}, {"host": "r3", "type": "linkUp"}]
        status, _ = d.post_json("/api/v1/events", batch)
        assert status == 202
        d.wait_for(lambda: len(got) >= 2, what="the notification, delivered on the second attempt")
        assert got[-1]["rule"] == "link-down" and got[-1]["hook"] == "close"
        assert got[-1]["event"]["type"] == "linkUp"
        assert d.metric("correlator_notifications_total", {"target": "noc", "outcome": "sent"}) == 1
    finally:
        server.shutdown()


def test_crash_loses_no_pending_pair(make_daemon, tmp_path):
    """SIGKILL: no shutdown snapshot; the start-up feeds the stored linkDown to the rule again."""
    rules = tmp_path / "myrules"
    rules.mkdir()
    (rules / "pair.yaml").write_text(RULES % "6s")
    d = make_daemon(rules_dir=str(rules), correlation={"snapshot_interval": "1h"})
    d.post_json("/api/v1/events", {"host": "r4", "type": "linkDown"})
    [down] = d.wait_for(lambda: stored(d, "linkDown"), what="linkDown stored")
    d.kill()
    d.start()
    [timeout] = d.wait_for(lambda: stored(d, "link.down"), timeout=30, what="the timeout after the crash")
    assert timeout["attributes"]["correlation"]["opened_by"] == down["id"]
    assert parse_time(timeout["time"]) - parse_time(down["time"]) == pytest.approx(6.0)
