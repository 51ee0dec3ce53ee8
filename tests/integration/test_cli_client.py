"""The API clients of the `correlator` command against a real daemon: where the daemon is, option
order, every incident action, `events` across pages, and failures as one line."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import orjson
import pytest

pytestmark = pytest.mark.integration

TOKEN = "s3cret-admin-token"


def cli(cwd, *args, **env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRELATOR_")}
    return subprocess.run(
        [sys.executable, "-m", "correlator", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**env, **env_extra},
    )


@pytest.fixture
def daemon(make_daemon):
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    return make_daemon(http={"tokens": {"noc": {"role": "admin", "sha256": digest}}})


def test_options_after_the_action_the_url_from_the_config_and_the_token_file(daemon, tmp_path):
    (tmp_path / "token").write_text(TOKEN + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # cwd holds the daemon's correlator.yaml: its http.listen is where the daemon is
    r = cli(tmp_path, "incidents", "list", "--token-file", "token")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ID ")
    # the same options before the action, the URL given, the token from the environment
    r = cli(elsewhere, "incidents", "--url", daemon.url, "list", CORRELATOR_TOKEN=TOKEN)
    assert r.returncode == 0, r.stderr
    r = cli(elsewhere, "incidents", "list", "--config", str(tmp_path / "correlator.yaml"), "--json",
            CORRELATOR_TOKEN_FILE=str(tmp_path / "token"))  # fmt: skip
    assert r.returncode == 0 and orjson.loads(r.stdout)["incidents"] == []
    r = cli(tmp_path, "incidents", "list")  # no token
    assert r.returncode == 1 and r.stderr.startswith("correlator incidents: HTTP 401: missing API token")


def test_every_incident_action_and_show_with_its_links(daemon, tmp_path):
    env = {"CORRELATOR_URL": daemon.url, "CORRELATOR_TOKEN": TOKEN}
    auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def api(method, path, doc):
        status, _, body = daemon.request(method, path, orjson.dumps(doc), auth)
        assert status in (200, 201), body
        return orjson.loads(body)

    ident = api("POST", "/api/v1/incidents", {"title": "uplink down", "host": "core-sw1"})["incident"]["id"]
    prb = api("POST", "/api/v1/problems", {"title": "bad SFP batch"})["problem"]["id"]
    api("PATCH", f"/api/v1/incidents/{ident}", {"problem_id": prb})
    steps = [
        (["ack", ident, "--note", "on it"], "acknowledged"),
        (["status", ident, "on_hold", "--note", "carrier"], "on_hold"),
        (["assign", ident, "--group", "transport", "--assignee", "dana"], "on_hold"),
        (["comment", ident, "carrier ticket 1234"], "on_hold"),
        (["resolve", ident, "--code", "fixed"], "resolved"),
        (["reopen", ident, "--reason", "again"], "new"),
        (["resolve", ident], "resolved"),
        (["close", ident], "closed"),
    ]
    for args, status in steps:
        r = cli(tmp_path, "incidents", *args, **env)
        assert r.returncode == 0, (args, r.stderr)
        assert r.stdout.strip() == f"{ident} is now {status}", args
    r = cli(tmp_path, "incidents", "show", ident, **env)
    assert r.returncode == 0, r.stderr
    assert f"problem_id: {prb}" in r.stdout
    assert "assignee: dana" in r.stdout and "carrier ticket 1234" in r.stdout
    r = cli(tmp_path, "incidents", "reopen", ident, **env)  # closed is final
    assert r.returncode == 1 and r.stderr.startswith("correlator incidents: HTTP 409: ")


def test_events_follows_the_cursor_and_prints_ndjson(make_daemon, tmp_path):
    daemon = make_daemon()  # no tokens: the API is open
    env = {"CORRELATOR_URL": daemon.url}
    body = b"".join(orjson.dumps({"host": "h1", "type": "probe", "id": f"e{i}"}) + b"\n" for i in range(1005))
    status, _, _ = daemon.request("POST", "/api/v1/events", body, {"Content-Type": "application/x-ndjson"})
    assert status == 202
    daemon.wait_for(lambda: len(daemon.events("host=h1")) == 1005, what="1005 events stored")
    r = cli(tmp_path, "events", "--host", "h1", "--limit", "0", "--json", **env)
    assert r.returncode == 0, r.stderr
    ids = [orjson.loads(line)["id"] for line in r.stdout.splitlines()]
    assert sorted(ids) == sorted(f"e{i}" for i in range(1005))  # two pages, each event once
    r = cli(tmp_path, "events", "--url", daemon.url, "--type", "probe", "--limit", "3", **env)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 1 + 3  # header and three events
    r = cli(tmp_path, "events", "--since", "yesterday", **env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "HTTP 400" in r.stderr


def test_a_closed_pipe_is_not_an_error(make_daemon, tmp_path):
    daemon = make_daemon()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRELATOR_")}
    env |= {"CORRELATOR_URL": daemon.url}
    daemon.post_json("/api/v1/events", [{"host": "h2", "type": "t", "id": f"p{i}"} for i in range(300)])
    daemon.wait_for(lambda: len(daemon.events("host=h2")) == 300, what="300 events stored")
    # like `correlator events --host h2 --limit 0 | head -1`, with a reader that is already gone
    read, write = os.pipe()
    os.close(read)
    p = subprocess.run(
        [sys.executable, "-m", "correlator", "events", "--host", "h2", "--limit", "0"],
        stdout=write, stderr=subprocess.PIPE, text=True, env=env, timeout=60,
    )  # fmt: skip
    os.close(write)
    assert (p.returncode, p.stderr) == (0, "")


def test_failures_are_one_line_without_a_traceback(tmp_path):
    for args in (
        ["rules", "explain", "missing.ndjson"],
        ["incidents", "list", "--url", "http://127.0.0.1:1"],
        ["events", "--url", "http://127.0.0.1:1"],
        ["backup", str(tmp_path / "bk"), "--data", str(tmp_path / "nothing")],
    ):
        r = cli(tmp_path, *args)
        assert r.returncode != 0, args
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (args, r.stderr)
