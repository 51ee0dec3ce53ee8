"""The compiled forms the shipped Alertmanager rules take give what the general code gives: an `any`
of attribute equalities as one call, a nested attribute's presence and a one-placeholder template
read without the getter, a classification as the rule's act; and a realistic alert stream through
levels 1 and 2 gives what it gave before they existed."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from correlator.event import Event, Severity
from correlator.inventory import Inventory
from correlator.rules.fields import compile_field
from correlator.rules.loader import compile_texts
from correlator.rules.matchers import compile_matcher
from correlator.rules.operators import op_equals
from correlator.rules.registry import BuildContext
from correlator.rules.templates import _text, compile_template

ROOT = Path(__file__).resolve().parents[3]

VALUES = st.one_of(
    st.none(),
    st.sampled_from(["", "x", "1", "2.0", "true", "Watchdog", "application"]),
    st.integers(-2, 2),
    st.sampled_from([1.0, 2.5, True, False]),
    st.sampled_from([[], ["x"], {}, {"a": "x"}, {"x": "x"}, {"x": 1}]),
)
NAMES = st.sampled_from(["x", "y", "labels"])


def _event(attrs: dict[str, Any]) -> Event:
    return Event("e", 1.0, 1.0, "webhook:a", "h1", "t", Severity.MAJOR, "r", "", attrs)


ATTRS = st.dictionaries(NAMES, st.one_of(VALUES, st.dictionaries(NAMES, VALUES, max_size=3)), max_size=3)
PATHS = st.lists(NAMES, min_size=1, max_size=2).map(lambda names: "attributes." + ".".join(names))


@settings(max_examples=300, deadline=None)
@given(
    alternatives=st.lists(
        st.tuples(PATHS, st.sampled_from(["x", "1", "true", "Watchdog"])), min_size=1, max_size=3
    ),
    attrs=ATTRS,
)
def test_an_any_of_attribute_equalities_decides_as_its_alternatives_do(
    alternatives: list[tuple[str, str]], attrs: dict[str, Any]
) -> None:
    compiled = compile_matcher({"any": [{path: text} for path, text in alternatives]})
    assert compiled.__name__ == "any_equal"
    general = [op_equals(path, compile_field(path), text, None) for path, text in alternatives]
    ev = _event(attrs)
    assert compiled(ev) == any(m(ev) for m in general)


def test_an_any_with_other_conditions_stays_general() -> None:
    for spec in (
        {"any": [{"attributes.x": "a"}, {"host": "h"}]},
        {"any": [{"attributes.x": {"in": ["a"]}}]},
        {"any": [{"attributes.x.y.z": "a"}]},
        {"any": [{"attributes.x": "a", "attributes.y": "b"}]},
        {"any": [{"attributes.x": 2}]},
    ):
        assert compile_matcher(spec).__name__ == "any_of", spec


@settings(max_examples=300, deadline=None)
@given(attrs=ATTRS, path=PATHS)
def test_presence_and_one_placeholder_templates_read_as_the_getter_does(
    attrs: dict[str, Any], path: str
) -> None:
    ev = _event(attrs)
    v = compile_field(path)(ev)
    present = v is not None and v != ""
    assert compile_matcher({path: {"exists": True}})(ev) is present
    assert compile_matcher({path: {"exists": False}})(ev) is not present
    expected = "application" if not present else v if isinstance(v, str) else _text(v)
    assert compile_template("{" + path + "|application}")(ev) == expected


@settings(max_examples=100, deadline=None)
@given(
    attrs=ATTRS,
    severity=st.sampled_from(["critical", "{attributes.x|warning}", None]),
    category=st.sampled_from(["network", "{attributes.labels.x|application}", "{host}-{attributes.y}", None]),
)
def test_a_classification_as_the_rules_act_does_what_its_steps_do(
    attrs: dict[str, Any], severity: str | None, category: str | None
) -> None:
    if severity is None and category is None:
        return
    cls = {k: v for k, v in (("severity", severity), ("category", category)) if v is not None}
    text = orjson.dumps({"rules": [{"name": "c", "classify": cls}]}).decode()
    (loaded,) = compile_texts({"c.yaml": text}, BuildContext(Path("."), Inventory()))
    rule = loaded.compiled
    by_act, by_steps = _event(orjson.loads(orjson.dumps(attrs))), _event(orjson.loads(orjson.dumps(attrs)))
    outcome = []
    for ev, run in ((by_act, rule.act), (by_steps, rule.run)):
        try:
            outcome.append(run(ev, []))
        except Exception as e:  # a severity no template foresaw: both raise, having done the same
            outcome.append(type(e).__name__)
    assert outcome[0] == outcome[1]
    assert (by_act.severity, by_act.attributes) == (by_steps.severity, by_steps.attributes)


def _stream_digest(rules: Path) -> tuple[dict[str, int], str]:
    """The mixed stream of bench/alert_rules.py through levels 1 and 2: what comes out, as counts
    and a digest of every event (severity, category, count, level-2 annotations) and response."""
    spec = importlib.util.spec_from_file_location("alert_rules", ROOT / "bench" / "alert_rules.py")
    assert spec is not None and spec.loader is not None
    alert_rules: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(alert_rules)
    stages = alert_rules.Stages(rules)
    events = alert_rules.alert_events(12_000, 3_000, mixed=True)
    h = hashlib.sha256()
    counts = {"out": 0, "responses": 0, "updates": 0}
    for i in range(0, len(events), 2000):
        out, ctx = stages.run(events[i : i + 2000], "both")
        counts["out"] += len(out)
        counts["responses"] += len(ctx.responses)
        counts["updates"] += len(ctx.updates)
        for ev in out:
            h.update(orjson.dumps(ev.to_dict(), option=orjson.OPT_SORT_KEYS))
        for ev in ctx.updates:
            h.update(orjson.dumps([ev.id, ev.count, ev.last_seen]))
        for r in ctx.responses:
            h.update(
                orjson.dumps([type(r).__name__, getattr(r, "action", ""), getattr(r, "key", ""), r.event.id])
            )
    return counts, h.hexdigest()


def test_a_realistic_alert_stream_gives_what_it_gave_before() -> None:
    """Pinned from the general code (before the compiled forms above): repeats folded, Watchdog
    dropped, severities and categories, the incidents asked for."""
    counts, digest = _stream_digest(ROOT / "rules")
    assert counts == EXPECTED_COUNTS
    assert digest == EXPECTED_DIGEST


EXPECTED_COUNTS = {"out": 6134, "responses": 5270, "updates": 5842}
EXPECTED_DIGEST = "1a8f00b494ff77e7cb94f7e7672fedab4d017569541c449bdd889025a6c6afa4"
