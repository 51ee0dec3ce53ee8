"""The `changes:` section of correlator.yaml, validated once at start-up (docs/changes.md).

The calendar and the dependency map are loaded here at start-up, then again at each calendar
reload (reload.py), which hands them to the change service.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from correlator.changes.calendar import Calendar, load_calendar
from correlator.changes.model import POLICIES
from correlator.changes.topology import DependencyMap, load_dependencies
from correlator.config import parse_duration
from correlator.errors import ConfigError, FieldError, did_you_mean
from correlator.event import Severity
from correlator.yamlfile import YamlMap

_KEYS = (
    "dsn",
    "calendar",
    "topology",
    "policy",
    "dependents_policy",
    "downgrade_to",
    "suspect_window",
    "calendar_horizon",
)


@dataclass(frozen=True, slots=True)
class ChangeSettings:
    dsn: str | None = None  # postgresql://...; None: storage.dsn, else SQLite data_dir/records.db
    calendar_file: Path | None = None
    policy: str = "suppress"  # events on the change's own CIs and services
    dependents_policy: str = "tag"  # events on CIs depending on them
    downgrade_to: Severity = Severity.WARNING
    suspect_window: float = 7200.0  # incidents this long after a change ends are still suspected
    calendar_horizon: float = 86400.0  # calendar occurrences become change records this long before
    topology_file: Path | None = None  # the correlation topology file (parents/depends_on)
    calendar: Calendar = field(default_factory=Calendar)
    dependencies: DependencyMap = field(default_factory=DependencyMap)  # calendar's + topology's


def parse_settings(raw: Mapping[str, Any], base_dir: Path | None = None) -> ChangeSettings:
    def where(key: str) -> str:
        return f"{raw.where(key)}: " if isinstance(raw, YamlMap) else ""

    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in _KEYS:
            hint = did_you_mean(key, _KEYS)
            raise ConfigError(
                f"{where(key)}unknown key 'changes.{key}'" + (f"; did you mean {hint!r}?" if hint else "")
            )
        try:
            if key in ("suspect_window", "calendar_horizon"):
                kwargs[key] = parse_duration(value)
            elif key in ("policy", "dependents_policy"):
                if value not in POLICIES:
                    raise ValueError(f"expected one of {', '.join(POLICIES)}, got {value!r}")
                kwargs[key] = value
            elif key == "downgrade_to":
                sev = Severity.parse(value)
                if sev is Severity.CLEAR:
                    raise ValueError("clear is not a downgrade")
                kwargs[key] = sev
            elif key == "dsn":
                if value is not None and not (isinstance(value, str) and value.startswith("postgres")):
                    raise ValueError(f"expected postgresql://..., got {value!r}")
                kwargs[key] = value
            elif key in ("calendar", "topology"):
                if not isinstance(value, str) or not value:
                    raise ValueError(f"expected the path of the {key} file, got {value!r}")
                path = Path(value)
                kwargs[f"{key}_file"] = path if path.is_absolute() or base_dir is None else base_dir / path
        except (ValueError, FieldError) as e:
            raise ConfigError(f"{where(key)}'changes.{key}': {e}") from None
    calendar = load_calendar(kwargs["calendar_file"]) if "calendar_file" in kwargs else Calendar()
    deps = load_dependencies(calendar.dependencies, kwargs.get("topology_file"))
    return ChangeSettings(**kwargs, calendar=calendar, dependencies=deps)
