"""Calibrated probability and exact SHAP explanation: the one piece of arithmetic every path uses.

The exact SHAP values of the raw margin (``phi``, LightGBM's ``pred_contrib`` layout: one column
per feature, the last one the expected margin) sum to the margin (TreeSHAP's local accuracy).
With the bundle's Platt map ``logit(p) = a * margin + b``, the calibrated contributions are
``a * phi[:, :-1]``, the base value is ``a * phi[:, -1] + b`` and

    logit = base + contributions summed left to right in model column order

so a probability and its explanation can never disagree, and the API (one row), batch
rescoring (a matrix) and the committee pages give bit-identical numbers for the same features.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Protocol

import lightgbm as lgb
import numpy as np

from features.bundle import Calibration


class Explainer(Protocol):
    """Exact TreeSHAP in LightGBM's ``pred_contrib`` layout (last column: expected margin)."""

    def contributions(self, X: np.ndarray) -> np.ndarray: ...

    def contributions_row(self, x: np.ndarray) -> np.ndarray: ...


class LightGBMContributions:
    """LightGBM's own ``pred_contrib`` (exact, slow); used when ``riskmodel.treeshap`` is absent."""

    name = "lightgbm.pred_contrib"

    def __init__(self, booster: lgb.Booster) -> None:
        self.booster = booster

    def contributions(self, X: np.ndarray) -> np.ndarray:
        out = self.booster.predict(
            np.ascontiguousarray(X, dtype=np.float64), pred_contrib=True, num_threads=1
        )
        return np.asarray(out, dtype=np.float64)

    def contributions_row(self, x: np.ndarray) -> np.ndarray:
        return self.contributions(x[None, :])[0]


def make_explainer(booster: lgb.Booster) -> tuple[Explainer, str]:
    """The fastest exact explainer available, and its name.

    ``riskmodel.treeshap`` (numba) is used when importable; its import errors are not hidden.
    """
    if importlib.util.find_spec("numba") is not None:
        from riskmodel.treeshap import TreeShap

        explainer = TreeShap.from_booster(booster)
        explainer.warm_up()
        return explainer, "riskmodel.treeshap"
    return LightGBMContributions(booster), LightGBMContributions.name


@dataclass(frozen=True)
class Calibrated:
    """Calibrated scores and explanations of the rows of one matrix."""

    probability: np.ndarray  # (rows,)
    logit: np.ndarray  # (rows,) == base + contributions summed left to right
    base: np.ndarray  # (rows,) calibrated expected value, a * expected + b
    contributions: np.ndarray  # (rows, features) calibrated log-odds, model column order


def calibrate(phi: np.ndarray, calibration: Calibration) -> Calibrated:
    """Calibrated contributions, base values, logits and probabilities from raw SHAP values.

    Parameters
    ----------
    phi
        Raw exact SHAP values, shape ``(rows, features + 1)`` (last column: expected margin).
    calibration
        The bundle's Platt map.
    """
    phi = np.asarray(phi, dtype=np.float64)
    if phi.ndim != 2 or phi.shape[1] < 1:
        raise ValueError(f"expected a (rows, features + 1) matrix of SHAP values, got {phi.shape}")
    a, b = float(calibration.a), float(calibration.b)
    contributions = phi[:, :-1] * a
    base = phi[:, -1] * a + b
    logit = base + row_sums(contributions)
    return Calibrated(sigmoid(logit), logit, base, contributions)


def row_sums(matrix: np.ndarray) -> np.ndarray:
    """Row sums added strictly left to right (``np.cumsum`` is sequential).

    ``ndarray.sum`` sums pairwise and may take another SIMD path depending on memory alignment,
    which changes the last bit between a one-row call and a batch, or between processes.
    """
    if matrix.shape[1] == 0:
        return np.zeros(matrix.shape[0], dtype=np.float64)
    return np.cumsum(matrix, axis=1)[:, -1]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic function without overflow."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def calibrated_base(explainer: Explainer, n_features: int, calibration: Calibration) -> float:
    """The calibrated SHAP base value (the same for every row), from one explained dummy row."""
    phi = explainer.contributions(np.full((1, n_features), np.nan))
    return float(calibrate(phi, calibration).base[0])
