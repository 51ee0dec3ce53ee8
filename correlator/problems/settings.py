"""The `problems:` section of correlator.yaml: when recurring incidents open a problem."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from correlator.config import parse_duration
from correlator.errors import ConfigError, did_you_mean
from correlator.yamlfile import YamlMap

_KEYS = ("recurrence_count", "recurrence_window")


@dataclass(frozen=True, slots=True)
class ProblemSettings:
    recurrence_count: int = 3  # incidents with one signature within the window open a problem
    recurrence_window: float = 7 * 86400.0


def parse_settings(raw: Mapping[str, Any]) -> ProblemSettings:
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"{raw.where(key)}: " if isinstance(raw, YamlMap) else ""
        if key not in _KEYS:
            hint = did_you_mean(key, _KEYS)
            raise ConfigError(
                f"{where}unknown key 'problems.{key}'" + (f"; did you mean {hint!r}?" if hint else "")
            )
        if key == "recurrence_count":
            if isinstance(value, bool) or not isinstance(value, int) or value < 2:
                raise ConfigError(
                    f"{where}'problems.recurrence_count': expected a whole number >= 2, got {value!r}"
                )
            kwargs[key] = value
        else:
            try:
                kwargs[key] = parse_duration(value)
            except ValueError as e:
                raise ConfigError(f"{where}'problems.{key}': {e}") from None
    return ProblemSettings(**kwargs)
