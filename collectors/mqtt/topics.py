"""Topic templates: `sites/{site}/devices/{host}/events` is both the MQTT filter and a field mapping.

A `{name}` level subscribes as `+` and captures that level; `+` and a final `#` work as in MQTT.
Templates are parsed once at start-up; `match` splits the topic once per message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")


@dataclass(frozen=True)
class TopicTemplate:
    text: str
    filter: str  # what is sent to the broker
    levels: tuple[str | None, ...]  # literal level, or None for a single-level wildcard
    names: dict[int, str]  # level index -> captured name
    multi: bool  # ends in '#'

    def match(self, topic: str) -> dict[str, str] | None:
        """The captured levels when `topic` matches, else None."""
        parts = topic.split("/")
        n = len(self.levels)
        if self.multi:
            if len(parts) < n:
                return None
        elif len(parts) != n:
            return None
        for i, want in enumerate(self.levels):
            if want is not None and parts[i] != want:
                return None
        if parts[0].startswith("$") and (not self.levels or self.levels[0] is None):
            return None  # MQTT: wildcards never match $SYS and other $ topics
        return {name: parts[i] for i, name in self.names.items()}


def parse_template(text: object) -> TopicTemplate:
    if not isinstance(text, str) or not text:
        raise ValueError(
            f"expected a topic filter such as 'sites/{{site}}/devices/{{host}}/events', got {text!r}"
        )
    raw = text.split("/")
    levels: list[str | None] = []
    names: dict[int, str] = {}
    filt: list[str] = []
    multi = False
    for i, level in enumerate(raw):
        if level == "#":
            if i != len(raw) - 1:
                raise ValueError(f"'#' must be the last level, in {text!r}")
            multi = True
            filt.append("#")
            continue
        m = _NAME.match(level)
        if m:
            if m.group(1) in names.values():
                raise ValueError(f"level name {{{m.group(1)}}} used twice in {text!r}")
            names[i] = m.group(1)
            levels.append(None)
            filt.append("+")
        elif level == "+":
            levels.append(None)
            filt.append("+")
        elif any(c in level for c in "+#{}"):
            raise ValueError(f"level {level!r} of {text!r} must be a literal, '+', '#' or '{{name}}'")
        else:
            levels.append(level)
            filt.append(level)
    return TopicTemplate(text, "/".join(filt), tuple(levels), names, multi)
