"""Baselines scored on the same split and with the same metrics as the model.

* random selection (a seeded uniform score);
* the legacy points table (``policy.legacy.legacy_score``) on contract columns, with the credit
  rating in force at each declaration;
* logistic regression on the model's features (median imputation with missing indicators,
  standardisation), trained on the same labelled train rows;
* the plain LightGBM: the raw declaration columns only (native categoricals, no history), trained
  like the model (``training.train.fit_booster``, early stopping on validation), unweighted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from features.credit import rating_in_force
from policy.legacy import legacy_score


def random_scores(n: int, seed: int) -> np.ndarray:
    """Uniform random scores: inspecting the top k% is a random k% draw."""
    return np.random.default_rng(seed).random(n)


def credit_in_force(declarations: pd.DataFrame, credit_ratings: pd.DataFrame) -> pd.Series:
    """Rating in force at each declaration, aligned by position with ``declarations``."""
    ratings = rating_in_force(
        declarations["enterprise_id"], declarations["declared_at"], credit_ratings
    )
    return pd.Series(ratings, dtype=object)


def legacy_scores(
    declarations: pd.DataFrame, credit_ratings: pd.DataFrame | None, declaration_ids: pd.Series
) -> np.ndarray:
    """Legacy points for ``declaration_ids``, computed over the whole declarations table (the
    rule's "new enterprise" needs each enterprise's history)."""
    credit = credit_in_force(declarations, credit_ratings) if credit_ratings is not None else None
    points = pd.Series(
        legacy_score(declarations, credit),
        index=declarations["declaration_id"].astype("str").to_numpy(),
    )
    out = points.reindex(declaration_ids.astype("str").to_numpy()).to_numpy(dtype=np.float64)
    if np.isnan(out).any():
        raise ValueError("some declarations have no legacy score")
    return out


def fit_logistic(X: np.ndarray, y: np.ndarray, seed: int) -> Pipeline:
    """Logistic regression with median imputation (plus missing indicators) and scaling."""
    model = make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=1.0, max_iter=2000, random_state=seed),
    )
    model.fit(X, y)
    return model


def logistic_scores(model: Pipeline, X: np.ndarray) -> np.ndarray:
    """Probability of a nonconformity from the fitted logistic pipeline."""
    return np.asarray(model.predict_proba(X)[:, 1], dtype=np.float64)


# --- the baseline a data scientist tries first: LightGBM on the raw declaration columns -------

#: Budgets at which the model must beat the plain baseline (issue 12).
PLAIN_BUDGETS = (0.05, 0.10)


def plain_feature_names(feature_names: list[str]) -> list[str]:
    """The model's columns that are the declaration's own raw values, with no history: codes,
    flags, calendar, value and weight, native categoricals and extra attributes (``decl_*`` and
    ``attr_*_value_now`` / ``attr_*_cat_now``); nothing counted over earlier events."""
    return [
        n
        for n in feature_names
        if n.startswith("decl_")
        or (n.startswith("attr_") and n.endswith(("_value_now", "_cat_now")))
    ]


def compare_to_plain(
    model: dict[str, Any], plain: dict[str, Any], budgets: tuple[float, ...] = PLAIN_BUDGETS
) -> dict[str, Any]:
    """Does the model beat the plain baseline at each budget? Judged on expected precision
    against the oracle when ground truth is known (demo), else on all-inspected precision.

    Returns
    -------
    dict
        ``basis``, per budget ``{model, plain, beats, relative}`` and a plain-words ``statement``.
    """
    out: dict[str, Any] = {"budgets": {}}
    missed = []
    for b in budgets:
        key = f"{b:g}"
        m_entry, p_entry = model["budgets"][key], plain["budgets"][key]
        if "truth" in m_entry:
            basis, mv, pv = (
                "expected precision / oracle",
                m_entry["truth"]["ratio"],
                p_entry["truth"]["ratio"],
            )
        else:
            basis = "precision (all inspected)"
            mv = m_entry["all_inspected"]["precision"]
            pv = p_entry["all_inspected"]["precision"]
        beats = bool(np.isfinite(mv) and np.isfinite(pv) and mv > pv)
        rel = float(mv / pv - 1.0) if np.isfinite(pv) and pv > 0 else float("nan")
        out["budgets"][key] = {"model": mv, "plain": pv, "beats": beats, "relative": rel}
        out["basis"] = basis
        if not beats:
            missed.append(f"{b * 100:g} % ({mv:.3f} vs {pv:.3f})")
    if missed:
        out["statement"] = (
            "The model does NOT beat the plain LightGBM baseline (raw declaration columns, no "
            f"history) at {', '.join(missed)} on {out['basis']}."
        )
    else:
        parts = ", ".join(
            f"{float(k) * 100:g} % ({v['model']:.3f} vs {v['plain']:.3f}, {v['relative']:+.1%})"
            for k, v in out["budgets"].items()
        )
        out["statement"] = f"The model beats the plain LightGBM baseline at {parts}."
    out["beats_all"] = not missed
    return out
