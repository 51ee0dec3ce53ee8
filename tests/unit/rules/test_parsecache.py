"""The parse cache: a second process reads no YAML for rule files it has read before, and gets the
same rule set, positions included; a damaged, missing or unwritable cache only costs the YAML."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from correlator import yamlfile
from correlator.rules import parsecache
from correlator.rules.errors import RuleErrors
from correlator.rules.loader import load_rules

RULES = (
    "rules:\n"
    "  - name: cpu\n    kind: threshold\n    match: {type: cpu}\n    count: 2\n    within: 1h\n"
    "    on_fire: [{emit: {type: storm, message: '{host} hot'}}]\n"
    "  - {name: quiet, match: {type: noise}, drop: true}\n"
)

pytestmark = pytest.mark.skipif(not yamlfile._lib().fast, reason="PyYAML was built without libyaml")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    where = tmp_path / "cache"
    monkeypatch.setenv("CORRELATOR_CACHE_DIR", str(where))
    monkeypatch.setattr(parsecache, "_checked", "")
    monkeypatch.setattr(parsecache, "_written", 0)
    return where


def summary(rules_dir: Path) -> list[tuple[str, str, int, str]]:
    return [
        (r.info.name, r.info.kind, r.info.order, str(r.info.position)) for r in load_rules(rules_dir).rules
    ]


def no_yaml(monkeypatch) -> None:
    def fail(text: str, file: str = "") -> None:
        raise AssertionError(f"{file} was read as YAML")

    monkeypatch.setattr(yamlfile, "loads_bare", fail)


def test_a_warm_load_reads_no_yaml_and_gives_the_same_set(tmp_path, cache, monkeypatch):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(RULES)
    cold = summary(rules)
    assert len(list(cache.glob("*.bin"))) == 1
    no_yaml(monkeypatch)
    assert (
        summary(rules)
        == cold
        == [
            ("cpu", "threshold", 0, f"{rules}/a.yaml:2:5"),
            ("quiet", "filter", 1, f"{rules}/a.yaml:8:5"),
        ]
    )


def test_the_same_text_elsewhere_names_its_own_file(tmp_path, cache, monkeypatch):
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "r.yaml").write_text(RULES)
    summary(tmp_path / "one")
    no_yaml(monkeypatch)
    assert summary(tmp_path / "two")[1][3] == f"{tmp_path}/two/r.yaml:8:5"


def test_errors_are_as_precise_with_a_warm_cache(tmp_path, cache):
    (tmp_path / "a.yaml").write_text(RULES)
    summary(tmp_path)
    (tmp_path / "b.yaml").write_text("rules:\n  - name: b\n    dorp: true\n")
    with pytest.raises(RuleErrors) as info:
        load_rules(tmp_path)
    assert [str(e) for e in info.value.errors] == [
        f"{tmp_path}/b.yaml:3:5: unknown key 'dorp' (did you mean 'drop'?); known: "
        + ", ".join(("name", "kind", "description", "enabled", "match", "drop", "inventory", "set"))
        + ", classify, rename, rate_limit, dedup, stop"
    ]


def test_a_damaged_entry_is_read_again(tmp_path, cache):
    (tmp_path / "a.yaml").write_text(RULES)
    cold = summary(tmp_path)
    (entry,) = cache.glob("*.bin")
    for damage in (entry.read_bytes()[:20], b"", b"\x00garbage"):
        entry.write_bytes(damage)
        assert summary(tmp_path) == cold
    assert entry.read_bytes()[:20] != b"\x00garbage"[:20]  # written again


def test_what_marshal_cannot_hold_is_not_kept(tmp_path, cache):
    (tmp_path / "a.yaml").write_text(RULES.replace("drop: true}", "drop: true, description: 2026-01-01}"))
    with pytest.raises(RuleErrors, match="description: expected a non-empty string"):
        load_rules(tmp_path)  # a date is no description; the point is that nothing broke
    assert not list(cache.glob("*.bin"))


def test_no_cache_or_an_unusable_one_changes_nothing(tmp_path, monkeypatch):
    (tmp_path / "a.yaml").write_text(RULES)
    monkeypatch.setattr(parsecache, "_checked", "")
    monkeypatch.setenv("CORRELATOR_CACHE_DIR", "")
    cold = summary(tmp_path)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("CORRELATOR_CACHE_DIR", str(blocker / "cache"))
    assert summary(tmp_path) == summary(tmp_path) == cold
    assert not (blocker / "cache").exists()  # not a directory there: never used


def test_old_entries_are_pruned(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(parsecache, "MAX_ENTRIES", 4)
    cache.mkdir()
    for i in range(6):
        (cache / f"{i:040x}.bin").write_bytes(b"")
    (tmp_path / "a.yaml").write_text(RULES)
    summary(tmp_path)
    assert len(list(cache.glob("*.bin"))) == 4  # 6 - 3 pruned + the new one


def test_a_long_running_process_keeps_pruning_as_reloads_add_entries(tmp_path, cache, monkeypatch):
    monkeypatch.setattr(parsecache, "MAX_ENTRIES", 4)
    sizes = []
    for i in range(20):  # one process, 20 reloads of an edited file: a new entry each time
        (tmp_path / "a.yaml").write_text(RULES.replace("count: 2", f"count: {i + 2}"))
        summary(tmp_path)
        sizes.append(len(list(cache.glob("*.bin"))))
    assert max(sizes) <= 4 + 4 // 2, sizes  # pruned again after every MAX_ENTRIES // 2 written
    no_yaml(monkeypatch)
    assert summary(tmp_path)  # the newest entry is never the one pruned


def test_a_directory_others_can_write_is_not_used(tmp_path, cache, monkeypatch):
    """An entry is read back as rules: one planted in a shared directory must not become a rule."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(RULES)
    summary(rules)  # writes the entry
    cache.chmod(0o777)
    monkeypatch.setattr(parsecache, "_trusted", {})
    calls = []
    real = yamlfile.loads_bare
    monkeypatch.setattr(yamlfile, "loads_bare", lambda text, file="": calls.append(file) or real(text, file))
    summary(rules)
    assert calls == [str(rules / "a.yaml")]  # read as YAML, the entry ignored


def test_an_entry_changed_on_disk_is_read_as_yaml_again(tmp_path, cache, monkeypatch):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(RULES)
    cold = summary(rules)
    [entry] = cache.glob("*.bin")
    raw = bytearray(entry.read_bytes())
    i = raw.index(b"quiet")
    raw[i : i + 5] = b"loud!"  # still well-formed marshal data, not what was written
    entry.write_bytes(bytes(raw))
    assert summary(rules) == cold


def test_a_directory_made_by_someone_else_meanwhile_is_not_used(tmp_path, cache, monkeypatch):
    """The cache directory does not exist yet, and another user makes it world-writable before this
    process does: it is judged as it is then, not trusted for having been missing."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "a.yaml").write_text(RULES)
    real_mkdir = Path.mkdir

    def raced(self: Path, mode: int = 0o777, parents: bool = False, exist_ok: bool = False) -> None:
        if self == cache and not cache.exists():
            real_mkdir(cache, parents=True)  # the other user wins the race
            cache.chmod(0o777)
            if os.geteuid() == 0:
                os.chown(cache, 65534, 65534)  # and owns it, where the tests may say so
        real_mkdir(self, mode, parents, exist_ok)

    monkeypatch.setattr(Path, "mkdir", raced)
    # Made between a check and the write: here, while the rule file is parsed.
    real_loads = yamlfile.loads_bare

    def parse(text: str, file: str = "") -> object:
        raced(cache, exist_ok=True)
        return real_loads(text, file)

    monkeypatch.setattr(yamlfile, "loads_bare", parse)
    summary(rules)
    assert cache.is_dir() and not list(cache.glob("*.bin"))


def test_an_unreadable_pyyaml_still_salts_with_the_loaders_source(tmp_path, monkeypatch):
    """PyYAML loaded from somewhere its __init__ cannot be read (a zip): the loader's own code still
    names the entries, so an edited loader never reads the entries of the one before."""
    spec = SimpleNamespace(origin=str(tmp_path / "yaml.zip" / "yaml" / "__init__.py"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    source = parsecache._loader_source()
    assert source == Path(yamlfile.__file__).read_bytes() + Path(parsecache.__file__).read_bytes()
