"""The statistics behind a warning: the Beta credible bound of a nonconformity rate, the
window's mix-adjusted expectation, Benjamini-Hochberg false-discovery control and the Poisson
CUSUM. Pure functions of arrays and frames; the assessment (:mod:`.assessment`) calls them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.special import betainc, betaincinv


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


def window_expectation(
    stats: pd.DataFrame,
    global_rate: float,
    cfg: dict[str, Any],
    smr_prior: tuple[float, float] | None = None,
) -> None:
    """Add ``baseline``, ``expected``, ``lower`` and ``lift`` (and the subject's baseline
    standardised ratio ``smr_base``) to per-subject window statistics.

    ``baseline`` is the subject's own baseline rate, shrunk towards what its inspections'
    strata would show when its history is thin. ``expected`` is the window's expected rate: its inspections' stratum
    rates times the subject's own standardised ratio over the baseline (observed / expected
    there, shrunk towards the kind's pooled prior ``smr_prior`` = (shape, rate) of
    :func:`gamma_prior_moments`, i.e. ``(k_base + shape) / (e_base + rate)``; without one,
    towards 1 with ``prior_strength`` pseudo-inspections at the baseline's mean expected
    rate).
    """
    m = float(cfg["likelihood"]["prior_strength"])
    e_mean = (stats["e_base"] / stats["n_base"]).where(stats["n_base"] > 0, global_rate)
    if smr_prior is None:
        stats["baseline"] = (stats["k_base"] + m * global_rate) / (stats["n_base"] + m)
        smr_base = (stats["k_base"] + m * e_mean) / (stats["e_base"] + m * e_mean)
    else:  # the kind's pooled gamma prior (gamma_prior_moments) of the ratio
        shape, rate = smr_prior
        smr_base = (stats["k_base"] + shape) / (stats["e_base"] + rate)
        # the subject's own baseline rate, shrunk the same way: its ratio at its baseline mix
        stats["baseline"] = (smr_base * e_mean).clip(1e-4, 1 - 1e-4)
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


# --------------------------------------------------------------------------------------------
# empirical Bayes (gamma-Poisson) counts


def gamma_prior_moments(
    counts: np.ndarray, exposure: np.ndarray, min_shape: float = 0.05, max_shape: float = 1e4
) -> tuple[float, float]:
    """Gamma(shape, rate) prior of per-unit-exposure rates, pooled over the subjects of a kind.

    Method of moments on the subjects' own rates ``x / T``: their spread is the spread of the
    true rates plus the Poisson noise of each count (mean rate / ``T``); what is left over is the
    between-subject variance. With no excess spread the subjects look alike and the prior is
    tight (``max_shape``). Subjects with zero exposure are ignored.

    Parameters
    ----------
    counts
        Each subject's count in its own history (reports, nonconforming results).
    exposure
        What that count was collected over, in the units the prediction uses (windows of
        ``window_days`` for reports; expected nonconforming for results).

    Returns
    -------
    (shape, rate)
        ``shape / rate`` is the pooled mean rate; ``shape`` is how many units of evidence the
        prior is worth against a subject's own history.
    """
    x = np.asarray(counts, dtype=np.float64)
    t = np.asarray(exposure, dtype=np.float64)
    ok = t > 0
    if not ok.any():
        return max_shape, max_shape
    x, t = x[ok], t[ok]
    # exposure-weighted mean rate; the variance of the raw rates less their Poisson part
    mean = float(x.sum() / t.sum())
    if mean <= 0:
        # nothing seen at all: a vague prior a tenth of an event per unit over ten units
        return 1.0, 10.0
    rates = x / t
    var_between = float(np.mean((rates - mean) ** 2) - mean * np.mean(1.0 / t))
    if var_between <= 0:
        shape = max_shape
    else:
        shape = float(np.clip(mean * mean / var_between, min_shape, max_shape))
    return shape, shape / mean


def negative_binomial_tail(
    observed: np.ndarray,
    history: np.ndarray,
    history_exposure: np.ndarray,
    exposure: np.ndarray,
    shape: float,
    rate: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Tail probability of a count under the subject's gamma-Poisson predictive.

    The subject's rate has the posterior Gamma(shape + history, rate + history_exposure); the
    count over ``exposure`` is then negative binomial with ``r = shape + history`` and success
    probability ``p = (rate + history_exposure) / (rate + history_exposure + exposure)``, and
    ``P(Y >= y) = I_{1-p}(y, r)`` (regularised incomplete beta; 1 for ``y <= 0``).

    Returns
    -------
    (p_value, expected)
        ``P(Y >= observed)`` and the predictive mean ``r (1 - p) / p`` of each subject.
    """
    y = np.asarray(observed, dtype=np.float64)
    r = shape + np.asarray(history, dtype=np.float64)
    b = rate + np.asarray(history_exposure, dtype=np.float64)
    e = np.asarray(exposure, dtype=np.float64)
    q = e / (b + e)  # 1 - p
    p_value = np.ones_like(y)
    pos = (y > 0) & (e > 0)
    p_value[pos] = betainc(y[pos], np.broadcast_to(r, y.shape)[pos], q[pos])
    expected = r * e / b
    return p_value, np.asarray(expected, dtype=np.float64)
