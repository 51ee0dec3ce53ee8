"""Second-level correlation: stateful patterns across events (threshold, pair, absence, flapping,
group, topology, sequence) and the responses they select. docs/correlation.md documents them.
"""

from __future__ import annotations

from correlator.config import Config
from correlator.correlation.stage import Correlate


def correlate_stage(config: Config) -> Correlate:
    """The level-2 stage with the rules of `config.rules_dir` (none yet: wired in by the rule kinds)."""
    return Correlate([])
