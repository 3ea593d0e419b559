"""Baselines scored on the same split and with the same metrics as the model.

* random selection (a seeded uniform score);
* the legacy points table (``policy.legacy.legacy_score``) on contract columns, with the credit
  rating in force at each declaration;
* logistic regression on the model's features (median imputation with missing indicators,
  standardisation), trained on the same labelled train rows;
* the plain LightGBM (:func:`plain_lightgbm_scores`): every raw column of the declarations
  table as it is (native categoricals, no history), early-stopped on validation, unweighted. The
  training report and ``benchmarks/bench_worlds.py`` both use this one function.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from features.categorical import MIN_COUNT
from features.credit import rating_in_force
from features.registry import CALENDAR_TZ
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


#: String columns with more distinct values than this among the training rows (enterprise and
#: party IDs, the full 8-10 digit code) are left out of the plain baseline: on the hs6_origin
#: tuning world (200k, 2026-12-01) 1,000 let the full code in and the baseline fell from 0.481
#: to 0.454 x the oracle at 5 % (LightGBM overfits a categorical of ~900 levels).
PLAIN_MAX_CATEGORIES = 300
#: Columns of the declarations table that are not raw attributes of the goods or the declaration.
PLAIN_EXCLUDED = ("declaration_id", "declared_at", "goods_description", "dq_issue_count")
#: The plain baseline's own LightGBM settings (what a data scientist tries first; fixed so the
#: baseline does not move with the model's configuration or capacity grid).
PLAIN_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "verbose": -1,
}
PLAIN_ROUNDS = 1000
PLAIN_EARLY_STOPPING = 50


def plain_columns(
    declarations: pd.DataFrame, attributes: dict[str, str] | None, train: np.ndarray
) -> pd.DataFrame:
    """The plain baseline's input: the declarations table's raw columns, nothing else.

    Numbers (and the mapped numeric attributes) as floats; strings as pandas categoricals whose
    levels are the values with at least ``features.categorical.MIN_COUNT`` of the ``train`` rows (as
    the model's code maps; an unseen or rarer value is missing), the HS code
    also as its 2-, 4- and 6-digit prefixes; the declaration time as its local month, weekday and
    hour; the declared USD value per kilogram. String columns with more than
    ``PLAIN_MAX_CATEGORIES`` training values, or fewer than two, are left out; so are
    ``PLAIN_EXCLUDED`` and columns that are empty everywhere. Nothing is computed from other
    declarations.

    Parameters
    ----------
    declarations
        The store's declarations, rows aligned with ``train``.
    attributes
        The store's model attributes (name -> ``categorical`` | ``numeric``).
    train
        Boolean mask of the rows the baseline is fitted on (category levels come from them).
    """
    attributes = attributes or {}
    d = declarations.reset_index(drop=True)
    X = pd.DataFrame(index=d.index)
    if "hs_code" in d.columns:
        hs = d["hs_code"].astype("str").where(d["hs_code"].notna())
        for k in (2, 4, 6):
            X[f"hs{k}"] = hs.str[:k]
    for col in d.columns:
        if col in PLAIN_EXCLUDED:
            continue
        s = d[col]
        if attributes.get(col) == "numeric" or pd.api.types.is_numeric_dtype(s):
            X[col] = pd.to_numeric(s, errors="coerce").astype("float64")
        elif pd.api.types.is_datetime64_any_dtype(s):
            continue  # a timestamp as such does not extrapolate; its calendar parts are below
        else:
            X[col] = s.astype("str").where(s.notna())
    if "declared_at" in d.columns:
        # what anyone does with a timestamp: its calendar parts (local time, as the features)
        local = pd.to_datetime(d["declared_at"], utc=True).dt.tz_convert(CALENDAR_TZ)
        X["month"], X["weekday"], X["hour"] = (
            local.dt.month.astype("float64"),
            local.dt.day_of_week.astype("float64"),
            local.dt.hour.astype("float64"),
        )
    if {"declared_value_usd", "net_weight_kg"} <= set(d.columns):
        # and the price per kilogram, the first ratio a customs analyst computes
        value = pd.to_numeric(d["declared_value_usd"], errors="coerce")
        weight = pd.to_numeric(d["net_weight_kg"], errors="coerce")
        X["usd_per_kg"] = (value / weight.where(weight > 0)).astype("float64")
    for c in [c for c in X.columns if X[c].dtype == object or pd.api.types.is_string_dtype(X[c])]:
        counts = X.loc[train, c].value_counts(dropna=True)
        # as the model's code maps: a value needs MIN_COUNT rows to get its own level
        levels = sorted(str(v) for v in counts.index[counts >= MIN_COUNT])
        if len(counts) > PLAIN_MAX_CATEGORIES or len(levels) < 2:
            X = X.drop(columns=c)
            continue
        X[c] = pd.Categorical(X[c].where(X[c].isin(levels)), categories=levels)
    return X.loc[:, X.notna().any()]


def plain_lightgbm_scores(
    declarations: pd.DataFrame,
    attributes: dict[str, str] | None,
    y: np.ndarray,
    train: np.ndarray,
    valid: np.ndarray,
    score_rows: np.ndarray,
    seed: int,
    num_threads: int = 1,
) -> tuple[np.ndarray, list[str]]:
    """The baseline a data scientist tries first: LightGBM on the raw declaration columns
    (:func:`plain_columns`), native categoricals, no history, no weights; fitted on the
    ``train`` rows and early-stopped on the ``valid`` rows (both labelled).

    Parameters
    ----------
    declarations
        The store's declarations, rows aligned with the masks and ``y``.
    attributes
        The store's model attributes.
    y
        1.0 nonconforming, 0.0 conforming (anything where not labelled).
    train, valid, score_rows
        Boolean masks: rows to fit on, to early-stop on, and to score.
    seed, num_threads
        LightGBM seed and threads.

    Returns
    -------
    (probabilities of the ``score_rows``, the columns used)
    """
    import lightgbm as lgb

    X = plain_columns(declarations, attributes, train)
    cats = [c for c in X.columns if isinstance(X[c].dtype, pd.CategoricalDtype)]
    params = {**PLAIN_PARAMS, "seed": seed, "num_threads": num_threads}
    dtrain = lgb.Dataset(X[train], y[train], categorical_feature=cats or "auto")
    dvalid = lgb.Dataset(X[valid], y[valid], categorical_feature=cats or "auto", reference=dtrain)
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=PLAIN_ROUNDS,
        valid_sets=[dvalid],
        callbacks=[lgb.early_stopping(PLAIN_EARLY_STOPPING, verbose=False)],
    )
    scores = booster.predict(X[score_rows], num_iteration=booster.best_iteration or None)
    return np.asarray(scores, dtype=np.float64), list(X.columns)


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
