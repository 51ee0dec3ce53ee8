"""gctune.tune(): young collections far rarer than CPython's default, start-up objects frozen."""

from __future__ import annotations

import gc

from correlator import gctune


def test_tune_raises_the_young_threshold_and_freezes_what_exists():
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)  # CPython's default (an in-process CLI test may have tuned it)
        gctune.tune()
        assert gc.get_threshold()[0] == gctune.YOUNG_THRESHOLD > 700
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
