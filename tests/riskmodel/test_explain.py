"""The calibrated SHAP arithmetic: one row and a batch agree bit for bit, and add up exactly."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from features.bundle import Calibration
from riskmodel.explain import LightGBMContributions, calibrate, make_explainer, row_sums


def _booster(seed: int = 3) -> tuple[lgb.Booster, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3000, 12))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 3]) + rng.normal(size=3000)) > 1
    params = {"objective": "binary", "num_leaves": 15, "verbose": -1, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(X, y.astype(float)), num_boost_round=40), X


def test_row_sums_are_sequential_left_to_right():
    m = np.random.default_rng(0).normal(size=(50, 201)) * 1e3
    expected = np.zeros(50)
    for j in range(m.shape[1]):
        expected += m[:, j]
    np.testing.assert_array_equal(row_sums(m), expected)
    # one row alone gives the same bits as inside the batch
    np.testing.assert_array_equal(row_sums(m[7:8]), expected[7:8])


def test_one_row_equals_batch_and_matches_lightgbm():
    booster, X = _booster()
    cal = Calibration(a=0.83, b=-0.41)
    explainer, name = make_explainer(booster)
    assert name == "riskmodel.treeshap"
    batch = calibrate(explainer.contributions(X[:200]), cal)
    for i in (0, 17, 199):
        one = calibrate(explainer.contributions_row(X[i])[None, :], cal)
        np.testing.assert_array_equal(one.contributions[0], batch.contributions[i])
        assert one.logit[0] == batch.logit[i]
        assert one.probability[0] == batch.probability[i]
    # base + contributions == logit(p), and p is LightGBM's margin through the Platt map
    np.testing.assert_allclose(
        batch.base + batch.contributions.sum(axis=1), batch.logit, atol=1e-12
    )
    margin = booster.predict(X[:200], raw_score=True)
    np.testing.assert_allclose(batch.probability, cal.probability(margin), atol=1e-12, rtol=0)
    lgbm = calibrate(LightGBMContributions(booster).contributions(X[:200]), cal)
    np.testing.assert_allclose(lgbm.contributions, batch.contributions, atol=1e-10, rtol=0)
