"""The statistics behind a warning: the Beta credible bound of a nonconformity rate, the
window's mix-adjusted expectation, Benjamini-Hochberg false-discovery control and the Poisson
CUSUM. Pure functions of arrays and frames; the assessment (:mod:`.assessment`) calls them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import betaincinv


def beta_lower_bound(k: np.ndarray, n: np.ndarray, baseline: np.ndarray, cfg: dict) -> np.ndarray:
    """Lower credible bound of the nonconformity rate: Beta(m*b + k, m*(1-b) + n - k) quantile.

    The prior is centred on the baseline ``b`` with strength ``m`` pseudo-inspections, so a few
    results move the bound little and many move it a lot.
    """
    m = float(cfg["likelihood"]["prior_strength"])
    q = 1.0 - float(cfg["likelihood"]["credible"])
    b = np.clip(np.asarray(baseline, dtype=np.float64), 1e-4, 1 - 1e-4)
    a_post = m * b + np.asarray(k, dtype=np.float64)
    b_post = m * (1 - b) + np.asarray(n, dtype=np.float64) - np.asarray(k, dtype=np.float64)
    return np.asarray(betaincinv(a_post, b_post, q), dtype=np.float64)


# The columns window_expectation adds.
WINDOW_EXPECTATION = ("baseline", "smr_base", "expected", "lower", "lift")


def window_expectation(stats: pd.DataFrame, global_rate: float, cfg: dict[str, Any]) -> None:
    """Add ``baseline``, ``expected``, ``lower`` and ``lift`` (and the subject's baseline
    standardised ratio ``smr_base``) to per-subject window statistics.

    ``baseline`` is the subject's own baseline rate, shrunk to the all-subject rate when its
    history is thin. ``expected`` is the window's expected rate: its inspections' stratum
    rates times the subject's own standardised ratio over the baseline (observed / expected
    there, shrunk to 1 with ``prior_strength`` pseudo-inspections at the baseline's mean
    expected rate); with a single stratum at the global rate it is exactly ``baseline``.
    """
    m = float(cfg["likelihood"]["prior_strength"])
    stats["baseline"] = (stats["k_base"] + m * global_rate) / (stats["n_base"] + m)
    e_mean = (stats["e_base"] / stats["n_base"]).where(stats["n_base"] > 0, global_rate)
    smr_base = (stats["k_base"] + m * e_mean) / (stats["e_base"] + m * e_mean)
    mix = (stats["e"] / stats["n"]).where(stats["n"] > 0, global_rate)
    stats["smr_base"] = smr_base
    stats["expected"] = (smr_base * mix).clip(1e-4, 1 - 1e-4)
    stats["lower"] = beta_lower_bound(
        stats["k"].to_numpy(), stats["n"].to_numpy(), stats["expected"].to_numpy(), cfg
    )
    stats["lift"] = stats["lower"] / stats["expected"]


def benjamini_hochberg(p_values: np.ndarray, q: float) -> np.ndarray:
    """Which hypotheses the Benjamini-Hochberg step-up procedure rejects at FDR ``q``."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    if m == 0 or q <= 0:
        return np.zeros(m, dtype=bool)
    order = np.argsort(p, kind="stable")
    passed = p[order] <= q * np.arange(1, m + 1) / m
    keep = np.zeros(m, dtype=bool)
    if passed.any():
        keep[order[: int(np.flatnonzero(passed).max()) + 1]] = True
    return keep


def poisson_cusum(
    observed: np.ndarray, expected: np.ndarray, rho: float
) -> tuple[np.ndarray, np.ndarray]:
    """One-sided Poisson CUSUM over periods (columns, oldest first), one row per subject.

    ``S_t = max(0, S_{t-1} + x_t ln(rho) - (rho - 1) e_t)``: the log-likelihood ratio of a lift
    ``rho`` against no change, restarted at zero whenever the evidence runs out (Lucas 1985).

    Returns
    -------
    (cusum, lift)
        The statistic after the last period and the estimated lift: observed / expected over
        the periods since the statistic last was zero (the change-point estimate); 0 if none.
    """
    rows = observed.shape[0]
    s = np.zeros(rows)
    ck = np.zeros(rows)
    ce = np.zeros(rows)
    lr, drift = float(np.log(rho)), float(rho - 1.0)
    for j in range(observed.shape[1]):
        s = s + observed[:, j] * lr - drift * expected[:, j]
        ck = ck + observed[:, j]
        ce = ce + expected[:, j]
        reset = s <= 0
        s[reset] = 0.0
        ck[reset] = 0.0
        ce[reset] = 0.0
    lift = np.divide(ck, ce, out=np.zeros(rows), where=ce > 0)
    return s, lift
