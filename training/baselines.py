"""Baselines scored on the same split and with the same metrics as the model.

* random selection (a seeded uniform score);
* the legacy points table (``policy.legacy.legacy_score``) on contract columns, with the credit
  rating in force at each declaration;
* logistic regression on the model's features (median imputation with missing indicators,
  standardisation), trained on the same labelled train rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from features.contract import DEFAULT_CREDIT_RATING
from policy.legacy import legacy_score


def random_scores(n: int, seed: int) -> np.ndarray:
    """Uniform random scores: inspecting the top k% is a random k% draw."""
    return np.random.default_rng(seed).random(n)


def credit_in_force(declarations: pd.DataFrame, credit_ratings: pd.DataFrame) -> pd.Series:
    """Rating in force at each declaration (latest ``effective_from <= declared_at``), aligned by
    position with ``declarations``; enterprises without a rating are ``regular``."""
    left = pd.DataFrame(
        {
            "pos": np.arange(len(declarations)),
            "enterprise_id": declarations["enterprise_id"].astype("str").to_numpy(),
            "t": pd.to_datetime(declarations["declared_at"], utc=True).to_numpy(),
        }
    )
    if credit_ratings is None or len(credit_ratings) == 0:
        return pd.Series([DEFAULT_CREDIT_RATING] * len(declarations), dtype=object)
    right = pd.DataFrame(
        {
            "enterprise_id": credit_ratings["enterprise_id"].astype("str").to_numpy(),
            "t": pd.to_datetime(credit_ratings["effective_from"], utc=True).to_numpy(),
            "rating": credit_ratings["rating"].astype(object).to_numpy(),
        }
    )
    merged = pd.merge_asof(
        left.sort_values("t"), right.sort_values("t"), on="t", by="enterprise_id"
    ).sort_values("pos")
    return pd.Series(merged["rating"].fillna(DEFAULT_CREDIT_RATING).to_numpy(), dtype=object)


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
