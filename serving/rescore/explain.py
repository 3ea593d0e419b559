"""Scoring of a feature matrix with the champion: calibrated probability, tier and exact SHAP.

The same arithmetic as the scoring API and the committee pages (``riskmodel.explain.calibrate``):
exact TreeSHAP contributions scaled by the calibration slope ``a``, base value
``a * expected + b``, and for every row ``logit(p) = base + contributions`` summed left to right.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from policy.tiers import SupervisionPolicy
from riskmodel import ModelBundle
from riskmodel.explain import calibrate, calibrated_base, make_explainer, sigmoid


def set_thread_limits(threads: int) -> None:
    """Cap numba's and OpenMP's pools for this process (one Dask worker = one core)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - numba is a dependency
        pass


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
        self.explainer, self.explainer_method = make_explainer(bundle.booster)

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
        if explain and len(X):
            scores = calibrate(self.explainer.contributions(X), cal)
            probability, logit = scores.probability, scores.logit
            contributions, base = scores.contributions, float(scores.base[0])
        else:
            n = X.shape[1] if explain else 0
            margin = (
                np.zeros(0)
                if not len(X)
                else np.asarray(
                    self.bundle.booster.predict(X, raw_score=True, num_threads=self.threads),
                    dtype=np.float64,
                )
            )
            logit = cal.logit(margin)
            probability = sigmoid(logit)
            contributions = np.empty((len(X), n), dtype=np.float64)
            base = calibrated_base(self.explainer, X.shape[1], cal)
        tier = self.policy.tiers(probability)
        return ScoredMatrix(probability, logit, tier, contributions, base)
