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


def test_finished_freezes_what_is_alive_so_the_exit_does_not_scan_it():
    try:
        kept = [[] for _ in range(100)]  # containers the collector tracks
        gctune.finished()
        scanned = {id(o) for o in gc.get_objects()}  # every generation a collection scans
        assert not any(id(x) in scanned for x in kept)
    finally:
        gc.unfreeze()


def test_replay_finishes_with_the_collector_told(tmp_path, monkeypatch, capsys):
    from correlator.cli import main

    calls = []
    monkeypatch.setattr(gctune, "finished", lambda: calls.append(1))
    rules = tmp_path / "rules"
    rules.mkdir()
    events = tmp_path / "events.ndjson"
    events.write_text('{"host": "h", "type": "x", "time": 1000}\n')
    assert main(["replay", str(events), "--rules", str(rules), "--events-only"]) == 0
    assert calls == [1]
