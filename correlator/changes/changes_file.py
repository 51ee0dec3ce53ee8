"""A file of change records for `correlator replay --changes FILE`: last week's changes, replayed.

YAML (or JSON, which YAML reads) with a `changes:` list; each item has the fields of
`POST /api/v1/changes` (docs/changes.md). Errors name `file:line:column`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from correlator import yamlfile
from correlator.changes.model import POLICIES, RISKS
from correlator.errors import FieldError, FileError, did_you_mean
from correlator.event import parse_time
from correlator.yamlfile import Position, YamlMap

_KEYS = (
    "title", "description", "start", "end", "cis", "services", "risk", "implementer", "policy",
    "dependents_policy",
)  # fmt: skip


class ChangesFileError(FileError):
    pass


def load_changes(path: Path) -> list[dict[str, Any]]:
    """The change records of `path` as creation fields (times in epoch seconds), in file order."""
    try:
        doc = yamlfile.load(path)
    except OSError as e:
        raise ChangesFileError(str(path), f"cannot read {path}: {e.strerror}") from None
    except yamlfile.YamlError as e:
        raise ChangesFileError(str(path), str(e)) from None
    if not isinstance(doc, YamlMap) or not isinstance(doc.get("changes"), list):
        where = doc.position if isinstance(doc, YamlMap) else Position(str(path), 1, 1)
        raise ChangesFileError(
            str(path), "expected a mapping with a 'changes:' list of change records", where
        )
    return [_change(str(path), item, doc.where("changes")) for item in doc["changes"]]


def _change(file: str, item: Any, where: Position) -> dict[str, Any]:
    if not isinstance(item, YamlMap):
        raise ChangesFileError(file, "each change must be a mapping (title, start, end, cis...)", where)
    for key in item:
        if key not in _KEYS:
            hint = did_you_mean(key, _KEYS)
            msg = f"unknown key {key!r} in a change" + (f"; did you mean {hint!r}?" if hint else "")
            raise ChangesFileError(file, msg, item.where(key))
    for key in ("title", "start", "end"):
        if key not in item:
            raise ChangesFileError(file, f"a change needs '{key}'", item.position)
    out: dict[str, Any] = {}
    try:
        for key, value in item.items():
            out[key] = _value(key, value)
        if out["end"] <= out["start"]:
            raise FieldError("end", "must be after start")
        if not out.get("cis") and not out.get("services"):
            raise FieldError("cis", "a change needs cis or services: what it covers")
    except FieldError as e:
        raise ChangesFileError(file, f"{e.field}: {e.message}", item.where(e.field)) from None
    return out


def _value(key: str, value: Any) -> Any:
    if key in ("start", "end"):
        if isinstance(value, datetime):  # YAML reads an unquoted ISO time as a datetime
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
        return parse_time(value, key)
    if key in ("cis", "services"):
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise FieldError(key, "must be a list of names")
        return list(dict.fromkeys(value))
    choices = {"risk": RISKS, "policy": POLICIES, "dependents_policy": POLICIES}.get(key)
    if choices is not None:
        if value not in choices:
            raise FieldError(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value
    if not isinstance(value, str):
        raise FieldError(key, f"must be text, got {value!r}")
    return value
