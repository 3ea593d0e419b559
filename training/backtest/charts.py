"""Small hand-built SVG line charts for the backtest report (presentation attributes only: no
scripts, no inline styles, so the committee pages' Content-Security-Policy shows them)."""

from __future__ import annotations

import math
from html import escape

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2",
           "#7f7f7f", "#17becf", "#bcbd22")  # fmt: skip


def line_chart(
    series: dict[str, list[float | None]],
    labels: list[str],
    title: str,
    y_label: str,
    width: int = 720,
    height: int = 320,
    colours: dict[str, str] | None = None,
) -> str:
    """An SVG line chart: one line per series over the shared x ``labels`` (None = gap).

    ``colours`` fixes a series' colour by name (so a policy keeps its colour on every chart of
    a run); other series take the palette in order.
    """
    left, right, top, bottom = 60, 170, 30, 50
    pw, ph = width - left - right, height - top - bottom
    values = [v for s in series.values() for v in s if v is not None and math.isfinite(v)]
    lo = min(values, default=0.0)
    hi = max(values, default=1.0)
    if hi == lo:
        hi = lo + 1.0
    pad = 0.05 * (hi - lo)
    # Counts, AUC and calibration error are never negative: no axis below 0 for them.
    lo, hi = (max(lo - pad, 0.0) if lo >= 0 else lo - pad), hi + pad
    n = max(len(labels), 2)

    def x(i: int) -> float:
        return left + pw * i / (n - 1)

    def y(v: float) -> float:
        return top + ph * (1 - (v - lo) / (hi - lo))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        f'<text x="{left}" y="18" font-family="sans-serif" font-size="14" '
        f'font-weight="bold">{escape(title)}</text>',
    ]
    for j in range(5):
        v = lo + (hi - lo) * j / 4
        yy = y(v)
        out.append(
            f'<line x1="{left}" y1="{yy:.1f}" x2="{left + pw}" y2="{yy:.1f}" stroke="#dddddd"/>'
        )
        out.append(
            f'<text x="{left - 6}" y="{yy + 4:.1f}" font-family="sans-serif" font-size="10" '
            f'text-anchor="end">{_fmt(v)}</text>'
        )
    step = max(1, len(labels) // 8)
    for i in range(0, len(labels), step):
        out.append(
            f'<text x="{x(i):.1f}" y="{top + ph + 16}" font-family="sans-serif" font-size="10" '
            f'text-anchor="middle">{escape(labels[i])}</text>'
        )
    out.append(
        f'<text x="14" y="{top + ph / 2:.1f}" font-family="sans-serif" font-size="11" '
        f'transform="rotate(-90 14 {top + ph / 2:.1f})" text-anchor="middle">'
        f"{escape(y_label)}</text>"
    )
    for k, (name, vals) in enumerate(series.items()):
        colour = (colours or {}).get(name, PALETTE[k % len(PALETTE)])
        runs: list[list[str]] = [[]]
        for i, value in enumerate(vals):
            if value is None or not math.isfinite(value):
                runs.append([])
                continue
            runs[-1].append(f"{x(i):.1f},{y(value):.1f}")
        for pts in runs:
            if len(pts) > 1:
                out.append(
                    f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
                    f'points="{" ".join(pts)}"/>'
                )
            elif pts:
                cx, cy = pts[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{colour}"/>')
        ly = top + 14 * k + 6
        out.append(
            f'<line x1="{left + pw + 10}" y1="{ly}" x2="{left + pw + 28}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="3"/>'
        )
        out.append(
            f'<text x="{left + pw + 32}" y="{ly + 4}" font-family="sans-serif" '
            f'font-size="11">{escape(name)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _fmt(v: float) -> str:
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.1f}"
    return f"{v:.3f}"
