"""Known-error match conditions: the rules' matcher language (correlator/rules/matchers.py).

Conditions are stored as data and compiled once, when the known error is created or loaded.
They see the incident's opening event, with `attributes.incident.{rule,key,service,title,...}` added.
"""

from __future__ import annotations

from typing import Any

from correlator.rules.errors import RuleError, RuleErrors
from correlator.rules.matchers import Matcher, compile_matcher

__all__ = ["ConditionError", "Matcher", "compile_conditions"]


class ConditionError(ValueError):
    """The conditions are not valid; the message says which part and what was expected."""


def compile_conditions(spec: Any) -> Matcher:
    try:
        return compile_matcher(spec)
    except RuleErrors as e:
        raise ConditionError("; ".join(err.message for err in e.errors)) from None
    except RuleError as e:
        raise ConditionError(e.message) from None
