"""The calendar file: recurring windows in local time, midnight crossing, and errors with file:line:col."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from correlator.changes.calendar import parse_calendar
from correlator.changes.settings import parse_settings
from correlator.changes.topology import DependencyMap
from correlator.errors import ConfigError
from correlator.yamlfile import loads

PARIS = ZoneInfo("Europe/Paris")


def cal(text: str):
    return parse_calendar(loads(text, "calendar.yaml"), "calendar.yaml")


def ts(s: str, tz: ZoneInfo = PARIS) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=tz).timestamp()


def test_sunday_window_in_local_time_follows_daylight_saving():
    [w] = cal(
        "windows:\n  - {name: paris, days: [sun], start: '02:00', end: '04:00', timezone: Europe/Paris, cis: [r1]}\n"
    ).windows
    winter = w.occurrences(ts("2027-01-16T12:00"), 86400)
    assert winter == [(ts("2027-01-17T02:00"), ts("2027-01-17T04:00"))]
    summer = w.occurrences(ts("2027-07-17T12:00"), 86400)
    assert summer == [(ts("2027-07-18T02:00"), ts("2027-07-18T04:00"))]
    assert summer[0][0] - winter[0][0] == 182 * 86400 - 3600  # one hour less: CEST
    assert w.occurrences(ts("2027-01-17T03:00"), 0) == winter  # still open at 03:00
    assert w.occurrences(ts("2027-01-15T12:00"), 86400) == []  # beyond the horizon


def test_a_window_can_cross_midnight_and_run_daily():
    [w] = cal(
        "windows:\n  - {name: n, days: daily, start: '23:00', end: '01:30', services: [payments]}\n"
    ).windows
    utc = ZoneInfo("UTC")
    assert w.occurrences(ts("2027-01-16T00:30", utc), 0) == [
        (ts("2027-01-15T23:00", utc), ts("2027-01-16T01:30", utc))
    ]
    assert w.services == ("payments",) and w.cis == ()


def test_unquoted_times_read_as_sexagesimal_by_yaml_still_work():
    [w] = cal("windows:\n  - {name: n, days: sat, start: 02:00, end: 04:00, cis: [a]}\n").windows
    assert (w.start.hour, w.duration.total_seconds()) == (2, 7200)


def test_dependencies_are_walked_both_ways():
    deps = cal("dependencies:\n  core: [app]\n  app: [web, batch]\n").dependencies
    assert deps.dependents_of("core") == {"app", "web", "batch"}
    assert deps.upstream_of("web") == {"app", "core"}
    assert DependencyMap.from_edges([("app", "core")]).dependents_of("core") == {"app"}


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("windows:\n  - name: w\n    days: [sunday, funday]\n    start: '02:00'\n    end: '04:00'\n    cis: [a]\n",
         "calendar.yaml:3:11: unknown day 'funday'"),
        ("windows:\n  - name: w\n    days: sun\n    start: '2am'\n    end: '04:00'\n    cis: [a]\n",
         "calendar.yaml:4:12: 'start' must be a time of day like '02:00'"),
        ("windows:\n  - {name: w, days: sun, start: '02:00', end: '04:00'}\n",
         "calendar.yaml:2:5: a window needs 'cis' or 'services'"),
        ("windows:\n  - {name: w, days: sun, start: '02:00', end: '04:00', cis: [a], timezone: Mars/Olympus}\n",
         "unknown time zone 'Mars/Olympus'"),
        ("windows:\n  - {name: w, days: sun, start: '02:00', end: '04:00', cis: [a], policy: mute}\n",
         "'policy' must be one of suppress, downgrade, tag, ignore"),
        ("windows:\n  - {name: w, days: sun, start: '02:00', end: '04:00', cis: [a], every: week}\n",
         "calendar.yaml:2:66: unknown window key 'every'"),
        ("windows:\n  - {name: w, days: sun, start: '02:00', end: '04:00', cis: [a]}\n"
         "  - {name: w, days: sat, start: '02:00', end: '04:00', cis: [b]}\n",
         "calendar.yaml:3:6: duplicate window name 'w'"),
        ("maintenance: []\n", "calendar.yaml:1:1: unknown key 'maintenance'"),
        ("dependencies:\n  core: 12\n", "'core' must be a list of names"),
    ],
)  # fmt: skip
def test_errors_name_the_place_and_what_was_expected(text, error):
    with pytest.raises(ConfigError) as e:
        cal(text)
    assert error in str(e.value)


def test_settings_validate_policies_and_durations(tmp_path):
    s = parse_settings({"policy": "downgrade", "suspect_window": "30m", "downgrade_to": "minor"})
    assert (s.policy, s.suspect_window, s.downgrade_to.value) == ("downgrade", 1800.0, "minor")
    for raw, error in (
        ({"policy": "mute"}, "'changes.policy': expected one of suppress, downgrade, tag, ignore"),
        ({"suspect_windw": "1h"}, "did you mean 'suspect_window'?"),
        ({"downgrade_to": "clear"}, "clear is not a downgrade"),
        ({"calendar": str(tmp_path / "nope.yaml")}, "no such calendar file"),
    ):
        with pytest.raises(ConfigError, match=error):
            parse_settings(raw)


def test_the_correlation_topology_file_joins_the_dependency_map(tmp_path):
    topo = tmp_path / "topology.yaml"
    topo.write_text("cis:\n  core-1: {}\n  dist-1: {parents: [core-1]}\n  srv-1: {depends_on: [dist-1]}\n")
    cal = tmp_path / "calendar.yaml"
    cal.write_text("dependencies:\n  srv-1: [app-9]\n")
    s = parse_settings({"topology": str(topo), "calendar": str(cal)})
    assert s.dependencies.dependents_of("core-1") == {"dist-1", "srv-1", "app-9"}
    assert s.dependencies.upstream_of("app-9") == {"srv-1", "dist-1", "core-1"}
    topo.write_text("cis:\n  a: {parents: [b]}\n")
    with pytest.raises(
        ConfigError, match=r"'changes.topology': .*topology.yaml:2:3: CI 'a' refers to unknown CI 'b'"
    ):
        parse_settings({"topology": str(topo)})
