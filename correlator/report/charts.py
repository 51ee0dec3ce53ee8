"""Small SVG charts drawn on the server for the Service Review: horizontal bars, stacked columns
and lines. Inline SVG keeps the report one self-contained file that opens offline.

Every label is escaped (host names and titles come from events); an empty chart is still an
<svg> that says "no data", so every section has its chart.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

# Colour-blind-safe palette (Okabe-Ito), in priority order P1..P5 and then for other series.
PALETTE = ("#d55e00", "#e69f00", "#0072b2", "#009e73", "#999999", "#cc79a7", "#56b4e9", "#f0e442")
TEXT = "#222"
GRID = "#ddd"
Fmt = Callable[[float], str]


def _svg(width: int, height: int, title: str, body: list[str]) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" role="img" aria-label="{escape(title)}"'
        f' font-family="sans-serif" font-size="12"><title>{escape(title)}</title>'
    )
    return Markup(head + "".join(body) + "</svg>")  # noqa: S704 - each text in it went through escape()


def _empty(width: int, title: str) -> Markup:
    return _svg(
        width, 40, title, [f'<text x="{width / 2}" y="24" text-anchor="middle" fill="#666">no data</text>']
    )


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def bars(
    title: str,
    rows: Sequence[tuple[str, float]],
    fmt: Fmt = lambda v: f"{v:g}",
    markers: Sequence[float | None] | None = None,
    scale: tuple[float, float] | None = None,
    colors: Sequence[str] | None = None,
    width: int = 720,
) -> Markup:
    """One horizontal bar per row; `markers` draws a tick per row (an SLA target), `scale` fixes the
    axis (lo, hi) instead of 0..max, `colors` one colour per row."""
    if not rows:
        return _empty(width, title)
    label_w, value_w, bar_h, gap = 220, 90, 18, 6
    plot_w = width - label_w - value_w
    lo, hi = scale if scale else (0.0, max(max(v for _, v in rows), 1e-9))
    span = (hi - lo) or 1.0
    height = len(rows) * (bar_h + gap) + gap
    body = []
    for n, (label, value) in enumerate(rows):
        y = gap + n * (bar_h + gap)
        w = max(0.0, min(1.0, (value - lo) / span)) * plot_w
        color = colors[n] if colors else PALETTE[2]
        body.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" fill="{TEXT}">'
            f"{escape(_short(label, 32))}</text>"
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}" fill="{color}"/>'
            f'<text x="{label_w + plot_w + 6}" y="{y + 13}" fill="{TEXT}">{escape(fmt(value))}</text>'
        )
        marker = markers[n] if markers else None
        if marker is not None:
            x = label_w + max(0.0, min(1.0, (marker - lo) / span)) * plot_w
            body.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y - 2}" y2="{y + bar_h + 2}" stroke="{TEXT}"'
                ' stroke-width="2" stroke-dasharray="3 2"/>'
            )
    return _svg(width, height, title, body)


def columns(
    title: str, labels: Sequence[str], series: dict[str, Sequence[float]], width: int = 720, height: int = 240
) -> Markup:
    """Stacked columns, one per label, one colour per series, with a legend."""
    if not labels:
        return _empty(width, title)
    left, bottom, top = 40, 40, 28
    plot_w, plot_h = width - left - 10, height - bottom - top
    totals = [sum(s[i] for s in series.values()) for i in range(len(labels))]
    hi = max(max(totals), 1.0)
    step = plot_w / len(labels)
    col_w = min(48.0, step * 0.7)
    body = _legend(list(series), left) + _grid(left, top, plot_w, plot_h, hi, lambda v: f"{v:g}")
    for i, label in enumerate(labels):
        x = left + i * step + (step - col_w) / 2
        y: float = top + plot_h
        for k, values in enumerate(series.values()):
            h = values[i] / hi * plot_h
            if h > 0:
                y -= h
                body.append(
                    f'<rect x="{x:.1f}" y="{y:.1f}" width="{col_w:.1f}" height="{h:.1f}" fill="{PALETTE[k % 8]}"/>'
                )
        body.append(
            f'<text x="{x + col_w / 2:.1f}" y="{top + plot_h + 16}" text-anchor="middle" fill="{TEXT}">'
            f"{escape(_short(label, 10))}</text>"
        )
        if totals[i]:
            body.append(
                f'<text x="{x + col_w / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" fill="{TEXT}">'
                f"{totals[i]:g}</text>"
            )
    return _svg(width, height, title, body)


def lines(
    title: str,
    labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    fmt: Fmt = lambda v: f"{v:g}",
    width: int = 720,
    height: int = 240,
) -> Markup:
    """One line per series over the labels; a missing value (None) breaks the line."""
    values = [v for s in series.values() for v in s if v is not None]
    if not labels or not values:
        return _empty(width, title)
    left, bottom, top = 70, 40, 28
    plot_w, plot_h = width - left - 40, height - bottom - top  # room for the last label
    hi = max(max(values), 1e-9)
    step = plot_w / max(len(labels) - 1, 1)
    body = _legend(list(series), left) + _grid(left, top, plot_w, plot_h, hi, fmt)
    for i, label in enumerate(labels):
        body.append(
            f'<text x="{left + i * step:.1f}" y="{top + plot_h + 16}" text-anchor="middle" fill="{TEXT}">'
            f"{escape(_short(label, 10))}</text>"
        )
    for k, vals in enumerate(series.values()):
        color = PALETTE[k % 8]
        run: list[str] = []
        for i, v in enumerate([*vals, None]):
            if v is None:
                if len(run) > 1:
                    body.append(
                        f'<polyline points="{" ".join(run)}" fill="none" stroke="{color}" stroke-width="2"/>'
                    )
                run = []
                continue
            x, y = left + i * step, top + plot_h - v / hi * plot_h
            run.append(f"{x:.1f},{y:.1f}")
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
    return _svg(width, height, title, body)


def _legend(names: list[str], left: int) -> list[str]:
    out, x = [], left
    for k, name in enumerate(names):
        out.append(
            f'<rect x="{x}" y="6" width="12" height="12" fill="{PALETTE[k % 8]}"/>'
            f'<text x="{x + 16}" y="16" fill="{TEXT}">{escape(_short(name, 20))}</text>'
        )
        x += 24 + 7 * min(len(name), 20)
    return out


def _grid(left: int, top: int, plot_w: float, plot_h: float, hi: float, fmt: Fmt) -> list[str]:
    out = []
    for n in range(5):
        v = hi * n / 4
        y = top + plot_h - plot_h * n / 4
        out.append(
            f'<line x1="{left}" x2="{left + plot_w:.1f}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#666">{escape(fmt(v))}</text>'
        )
    return out
