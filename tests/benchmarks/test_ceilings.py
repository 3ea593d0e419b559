"""The Bayes ceiling of benchmarks/ceilings.py learns a latent keyed effect from earlier results."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
from ceilings import GRID, CeilingInputs, posterior_weights, world_ceilings  # noqa: E402

DAY = 86_400 * 10**9


def _world(seed=0, n_keys=150, per_key=200):
    rng = np.random.default_rng(seed)
    effect = rng.normal(0.0, 1.0, n_keys)
    key = np.repeat(np.arange(n_keys), per_key)
    t = rng.integers(0, 700, len(key)) * DAY + rng.integers(0, DAY, len(key))
    offset = rng.normal(-2.5, 0.3, len(key))
    p = 1 / (1 + np.exp(-(offset + effect[key])))
    inspected = rng.random(len(key)) < 0.5
    nc = (rng.random(len(key)) < p) & inspected
    return effect, key, t, offset, p, inspected, nc.astype(float)


def test_posterior_is_the_prior_without_results_and_learns_with_them():
    effect, key, t, offset, _, inspected, nc = _world()
    rows = np.arange(len(key))
    w = posterior_weights(offset, key, t, inspected, nc, t + DAY // 2, 0.0, 1.0, 0.0, rows)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    mean = w @ GRID
    first = t == pd.Series(t).groupby(key).transform("min").to_numpy()
    # no earlier result: the prior mean; many earlier results: close to the truth
    assert np.abs(mean[first]).max() < 0.01  # the grid truncates the prior at -3
    last = t == pd.Series(t).groupby(key).transform("max").to_numpy()
    assert np.corrcoef(mean[last], effect[key[last]])[0, 1] > 0.85
    # no key: the effect is known to be 0
    key2 = key.copy()
    key2[:10] = -1
    w2 = posterior_weights(offset, key2, t, inspected, nc, t + DAY // 2, 0.0, 1.0, 0.0, rows[:10])
    assert np.allclose(w2 @ GRID, 0.0)


def test_world_ceiling_lies_between_no_information_and_the_oracle():
    effect, key, t, offset, p, inspected, nc = _world(seed=1)
    rng = np.random.default_rng(5)
    g_key = rng.integers(0, 40, len(key))
    g_eff = rng.normal(0.0, 0.8, 40)
    logit = offset + effect[key] + g_eff[g_key]
    p = 1 / (1 + np.exp(-logit))
    nc = ((rng.random(len(key)) < p) & inspected).astype(float)
    decl = pd.DataFrame(
        {
            "enterprise_id": key.astype(str),
            "declarant_id": g_key.astype(str),
            "declared_at": pd.to_datetime(t, utc=True),
        }
    )
    truth = pd.DataFrame(
        {
            "p_true": p,
            "critical_p_true": 0.1 * p,
            "logit": logit,
            "logit_base": offset,
            "logit_enterprise": effect[key],
            "logit_declarant": g_eff[g_key],
        }
    )
    inp = CeilingInputs(decl, inspected, nc, t + DAY // 2, truth, noise_sd=0.0)
    test = np.flatnonzero(t >= 600 * DAY)
    out = world_ceilings(inp, test)
    r = {k: v["0.05"]["ratio"] for k, v in out.items()}
    assert r["oracle_p"] == 1.0 and r["all_but_noise"] == 1.0  # no noise in this world
    assert r["no_latent_information"] < r["ceiling"] < 1.0
    assert r["ceiling"] > 0.8


def test_monte_carlo_integration_matches_the_exact_double_sum():
    """``integrate_posteriors`` (used for three or more latent effects) agrees with the exact
    grid sum over two posteriors, and with one posterior's exact expectation."""
    from ceilings import _sigmoid, integrate_posteriors

    rng = np.random.default_rng(2)
    n = 300
    base = rng.normal(-3.0, 0.5, n)
    w1 = rng.dirichlet(np.full(len(GRID), 0.3), n)
    w2 = rng.dirichlet(np.full(len(GRID), 0.3), n)
    pair = GRID[:, None] + GRID[None, :]
    exact = np.einsum("ri,rj,rij->r", w1, w2, _sigmoid(base[:, None, None] + pair[None]))
    mc = integrate_posteriors(base, [w1, w2], 1.0)
    assert np.abs(mc - exact).max() < 0.05 * exact.max()
    assert abs(mc.mean() - exact.mean()) < 0.01 * exact.mean()
    one = (w1 * _sigmoid(base[:, None] + GRID[None, :])).sum(axis=1)
    np.testing.assert_allclose(integrate_posteriors(base, [w1], 1.0), one, rtol=0.05)
