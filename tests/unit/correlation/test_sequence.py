"""sequence: login failure, then login success, then privilege change, same user within 5 minutes."""

from __future__ import annotations

from correlator.correlation import actions
from correlator.correlation.sequence import SequenceRule

from .support import E, Run, by, m, types


def takeover() -> SequenceRule:
    return SequenceRule(
        "account-takeover",
        [m(type="login.failed"), m(type="login.ok"), m(type="priv.change")],
        by("attributes.user"),
        within=300,
        hooks={"complete": [actions.emit("security.takeover", message=lambda e: "takeover?")]},
    )


async def test_steps_in_order_within_the_window_complete() -> None:
    run = Run(takeover())
    out = await run.feed(
        E(0, "login.failed", user="bob"), E(10, "login.ok", user="bob"), E(20, "priv.change", user="bob")
    )
    assert types(out)[-1] == "security.takeover"
    assert out[-1].attributes["correlation"]["steps"] == [e.id for e in out[:3]]


async def test_wrong_order_does_not_complete() -> None:
    run = Run(takeover())
    out = await run.feed(
        E(0, "login.ok", user="bob"), E(10, "login.failed", user="bob"), E(20, "priv.change", user="bob")
    )
    assert "security.takeover" not in types(out)


async def test_too_slow_does_not_complete_and_a_new_run_can_start() -> None:
    run = Run(takeover())
    out = await run.feed(
        E(0, "login.failed", user="bob"),
        E(200, "login.ok", user="bob"),
        E(400, "priv.change", user="bob"),
        E(500, "login.failed", user="bob"),
        E(510, "login.ok", user="bob"),
        E(520, "priv.change", user="bob"),
    )
    assert types(out).count("security.takeover") == 1
    assert out[-1].attributes["correlation"]["elapsed"] == 20


async def test_users_are_separate() -> None:
    run = Run(takeover())
    out = await run.feed(
        E(0, "login.failed", user="bob"), E(10, "login.ok", user="eve"), E(20, "priv.change", user="bob")
    )
    assert "security.takeover" not in types(out)
