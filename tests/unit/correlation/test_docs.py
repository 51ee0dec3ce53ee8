"""Every rule example in docs/correlation.md compiles (the docs stay runnable)."""

from __future__ import annotations

import re
from pathlib import Path

from correlator.config import load_config
from correlator.inventory import Inventory
from correlator.notify.stage import parse_targets
from correlator.rules.loader import compile_texts
from correlator.rules.registry import BuildContext

DOC = Path(__file__).resolve().parents[3] / "docs" / "correlation.md"


def blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)


def test_rule_examples_compile(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    [topology] = [b for b in blocks() if b.lstrip().startswith("# topology.yaml")]
    (tmp_path / "topology.yaml").write_text(topology)
    examples = [b for b in blocks() if b.startswith("rules:")]
    assert len(examples) == 8
    ctx = BuildContext(rules_dir, Inventory())
    compiled = compile_texts({f"example{i}.yaml": text for i, text in enumerate(examples)}, ctx)
    kinds = {r.info.kind for r in compiled}
    assert kinds == {"threshold", "pair", "absence", "flapping", "group", "topology", "sequence"}


def test_configuration_example_loads(tmp_path: Path) -> None:
    [conf] = [b for b in blocks() if b.startswith("correlation:")]
    path = tmp_path / "correlator.yaml"
    path.write_text(conf)
    config = load_config(path)
    assert config.correlation.lateness == 5.0
    assert parse_targets(config.correlation.notify)["noc-chat"].max_backoff == 60.0
