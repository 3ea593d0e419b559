"""Evaluation of a ranking at inspection budgets, on the test period.

How a budget maps onto the data
-------------------------------
A budget ``k`` (for example 5%) is a share of **all** declarations of the period, inspected or
not. Every declaration of the period is ranked by score (ties broken by a seeded random order)
and the top ``round(k * N)`` are "selected". Labels exist only for inspected declarations, so:

* ``all_inspected``: among selected declarations that were inspected (any selection reason),
  precision = nonconforming / selected-and-inspected; recall = nonconforming selected / all
  nonconforming inspected in the period; critical recall = the same for ``severity ==
  critical``. Biased: targeted inspections over-represent what the old rule looked at.
* ``random_sample``: the same selection (same score threshold), measured only on the random
  monitoring sample (``selection == random``). The random sample is a uniform draw of all
  declarations, so these are unbiased estimates of the precision and recall the ranking would
  have if it chose what to inspect. They are noisy (few positives).
* ``truth`` (demo data only): ``expected_found`` = sum of the generator's true probability
  ``p_true`` over the selected declarations; the oracle ranks by ``p_true`` itself. The same
  for critical nonconformities with ``critical_p_true`` (``oracle_critical`` ranks by
  ``critical_p_true``; ``oracle_critical_by_p`` by ``p_true``). Ratios compare model to oracle.
  Precision and critical recall in expectation equal these counts divided by the selected count
  and by the total expected critical count, so their ratios to the oracle are the count ratios.

Ranking and calibration metrics (AUC, PR-AUC, Brier, ECE) are computed on the labelled rows of
each subset. ECE uses ``ece_bins`` equal-width probability bins, weighted by bin size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

SUBSETS = ("all_inspected", "random_sample")


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE with equal-width bins on [0, 1]: ``sum_b n_b / n * |mean(y_b) - mean(p_b)|``."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(p) == 0:
        return float("nan")
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    sp = np.bincount(idx, weights=p, minlength=bins)
    sy = np.bincount(idx, weights=y, minlength=bins)
    return float(np.abs(sy - sp).sum() / len(p))


def row_logloss(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row's log loss of probability ``p`` for outcome ``y`` (0/1)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1 - 1e-12)
    y = np.asarray(y, dtype=np.float64)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def paired_z(loss: np.ndarray, incumbent: np.ndarray) -> float:
    """How many standard errors of the paired per-row difference the mean of ``loss`` lies
    below the ``incumbent``'s on the same rows (positive: ``loss`` is lower; NaN with fewer
    than two rows or no spread)."""
    d = np.asarray(incumbent, dtype=np.float64) - np.asarray(loss, dtype=np.float64)
    if len(d) < 2:
        return float("nan")
    se = float(d.std(ddof=1) / np.sqrt(len(d)))
    if se == 0.0:
        return float("nan") if d.mean() == 0.0 else float(np.sign(d.mean()) * np.inf)
    return float(d.mean() / se)


def significantly_lower(loss: np.ndarray, incumbent: np.ndarray, z: float) -> bool:
    """Is the mean of ``loss`` below the ``incumbent``'s (same rows) by more than ``z``
    standard errors of the paired per-row difference?"""
    return bool(paired_z(loss, incumbent) > z)  # NaN (too few rows) is not lower


def ranking_metrics(
    scores: np.ndarray, y: np.ndarray, *, probabilities: bool, ece_bins: int = 10
) -> dict[str, float]:
    """AUC, PR-AUC and (for probabilities) Brier score and ECE on labelled rows."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    out: dict[str, float] = {
        "n": float(len(y)),
        "positives": float(y.sum()),
        "base_rate": float(y.mean()) if len(y) else float("nan"),
    }
    both = len(y) > 0 and 0 < y.sum() < len(y)
    out["auc"] = float(roc_auc_score(y, scores)) if both else float("nan")
    out["pr_auc"] = float(average_precision_score(y, scores)) if both else float("nan")
    if probabilities and len(y):
        out["brier"] = float(brier_score_loss(y, scores))
        out["ece"] = expected_calibration_error(scores, y, ece_bins)
        out["mean_p"] = float(scores.mean())
    else:
        out["brier"] = out["ece"] = out["mean_p"] = float("nan")
    return out


def rank_order(scores: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices from highest to lowest score; ties broken by a seeded random order."""
    scores = np.asarray(scores, dtype=np.float64)
    tiebreak = np.random.default_rng(seed).permutation(len(scores))
    return np.lexsort((tiebreak, -scores))


def top_k_mask(scores: np.ndarray, budget: float, seed: int = 0) -> np.ndarray:
    """Boolean mask of the top ``round(budget * N)`` rows by score."""
    n_sel = int(round(budget * len(scores)))
    mask = np.zeros(len(scores), dtype=bool)
    mask[rank_order(scores, seed)[:n_sel]] = True
    return mask


def _budget_on(selected: np.ndarray, rows: np.ndarray, y: np.ndarray, crit: np.ndarray) -> dict:
    sel = selected & rows
    pos = y[rows].sum()
    cpos = crit[rows].sum()
    n_sel = int(sel.sum())
    return {
        "selected_labelled": n_sel,
        "precision": float(y[sel].sum() / n_sel) if n_sel else float("nan"),
        "recall": float(y[sel].sum() / pos) if pos else float("nan"),
        "critical_recall": float(crit[sel].sum() / cpos) if cpos else float("nan"),
        "found": float(y[sel].sum()),
        "critical_found": float(crit[sel].sum()),
    }


def evaluation_frame(features: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Labels aligned to ``features`` rows: inspected, y, critical, random (one row each)."""
    lab = features[["declaration_id"]].merge(labels, on="declaration_id", how="left")
    if len(lab) != len(features):
        raise ValueError("labels have duplicate declaration ids")
    inspected = lab["inspected"].fillna(False).astype(bool).to_numpy()
    y = lab["nonconforming"].to_numpy(dtype=np.float64, na_value=np.nan)
    sev = lab["severity"].astype("str").to_numpy()
    sel = lab["selection"].astype("str").to_numpy()
    return pd.DataFrame(
        {
            "declaration_id": lab["declaration_id"].to_numpy(),
            "inspected": inspected & ~np.isnan(y),
            "y": np.nan_to_num(y, nan=0.0),
            "critical": (np.nan_to_num(y, nan=0.0) == 1.0) & (sev == "critical"),
            "random": inspected & (sel == "random"),
        }
    )


def evaluate_scores(
    scores: np.ndarray,
    frame: pd.DataFrame,
    *,
    probabilities: bool,
    budgets: tuple[float, ...] = (0.01, 0.02, 0.05, 0.10, 0.20),
    ece_bins: int = 10,
    truth: pd.DataFrame | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """All test-period metrics of one scorer.

    Parameters
    ----------
    scores
        One score per row of ``frame`` (all declarations of the period).
    frame
        Output of :func:`evaluation_frame` for the period.
    probabilities
        Whether scores are probabilities (then Brier and ECE are computed).
    budgets
        Shares of all declarations inspected.
    ece_bins
        Number of equal-width bins for ECE.
    truth
        Optional ground truth aligned to ``frame``: columns ``p_true``, ``critical_p_true``.
    seed
        Seed of the tie-break order.

    Returns
    -------
    dict
        ``{"all_inspected": {...}, "random_sample": {...}, "budgets": {"0.05": {...}}}``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) != len(frame):
        raise ValueError("one score per declaration is needed")
    insp = frame["inspected"].to_numpy()
    rnd = frame["random"].to_numpy() & insp
    y = frame["y"].to_numpy()
    crit = frame["critical"].to_numpy()
    out: dict[str, Any] = {"n_declarations": len(frame)}
    for name, rows in zip(SUBSETS, (insp, rnd), strict=True):
        out[name] = ranking_metrics(
            scores[rows], y[rows], probabilities=probabilities, ece_bins=ece_bins
        )
    order = rank_order(scores, seed)
    by_budget: dict[str, Any] = {}
    if truth is not None:
        p_true = truth["p_true"].to_numpy(dtype=np.float64)
        c_true = truth["critical_p_true"].to_numpy(dtype=np.float64)
        oracle_order = np.argsort(-p_true, kind="stable")
        oracle_c_order = np.argsort(-c_true, kind="stable")
    for k in budgets:
        n_sel = int(round(k * len(scores)))
        selected = np.zeros(len(scores), dtype=bool)
        selected[order[:n_sel]] = True
        entry: dict[str, Any] = {
            "selected": n_sel,
            "all_inspected": _budget_on(selected, insp, y, crit),
            "random_sample": _budget_on(selected, rnd, y, crit),
        }
        if truth is not None:
            found = float(p_true[selected].sum())
            oracle = float(p_true[oracle_order[:n_sel]].sum())
            c_found = float(c_true[selected].sum())
            c_oracle = float(c_true[oracle_c_order[:n_sel]].sum())
            c_oracle_p = float(c_true[oracle_order[:n_sel]].sum())
            entry["truth"] = {
                "expected_found": found,
                "oracle_found": oracle,
                "ratio": found / oracle if oracle else float("nan"),
                "expected_precision": found / n_sel if n_sel else float("nan"),
                "expected_recall": found / p_true.sum(),
                "expected_critical_found": c_found,
                "oracle_critical_found": c_oracle,
                "oracle_critical_by_p_found": c_oracle_p,
                "critical_ratio": c_found / c_oracle if c_oracle else float("nan"),
                "critical_ratio_vs_p_oracle": c_found / c_oracle_p if c_oracle_p else float("nan"),
                "expected_critical_recall": c_found / c_true.sum(),
            }
        by_budget[f"{k:g}"] = entry
    out["budgets"] = by_budget
    return out


def flatten_metrics(metrics: dict[str, Any], prefix: str) -> dict[str, float]:
    """Flat MLflow metric names, e.g. ``test.random_sample.auc``, ``test.b5.random_sample.precision``."""
    flat: dict[str, float] = {}
    for subset in SUBSETS:
        for key, value in metrics.get(subset, {}).items():
            flat[f"{prefix}.{subset}.{key}"] = float(value)
    for k, entry in metrics.get("budgets", {}).items():
        tag = f"b{float(k) * 100:g}"
        for part in (*SUBSETS, "truth"):
            for key, value in entry.get(part, {}).items():
                flat[f"{prefix}.{tag}.{part}.{key}"] = float(value)
    return {k: v for k, v in flat.items() if np.isfinite(v)}
