"""The Service Review as one self-contained HTML document: the report dict (compute.py) through an
autoescaped Jinja2 template, charts as inline SVG (charts.py), styles inline, no script, no link.
"""

from __future__ import annotations

from typing import Any

import jinja2
from markupsafe import Markup

from correlator.report import charts

# Sent with the document by the daemon: inline styles only, nothing else may load or run.
CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("correlator.report", "templates"),
    autoescape=True,  # titles, hosts and rule names are attacker-controlled text
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def duration(seconds: float | None) -> str:
    # The console's wording, imported here: the console package loads aiohttp, which the offline
    # commands (`rules check`, `replay`) that import this package never need.
    from correlator.console.render import duration as console_duration

    return "n/a" if seconds is None else console_duration(seconds)


def percent(ratio: float | None, digits: int = 3) -> str:
    return "n/a" if ratio is None else f"{ratio * 100:.{digits}f}%"


def when(text: str | None) -> str:
    """`2026-12-06T21:04:05Z` as `2026-12-06 21:04Z`: UTC, readable in a table."""
    return "" if not text else text.replace("T", " ")[:16] + "Z"


_env.filters.update(duration=duration, percent=percent, when=when)


def render_report_html(data: dict[str, Any]) -> str:
    return _env.get_template("report.html").render(r=data, charts=section_charts(data))


def section_charts(data: dict[str, Any]) -> dict[str, Markup]:
    """One chart per section, keyed by section."""
    inc = data["incidents"]
    weeks = [w["week"] for w in inc["by_week"]]
    out: dict[str, Markup] = {}
    services = (data["availability"] or {}).get("services", [])
    observed = [s for s in services if s["availability"] is not None]
    lo = min([0.99, *(min(s["availability"], s["target"]) for s in observed)])
    out["availability"] = charts.bars(
        "Availability against the SLA target (dashed)",
        [(s["service"], s["availability"]) for s in observed],
        fmt=lambda v: percent(v),
        markers=[s["target"] for s in observed],
        scale=(max(0.0, lo - (1 - lo) * 0.1), 1.0),
        colors=[charts.PALETTE[3] if s["met"] else charts.PALETTE[0] for s in observed],
    )
    out["incidents"] = charts.columns(
        "Incidents opened per week by priority",
        weeks,
        {p: [w["by_priority"][p] for w in inc["by_week"]] for p in inc["by_priority"]},
    )
    out["times"] = charts.lines(
        "Mean time to acknowledge and to resolve per week",
        weeks,
        {
            "MTTA": [w["mtta_seconds"] for w in inc["by_week"]],
            "MTTR": [w["mttr_seconds"] for w in inc["by_week"]],
        },
        fmt=duration,
    )
    rec = data["recurring"]
    out["recurring"] = charts.bars(
        "Most recurring signatures (openings in the period)",
        [(_signature(s), s["count"]) for s in rec["signatures"]],
    )
    ch = data["changes"]
    out["changes"] = charts.bars("Changes by outcome", list(ch["by_outcome"].items()))
    noise = data["noise"]
    out["noise_cis"] = charts.bars("Noisiest CIs: events in", [(c["ci"], c["events"]) for c in noise["cis"]])
    out["noise_rules"] = charts.bars(
        "Rules: incidents out", [(r["rule"], r["incidents"]) for r in noise["rules"]]
    )
    return out


def _signature(s: dict[str, Any]) -> str:
    return s["key"] or f"{s['rule']} {s['host']}".strip()
