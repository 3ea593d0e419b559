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
