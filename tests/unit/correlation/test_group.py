"""group: events of one site within 30 s become one correlated event; later ones join the open group."""

from __future__ import annotations

from correlator.correlation import actions
from correlator.correlation.group import Group
from correlator.event import Severity

from .support import E, Run, by, generated, m


def site_outage() -> Group:
    return Group(
        "site-outage",
        m(type="nodeDown"),
        by("attributes.site"),
        group_wait=30,
        hooks={"flush": [actions.incident("open")], "join": [actions.incident("update")]},
    )


async def test_members_within_group_wait_become_one_event_listing_them() -> None:
    run = Run(site_outage())
    out = await run.feed(
        E(0, "nodeDown", "sw1", "minor", site="par"),
        E(5, "nodeDown", "sw2", "critical", site="par"),
        E(9, "nodeDown", "sw3", site="lyo"),
        E(12, "nodeDown", "sw4", site="par"),
    )
    out += await run.advance(60)
    groups = generated(out)
    assert [(g.type, g.time) for g in groups] == [("site-outage.group", 30), ("site-outage.group", 39)]
    par = groups[0].attributes["correlation"]
    assert par["count"] == 3
    assert par["hosts"] == ["sw1", "sw2", "sw4"]
    assert par["members"] == [e.id for e in out if e.attributes.get("site") == "par"]
    assert groups[0].severity == Severity.CRITICAL  # the highest member severity
    members = [e for e in out if e.type == "nodeDown" and e.attributes["site"] == "par"]
    assert {e.attributes["group"] for e in members} == {groups[0].id}


async def test_later_member_joins_the_open_group() -> None:
    run = Run(site_outage())
    await run.feed(E(0, "nodeDown", "sw1", site="par"))
    [group] = await run.advance(31)
    run.take_responses()
    [late] = await run.feed(E(300, "nodeDown", "sw9", site="par"))
    assert late.attributes["group"] == group.id
    [req] = run.take_responses()
    assert (req.action, req.key, req.event.host) == ("update", "site-outage:par", "sw9")


async def test_group_closes_after_being_idle_and_a_new_one_starts() -> None:
    rule = site_outage()
    rule.close_after = 600
    run = Run(rule)
    await run.feed(E(0, "nodeDown", "sw1", site="par"))
    await run.advance(700)
    out = await run.feed(E(5000, "nodeDown", "sw2", site="par"))
    out += await run.advance(5031)
    assert len(generated(out)) == 1
