"""Errors found in rule files, each carrying the `file:line:column` of the offending text.

The compiler raises them; `correlator rules check`, reloads and GET /api/v1/rules report them.
"""

from __future__ import annotations

from collections.abc import Iterable

from correlator.errors import CorrelatorError, did_you_mean
from correlator.yamlfile import Position

UNKNOWN = Position("<rules>", 1, 1)


class RuleError(CorrelatorError):
    """One problem in a rule file: `str(e)` is `file:line:column: message`."""

    def __init__(self, position: Position | None, message: str) -> None:
        self.position = position or UNKNOWN
        self.message = message
        super().__init__(f"{self.position}: {message}")

    def as_dict(self) -> dict[str, object]:
        p = self.position
        return {
            "file": p.file,
            "line": p.line,
            "column": p.column,
            "message": self.message,
            "text": str(self),
        }


class RuleErrors(CorrelatorError):
    """Several RuleErrors at once: a compiler reports everything wrong in a file, not just the first."""

    def __init__(self, errors: Iterable[RuleError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.position.file, e.position.line, e.position.column))
        super().__init__("\n".join(str(e) for e in self.errors))


def suggest(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' or ''."""
    hint = did_you_mean(word, choices)
    return f" (did you mean {hint!r}?)" if hint else ""
