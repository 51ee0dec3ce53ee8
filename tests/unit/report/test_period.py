"""The report's period: from/to/period as a person gives them, defaults, and what is refused."""

from __future__ import annotations

import pytest

from correlator.errors import FieldError
from correlator.report.period import DEFAULT_PERIOD, parse_period

NOW = 1_800_000_000.0
DAY = 86400.0


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, (NOW - DEFAULT_PERIOD, NOW)),
        ({"period": "7d"}, (NOW - 7 * DAY, NOW)),
        ({"from": "2026-11-01T00:00:00Z"}, (1_793_491_200.0, NOW)),
        ({"from": "2026-11-01", "period": "1w"}, (1_793_491_200.0, 1_793_491_200.0 + 7 * DAY)),
        ({"to": "2026-12-01T00:00:00+00:00", "period": "30d"}, (1_796_083_200.0 - 30 * DAY, 1_796_083_200.0)),
        ({"from": "1793491200", "to": "1796083200"}, (1_793_491_200.0, 1_796_083_200.0)),
        (
            {"from": None, "to": None, "period": None},
            (NOW - DEFAULT_PERIOD, NOW),
        ),  # the command's unset options
    ],
)
def test_defaults_and_combinations(params: dict[str, str | None], expected: tuple[float, float]) -> None:
    assert parse_period(params, NOW) == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-11-01", "to": "2026-12-01", "period": "7d"}, "period"),
        ({"from": "2026-12-01", "to": "2026-11-01"}, "from"),
        ({"from": "2026-11-01", "to": "2026-11-01"}, "from"),
        ({"period": "0s"}, "period"),
        ({"period": "-3d"}, "period"),
        ({"period": "401d"}, "period"),
        ({"period": "soon"}, "period"),
        ({"from": "last monday"}, "from"),
        ({"to": "nan"}, "to"),
        ({"to": "1e30"}, "to"),
        ({"to": "1e400"}, "to"),
        ({"from": "9999-12-31T23:59:59-01:00"}, "from"),
        ({"period": "99999999999999999999999d"}, "period"),
        ({"since": "2026-11-01"}, "since"),
    ],
)
def test_refused_with_the_field_named(params: dict[str, str], field: str) -> None:
    with pytest.raises(FieldError) as e:
        parse_period(params, NOW)
    assert e.value.field == field and str(e.value)
