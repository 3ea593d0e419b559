"""The committee pages' charts (server-drawn SVG, :mod:`serving.charts`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from serving import dashboard
from serving.charts import Series, line_chart


def trend_svg(weekly: pd.DataFrame, activated_at: str | None, as_of: str) -> str:
    """Weekly inspections (bars) and nonconformity rate (line) of a subject."""
    labels = [f"{pd.Timestamp(t):%m-%d}" for t in weekly.index]
    title = "每周查验与不合格率 Weekly inspections and nonconforming rate"
    if activated_at:
        title += f" · in force 生效 {str(activated_at)[:10]}"
    return line_chart(
        title,
        labels,
        [
            Series(
                "查验 inspected",
                weekly.get("inspected", pd.Series(dtype=float)).tolist(),
                kind="bar",
            ),
            Series(
                "不合格率 nonconforming rate",
                weekly.get("rate", pd.Series(dtype=float)).tolist(),
                axis="right",
            ),
        ],  # fmt: skip
        x_title="周 week (ending, UTC)",
        y_title="查验数 inspections / week",
        y2_title="不合格率 rate",
        y2_percent=True,
        note=None if len(weekly) else "期间无查验 no inspections in the period",
    )


def health_svgs(health: Sequence[dashboard.MonthHealth]) -> tuple[str, str]:
    """(predicted vs observed rate on the random sample, score drift PSI) by declared month."""
    months = [h.month for h in health]
    calibration = line_chart(
        "随机监测样本：预测与实际不合格率 Random monitoring sample: predicted vs observed",
        months,
        [
            Series("预测 predicted (mean p)", [h.predicted for h in health]),
            Series("实际 observed rate", [h.observed for h in health]),
        ],  # fmt: skip
        x_title="月份 month (declared)",
        y_title="不合格率 nonconforming rate",
        y_percent=True,
    )
    drift = line_chart(
        "评分漂移 Score drift vs training period (PSI)",
        months,
        [
            Series("PSI", [h.psi for h in health]),
            Series(f"阈值 act threshold {dashboard.PSI_ACT}", [dashboard.PSI_ACT] * len(health)),
        ],  # fmt: skip
        x_title="月份 month (declared)",
        y_title="PSI (无量纲 unitless)",
    )
    return calibration, drift


MODEL_CARD_METRICS = (("precision", "精确率 precision"),
                      ("critical_recall", "严重问题召回率 critical recall"))  # fmt: skip


def budget_svgs(
    sources: Sequence[tuple[str, dict[str, Any]]], budgets: Sequence[str], subset: str, label: str
) -> list[str]:
    """Precision and critical recall by inspection budget, model and baselines, on ``subset``."""
    x = [f"{float(b):.0%}" for b in budgets]
    charts = []
    for metric, mlabel in MODEL_CARD_METRICS:
        series = [
            Series(
                name,
                [
                    ((m.get("budgets") or {}).get(b) or {})
                    .get(subset, {})
                    .get(metric, float("nan"))
                    for b in budgets
                ],
            )  # fmt: skip
            for name, m in sources
        ]
        # metrics stored as JSON: a NaN (no positive in the subset) is null
        empty = all(v is None or not math.isfinite(float(v)) for se in series for v in se.values)
        charts.append(line_chart(
            f"{mlabel} · {label}", x, series, x_title="查验预算 inspection budget "
            "(share of declarations 占报关单比例)", y_title=f"{mlabel}", y_percent=True,
            note="该样本中无严重问题 no critical finding in this sample" if empty else None,
        ))  # fmt: skip
    return charts
