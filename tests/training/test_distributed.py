"""Boosters fitted with ``lightgbm.dask`` on a real ``LocalCluster`` against the local fit."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from training.distributed import early_stopping_round, fit_booster_dask
from training.train import fit_booster

PARAMS = {"objective": "binary", "verbose": -1, "num_leaves": 7, "min_data_in_leaf": 20,
          "learning_rate": 0.1, "num_threads": 1, "seed": 3, "metric": "binary_logloss"}  # fmt: skip
NAMES = [f"f{i}" for i in range(8)]


def world(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(NAMES)))
    X[rng.random(X.shape) < 0.05] = np.nan
    logit = 1.2 * np.nan_to_num(X[:, 0]) - 0.8 * np.nan_to_num(X[:, 1]) ** 2 + 0.5
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    return X, y


@pytest.fixture(scope="module")
def data():
    X, y = world(6000, 1)
    Xv, yv = world(3000, 2)
    return X, y, Xv, yv


@pytest.fixture(scope="module")
def clusters():
    from distributed import Client, LocalCluster

    made = {}
    for workers in (1, 2):
        # a free loopback port for the scheduler's HTTP server (None would still take 8787)
        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address="127.0.0.1:0"
        )
        made[workers] = (cluster, Client(cluster))
    yield {k: c for k, (_, c) in made.items()}
    for cluster, client in made.values():
        client.close()
        cluster.close()


def test_early_stopping_round_is_lightgbms(data) -> None:
    X, y, Xv, yv = data
    history: dict = {}
    dtrain = lgb.Dataset(X, y)
    lgb.train(PARAMS, dtrain, num_boost_round=200, valid_sets=[lgb.Dataset(Xv, yv, reference=dtrain)],
              callbacks=[lgb.record_evaluation(history)])  # fmt: skip
    losses = history["valid_0"]["binary_logloss"]
    stopped = lgb.train(
        PARAMS, lgb.Dataset(X, y), num_boost_round=200,
        valid_sets=[lgb.Dataset(Xv, yv)], callbacks=[lgb.early_stopping(5, verbose=False)],
    )  # fmt: skip
    assert early_stopping_round(losses, 5) == stopped.best_iteration


def test_one_worker_gives_the_local_model(data, clusters) -> None:
    X, y, Xv, yv = data
    local = fit_booster(X, y, None, Xv, yv, NAMES, PARAMS, 200, 10)
    remote = fit_booster_dask(clusters[1], X, y, None, Xv, yv, NAMES, PARAMS, 200, 10)
    assert remote.num_trees() == local.num_trees()
    np.testing.assert_allclose(remote.predict(Xv), local.predict(Xv), rtol=0, atol=1e-12)


def test_two_workers_within_the_documented_tolerance(data, clusters) -> None:
    X, y, Xv, yv = data
    w = np.where(y > 0, 2.0, 1.0)
    local = fit_booster(X, y, w, Xv, yv, NAMES, PARAMS, 200, 10)
    remote = fit_booster_dask(clusters[2], X, y, w, Xv, yv, NAMES, PARAMS, 200, 10)
    p_local, p_remote = local.predict(Xv), remote.predict(Xv)
    assert abs(roc_auc_score(yv, p_local) - roc_auc_score(yv, p_remote)) < 0.01
    assert np.corrcoef(p_local, p_remote)[0, 1] > 0.99
