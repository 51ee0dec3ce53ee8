"""pair: linkDown opens, linkUp for the same interface closes within 30 s; otherwise an incident opens."""

from __future__ import annotations

from correlator.correlation import actions
from correlator.correlation.core import ENGINE_METRICS
from correlator.correlation.pair import Pair
from correlator.responses import IncidentRequest

from .support import E, Run, by, generated, m, types


def link_pair() -> Pair:
    return Pair(
        "link-flap",
        m(type="linkDown"),
        m(type="linkUp"),
        by("host", "resource"),
        within=30,
        hooks={
            "close": [actions.annotate({"blip": actions.literal("yes")})],
            "timeout": [actions.incident("open", title=lambda e: f"{e.host} {e.resource} down")],
            "recover": [actions.incident("resolve")],
        },
    )


async def test_link_up_within_30s_is_a_counted_blip_not_an_incident() -> None:
    before = ENGINE_METRICS.fires_of("link-flap").get("close", 0)
    run = Run(link_pair())
    out = await run.feed(E(0, "linkDown", resource="ge-0/0/1"), E(12, "linkUp", resource="ge-0/0/1"))
    assert out[1].attributes["blip"] == "yes"
    assert ENGINE_METRICS.fires_of("link-flap").get("close", 0) == before + 1
    out = await run.advance(100)
    assert out == []
    assert run.take_responses() == []


async def test_no_link_up_within_30s_emits_a_timeout_and_opens_an_incident_at_t30() -> None:
    run = Run(link_pair())
    await run.feed(E(0, "linkDown", resource="ge-0/0/1"))
    assert await run.advance(29.9) == []
    out = await run.advance(31)
    assert types(out) == ["link-flap.timeout"]
    assert out[0].time == 30
    assert out[0].attributes["correlation"]["opened_by"] == "linkDown@r1/ge-0/0/1@0"
    [req] = run.take_responses()
    assert isinstance(req, IncidentRequest)
    assert (req.action, req.key, req.title) == ("open", "link-flap:r1/ge-0/0/1", "r1 ge-0/0/1 down")


async def test_timer_fires_between_events_in_replay() -> None:
    run = Run(link_pair())
    out = await run.feed(E(0, "linkDown"), E(45, "syslog"), E(50, "linkUp"))
    # the timeout (t=30) comes out between the events at 0 and 45; the late linkUp resolves
    assert types(out) == ["linkDown", "link-flap.timeout", "syslog", "linkUp"]
    assert [(r.action, r.key) for r in run.take_responses()] == [
        ("open", "link-flap:r1/"),
        ("resolve", "link-flap:r1/"),
    ]


async def test_repeated_link_down_while_pending_is_ignored() -> None:
    run = Run(link_pair())
    out = await run.feed(E(0, "linkDown"), E(20, "linkDown"), E(40, "linkUp"))
    timeouts = [e for e in generated(out)]
    assert [e.time for e in timeouts] == [30]


async def test_link_up_without_link_down_does_nothing() -> None:
    run = Run(link_pair())
    out = await run.feed(E(0, "linkUp"))
    assert types(out) == ["linkUp"]
    assert run.take_responses() == []


async def test_interfaces_pair_separately() -> None:
    run = Run(link_pair())
    out = await run.feed(
        E(0, "linkDown", resource="a"), E(5, "linkDown", resource="b"), E(10, "linkUp", resource="a")
    )
    out += await run.advance(60)
    assert [e.resource for e in generated(out)] == ["b"]


async def test_bound_on_keys_evicts_the_oldest_and_counts() -> None:
    from correlator.correlation.core import BOUND_HITS

    rule = Pair("tiny", m(type="linkDown"), m(type="linkUp"), by("resource"), within=30, max_keys=2)
    before = BOUND_HITS.labels("tiny", "max_keys")._value.get()
    run = Run(rule)
    await run.feed(*(E(i, "linkDown", resource=str(i)) for i in range(5)))
    assert rule.keys() == 2
    assert BOUND_HITS.labels("tiny", "max_keys")._value.get() == before + 3


async def test_link_up_at_exactly_the_deadline_comes_after_the_timeout() -> None:
    run = Run(link_pair())
    out = await run.feed(E(0, "linkDown", resource="ge-0/0/1"), E(30, "linkUp", resource="ge-0/0/1"))
    assert types(out) == ["linkDown", "link-flap.timeout", "linkUp"]
    assert "blip" not in out[2].attributes


async def test_live_link_up_at_the_deadline_before_the_timer_ran_is_a_timeout_too() -> None:
    rule = link_pair()
    run = Run(rule)
    run.stage.bind(run.clock)
    rule.on_event(E(0, "linkDown", resource="ge-0/0/1"), 0.0)
    rule.on_event(E(30, "linkUp", resource="ge-0/0/1"), 30.0)  # the clock (timer) is still at 0
    assert types(run.stage.sink.emitted) == ["link-flap.timeout"]  # not a close: no blip
