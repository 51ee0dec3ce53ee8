"""Problem and known-error records and the problem lifecycle (open -> known_error -> resolved)."""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any

from correlator import errors
from correlator.event import iso


class ProblemState(enum.StrEnum):
    OPEN = "open"
    KNOWN_ERROR = "known_error"
    RESOLVED = "resolved"


TRANSITIONS: dict[ProblemState, frozenset[ProblemState]] = {
    ProblemState.OPEN: frozenset({ProblemState.KNOWN_ERROR, ProblemState.RESOLVED}),
    ProblemState.KNOWN_ERROR: frozenset({ProblemState.RESOLVED}),
    ProblemState.RESOLVED: frozenset(),
}


class KnownErrorState(enum.StrEnum):
    ACTIVE = "active"  # new incidents are matched against it
    RETIRED = "retired"  # its problem is resolved, or retired by hand


class IllegalTransition(errors.IllegalTransition):
    """The record's state does not allow the asked change (HTTP 409)."""


def _human(prefix: str, n: int | None) -> str | None:
    return f"{prefix}-{n:06d}" if n else None


def parse_id(prefix: str, text: str) -> int | None:
    """'PRB-000012', 'prb-12' or '12' -> 12 (prefix PRB or KE); None otherwise."""
    s = text.strip()
    head = prefix.upper() + "-"
    if s[: len(head)].upper() == head:
        s = s[len(head) :]
    return int(s) if s.isascii() and s.isdigit() and 0 < len(s) <= 12 else None  # not "²"


def problem_id(n: int) -> str:
    return f"PRB-{n:06d}"


def known_error_id(n: int) -> str:
    return f"KE-{n:06d}"


def signature(key: str | None, rule: str, host: str) -> str:
    """The recurrence signature of an incident: correlation key, rule and CI."""
    return f"{key or ''}|{rule}|{host}"


def split_signature(sig: str) -> dict[str, str]:
    key, rule, host = [*sig.split("|", 2), "", ""][:3]
    return {"key": key, "rule": rule, "host": host}


@dataclass(slots=True)
class Problem:
    title: str
    opened_at: float
    state: ProblemState = ProblemState.OPEN
    signature: str | None = None  # None for problems opened by hand
    description: str = ""
    incidents: list[int] = field(default_factory=list)
    known_error_id: int | None = None
    root_cause: str = ""
    resolved_at: float | None = None
    updated_at: float = 0.0
    id: int = 0
    version: int = 0  # the stored version this copy was read or saved at (its own column, not the body)

    @property
    def human_id(self) -> str:
        return problem_id(self.id)

    def to_doc(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in _PROBLEM_FIELDS}
        d["state"] = self.state.value
        d["incidents"] = list(self.incidents)
        return d

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Problem:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["state"] = ProblemState(kwargs["state"])
        return cls(**kwargs)

    def to_api(self) -> dict[str, Any]:
        d = self.to_doc()
        d["id"] = self.human_id
        d["incidents"] = [f"INC-{n:06d}" for n in self.incidents]
        d["known_error_id"] = _human("KE", self.known_error_id)
        d["signature"] = split_signature(self.signature) if self.signature else None
        for name in ("opened_at", "resolved_at", "updated_at"):
            d[name] = iso(d[name]) if d[name] is not None else None
        return d


@dataclass(slots=True)
class KnownError:
    title: str
    match: dict[str, Any]  # conditions in the rules' matcher language, kept as data
    workaround: str
    created_at: float
    problem_id: int | None = None
    state: KnownErrorState = KnownErrorState.ACTIVE
    matched: int = 0  # incidents it was attached to
    updated_at: float = 0.0
    id: int = 0
    version: int = 0  # as Problem.version

    @property
    def human_id(self) -> str:
        return known_error_id(self.id)

    def to_doc(self) -> dict[str, Any]:
        d = {name: getattr(self, name) for name in _KNOWN_ERROR_FIELDS}
        d["state"] = self.state.value
        return d

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> KnownError:
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in d.items() if k in known}
        kwargs["state"] = KnownErrorState(kwargs["state"])
        return cls(**kwargs)

    def to_api(self) -> dict[str, Any]:
        d = self.to_doc()
        d["id"] = self.human_id
        d["problem_id"] = _human("PRB", self.problem_id)
        for name in ("created_at", "updated_at"):
            d[name] = iso(d[name])
        return d


# The document's fields: the version has its own column.
_PROBLEM_FIELDS = tuple(f.name for f in dataclasses.fields(Problem) if f.name != "version")
_KNOWN_ERROR_FIELDS = tuple(f.name for f in dataclasses.fields(KnownError) if f.name != "version")
