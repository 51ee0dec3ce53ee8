"""Second-level correlation: stateful patterns across events (threshold, pair, absence, flapping,
group, topology, sequence) and the responses they select. docs/correlation.md documents them.
"""

from __future__ import annotations

from correlator.config import Config
from correlator.correlation.stage import Correlate
from correlator.rules.reload import RulesHolder


def correlate_stage(config: Config, rules: RulesHolder) -> Correlate:
    """The level-2 stage; it follows the live rule set, taking the rules of the level-2 kinds."""
    c = config.correlation
    return Correlate([], lateness=c.lateness, max_depth=c.max_depth, rules=rules)
