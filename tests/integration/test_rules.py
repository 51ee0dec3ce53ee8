"""The real daemon with rules: reload by API, SIGHUP and file change; broken sets keep the old one
serving and show their errors; de-duplication folds repeats into the stored event."""

from __future__ import annotations

import re
import signal

import pytest

pytestmark = pytest.mark.integration

GOOD = "rules:\n  - name: classify-x\n    match: {type: x}\n    classify: {severity: %s}\n"
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
BROKEN = "rules:\n  - name: broken\n    match: {type: x}\n    clasify: {severity: major}\n"


def rules_doc(d):
    status, doc = d.get("/api/v1/rules")
    assert status == 200, doc
    return doc


def send(d, ident, **fields):
    status, doc = d.post_json("/api/v1/events", {"id": ident, "host": "h1", "type": "x", **fields})
    assert status == 202, doc


def severity_of(d, ident):
    events = [e for e in d.events() if e["id"] == ident]
    return events[0]["severity"] if events else None


def test_reload_by_api_and_broken_sets_keep_the_old_one(make_daemon, tmp_path):
    rules = tmp_path / "myrules"
    rules.mkdir()
    (rules / "a.yaml").write_text(GOOD % "major")
    d = make_daemon(rules_dir=str(rules))
    send(d, "e1")
    assert d.wait_for(lambda: severity_of(d, "e1"), what="e1 stored") == "major"
    doc = rules_doc(d)
    assert doc["reload_success"] is True and doc["errors"] == []
    [rule] = doc["rules"]
    assert (rule["name"], rule["kind"], rule["line"], rule["matches"]) == ("classify-x", "filter", 2, 1)
    assert rule["file"].endswith("a.yaml")
    assert d.metric("correlator_rule_matches_total", {"rule": "classify-x"}) == 1

    (rules / "a.yaml").write_text(GOOD % "critical")
    status, result = d.post_json("/api/v1/rules/reload", {})
    assert status == 200 and result["ok"] is True and result["rules"] == 1
    send(d, "e2")
    assert d.wait_for(lambda: severity_of(d, "e2"), what="e2 stored") == "critical"

    (rules / "b.yaml").write_text(BROKEN)
    status, result = d.post_json("/api/v1/rules/reload", {})
    assert status == 422 and result["ok"] is False
    [err] = result["errors"]
    assert (err["line"], err["column"]) == (4, 5)
    assert (
        err["file"].endswith("b.yaml")
        and "unknown key 'clasify' (did you mean 'classify'?)" in err["message"]
    )
    doc = rules_doc(d)
    assert doc["reload_success"] is False
    assert doc["errors"][0]["text"].startswith(f"{rules}/b.yaml:4:5: unknown key 'clasify'")
    assert [r["name"] for r in doc["rules"]] == ["classify-x"]
    assert d.metric("correlator_rules_reload_success") == 0
    send(d, "e3")  # the previous set still serves
    assert d.wait_for(lambda: severity_of(d, "e3"), what="e3 stored") == "critical"
    assert "b.yaml:4:5: unknown key 'clasify'" in d.log()


def test_reload_times_are_iso_8601_utc(make_daemon, tmp_path):
    rules = tmp_path / "myrules"
    rules.mkdir()
    (rules / "a.yaml").write_text(GOOD % "major")
    (tmp_path / "calendar.yaml").write_text("windows: []\n")
    (tmp_path / "services.yaml").write_text("services:\n  web:\n    any_of: [web1, web2]\n")
    d = make_daemon(
        rules_dir=str(rules),
        changes={"calendar": str(tmp_path / "calendar.yaml")},
        availability={"services_file": str(tmp_path / "services.yaml")},
    )

    def iso_utc(value: object) -> bool:
        return isinstance(value, str) and bool(ISO_UTC.fullmatch(value))

    status, result = d.post_json("/api/v1/rules/reload", {})
    assert status == 200, result
    assert iso_utc(result["at"]), result
    assert iso_utc(result["calendar"]["at"]) and iso_utc(result["services"]["at"]), result
    doc = rules_doc(d)
    assert iso_utc(doc["loaded_at"]) and iso_utc(doc["last_reload"]["at"]), doc
    assert iso_utc(doc["calendar"]["at"]) and iso_utc(doc["services"]["at"]), doc


def test_sighup_and_file_change_reload(make_daemon, tmp_path):
    rules = tmp_path / "myrules"
    rules.mkdir()
    (rules / "a.yaml").write_text(GOOD % "minor")
    d = make_daemon(rules_dir=str(rules))
    (rules / "b.yaml").write_text(BROKEN)
    d.wait_for(lambda: rules_doc(d)["reload_success"] is False, what="file change noticed (broken set)")
    assert d.metric("correlator_rules_reload_success") == 0
    (rules / "b.yaml").unlink()
    (rules / "a.yaml").write_text(GOOD % "warning")
    d.wait_for(lambda: rules_doc(d)["reload_success"] is True, what="file change noticed (fixed set)")
    send(d, "w1")
    assert d.wait_for(lambda: severity_of(d, "w1"), what="w1 stored") == "warning"

    # SIGHUP on files the watcher already reloaded: a no-op, said in the log (docs/operations.md)
    before = rules_doc(d)["last_reload"]
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(
        lambda: "rules reload (SIGHUP): files unchanged since the last reload" in d.log(),
        what="SIGHUP noticed",
    )
    assert rules_doc(d)["last_reload"] == before and rules_doc(d)["reload_success"] is True
    assert d.proc.poll() is None  # SIGHUP reloads, it does not stop the daemon


def test_duplicates_fold_into_the_stored_event(make_daemon, tmp_path):
    rules = tmp_path / "myrules"
    rules.mkdir()
    (rules / "dedup.yaml").write_text("rules:\n  - name: dedup-x\n    match: {type: x}\n    dedup: 10m\n")
    d = make_daemon(rules_dir=str(rules))
    send(d, "first", time="2026-11-30T10:00:00Z")
    d.wait_for(lambda: severity_of(d, "first"), what="first stored")
    send(d, "second", time="2026-11-30T10:01:00Z")
    send(d, "third", time="2026-11-30T10:02:00Z")
    stored = d.wait_for(
        lambda: (evs := d.events()) and evs[0]["count"] == 3 and evs,
        what="count folded into the stored event",
    )
    assert [e["id"] for e in stored] == ["first"]
    assert stored[0]["last_seen"] == "2026-11-30T10:02:00Z"
    assert d.metric("correlator_rule_dropped_events_total", {"rule": "dedup-x", "reason": "duplicate"}) == 2


def test_a_broken_set_at_start_stops_the_daemon_with_positions(make_daemon, tmp_path):
    rules = tmp_path / "myrules"
    rules.mkdir()
    (rules / "b.yaml").write_text(BROKEN)
    d = make_daemon(start=False, rules_dir=str(rules))
    with pytest.raises(RuntimeError) as info:
        d.start()
    assert "b.yaml:4:5: unknown key 'clasify'" in str(info.value)


def test_the_shipped_rules_run_in_the_daemon(make_daemon):
    from tests.support.daemon import REPO

    d = make_daemon(rules_dir=str(REPO / "rules"))
    status, _ = d.post_json(
        "/api/v1/events",
        [
            {"id": "l1", "host": "core-sw1", "type": "IF-MIB::linkDown", "attributes": {"ifDescr": "Gi0/3"}},
            {"id": "lab", "host": "lab-sw1", "type": "IF-MIB::linkDown"},
        ],
    )
    assert status == 202
    ev = d.wait_for(lambda: [e for e in d.events() if e["id"] == "l1"], what="l1 stored")[0]
    assert (ev["severity"], ev["resource"], ev["attributes"]["category"]) == ("major", "Gi0/3", "network")
    d.wait_for(
        lambda: (
            d.metric("correlator_rule_dropped_events_total", {"rule": "drop-lab-hosts", "reason": "drop"})
            == 1
        ),
        what="lab event dropped",
    )
    assert [e["id"] for e in d.events()] == ["l1"]


BAD_FILES = [
    ("rules:\n  - name: a\n    drop: [oops\n", 4, "YAML syntax error"),
    ("rules:\n  - name: a\n    match: {host: {regex: '(unclosed'}}\n    drop: true\n", 3, "invalid regex"),
    ("rules:\n  - name: a\n    dedup: {window: soon}\n", 3, "expected a duration"),
    ("rules:\n  - name: classify-x\n    drop: true\n", 2, "duplicate rule name 'classify-x'"),
    ("rules:\n  - name: a\n    set: {message: '{attributes.x} on {hots}'}\n", 3, "unknown field 'hots'"),
    ("rules:\n  - name: a\n    rate_limit: {max: many, per: 1m}\n", 3, "expected a whole number"),
]


def test_every_kind_of_bad_file_is_reported_and_the_daemon_keeps_serving(make_daemon, tmp_path):
    rules = tmp_path / "myrules"
    rules.mkdir()
    (rules / "a.yaml").write_text(GOOD % "major")
    d = make_daemon(rules_dir=str(rules))
    for n, (text, line, message) in enumerate(BAD_FILES):
        (rules / "z.yaml").write_text(text)
        status, result = d.post_json("/api/v1/rules/reload", {})
        assert status == 422, (text, result)
        errs = result["errors"]
        assert any(
            e["file"].endswith("z.yaml") and e["line"] == line and message in e["message"] for e in errs
        ), errs
        send(d, f"b{n}")
        assert d.wait_for(lambda n=n: severity_of(d, f"b{n}"), what="event stored") == "major"
    assert d.proc.poll() is None


def test_reload_needs_the_operator_role_when_tokens_are_configured(make_daemon):
    from correlator.api.auth import hash_token

    tokens = {
        "ops": {"role": "operator", "sha256": hash_token("o-secret")},
        "ro": {"role": "viewer", "sha256": hash_token("v-secret")},
    }
    d = make_daemon(http={"tokens": tokens})
    assert d.post_json("/api/v1/rules/reload", {})[0] == 401
    assert d.post_json("/api/v1/rules/reload", {}, {"Authorization": "Bearer v-secret"})[0] == 403
    assert d.post_json("/api/v1/rules/reload", {}, {"Authorization": "Bearer o-secret"})[0] == 200
    status, _, _ = d.request("GET", "/api/v1/rules", headers={"Authorization": "Bearer v-secret"})
    assert status == 200
