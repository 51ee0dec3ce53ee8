"""The data-directory lock: one holder at a time, released with its descriptor."""

from __future__ import annotations

import os

import pytest

from correlator import datalock


def test_a_second_holder_is_refused_with_the_first_ones_pid(tmp_path):
    first = datalock.acquire(tmp_path / "var")
    with pytest.raises(
        datalock.DataDirInUse, match=rf"in use by another correlator process \(pid {os.getpid()}\)"
    ):
        datalock.acquire(tmp_path / "var")
    first.release()
    datalock.acquire(tmp_path / "var").release()  # free again
