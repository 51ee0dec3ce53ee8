"""One watcher for every reload target: a change goes to the target owning the file, a replaced file
is watched again, and without inotify the watcher polls."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from correlator import reloads as mod
from correlator.reloads import Reloads
from correlator.rules.reload import RulesHolder


@dataclass
class Result:
    ok: bool = True

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok}


@dataclass
class FileTarget:
    """Owns one file; counts its reloads and lets a test wait for the next one."""

    name: str
    file: Path
    triggers: list[str] = field(default_factory=list)
    last: Result | None = None
    reloaded: asyncio.Event = field(default_factory=asyncio.Event)

    def watched(self) -> list[Path]:
        return [self.file]

    def owns(self, path: Path) -> bool:
        return path == self.file.resolve()

    async def reload(self, trigger: str) -> Result:
        self.triggers.append(trigger)
        self.reloaded.set()
        self.last = Result()
        return self.last


async def test_watch_falls_back_to_polling(tmp_path, monkeypatch):
    (tmp_path / "set.yaml").write_text("rules: [{name: a, set: {attributes.v: 1}}]\n")
    holder = RulesHolder(tmp_path)
    holder.load_initial()
    calls = []

    async def fake_awatch(*paths, force_polling, **kw):
        calls.append(force_polling)
        if not force_polling:
            raise OSError("inotify watch limit reached")
        (tmp_path / "more.yaml").write_text("rules: [{name: b, set: {attributes.w: 1}}]\n")
        yield {("modified", str(tmp_path / "more.yaml"))}

    monkeypatch.setattr(mod, "awatch", fake_awatch)
    await Reloads([holder]).watch()
    assert calls == [False, True]
    assert holder.last.trigger == "file change" and len(holder.current.rules) == 2


async def test_a_change_reloads_only_the_target_owning_the_file(tmp_path, monkeypatch):
    rules, calendar = FileTarget("rules", tmp_path / "r.yaml"), FileTarget("calendar", tmp_path / "c.yaml")
    for t in (rules, calendar):
        t.file.write_text("x")
    watched: list[tuple[Path, ...]] = []

    async def fake_awatch(*paths, watch_filter, **kw):
        watched.append(paths)
        assert not watch_filter(mod.Change.modified, str(tmp_path / "other.yaml"))
        yield {(mod.Change.modified, str(calendar.file.resolve()))}

    monkeypatch.setattr(mod, "awatch", fake_awatch)
    await Reloads([rules, calendar]).watch()
    assert (rules.triggers, calendar.triggers) == ([], ["file change"])
    assert watched == [(rules.file.resolve(), calendar.file.resolve())]


async def test_a_file_replaced_by_a_rename_is_watched_again(tmp_path):
    target = FileTarget("calendar", tmp_path / "calendar.yaml")
    target.file.write_text("windows: []\n")

    async def save_until_noticed(n: int, rename: bool) -> None:
        # The watcher arms (and re-arms after a rename) in its own time: save again until it sees one.
        for attempt in range(60):
            target.reloaded.clear()
            content = f"# {n}.{attempt}\n"  # new content each time: the same bytes would be a no-op
            if rename:  # as editors and configuration tools save
                tmp = tmp_path / ".calendar.yaml.tmp"
                tmp.write_text(content)
                os.replace(tmp, target.file)
            else:
                target.file.write_text(content)
            try:
                await asyncio.wait_for(target.reloaded.wait(), 0.5)
                return
            except TimeoutError:
                continue
        raise AssertionError(f"save {n} (rename={rename}) never noticed")

    watcher = asyncio.create_task(Reloads([target]).watch(debounce_ms=50))
    try:
        for n, rename in enumerate((False, True, False, True, False)):
            await save_until_noticed(n, rename)
    finally:
        watcher.cancel()
    assert set(target.triggers) == {"file change"}


async def test_a_missing_file_is_not_watched_and_a_target_failing_does_not_stop_the_watcher(
    tmp_path, monkeypatch
):
    broken, ok = FileTarget("broken", tmp_path / "b.yaml"), FileTarget("ok", tmp_path / "o.yaml")
    broken.file.write_text("x")

    async def failing(trigger: str) -> Result:
        raise RuntimeError("record store down")

    broken.reload = failing  # type: ignore[method-assign]
    watched = []

    async def fake_awatch(*paths, **kw):
        watched.append(paths)
        yield {(mod.Change.modified, str(broken.file.resolve()))}

    monkeypatch.setattr(mod, "awatch", fake_awatch)
    await Reloads([broken, ok]).watch()  # returns: the fake watcher ends, no exception escaped
    assert watched == [(broken.file.resolve(),)]


async def test_a_topology_file_the_rules_read_is_watched_and_followed_when_the_rules_change(
    tmp_path, monkeypatch
):
    rules = tmp_path / "rules"
    rules.mkdir()
    for name in ("a", "b"):
        (tmp_path / f"{name}.topology.yaml").write_text("cis:\n  core-1: {}\n")

    def rule_file(topology: str) -> None:
        (rules / "rc.yaml").write_text(
            "rules:\n  - {name: rc, kind: topology, topology: ../" + topology + ".topology.yaml,"
            " down: {type: node.down}, up: {type: node.up}}\n"
        )

    rule_file("a")
    holder = RulesHolder(rules)
    holder.load_initial()
    assert holder.owns((tmp_path / "a.topology.yaml").resolve())
    watched: list[set[Path]] = []

    async def fake_awatch(*paths, **kw):
        watched.append(set(paths))
        if len(watched) == 1:  # an edit of the topology file reloads; then the rules switch files
            yield {(mod.Change.modified, str((tmp_path / "a.topology.yaml").resolve()))}
            rule_file("b")
            yield {(mod.Change.modified, str((rules / "rc.yaml").resolve()))}

    monkeypatch.setattr(mod, "awatch", fake_awatch)
    await Reloads([holder]).watch()
    assert (tmp_path / "a.topology.yaml").resolve() in watched[0]
    assert (tmp_path / "b.topology.yaml").resolve() in watched[1]  # watched again, with the new file
    assert (tmp_path / "a.topology.yaml").resolve() not in watched[1]


async def test_a_reload_of_unchanged_files_is_a_no_op_answering_the_last_outcome(tmp_path):
    target = FileTarget("calendar", tmp_path / "c.yaml")
    target.file.write_text("windows: []\n")
    reloads = Reloads([target])
    first = (await reloads.reload("SIGHUP"))["calendar"]
    again = await asyncio.gather(reloads.reload("api"), reloads.reload_target(target, "file change"))
    assert target.triggers == ["SIGHUP"]  # nothing counted, nothing applied twice
    assert again[0]["calendar"] is first and again[1] is first
    target.file.write_text("windows: [] # edited\n")
    await reloads.reload("api")
    target.file.write_text("windows: []\n")  # back to the first content: still a change since the last
    await reloads.reload("api")
    assert target.triggers == ["SIGHUP", "api", "api"]


async def test_the_first_reload_always_runs_and_one_that_raised_is_tried_again(tmp_path):
    target = FileTarget("calendar", tmp_path / "c.yaml")
    target.file.write_text("x")
    target.last = Result()  # the start-up load, not made by Reloads
    reloads = Reloads([target])
    await reloads.reload("SIGHUP")
    assert target.triggers == ["SIGHUP"]
    target.file.write_text("y")
    down = True

    async def flaky(trigger: str) -> Result:
        if down:
            raise RuntimeError("record store down")
        return await FileTarget.reload(target, trigger)

    target.reload = flaky  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await reloads.reload("SIGHUP")
    down = False
    await reloads.reload("SIGHUP")
    assert target.triggers == ["SIGHUP", "SIGHUP"]


async def test_only_the_owned_files_of_a_watched_directory_count(tmp_path):
    rules = tmp_path / "rules"
    (rules / "site").mkdir(parents=True)
    (rules / "site" / "a.yaml").write_text("rules: [{name: a, set: {attributes.v: 1}}]\n")
    holder = RulesHolder(rules)
    holder.load_initial()
    reloads = Reloads([holder])
    await reloads.reload("SIGHUP")
    (rules / "site" / ".a.yaml.swp").write_text("an editor's swap file")
    (rules / "notes.txt").write_text("not a rule file")
    assert (await reloads.reload("api"))["rules"].trigger == "SIGHUP"
    (rules / "site" / "b.yaml").write_text("rules: [{name: b, set: {attributes.w: 1}}]\n")
    assert (await reloads.reload("api"))["rules"].trigger == "api"
    assert len(holder.current.rules) == 2
    (rules / "site" / "b.yaml").unlink()
    assert (await reloads.reload("SIGHUP"))["rules"].trigger == "SIGHUP"
    assert len(holder.current.rules) == 1
