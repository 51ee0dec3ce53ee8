"""The maintenance calendar file: recurring windows (every Sunday 02:00-04:00 for a site, an RFC 5545
RRULE such as the second Tuesday of the month) and one-off windows.

Loaded at start-up and at every reload (reload.py; errors give file:line:col); each occurrence
becomes an approved change record shortly before it starts (occurrences.py, service.py), so
calendar windows and API changes behave the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from correlator import yamlfile
from correlator.changes import recurrence
from correlator.changes.model import POLICIES, RISKS
from correlator.changes.recurrence import Recurrence, RecurrenceError
from correlator.changes.topology import DependencyMap
from correlator.errors import FileError
from correlator.yamlfile import Position, YamlList, YamlMap

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LONG = {
    d: i for i, d in enumerate(("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))
}
_WINDOW_KEYS = {
    "name", "title", "days", "rrule", "from", "exdates", "start", "end", "timezone", "cis", "services",
    "policy", "dependents_policy", "risk", "implementer", "description",
}  # fmt: skip
_WHEN = ("days", "rrule")  # a recurring window has one of them; a one-off window dated start and end


class CalendarError(FileError):
    """One problem in the calendar file: `str(e)` is `file:line:column: message` where the place is known."""


@dataclass(frozen=True, slots=True)
class Window:
    name: str
    title: str
    recurrence: Recurrence  # when it opens, in local time of `tz`
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
        # A day of margin each side: local times shift by the zone's offset and its DST changes.
        lo = self._local(now - self.duration.total_seconds() - 86400)
        hi = self._local(now + horizon + 86400)
        out = []
        for local in self.recurrence.starts(lo, hi):
            s, e = self._span(local)
            if e > now and s <= now + horizon:
                out.append((s, e))
        return out

    def next_occurrence(self, now: float) -> tuple[float, float] | None:
        """The first occurrence not over at `now`, however far ahead; None if there is none."""
        for local in self.recurrence.following(self._local(now - self.duration.total_seconds() - 86400)):
            s, e = self._span(local)
            if e > now:
                return s, e
        return None

    def occurs_at(self, start: float, end: float) -> bool:
        """Whether [start, end) is one of this window's occurrences."""
        return (start, end) in self.occurrences(start, 0)

    def _local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, self.tz).replace(tzinfo=None)

    def _span(self, local: datetime) -> tuple[float, float]:
        # A local time skipped by a DST change reads as if the change had not happened yet (PEP 495).
        s = local.replace(tzinfo=self.tz).astimezone(UTC).timestamp()
        return s, s + self.duration.total_seconds()


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
    for key in ("name", "start", "end"):
        if key not in w:
            _fail(w.position, f"a window needs {key!r}")
    if "cis" not in w and "services" not in w:
        _fail(w.position, "a window needs 'cis' or 'services' (what it covers)")
    name = _text(w, "name")
    tzname = _text(w, "timezone") if "timezone" in w else "UTC"
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # with the first window: most have none

    try:
        tz = ZoneInfo(tzname)
    except (ZoneInfoNotFoundError, ValueError):
        _fail(
            w.where_value("timezone"),
            f"unknown time zone {tzname!r}; expected an IANA name like Europe/Paris",
        )
    given = [k for k in _WHEN if k in w]
    if len(given) > 1:
        _fail(w.where(given[1]), "a window has 'days' or 'rrule', not both")
    if given:
        start, end = _clock(w, "start"), _clock(w, "end")
        duration = datetime.combine(datetime.min, end) - datetime.combine(datetime.min, start)
        if duration <= timedelta(0):
            duration += timedelta(days=1)  # 22:00-02:00 crosses midnight
        exdates = _exdates(w)
        if given[0] == "days":
            if "from" in w:
                _fail(w.where("from"), "'from' goes with 'rrule'; 'days' windows repeat every week")
            when = recurrence.weekly(_days(w), start, exdates)
        else:
            when = _rrule(w, start, exdates)
    else:
        when, start, duration = _one_off(w, tz)
    for key, allowed in (("policy", POLICIES), ("dependents_policy", POLICIES), ("risk", RISKS)):
        if key in w and w[key] not in allowed:
            _fail(w.where_value(key), f"{key!r} must be one of {', '.join(allowed)}, got {w[key]!r}")
    return Window(
        name=name,
        title=_text(w, "title") if "title" in w else f"maintenance window {name}",
        recurrence=when,
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


def _rrule(w: YamlMap, start: time, exdates: frozenset[date]) -> Recurrence:
    raw = w["rrule"]
    if not isinstance(raw, str) or not raw.strip():
        _fail(
            w.where_value("rrule"),
            f"'rrule' must be an RFC 5545 RRULE like 'FREQ=MONTHLY;BYDAY=2TU', got {raw!r}",
        )
    anchor = _date(w.where_value("from"), "from", w["from"]) if "from" in w else None
    try:
        return recurrence.parse_rule(raw, start, anchor, exdates)
    except RecurrenceError as e:
        _fail(w.where_value("rrule"), f"'rrule': {e}")


def _one_off(w: YamlMap, tz: ZoneInfo) -> tuple[Recurrence, time, timedelta]:
    """A window without 'days' or 'rrule': dated start and end, local to its zone."""
    if isinstance(w["start"], int) or len(str(w["start"])) <= 5:
        _fail(w.position, "a window needs 'days' or 'rrule' to repeat, or dated 'start' and 'end' (one-off)")
    for key in ("from", "exdates"):
        if key in w:
            _fail(w.where(key), f"{key!r} goes with 'rrule'; a one-off window has dated 'start' and 'end'")
    start, end = _moment(w, "start"), _moment(w, "end")
    # Elapsed time, not wall-clock difference: a one-off night across a DST change is an hour shorter or longer.
    duration = end.replace(tzinfo=tz).astimezone(UTC) - start.replace(tzinfo=tz).astimezone(UTC)
    if duration <= timedelta(0):
        _fail(w.where_value("end"), f"'end' must be after 'start' ({start:%Y-%m-%d %H:%M})")
    return recurrence.once(start), start.time(), duration


def _moment(w: YamlMap, key: str) -> datetime:
    raw = w[key]
    try:
        if isinstance(raw, datetime):
            moment = raw
        elif isinstance(raw, str) and len(raw) > 10:
            moment = datetime.fromisoformat(raw)
        else:
            raise ValueError(raw)
    except ValueError:
        _fail(
            w.where_value(key),
            f"{key!r} must be a time of day like '02:00' (with 'days' or 'rrule') or, for a one-off"
            f" window, a local date and time like '2027-03-14 22:00', got {raw!r}",
        )
    if moment.tzinfo is not None:
        _fail(w.where_value(key), f"{key!r} is a local time in the window's 'timezone': leave out the offset")
    return moment.replace(second=0, microsecond=0)


def _exdates(w: YamlMap) -> frozenset[date]:
    raw = w.get("exdates")
    if raw is None:
        return frozenset()
    if not isinstance(raw, YamlList):
        return frozenset((_date(w.where_value("exdates"), "exdates", raw),))
    return frozenset(_date(raw.item_positions[i], "exdates", d) for i, d in enumerate(raw))


def _date(where: Position, key: str, raw: Any) -> date:
    if isinstance(raw, datetime):
        raw = raw.date()
    if isinstance(raw, date):
        return raw
    try:
        return date.fromisoformat(str(raw))
    except ValueError:
        _fail(where, f"{key!r} must be a date like 2027-04-13 (local to the window), got {raw!r}")


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
