"""Committee plots (matplotlib, Agg backend, PNG): calibration curve, precision and recall by
budget (model against baselines and the oracle), SHAP summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def calibration_plot(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, bins: int = 10
) -> Path:
    """Reliability diagram: observed rate against mean predicted probability in equal-mass bins.

    Parameters
    ----------
    curves
        ``label -> (probabilities, outcomes)`` (for example all inspected, random sample).
    path
        PNG to write.
    bins
        Number of quantile bins per curve.
    """
    fig, ax = plt.subplots(figsize=(5.5, 5))
    top = 0.0
    for label, (p, y) in curves.items():
        p = np.asarray(p, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if len(p) == 0:
            continue
        edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
        idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
        mean_p = np.array([p[idx == i].mean() for i in range(len(edges) - 1) if (idx == i).any()])
        rate = np.array([y[idx == i].mean() for i in range(len(edges) - 1) if (idx == i).any()])
        ax.plot(mean_p, rate, marker="o", label=f"{label} (n={len(p):,})")
        top = max(top, float(mean_p.max()), float(rate.max()))
    top = min(1.0, top * 1.05 + 1e-3)
    ax.plot([0, top], [0, top], ls="--", color="grey", label="perfect")
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("predicted probability (calibrated)")
    ax.set_ylabel("observed nonconforming rate")
    ax.set_title("Calibration on the test period")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def budget_plot(
    results: dict[str, dict[str, Any]], path: Path, subset: str = "random_sample"
) -> Path:
    """Precision, recall and critical recall against the budget for each scorer.

    Parameters
    ----------
    results
        ``scorer -> evaluate_scores output``; the first is drawn as the model.
    path
        PNG to write.
    subset
        ``random_sample`` (unbiased) or ``all_inspected``.
    """
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for name, metrics in results.items():
        budgets = sorted(metrics["budgets"], key=float)
        x = [100 * float(b) for b in budgets]
        for ax, key in zip(axes, ("precision", "recall", "critical_recall"), strict=True):
            y = [metrics["budgets"][b][subset][key] for b in budgets]
            ax.plot(x, y, marker="o", label=name)
    first = next(iter(results.values()))
    if "truth" in next(iter(first["budgets"].values())):
        budgets = sorted(first["budgets"], key=float)
        x = [100 * float(b) for b in budgets]
        oracle_prec = [
            first["budgets"][b]["truth"]["oracle_found"] / max(first["budgets"][b]["selected"], 1)
            for b in budgets
        ]
        axes[0].plot(x, oracle_prec, ls="--", color="black", label="oracle (expected)")
    for ax, key in zip(axes, ("precision", "recall", "critical recall"), strict=True):
        ax.set_xlabel("budget (% of all declarations inspected)")
        ax.set_title(f"{key} ({subset.replace('_', ' ')})")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def shap_contributions(booster: lgb.Booster, X: np.ndarray, a: float) -> tuple[np.ndarray, float]:
    """Exact TreeSHAP values in calibrated log-odds: contributions times ``a``, and the raw base
    (the caller adds ``b``)."""
    contrib = np.asarray(booster.predict(X, pred_contrib=True), dtype=np.float64)
    return contrib[:, :-1] * a, float(contrib[0, -1]) if len(contrib) else 0.0


def shap_summary_plot(
    booster: lgb.Booster,
    X: np.ndarray,
    feature_names: list[str],
    a: float,
    path: Path,
    max_display: int = 20,
) -> Path:
    """``shap.summary_plot`` of exact LightGBM contributions on a sample (calibrated log-odds)."""
    import shap

    values, _ = shap_contributions(booster, X, a)
    plt.figure()
    # An explicit generator for the jitter: reproducible, and never the global NumPy RNG.
    shap.summary_plot(
        values,
        X,
        feature_names=feature_names,
        max_display=max_display,
        show=False,
        rng=np.random.default_rng(0),
    )
    fig = plt.gcf()
    fig.set_size_inches(9, 0.35 * min(max_display, len(feature_names)) + 1.5)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
