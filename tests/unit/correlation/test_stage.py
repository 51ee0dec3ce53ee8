"""The correlate stage: rule order, suppression, emit depth limit, lateness, errors, live timer flush."""

from __future__ import annotations

from correlator.clock import Clock
from correlator.correlation import actions
from correlator.correlation.core import Engine, derived_id
from correlator.correlation.pair import Pair
from correlator.correlation.stage import LATE, Correlate
from correlator.correlation.threshold import Threshold
from correlator.event import Event
from correlator.pipeline import Pipeline, StageContext

from .support import E, Run, by, m, types


def storm(name: str, on: str, emits: str, count: int = 1) -> Threshold:
    return Threshold(
        name, m(type=on), by("host"), count=count, within=60, hooks={"fire": [actions.emit(emits)]}
    )


async def test_emitted_events_re_enter_level_2_up_to_the_depth_limit() -> None:
    # a -> b -> c -> d ... each rule emits the next type: a loop guard is needed
    rules = [storm(f"r{i}", f"t{i}", f"t{i + 1}") for i in range(10)]
    run = Run(*rules, max_depth=3)
    out = await run.feed(E(0, "t0"))
    assert types(out) == ["t0", "t1", "t2", "t3", "t4"]


async def test_suppress_stops_later_rules_and_marks_the_event() -> None:
    quiet = Threshold(
        "quiet", m(type="x"), by("host"), count=1, within=60, hooks={"fire": [actions.suppress()]}
    )
    later = storm("later", "x", "never")
    run = Run(quiet, later)
    out = await run.feed(E(0, "x"))
    assert types(out) == ["x"]
    assert out[0].attributes["suppressed_by"] == "quiet"


async def test_suppress_in_a_timer_hook_does_not_stop_rules_for_the_next_event() -> None:
    # the timeout event is marked; the marker must not leak to the next event correlated
    quiet = Pair(
        "quiet", m(type="down"), m(type="up"), by("host"), within=30, hooks={"timeout": [actions.suppress()]}
    )
    first, second = storm("first", "x", "first.fired"), storm("second", "x", "second.fired")
    run = Run(quiet, first, second)
    await run.feed(E(0, "down"))
    timed_out = await run.advance(31)
    assert timed_out[0].attributes["suppressed_by"] == "quiet"
    out = await run.feed(E(40, "x"))
    assert types(out) == ["x", "first.fired", "second.fired"]
    assert "suppressed_by" not in out[0].attributes


async def test_event_later_than_the_lateness_is_counted_and_correlated_now() -> None:
    rule = Pair("p", m(type="down"), m(type="up"), by("host"), within=30)
    before = LATE._value.get()
    run = Run(rule, lateness=5)
    out = await run.feed(E(100, "tick"), E(50, "down"))
    assert LATE._value.get() == before + 1
    assert out[1].attributes["late_seconds"] == 50
    assert out[1].time == 50  # the stored event keeps its own time
    # correlated at 100 (the clock), so its timeout is at 130
    out = await run.advance(200)
    assert [e.time for e in out] == [130]


async def test_a_failing_rule_is_counted_and_the_others_still_run() -> None:
    class Broken(Engine):
        kind = "broken"

        def on_event(self, ev: Event, t: float) -> None:
            raise RuntimeError("bug")

    broken = Broken("broken", m(type="x"), by("host"))
    run = Run(broken, storm("ok", "x", "y"))
    out = await run.feed(E(0, "x"))
    assert types(out) == ["x", "y"]
    assert (broken.counters.matches, broken.counters.errors) == (1, 1)


class _Broken(Engine):
    kind = "broken"

    def on_event(self, ev: Event, t: float) -> None:
        raise RuntimeError("bug")


async def test_failing_rules_anywhere_in_the_order_are_each_counted_once_and_skipped() -> None:
    # failures first, between, and after the rules that work; on events from outside (the
    # stage's own loop) and on emitted events (re-entering level 2), up to a suppressing rule
    broken = [_Broken(f"broken{i}", m(type={"in": ["x", "y"]}), by("host")) for i in range(5)]
    quiet = Threshold(
        "quiet", m(type="y"), by("host"), count=1, within=60, hooks={"fire": [actions.suppress()]}
    )
    after = storm("after", "y", "never")
    run = Run(
        broken[0],
        broken[1],
        storm("ok", "x", "y"),
        broken[2],
        storm("ok2", "x", "z"),
        broken[3],
        quiet,
        broken[4],
        after,
    )
    out = await run.feed(E(0, "x"), E(1, "x", host="r2"))
    assert types(out) == ["x", "y", "z", "x", "y", "z"]
    assert [e.attributes.get("suppressed_by") for e in out] == [None, "quiet", None] * 2
    assert [(b.counters.matches, b.counters.errors) for b in broken] == [(4, 4)] * 4 + [
        (2, 2)
    ]  # not on y: suppressed before it
    assert after.counters.matches == 0


async def test_failing_rules_are_counted_and_skipped_while_tracing_too() -> None:
    traced: list[str] = []

    class Tracer:
        def on_event(self, engine: Engine, ev: Event, t: float, depth: int) -> None:
            traced.append(engine.name)
            engine.on_event(ev, t)

    broken = [_Broken(f"broken{i}", m(type="x"), by("host")) for i in range(3)]
    run = Run(broken[0], storm("ok", "x", "y"), broken[1], broken[2], storm("ok2", "x", "z"))
    run.stage.tracer = Tracer()
    out = await run.feed(E(0, "x"))
    assert types(out) == ["x", "y", "z"]
    assert traced == ["broken0", "ok", "broken1", "broken2", "ok2"]
    assert [(b.counters.matches, b.counters.errors) for b in broken] == [(1, 1)] * 3


async def test_thousands_of_failing_rules_on_one_event_are_each_counted() -> None:
    broken = [_Broken(f"broken{i}", m(type="x"), by("host")) for i in range(3000)]
    run = Run(*broken, storm("last", "x", "y"))
    out = await run.feed(E(0, "x"))
    assert types(out) == ["x", "y"]
    assert all(b.counters.errors == 1 for b in broken)


async def test_live_timer_output_goes_through_the_stages_after_level_2() -> None:
    seen: list[str] = []

    class After:
        name = "after"

        async def __call__(self, events: list[Event], ctx: StageContext) -> list[Event]:
            seen.extend(e.type for e in events)
            return events

    stage = Correlate([Pair("p", m(type="down"), m(type="up"), by("host"), within=30)], wall=lambda: 10.0)
    pipeline = Pipeline([stage, After()])
    clock = Clock(0.0)
    await pipeline.run([E(0, "down")], StageContext(clock, live=True))
    clock.advance_to(31)  # the daemon's ticker
    ctx = StageContext(clock, live=True)
    out = await pipeline.flush(ctx)
    assert types(out) == ["p.timeout"]
    assert seen == ["down", "p.timeout"]


async def test_live_event_from_a_clock_in_the_future_is_correlated_at_wall_time() -> None:
    rule = Pair("p", m(type="down"), m(type="up"), by("host"), within=30)
    stage = Correlate([rule], wall=lambda: 1000.0)
    clock = Clock(990.0)
    await Pipeline([stage]).run([E(5000, "down")], StageContext(clock, live=True))
    assert clock.now() == 1000.0
    assert rule.pending.oldest()[1][6] == 1030.0


async def test_keys_and_fires_are_exported_at_scrape_time_and_a_removed_rule_leaves_the_keys() -> None:
    from prometheus_client import generate_latest

    rule = storm("scrape-storm", "scrape.x", "scrape.y", count=2)
    run = Run(rule)
    await run.feed(E(0, "scrape.x", host="a"), E(1, "scrape.x", host="b"), E(2, "scrape.x", host="a"))
    text = generate_latest().decode()
    assert 'correlator_correlation_keys{rule="scrape-storm"} 2.0' in text
    assert 'correlator_correlation_fires_total{hook="fire",rule="scrape-storm"} 1.0' in text
    run.stage.set_engines([])  # a reload without the rule: its keys go, its fire count stays
    text = generate_latest().decode()
    assert 'correlator_correlation_keys{rule="scrape-storm"}' not in text
    assert 'correlator_correlation_fires_total{hook="fire",rule="scrape-storm"} 1.0' in text


class _NowSeen(Engine):
    """Records the clock's time as each event reaches it."""

    def __init__(self) -> None:
        super().__init__("now-seen", m(type="x"), by("host"))
        self.seen: list[float] = []

    def on_event(self, ev: Event, t: float) -> None:
        assert self.clock is not None
        self.seen.append(self.clock.now())


async def test_the_clock_is_at_each_event_and_timers_set_in_a_batch_fire_between_its_events() -> None:
    # The stage moves the time itself while no timer is due, and through advance_to when one is.
    pair = Pair("p", m(type="down"), m(type="up"), by("host"), within=30)
    seen = _NowSeen()
    run = Run(pair, seen)
    out = await run.feed(E(0, "down"), E(10, "x"), E(29.5, "x"), E(30.5, "x"), E(40, "x"))
    assert types(out) == ["down", "x", "x", "p.timeout", "x", "x"]
    assert seen.seen == [10, 29.5, 30.5, 40]
    assert run.clock.now() == 40


async def test_an_emitted_event_id_is_derived_from_rule_hook_type_and_subject() -> None:
    # One emit action shared by two hooks' lists (as a rule test may build it): each gets its own id.
    emit = actions.emit("storm")
    a = Threshold("a", m(type="x"), by("host"), count=1, within=60, hooks={"fire": [emit]})
    b = Threshold("b", m(type="x"), by("host"), count=1, within=60, hooks={"fire": [emit]})
    out = await Run(a, b).feed(E(0, "x"), E(100, "x", host="r2"))
    made = [e for e in out if e.type == "storm"]
    subjects = ["x@r1/@0", "x@r1/@0", "x@r2/@100", "x@r2/@100"]
    assert [e.id for e in made] == [
        derived_id(rule, "fire", "emit", "storm", s) for rule, s in zip("abab", subjects, strict=True)
    ]
