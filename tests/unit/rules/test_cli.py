"""`correlator rules check|test|explain|schema`: output and exit codes an operator or CI relies on."""

from __future__ import annotations

import json
from pathlib import Path

from correlator.cli import main

REPO = Path(__file__).resolve().parents[3]


def test_check_ok(capsys):
    assert main(["rules", "check", str(REPO / "rules")]) == 0
    assert "OK" in capsys.readouterr().out


def test_check_lists_every_error_and_fails(tmp_path, capsys):
    (tmp_path / "a.yaml").write_text("rules:\n  - name: a\n    dorp: true\n  - name: b\n    dedup: later\n")
    (tmp_path / "b.yaml").write_text("rules: [\n")
    assert main(["rules", "check", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{tmp_path}/a.yaml:3:5: unknown key 'dorp' (did you mean 'drop'?)")
    assert err[1].startswith(f"{tmp_path}/a.yaml:5:12: dedup: expected a duration")
    assert err[2].startswith(f"{tmp_path}/b.yaml:2:1: YAML syntax error")
    assert err[3] == f"3 error(s) in {tmp_path}"


def test_test_passes_and_fails_with_a_readable_diff(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text(
        "rules: [{name: major, match: {type: down}, classify: {severity: major}}]\n"
    )
    (tmp_path / "ok_test.yaml").write_text(
        "tests:\n  - name: fine\n    input: [{event: {host: a, type: down}}]\n"
        "    expect: [{severity: major}]\n"
    )
    assert main(["rules", "test", str(tmp_path / "ok_test.yaml")]) == 0
    assert "1 passed, 0 failed" in capsys.readouterr().out
    (tmp_path / "bad_test.yaml").write_text(
        "rules: .\n"
        "tests:\n"
        "  - name: wrong\n"
        "    input: [{event: {host: a, type: down}}, {at: 1m, event: {host: b, type: up}}]\n"
        "    expect: [{severity: critical, attributes: {x: 1}}]\n"
    )
    assert main(["rules", "test", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL  " in out and "bad_test.yaml:3:5: wrong" in out
    assert "event #1 (down): severity: expected 'critical', got 'major'" in out
    assert "event #1 (down): attributes.x: expected 1, but it is absent" in out
    assert "event #2: unexpected {type: 'up', host: 'b'" in out
    assert "1 passed, 1 failed (2 files)" in out


def test_cases_of_one_file_share_no_state(tmp_path, capsys):
    """The rules are compiled once per test file, but every case starts from empty state: a level-2
    window, a de-duplication window and a rate limit filled by one case are empty in the next."""
    (tmp_path / "r.yaml").write_text(
        "rules:\n"
        "  - {name: once, match: {type: dup}, dedup: 1h}\n"
        "  - {name: few, match: {type: many}, rate_limit: {max: 1, per: 1h}}\n"
        "  - name: two\n    kind: threshold\n    match: {type: cpu}\n    count: 2\n    within: 1h\n"
        "    on_fire: [{emit: {type: storm}}]\n"
    )
    case = (
        "  - name: {name}\n    input: [{{event: {{host: a, type: cpu}}}}, {{event: {{host: a, type: dup}}}},"
        " {{event: {{host: a, type: many}}}}]\n"
        "    expect: [{{type: cpu}}, {{type: dup}}, {{type: many}}]\n"
    )
    (tmp_path / "iso_test.yaml").write_text(
        "rules: .\ntests:\n" + "".join(case.format(name=f"case{i}") for i in range(3))
    )
    assert main(["rules", "test", "-v", str(tmp_path / "iso_test.yaml")]) == 0, capsys.readouterr().out
    assert "3 passed, 0 failed" in capsys.readouterr().out


def test_test_reports_broken_test_files(tmp_path, capsys):
    (tmp_path / "x_test.yaml").write_text("tests:\n  - name: t\n    inputs: []\n")
    assert main(["rules", "test", str(tmp_path / "x_test.yaml")]) == 1
    assert "unknown key 'inputs' in test case (did you mean 'input'?)" in capsys.readouterr().out


def test_explain(tmp_path, capsys):
    event = tmp_path / "ev.json"
    event.write_text(
        json.dumps(
            {
                "host": "core-sw1",
                "type": "IF-MIB::linkDown",
                "attributes": {"ifIndex": 3, "ifDescr": "Gi0/3"},
            }
        )
    )
    assert main(["rules", "explain", str(event), "--rules", str(REPO / "rules")]) == 0
    out = capsys.readouterr().out
    assert "inventory-enrichment" in out
    assert "snmp-link-down (" in out and "20-snmp.yaml" in out
    assert "severity: 'info' -> 'major'" in out
    assert "resource: '' -> 'Gi0/3'" in out
    assert "result: kept" in out
    assert "  link-down (" in out and "pair: nothing open -> opened " in out
    assert main(["rules", "explain", str(event), "--rules", str(REPO / "rules"), "--json"]) == 0
    [item] = json.loads(capsys.readouterr().out)["timeline"]
    assert item["event_out"]["severity"] == "major"
    assert [s["rule"] for s in item["steps"] if s["matched"]] == ["inventory-enrichment", "snmp-link-down"]
    assert [r["rule"] for r in item["level2"]] == ["interface-flapping", "link-down"]


LINK = {"host": "core-sw1", "attributes": {"ifIndex": 3, "ifDescr": "Gi0/3"}}


def test_explain_ndjson_with_a_timeout_between_the_events(tmp_path, capsys):
    events = tmp_path / "events.ndjson"
    lines = [
        {"time": "2026-11-30T10:00:00Z", "type": "IF-MIB::linkDown", **LINK},
        {"time": "2026-11-30T10:01:00Z", "type": "IF-MIB::linkUp", **LINK},
    ]
    events.write_text("".join(json.dumps(d) + "\n" for d in lines) + "\n")
    args = ["rules", "explain", str(events), "--rules", str(REPO / "rules")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert (
        out.index("== event 1 at 2026-11-30T10:00:00Z: IF-MIB::linkDown on core-sw1")
        < out.index("== timer at 2026-11-30T10:00:30Z: link-down (")
        < out.index("== event 2 at 2026-11-30T10:01:00Z: IF-MIB::linkUp on core-sw1")
    )
    assert "50-correlation.yaml:" in out and "), key core-sw1/Gi0/3" in out
    assert "hook timeout: made link.down (major) on core-sw1/Gi0/3" in out
    assert "incident open 'link-down:core-sw1/Gi0/3': 'core-sw1 interface Gi0/3 down'" in out
    assert "       hook recover\n         incident resolve 'link-down:core-sw1/Gi0/3'" in out
    assert main([*args, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [i["kind"] for i in doc["timeline"]] == ["event", "timer", "event"]
    down, timeout, up = doc["timeline"]
    assert down["level2"][1]["after"].startswith("pair: opened 10:00:00Z, waiting for the close")
    assert (timeout["rule"], timeout["hook"], timeout["key"]) == (
        "link-down",
        "timeout",
        ["core-sw1", "Gi0/3"],
    )
    assert [r["action"] for r in timeout["responses"]] == ["open"]
    assert [(r["rule"], [h["hook"] for h in r["hooks"]]) for r in up["level2"]] == [
        ("interface-flapping", []),
        ("link-down", ["recover"]),
    ]


def test_explain_a_json_array_from_stdin_and_wait(tmp_path, capsys, monkeypatch):
    import io

    doc = [{"time": "2026-11-30T10:00:00Z", "type": "IF-MIB::linkDown", **LINK}]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(json.dumps(doc).encode())))
    assert main(["rules", "explain", "-", "--rules", str(REPO / "rules"), "--wait", "1m"]) == 0
    assert "== timer at 2026-11-30T10:00:30Z: link-down (" in capsys.readouterr().out


def test_explain_names_the_bad_line(tmp_path, capsys):
    events = tmp_path / "events.ndjson"
    events.write_text('{"host": "a", "type": "x"}\n{"host": "a", "typ": "x"}\n')
    assert main(["rules", "explain", str(events), "--rules", str(REPO / "rules")]) == 2
    assert f"{events}:2: " in capsys.readouterr().err


def test_explain_a_dropped_event(tmp_path, capsys):
    event = tmp_path / "ev.json"
    event.write_text(json.dumps({"host": "lab-sw1", "type": "x"}))
    assert main(["rules", "explain", str(event), "--rules", str(REPO / "rules")]) == 0
    out = capsys.readouterr().out
    assert "drop-lab-hosts" in out and "event removed (drop)" in out and "result: removed at level 1" in out


def test_schema(capsys):
    assert main(["rules", "schema"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "rule_filter" in doc["$defs"]


def test_expected_responses(tmp_path, capsys):
    (tmp_path / "r.yaml").write_text("rules: [{name: a, match: {type: down}, classify: {severity: major}}]\n")
    (tmp_path / "x_test.yaml").write_text(
        "rules: .\n"
        "tests:\n"
        "  - name: no incident from level 1\n"
        "    input: [{event: {host: a, type: down}}]\n"
        "    expect: [{severity: major}]\n"
        "    expect_responses: []\n"
        "  - name: wants an incident\n"
        "    input: [{event: {host: a, type: down}}]\n"
        "    expect: [{severity: major}]\n"
        "    expect_responses: [{kind: IncidentRequest, action: open}]\n"
    )
    assert main(["rules", "test", str(tmp_path / "x_test.yaml")]) == 1
    out = capsys.readouterr().out
    assert (
        "response #1: expected {kind: 'IncidentRequest', action: 'open'}, but only 0 response(s) came out"
        in out
    )
    assert "1 passed, 1 failed" in out


def test_responses_are_compared_as_plain_mappings():
    from correlator.responses import IncidentRequest
    from correlator.responses import response_dict as _response
    from correlator.rules.testing import compare
    from tests.unit.rules.helpers import ev

    r = _response(IncidentRequest("open", "sw1/Gi0/1", ev("sw1", id="e9"), "pair-link", title="down"))
    assert r["kind"] == "IncidentRequest" and r["event"] == {
        "id": "e9",
        "type": "IF-MIB::linkDown",
        "host": "sw1",
    }
    assert compare([{"action": "open", "event": {"id": "e9"}}], [r], what="response") == []
    assert compare([{"action": "resolve"}], [r], what="response") == [
        "response #1 (IncidentRequest): action: expected 'resolve', got 'open'"
    ]


def test_test_and_explain_refuse_what_the_door_refuses(tmp_path, capsys):
    """A NUL or a year-10000 time in a test input or an explained event is named like any other
    invalid input; an old time is fine (the door's time policy does not apply to recordings)."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(
        "rules: [{name: major, match: {type: down}, classify: {severity: major}}]\n"
    )
    (tmp_path / "nul_test.yaml").write_text(
        "rules: rules\n"
        "tests:\n"
        "  - name: nul\n"
        '    input: [{event: {host: "a\\0b", type: down}}]\n'
        "    expect: [{severity: major}]\n"
        "  - name: far\n"
        '    input: [{event: {host: a, type: down, time: "9999-12-31T23:59:59-01:00"}}]\n'
        "    expect: [{severity: major}]\n"
        "  - name: old\n"
        '    input: [{event: {host: a, type: down, time: "1990-01-01T00:00:00Z"}}]\n'
        "    expect: [{severity: major}]\n"
    )
    assert main(["rules", "test", str(tmp_path / "nul_test.yaml")]) == 1
    out = capsys.readouterr().out
    assert f"{tmp_path}/nul_test.yaml:4:" in out and "host: contains U+0000" in out
    assert f"{tmp_path}/nul_test.yaml:7:" in out and "time: outside the years 1 to 9999" in out
    assert "1 passed, 2 failed" in out
    events = tmp_path / "events.ndjson"
    events.write_text('{"host": "a", "type": "down"}\n{"host": "a", "type": "down", "message": "x\\u0000"}\n')
    assert main(["rules", "explain", str(events), "--rules", str(tmp_path / "rules")]) == 2
    assert f"{events}:2: message: contains U+0000" in capsys.readouterr().err


def test_a_missing_file_is_one_line_and_exit_2(tmp_path, capsys):
    missing = tmp_path / "nofile.yaml"
    assert main(["rules", "test", str(tmp_path), str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"correlator rules test: {missing}: no such file\n"
    (tmp_path / "rules").mkdir()
    assert main(["rules", "explain", str(tmp_path / "no.json"), "--rules", str(tmp_path / "rules")]) == 2
    assert capsys.readouterr().err == f"correlator rules explain: {tmp_path / 'no.json'}: no such file\n"
