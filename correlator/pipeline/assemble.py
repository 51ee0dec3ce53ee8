"""Where the pipeline's stages are assembled, in order: read `build_pipeline` to see the data flow.

The stage contract lives in correlator/pipeline/__init__.py, which the stages import; this module
imports the stages, so the two never import each other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from correlator import capacity
from correlator.availability.settings import parse_settings as availability_settings
from correlator.catalogue import load_catalogue
from correlator.config import Config
from correlator.correlation import correlate_stage
from correlator.noisiest import NoisiestStage
from correlator.notify.stage import notify_stage
from correlator.pipeline import AdvanceClock, Pipeline
from correlator.rules.reload import RulesHolder
from correlator.rules.stage import FilterStage

if TYPE_CHECKING:
    from correlator.changes.service import ChangeService
    from correlator.incidents.service import IncidentService
    from correlator.problems.service import ProblemService


def build_pipeline(
    config: Config,
    rules: RulesHolder | None = None,
    incidents: IncidentService | None = None,
    changes: ChangeService | None = None,
    problems: ProblemService | None = None,
) -> Pipeline:
    """collector -> queue -> [stages below] -> store.

    `rules` is the live rule set (reloadable); without one, the rules in config.rules_dir are loaded
    once here (raising RuleErrors if they are broken), with the service catalogue of
    `availability.services_file`. The availability stage uses the rules' catalogue holder, the one
    topology root cause reads (correlator/catalogue.py). Without `incidents`, `changes`, `problems`
    (replay), no ITSM stages. Stages with `take_pending` (correlate) also produce events on their own when the live
    ticker fires timers; `Pipeline.flush` sends those through the stages after them.
    """
    if rules is None:
        rules = RulesHolder(config.rules_dir, config.inventory_file, load_catalogue(config))
        rules.load_initial()
    availability = None  # without a services file: then its stage and outage store are not imported
    if availability_settings(config.availability).services_file is not None:
        from correlator.availability.stage import AvailabilityStage

        availability = AvailabilityStage.from_config(config, rules.catalogue)
    # The ITSM stages only with their services: `rules test` and `replay --events-only` then never
    # import the incident, notification and template modules.
    if changes is not None:
        from correlator.changes.stage import ChangeLinkStage, MaintenanceStage
    if incidents is not None:
        from correlator.incidents.stage import IncidentStage
    if problems is not None:
        from correlator.problems.stage import ProblemStage
    return Pipeline(
        [
            NoisiestStage(),  # counts raw input, before the rules drop noise
            FilterStage(rules),  # level 1: drop, enrich, classify, rename, rate-limit, de-duplicate
            # before maintenance: utilisation is measured during a change window too
            capacity.CapacityStage(capacity.configure(capacity.parse_settings(config.capacity))),
            *([MaintenanceStage(changes)] if changes is not None else []),  # change windows: tag, set aside
            correlate_stage(config, rules),  # level 2: advances the clock per event; timers emit from here
            *(
                [availability] if availability else []
            ),  # after the rules and level 2: their events and severities
            *([IncidentStage(incidents)] if incidents is not None else []),
            *([ChangeLinkStage(changes)] if changes is not None else []),  # incidents after a change
            *([ProblemStage(problems)] if problems is not None else []),  # recurrence, known errors
            notify_stage(config),  # outbound webhooks asked for by level 2
            AdvanceClock(),  # replay: catch up with the batch when no level-2 rule did
        ]
    )
