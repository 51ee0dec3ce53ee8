"""ITIL Incident Management: incidents opened, updated and resolved from correlation's requests.

Read service.py first; lifecycle.py holds the rules, model.py the record, the stores persist it.
"""

from correlator.incidents.model import Incident, Status
from correlator.incidents.service import IncidentService, NotFound
from correlator.incidents.settings import IncidentSettings, parse_settings

__all__ = ["Incident", "IncidentService", "IncidentSettings", "NotFound", "Status", "parse_settings"]
