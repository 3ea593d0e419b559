"""Platt calibration on the booster's raw margin.

``p = sigmoid(a * margin + b)``. Because the map is affine in log-odds, the booster's exact
SHAP contributions scaled by ``a`` (base value ``a * base + b``) add up to ``logit(p)``
exactly; isotonic regression would break that identity.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from features.bundle import Calibration


def fit_platt(
    margin: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
) -> Calibration:
    """Fit ``a`` and ``b`` by an unpenalised 1-D logistic regression on held-out rows.

    Parameters
    ----------
    margin
        Raw booster margins (``predict(raw_score=True)``) of held-out labelled rows.
    y
        0/1 outcomes of the same rows.
    sample_weight
        Optional row weights.

    Returns
    -------
    features.bundle.Calibration
    """
    m = np.asarray(margin, dtype=np.float64).reshape(-1, 1)
    target = np.asarray(y, dtype=np.float64)
    if m.shape[0] != target.shape[0]:
        raise ValueError("margin and y differ in length")
    if len(np.unique(target)) < 2:
        raise ValueError("calibration needs both outcomes in the held-out rows")
    lr = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=1000, tol=1e-10)
    lr.fit(m, target, sample_weight=sample_weight)
    return Calibration(a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
