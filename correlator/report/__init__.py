"""The Service Review: figures for a period computed from the stores (compute.py) and rendered as
one self-contained HTML document (html.py); served by `correlator report`, GET /api/v1/report and
the console's /report page (docs/report.md).
"""

from correlator.report.compute import AvailabilityInput, ReportStores, compute_report
from correlator.report.html import render_report_html

__all__ = ["AvailabilityInput", "ReportStores", "compute_report", "render_report_html"]
