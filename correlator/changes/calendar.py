"""The maintenance calendar file: recurring windows (e.g. every Sunday 02:00-04:00 for a site).

Loaded at start-up and at every reload (reload.py; errors give file:line:col); each occurrence
becomes an approved change record shortly before it starts (occurrences.py, service.py), so
calendar windows and API changes behave the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from correlator import yamlfile
from correlator.changes.model import POLICIES, RISKS
from correlator.changes.topology import DependencyMap
from correlator.errors import FileError
from correlator.yamlfile import Position, YamlList, YamlMap

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LONG = {
    d: i for i, d in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
}
_WINDOW_KEYS = {
    "name", "title", "days", "start", "end", "timezone", "cis", "services", "policy",
    "dependents_policy", "risk", "implementer", "description",
}  # fmt: skip


class CalendarError(FileError):
    """One problem in the calendar file: `str(e)` is `file:line:column: message` where the place is known."""


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    title: str
    days: frozenset[int]  # 0 = Monday
    start: time
    duration: timedelta
    tz: ZoneInfo
    cis: tuple[str, ...]
    services: tuple[str, ...] = ()
    policy: str | None = None
    dependents_policy: str | None = None
    risk: str = "low"
    implementer: str = ""
    description: str = ""

    def occurrences(self, now: float, horizon: float) -> list[tuple[float, float]]:
        """[start, end) of the occurrences not over at `now` that start before now + horizon."""
        local = datetime.fromtimestamp(now, self.tz).date()
        out = []
        for offset in range(-2, int(horizon // 86400) + 2):
            day = local + timedelta(days=offset)
            if day.weekday() not in self.days:
                continue
            s = datetime.combine(day, self.start, self.tz).astimezone(UTC).timestamp()
            e = s + self.duration.total_seconds()
            if e > now and s <= now + horizon:
                out.append((s, e))
        return out

    def occurs_at(self, start: float, end: float) -> bool:
        """Whether [start, end) is one of this window's occurrences."""
        return (start, end) in self.occurrences(start, 0)


@dataclass(frozen=True, slots=True)
class Calendar:
    windows: tuple[Window, ...] = ()
    dependencies: DependencyMap = field(default_factory=DependencyMap)


def load_calendar(path: Path) -> Calendar:
    try:
        doc = yamlfile.load(path)
    except FileNotFoundError:
        raise CalendarError(str(path), f"{path}: no such calendar file ('changes.calendar')") from None
    except yamlfile.YamlError as e:
        raise CalendarError(str(path), e.message, e.position) from None
    return parse_calendar(doc, str(path))


def parse_calendar(doc: Any, file: str) -> Calendar:
    if doc is None:
        return Calendar()
    if not isinstance(doc, YamlMap):
        _fail(Position(file, 1, 1), "the calendar must be a mapping with 'windows' and 'dependencies'")
    for key in doc:
        if key not in ("windows", "dependencies"):
            _fail(doc.where(key), f"unknown key {key!r}; expected 'windows' or 'dependencies'")
    deps: dict[str, list[str]] = {}
    raw_deps = doc.get("dependencies") or {}
    if not isinstance(raw_deps, Mapping):
        _fail(
            doc.where_value("dependencies"), "'dependencies' must map a CI to the list of CIs depending on it"
        )
    for ci, children in raw_deps.items():
        deps[ci] = _names(raw_deps, ci, children)
    windows = []
    raw_windows = doc.get("windows") or YamlList()
    if not isinstance(raw_windows, YamlList):
        _fail(doc.where_value("windows"), "'windows' must be a list of windows")
    names: set[str] = set()
    for i, w in enumerate(raw_windows):
        pos = raw_windows.item_positions[i]
        if not isinstance(w, YamlMap):
            _fail(pos, "a window must be a mapping (name, days, start, end, cis, ...)")
        window = _window(w)
        if window.name in names:
            _fail(w.where("name"), f"duplicate window name {window.name!r}")
        names.add(window.name)
        windows.append(window)
    return Calendar(tuple(windows), DependencyMap(deps))


def _window(w: YamlMap) -> Window:
    for key in w:
        if key not in _WINDOW_KEYS:
            _fail(w.where(key), f"unknown window key {key!r}; known: {', '.join(sorted(_WINDOW_KEYS))}")
    for key in ("name", "days", "start", "end"):
        if key not in w:
            _fail(w.position, f"a window needs {key!r}")
    if "cis" not in w and "services" not in w:
        _fail(w.position, "a window needs 'cis' or 'services' (what it covers)")
    name = _text(w, "name")
    start, end = _clock(w, "start"), _clock(w, "end")
    duration = datetime.combine(datetime.min, end) - datetime.combine(datetime.min, start)
    if duration <= timedelta(0):
        duration += timedelta(days=1)  # 22:00-02:00 crosses midnight
    tzname = _text(w, "timezone") if "timezone" in w else "UTC"
    try:
        tz = ZoneInfo(tzname)
    except (ZoneInfoNotFoundError, ValueError):
        _fail(
            w.where_value("timezone"),
            f"unknown time zone {tzname!r}; expected an IANA name like Europe/Paris",
        )
    for key, allowed in (("policy", POLICIES), ("dependents_policy", POLICIES), ("risk", RISKS)):
        if key in w and w[key] not in allowed:
            _fail(w.where_value(key), f"{key!r} must be one of {', '.join(allowed)}, got {w[key]!r}")
    return Window(
        name=name,
        title=_text(w, "title") if "title" in w else f"maintenance window {name}",
        days=_days(w),
        start=start,
        duration=duration,
        tz=tz,
        cis=tuple(_names(w, "cis", w.get("cis") or [])),
        services=tuple(_names(w, "services", w.get("services") or [])),
        policy=w.get("policy"),
        dependents_policy=w.get("dependents_policy"),
        risk=w.get("risk", "low"),
        implementer=_text(w, "implementer") if "implementer" in w else "",
        description=_text(w, "description") if "description" in w else "",
    )


def _days(w: YamlMap) -> frozenset[int]:
    raw = w["days"]
    if raw == "daily":
        return frozenset(range(7))
    items = [raw] if isinstance(raw, str) else raw
    out = set()
    if not isinstance(items, list) or not items:
        _fail(
            w.where_value("days"), "'days' must be 'daily', a day name or a list of day names like [sat, sun]"
        )
    for d in items:
        key = str(d).lower()
        if key in DAYS:
            out.add(DAYS.index(key))
        elif key in _LONG:
            out.add(_LONG[key])
        else:
            _fail(w.where_value("days"), f"unknown day {d!r}; expected one of {', '.join(DAYS)} or 'daily'")
    return frozenset(out)


def _clock(w: YamlMap, key: str) -> time:
    raw = w[key]
    if isinstance(raw, int) and not isinstance(raw, bool):  # YAML 1.1 reads 02:00 unquoted as 120 (base 60)
        raw = f"{raw // 60:02d}:{raw % 60:02d}"
    try:
        hh, mm = str(raw).split(":")
        return time(int(hh), int(mm))
    except ValueError:
        _fail(w.where_value(key), f"{key!r} must be a time of day like '02:00', got {raw!r}")


def _text(m: YamlMap, key: str) -> str:
    v = m[key]
    if not isinstance(v, str) or not v.strip():
        _fail(m.where_value(key), f"{key!r} must be non-empty text, got {v!r}")
    return v


def _names(m: Mapping[str, Any], key: str, v: Any) -> list[str]:
    if isinstance(v, str):
        v = [v]
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        where = m.where_value(key) if isinstance(m, YamlMap) else None
        _fail(where, f"{key!r} must be a list of names, got {v!r}")
    return list(v)


def _fail(where: Position | None, message: str) -> NoReturn:
    raise CalendarError(where.file if where else "", message, where)
