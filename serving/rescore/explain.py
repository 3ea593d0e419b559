"""Scoring of a feature matrix with the champion: calibrated probability, tier and exact SHAP.

The same math as the scoring API (``serving.scoring.Scorer``) on matrices: the raw margin from the
LightGBM booster, ``p = sigmoid(a * margin + b)``, and exact TreeSHAP contributions scaled by the
calibration slope ``a`` with base value ``a * expected + b``, so that for every row
``base + contributions.sum() == logit(p)``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from features.bundle import ModelBundle
from policy.tiers import SupervisionPolicy


def set_thread_limits(threads: int) -> None:
    """Cap numba's and OpenMP's pools for this process (one Dask worker = one core)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - numba is a dependency
        pass


class _Explainer:
    """Exact TreeSHAP for one booster, chosen as the API chooses it
    (``serving.scoring.make_explainer``: ``serving.treeshap`` when present, else LightGBM's own
    ``pred_contrib``), so batch and API explanations come from the same code."""

    def __init__(self, bundle: ModelBundle, threads: int) -> None:
        from serving.scoring import make_explainer

        self.threads = threads
        self._impl, self.method = make_explainer(bundle.booster)

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Raw contributions in LightGBM's layout: one column per feature, last = expected."""
        return np.asarray(self._impl.contributions(X), dtype=np.float64)


@dataclass
class ScoredMatrix:
    """Scores of the rows of one feature matrix."""

    probability: np.ndarray
    logit: np.ndarray
    tier: np.ndarray
    contributions: np.ndarray  # calibrated, shape (rows, features)
    base: float  # calibrated expected value, a * expected + b


class MatrixScorer:
    """A loaded bundle ready to score matrices; build one per process and reuse it.

    Parameters
    ----------
    bundle
        The verified, loaded model bundle.
    threads
        Threads for LightGBM (and numba): set explicitly, 1 per Dask worker.
    """

    def __init__(self, bundle: ModelBundle, threads: int = 1) -> None:
        if not bundle.policy:
            raise ValueError("the bundle carries no supervision policy (tier thresholds)")
        self.bundle = bundle
        self.threads = int(threads)
        self.policy = SupervisionPolicy.from_dict(bundle.policy)
        self.explainer = _Explainer(bundle, self.threads)

    @property
    def feature_names(self) -> list[str]:
        return list(self.bundle.feature_names)

    def score(self, X: np.ndarray, explain: bool = True) -> ScoredMatrix:
        """Score a float64 matrix whose columns follow ``bundle.feature_names``."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.bundle.feature_names):
            raise ValueError(
                f"expected a (rows, {len(self.bundle.feature_names)}) matrix, got {X.shape}"
            )
        cal = self.bundle.calibration
        n_features = X.shape[1]
        if explain:
            # The API's math (serving.scoring.Scorer): the logit is the base plus the calibrated
            # contributions, so the score and its explanation can never disagree.
            raw = self.explainer.raw(X) if len(X) else np.zeros((0, n_features + 1))
            contributions = raw[:, :n_features] * cal.a
            base = float(cal.a * raw[0, n_features] + cal.b) if len(X) else self._base()
            logit = base + _row_sums(contributions)
        else:
            margin = np.asarray(
                self.bundle.booster.predict(X, raw_score=True, num_threads=self.threads),
                dtype=np.float64,
            )
            contributions = np.empty((len(X), 0), dtype=np.float64)
            base = self._base()
            logit = cal.logit(margin)
        probability = _sigmoid(logit)
        tier = self.policy.tiers(probability)
        return ScoredMatrix(probability, logit, tier, contributions, base)

    def _base(self) -> float:
        """Calibrated SHAP base value, from one explained dummy row (the base is the same for
        every row)."""
        row = np.full((1, len(self.bundle.feature_names)), np.nan)
        cal = self.bundle.calibration
        return float(cal.a * self.explainer.raw(row)[0, -1] + cal.b)


def _row_sums(matrix: np.ndarray) -> np.ndarray:
    """Row sums added column by column, in a fixed order. ``ndarray.sum`` may take another
    SIMD path depending on memory alignment, which changes the last bit between processes and
    would break byte-identical reruns."""
    out = np.zeros(matrix.shape[0], dtype=np.float64)
    for j in range(matrix.shape[1]):
        out += matrix[:, j]
    return out


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function without overflow, the same branches as the API's scalar version."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out
