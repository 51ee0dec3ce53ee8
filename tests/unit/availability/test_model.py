"""The services file: redundancy groups, and errors that name the file, line and column."""

from __future__ import annotations

import pytest

from correlator.availability import parse_services, parse_settings
from correlator.errors import ConfigError
from correlator.yamlfile import loads

SERVICES = """
cis: [core-sw1]
services:
  web-shop:
    target: 0.9995
    all_of:
      - fw1
      - any_of:
          - {ci: r1, resource: uplink-a}
          - {ci: r2, resource: uplink-b}
"""


def test_all_of_any_of_nest():
    model = parse_services(loads(SERVICES, "s.yaml"), "s.yaml")
    shop = model.services["web-shop"]
    assert shop.target == 0.9995
    assert model.cis == ("core-sw1", "fw1", "r1", "r2")
    down: set[tuple[str, str]] = set()
    assert not shop.is_down(lambda e: e in down)
    down.add(("r1", "uplink-a"))
    assert not shop.is_down(lambda e: e in down), "one of two redundant uplinks down: still up"
    down.add(("r2", "uplink-b"))
    assert shop.is_down(lambda e: e in down)
    assert shop.is_down(lambda e: e == ("fw1", ""))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("services:\n  a:\n    all_of: []\n", r"s.yaml:3:13: 'all_of' must be a non-empty list"),
        ("services:\n  a:\n    all_of: [x]\n    any_of: [y]\n", r"s.yaml:3:5: 'a' needs exactly one of"),
        ("services:\n  a:\n    all_of:\n      - 3\n", r"s.yaml:4:9: a member is a CI name"),
        ("services:\n  a:\n    target: 2\n    all_of: [x]\n", r"s.yaml:3:13: 'target' must be a ratio"),
        ("services:\n  a:\n    all_off: [x]\n", r"s.yaml:3:5: unknown key 'all_off'"),
        ("servics: {}\n", r"s.yaml:1:1: unknown key 'servics'"),
    ],
)
def test_errors_say_where(text: str, error: str):
    with pytest.raises(ConfigError, match=error):
        parse_services(loads(text, "s.yaml"), "s.yaml")


def test_settings():
    s = parse_settings(
        loads(
            "services_file: s.yaml\nwindows: [1h, 7d]\ndefault_target: 0.99\n"
            "maintenance:\n  - {start: '2026-12-01T22:00:00Z', end: '2026-12-02T02:00:00Z', services: [web-shop]}\n",
            "c.yaml",
        )
    )
    assert s.windows == (("1h", 3600.0), ("7d", 604800.0))
    assert s.maintenance[0].end - s.maintenance[0].start == 4 * 3600
    with pytest.raises(ConfigError, match=r"c.yaml:1:11: 'availability.windows': expected a duration"):
        parse_settings(loads("windows: [soon]\n", "c.yaml"))
    with pytest.raises(ConfigError, match=r"c.yaml:2:5: maintenance times need a zone"):
        parse_settings(
            loads("maintenance:\n  - {start: '2026-12-01T22:00:00', end: '2026-12-02T02:00:00'}\n", "c.yaml")
        )
    with pytest.raises(ConfigError, match=r"c.yaml:1:1: unknown key 'availability.window'"):
        parse_settings(loads("window: 1d\n", "c.yaml"))
