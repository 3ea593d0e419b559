"""Charts of the committee pages, drawn on the server as plain SVG.

Hand-built rather than matplotlib: the markup uses presentation attributes only (no ``style``
attributes, no ``<style>`` element, no script), so it passes a Content-Security-Policy that allows
local assets only, scales crisply, and its text (Chinese and English titles, axes, units) stays
text. Every chart has a title, labelled axes with units and a legend.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

PALETTE = ("#c0392b", "#2471a3", "#7f8c8d", "#27ae60", "#8e44ad", "#d35400", "#16a085")
FONT = "system-ui, 'Noto Sans CJK SC', 'Microsoft YaHei', sans-serif"


@dataclass
class Series:
    """One line (or bar) series: y values at the chart's x positions (NaN: no point)."""

    label: str
    values: Sequence[float]
    kind: str = "line"  # "line" or "bar"
    axis: str = "left"  # "left" or "right"


def _nice_max(v: float) -> float:
    if not math.isfinite(v) or v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def _fmt(v: float, percent: bool) -> str:
    if percent:
        return f"{v:.0%}" if v >= 0.1 or v == 0 else f"{v:.1%}"
    return f"{v:g}" if abs(v) < 1e5 else f"{v:.2g}"


def _text(x: float, y: float, s: str, *, size: int = 11, anchor: str = "middle",
          rotate: float | None = None, weight: str = "normal", fill: str = "#222") -> str:  # fmt: skip
    rot = f' transform="rotate({rotate:g} {x:.1f} {y:.1f})"' if rotate is not None else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" font-family="{FONT}" '
        f'text-anchor="{anchor}" font-weight="{weight}" fill="{fill}"{rot}>{escape(s)}</text>'
    )


def line_chart(
    title: str,
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    x_title: str,
    y_title: str,
    y_percent: bool = False,
    y2_title: str | None = None,
    y2_percent: bool = False,
    note: str | None = None,
    width: int = 680,
    height: int = 300,
) -> str:
    """A chart of categorical x positions with line and bar series on one or two y axes."""
    left, right, top, bottom = 64, 64 if y2_title else 20, 36, 58
    pw, ph = width - left - right, height - top - bottom
    n = max(len(x_labels), 1)
    step = pw / n
    xs = [left + step * (i + 0.5) for i in range(n)]

    def axis_max(which: str) -> float:
        vals = [v for s in series if s.axis == which for v in s.values if v is not None]
        arr = np.asarray(vals, dtype=np.float64)
        arr = arr[np.isfinite(arr)]
        return _nice_max(float(arr.max()) if arr.size else 0.0)

    ymax = {"left": axis_max("left"), "right": axis_max("right")}

    def y_of(v: float, which: str) -> float:
        return top + ph * (1 - v / ymax[which])

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(title)}">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        _text(width / 2, 20, title, size=13, weight="bold"),
    ]
    for k in range(5):
        v = ymax["left"] * k / 4
        y = y_of(v, "left")
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + pw}" y2="{y:.1f}" stroke="#e5e5e5"/>'
        )
        out.append(_text(left - 6, y + 4, _fmt(v, y_percent), size=10, anchor="end"))
        if y2_title:
            v2 = ymax["right"] * k / 4
            out.append(_text(left + pw + 6, y + 4, _fmt(v2, y2_percent), size=10, anchor="start"))
    out.append(
        f'<line x1="{left}" y1="{top + ph}" x2="{left + pw}" y2="{top + ph}" stroke="#444"/>'
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}" stroke="#444"/>'
    )
    every = max(1, math.ceil(n / 12))
    for i, label in enumerate(x_labels):
        if i % every == 0:
            out.append(_text(xs[i], top + ph + 16, str(label), size=10))
    out.append(_text(left + pw / 2, height - 22, x_title, size=11))
    out.append(_text(16, top + ph / 2, y_title, size=11, rotate=-90))
    if y2_title:
        out.append(_text(width - 12, top + ph / 2, y2_title, size=11, rotate=90))
    bars = [s for s in series if s.kind == "bar"]
    bw = step * 0.8 / max(len(bars), 1)
    legend: list[tuple[str, str, str]] = []
    for si, s in enumerate(series):
        color = PALETTE[si % len(PALETTE)]
        legend.append((s.label, color, s.kind))
        vals = [float(v) if v is not None else math.nan for v in s.values]
        if s.kind == "bar":
            bi = bars.index(s)
            for i, v in enumerate(vals):
                if math.isfinite(v):
                    x = xs[i] - step * 0.4 + bi * bw
                    y = y_of(v, s.axis)
                    out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" '
                               f'height="{top + ph - y:.1f}" fill="{color}" opacity="0.45"/>')  # fmt: skip
            continue
        pts = [(xs[i], y_of(v, s.axis)) for i, v in enumerate(vals) if math.isfinite(v)]
        if len(pts) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>')
    lx = float(left + 8)
    for label, color, kind in legend:
        shape = (f'<rect x="{lx}" y="{top + 4}" width="12" height="8" fill="{color}" opacity="0.6"/>'
                 if kind == "bar" else
                 f'<line x1="{lx}" y1="{top + 8}" x2="{lx + 12}" y2="{top + 8}" stroke="{color}" '
                 f'stroke-width="2"/>')  # fmt: skip
        out.append(shape)
        out.append(_text(lx + 16, top + 12, label, size=10, anchor="start"))
        lx += 24 + 6.5 * len(label)
    if note:
        out.append(_text(left + pw / 2, top + ph / 2, note, size=12, fill="#777"))
    out.append("</svg>")
    return "\n".join(out)


def waterfall_svg(base: float, items: Sequence[tuple[str, float]], logit: float,
                  title: str = "SHAP 瀑布图 Waterfall (calibrated log-odds 校准对数几率)") -> str:  # fmt: skip
    """Horizontal waterfall: base value, the largest contributions, the rest, the logit."""
    labels = ["base value 基准"] + [n for n, _ in items] + ["= logit(p)"]
    row, left, right, top = 22, 260, 70, 34
    width, height = 760, top + row * len(labels) + 46
    running = [base]
    for _, v in items:
        running.append(running[-1] + v)
    lo = min(0.0, *running, logit)
    hi = max(0.0, *running, logit)
    span = (hi - lo) or 1.0
    pw = width - left - right

    def x_of(v: float) -> float:
        return left + pw * (v - lo) / span

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="waterfall">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
        _text(width / 2, 20, title, size=13, weight="bold"),
        f'<line x1="{x_of(0):.1f}" y1="{top}" x2="{x_of(0):.1f}" y2="{top + row * len(labels)}" '
        f'stroke="#999"/>',
    ]
    bars: list[tuple[float, float, str, str]] = [(0.0, base, "#7f8c8d", f"{base:+.3f}")]
    for i, (_, v) in enumerate(items):
        bars.append((running[i], running[i] + v, "#c0392b" if v > 0 else "#2471a3", f"{v:+.3f}"))
    bars.append((0.0, logit, "#34495e", f"{logit:+.3f}"))
    for i, ((a, b, color, txt), label) in enumerate(zip(bars, labels, strict=True)):
        y = top + row * i + 3
        x0, x1 = sorted((x_of(a), x_of(b)))
        out.append(f'<rect x="{x0:.1f}" y="{y}" width="{max(x1 - x0, 1):.1f}" height="{row - 6}" '
                   f'fill="{color}"/>')  # fmt: skip
        out.append(_text(left - 6, y + row / 2 + 1, label[:40], size=10, anchor="end"))
        out.append(_text(x1 + 4, y + row / 2 + 1, txt, size=10, anchor="start"))
    axis_y = top + row * len(labels) + 14
    for k in range(5):
        v = lo + span * k / 4
        out.append(_text(x_of(v), axis_y, f"{v:.2f}", size=10))
    out.append(_text(left + pw / 2, axis_y + 18, "calibrated log-odds 校准对数几率", size=11))
    out.append("</svg>")
    return "\n".join(out)
