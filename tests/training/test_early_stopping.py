"""Early stopping watches the validation log loss only (not the AUC reported beside it)."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np

from training.config import load_config
from training.distributed import early_stopping_round
from training.train import fit_booster


def _noisy(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    logit = -3.0 + 0.6 * X[:, 0] + 0.3 * X[:, 1] * X[:, 2]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    return X, y


def test_best_round_is_the_validation_logloss_minimum() -> None:
    """The model is cut where the validation log loss stops improving, the round the Dask
    path (``early_stopping_round`` on the log loss) keeps too: the config's metrics are log loss
    and AUC, and a callback left to watch both stopped at the AUC's best round."""
    cfg = load_config()
    params = cfg.lightgbm.params(cfg.seed) | {"min_data_in_leaf": 5, "learning_rate": 0.1}
    names = [f"x{i}" for i in range(6)]
    disagreements = 0
    for seed in range(6):
        X_tr, y_tr = _noisy(seed, 3000)
        X_va, y_va = _noisy(seed + 100, 400)  # few positives: a noisy AUC
        booster = fit_booster(X_tr, y_tr, None, X_va, y_va, names, params, 200, 10)
        history: dict[str, dict[str, list[float]]] = {}
        full = lgb.train(
            params,
            lgb.Dataset(X_tr, label=y_tr, feature_name=names),
            num_boost_round=200,
            valid_sets=[lgb.Dataset(X_va, label=y_va)],
            valid_names=["v"],
            callbacks=[lgb.record_evaluation(history)],
        )
        assert full.num_trees() == 200
        losses = history["v"]["binary_logloss"]
        aucs = history["v"]["auc"]
        expected = early_stopping_round(losses, 10)
        assert booster.num_trees() == expected
        disagreements += int(early_stopping_round([-a for a in aucs], 10) != expected)
    # the data are noisy enough that the AUC alone would stop elsewhere at least once
    assert disagreements > 0
