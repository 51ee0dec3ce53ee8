"""The load's shortcuts (each duration text read once, templates split by regular expressions, the
YAML event loop) compile the very same rules, and report the very same errors, as the general code."""

from __future__ import annotations

import importlib.util
import shutil
import types
from pathlib import Path
from typing import Any

import pytest

from correlator.correlation import kinds
from correlator.correlation.core import Engine
from correlator.rules import model, templates
from correlator.rules.errors import RuleErrors
from correlator.rules.loader import ParsedRule, load_rules

REPO = Path(__file__).resolve().parents[3]


def _bench() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("rules_scale", REPO / "bench" / "rules_scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shape(v: Any, depth: int = 0) -> Any:
    """A compiled value as comparable data: a function by its code and what its closure holds."""
    if depth > 8:
        return "..."
    if isinstance(v, types.FunctionType):
        cells = tuple(_shape(c.cell_contents, depth + 1) for c in v.__closure__ or ())
        return ("fn", v.__code__.co_qualname, cells)
    if isinstance(v, dict):
        return ("dict", tuple((k, _shape(x, depth + 1)) for k, x in v.items()))
    if isinstance(v, list | tuple):
        return (type(v).__name__, tuple(_shape(x, depth + 1) for x in v))
    if v is None or isinstance(v, str | int | float | bool | frozenset):
        return v
    return ("obj", type(v).__qualname__, repr(v) if hasattr(v, "__dataclass_fields__") else "")


def _engine(compiled: Any) -> Any:
    """What the rule index and the stage read of a level-2 rule (None for a level-1 rule)."""
    if not isinstance(compiled, Engine):
        return None
    pattern = compiled.pattern[0] if compiled.pattern is not None else None
    check = None if compiled.check is None else _shape(compiled.check)
    return (compiled.types, compiled.hosts, pattern, compiled.pinned_only, check, compiled.group_by)


def _load(rules_dir: Path, general: bool, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    with monkeypatch.context() as m:
        if general:
            m.setattr(kinds, "_just_types", lambda matches: None)
            m.setattr(templates, "_simple_parts", lambda text: None)
            m.setattr(model, "_DURATIONS", {})
            m.setattr(model, "_DURATIONS_KEPT", 0)
        parsed: list[ParsedRule] = []
        rs = load_rules(rules_dir, parsed=parsed)
    return [
        (r.info, p.info, _shape(p.values), getattr(r.compiled, "signature", None), _engine(r.compiled))
        for r, p in zip(rs.rules, parsed, strict=True)
    ]


def test_the_shortcuts_compile_the_same_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRELATOR_CACHE_DIR", "")
    rules_dir = tmp_path / "rules"
    shutil.copytree(REPO / "rules", rules_dir, ignore=shutil.ignore_patterns("*_test.y*ml"))
    _bench().write_rules(rules_dir, 150)  # in rules/rules-150/
    fast = _load(rules_dir, False, monkeypatch)
    assert len(fast) > 150
    assert fast == _load(rules_dir, True, monkeypatch)


BROKEN = """\
rules:
  - name: a
    kind: threshold
    match: {type: x}
    count: 3
    within: 0s
    on_fire: [{emit: {type: y, message: 'a {host'}}]
  - name: b
    kind: threshold
    match: {type: x}
    count: 3
    within: 1h
    on_fire: [{emit: {type: y, message: 'b {} {host|?}'}}]
  - name: c
    kind: pair
    match: {type: x}
    close: {type: z}
    within: 1hour
    on_close: [{emit: {type: y, message: 'c }'}}]
"""


def test_the_shortcuts_report_the_same_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRELATOR_CACHE_DIR", "")
    (tmp_path / "r.yaml").write_text(BROKEN)

    def errors(general: bool) -> list[str]:
        with monkeypatch.context() as m:
            if general:
                m.setattr(templates, "_simple_parts", lambda text: None)
                m.setattr(model, "_DURATIONS", {})
            with pytest.raises(RuleErrors) as info:
                load_rules(tmp_path)
        return [str(e) for e in info.value.errors]

    fast = errors(False)
    assert len(fast) >= 4 and all(e.startswith(f"{tmp_path / 'r.yaml'}:") for e in fast)
    assert fast == errors(True)
    assert fast == errors(False)  # the second time, '0s' and '1h' come from the memo
