"""`correlator replay` runs its coroutine through `_run`: the result comes back, an error goes up, and
the result is never formatted on the way out (asyncio.Runner formats its main task on exit, result and
all, which for a replay's summary meant sorting and printing every counter)."""

from __future__ import annotations

import pytest

from correlator.commands.replay import _run


class Result:
    reprs = 0

    def __repr__(self) -> str:
        Result.reprs += 1
        return "Result()"


def test_the_result_comes_back_without_being_formatted():
    made = Result()

    async def coro() -> Result:
        return made

    Result.reprs = 0
    assert _run(coro()) is made
    assert Result.reprs == 0


def test_an_error_goes_up():
    async def coro() -> None:
        raise ValueError("bad")

    with pytest.raises(ValueError, match="bad"):
        _run(coro())
