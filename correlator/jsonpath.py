"""A small, compiled subset of JSON path (`$.a.b[0].c`) for mapping foreign payloads to event fields.

Used by the MQTT collector and the configurable (`mapped`) webhook format: paths are compiled once
at start-up into tuples of keys and indexes, so reading a field on the hot path is a few lookups.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

Path = tuple[str | int, ...]

_STEP = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]|\[(['\"])(.*?)\3\]")

MISSING = object()
"""Returned by `get` when a path does not lead to a value."""


def compile_path(text: object) -> Path:
    """'$.labels.host', 'labels.host', '$.alerts[0]' or "$['odd key']" -> ('labels', 'host')...

    Raises ValueError saying what was expected.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected a JSON path such as '$.labels.host', got {text!r}")
    s = text.strip()
    if s == "$":
        return ()
    if s.startswith("$"):
        s = s[1:]
    elif not s.startswith("["):
        s = "." + s
    steps: list[str | int] = []
    pos = 0
    while pos < len(s):
        m = _STEP.match(s, pos)
        if m is None:
            raise ValueError(
                f"expected a JSON path such as '$.labels.host', got {text!r} (bad at {s[pos:]!r})"
            )
        if m.group(1) is not None:
            steps.append(m.group(1))
        elif m.group(2) is not None:
            steps.append(int(m.group(2)))
        else:
            steps.append(m.group(4))
        pos = m.end()
    return tuple(steps)


def get(doc: Any, path: Path) -> Any:
    """The value at `path`, or MISSING."""
    for step in path:
        if isinstance(step, int):
            if not isinstance(doc, list) or step >= len(doc):
                return MISSING
            doc = doc[step]
        else:
            if not isinstance(doc, Mapping):
                return MISSING
            doc = doc.get(step, MISSING)
            if doc is MISSING:
                return MISSING
    return doc


def render(path: Path) -> str:
    out = "$"
    for step in path:
        out += f"[{step}]" if isinstance(step, int) else f".{step}"
    return out
