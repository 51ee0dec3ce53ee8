"""The incidents: section: defaults, a full example, and errors that name file, line and key."""

from __future__ import annotations

import pytest

from correlator.config import load_config
from correlator.errors import ConfigError
from correlator.incidents.settings import parse_settings


def test_defaults():
    s = parse_settings({})
    assert (s.dsn, s.reopen_window, s.close_after, s.major_priority) == (None, 3600.0, 86400.0, "P1")
    assert s.priority(1, 1) == "P1" and s.priority(2, 2) == "P3" and s.priority(3, 3) == "P5"


def test_full_example_from_a_file(tmp_path):
    path = tmp_path / "correlator.yaml"
    path.write_text(
        """
incidents:
  dsn: postgresql://correlator@db1/correlator
  reopen_window: 30m
  close_after: 3d
  priority_matrix: [[P1, P1, P2], [P2, P3, P4], [P3, P4, P5]]
  escalation:
    P1:
      - {after: 15m, level: 2, notify: [pager]}
      - {after: 5m, notify: [pager]}
  notify:
    pager: {url: "http://127.0.0.1:9000/page", send_on: [major]}
"""
    )
    s = parse_settings(load_config(path).incidents)
    assert s.dsn == "postgresql://correlator@db1/correlator"
    assert (s.reopen_window, s.close_after, s.priority(1, 2)) == (1800.0, 3 * 86400.0, "P1")
    assert [(st.after, st.level) for st in s.escalation["P1"]] == [(300.0, 2), (900.0, 2)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "  reopen_windw: 1h\n",
            r"c.yaml:3:3: 'incidents.reopen_windw': unknown key \(did you mean 'reopen_window'",
        ),
        ("  close_after: soon\n", r"c.yaml:3:3: 'incidents.close_after': expected a duration"),
        ("  escalation: {P0: []}\n", r"'incidents.escalation.P0': expected a priority"),
        (
            "  escalation: {P1: [{after: 5m, notify: [nobody]}]}\n",
            r"expected a list of targets from incidents.notify",
        ),
        ("  notify: {x: {url: ftp://a}}\n", r"'incidents.notify.x.url': expected an http"),
        ("  priority_matrix: [[P1]]\n", r"expected 3 rows"),
        ("  dsn: mysql://x\n", r"expected a PostgreSQL DSN"),
    ],
)
def test_errors_say_where(tmp_path, body, message):
    path = tmp_path / "c.yaml"
    path.write_text("# incident settings\nincidents:\n" + body)
    with pytest.raises(ConfigError, match=message):
        parse_settings(load_config(path).incidents)
