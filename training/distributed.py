"""LightGBM on a Dask cluster (``lightgbm.dask``): the same fit as ``training.train.fit_booster``.

``guomen train --features DIR --scheduler ADDRESS`` trains every booster of the run (capacity
grid, selection-bias candidates) on the cluster's workers: the training rows are split into one
chunk per worker, each worker builds its part of the histograms and LightGBM's data-parallel
learner merges them. ``lightgbm.dask`` has no early stopping, so the fit runs the full
``num_boost_round`` with the validation log loss recorded each round, and the booster is cut where
``lgb.early_stopping`` would have stopped (the first round after which ``early_stopping_rounds``
rounds bring no improvement; the best round before it is kept), exactly the rule of the local fit.

Same results as the local path: with one worker the model is the local model (tested tree for
tree); with several workers the bin boundaries are found per worker from its own rows, so the
trees differ slightly: the documented tolerance (``docs/scale.md``) is validation AUC within
0.01 and predictions correlated above 0.99 (tested on a ``LocalCluster``).
"""

from __future__ import annotations

from typing import Any

import lightgbm as lgb
import numpy as np


def _chunks(n: int, workers: int) -> int:
    """Rows per chunk: one chunk per worker (at least one row)."""
    return max(1, -(-n // max(1, workers)))


def early_stopping_round(losses: list[float], patience: int) -> int:
    """The 1-based round ``lgb.early_stopping`` keeps for this validation loss history."""
    best, best_i = float("inf"), 0
    for i, loss in enumerate(losses):
        if loss < best:
            best, best_i = loss, i
        elif i - best_i >= patience:
            break
    return best_i + 1


def fit_booster_dask(
    client: Any,
    X_train: np.ndarray,
    y_train: np.ndarray,
    w_train: np.ndarray | None,
    X_valid: np.ndarray,
    y_valid: np.ndarray,
    feature_names: list[str],
    params: dict[str, Any],
    num_boost_round: int,
    early_stopping_rounds: int,
    w_valid: np.ndarray | None = None,
) -> lgb.Booster:
    """``training.train.fit_booster`` on the workers of ``client`` (a ``distributed.Client``).

    Each worker runs LightGBM with as many threads as it has Dask threads (``lightgbm.dask``
    sets ``num_threads`` per worker; start workers with ``--nthreads``), so ``params``'
    ``num_threads`` is not passed on.
    """
    import dask.array as da
    from lightgbm.dask import DaskLGBMClassifier

    from training.train import categorical_names

    workers = len(client.scheduler_info()["workers"])
    rows = _chunks(len(X_train), workers)
    dX = da.from_array(np.ascontiguousarray(X_train), chunks=(rows, X_train.shape[1]))
    dy = da.from_array(np.asarray(y_train, dtype=np.float64), chunks=rows)
    dw = None if w_train is None else da.from_array(np.asarray(w_train, np.float64), chunks=rows)
    vrows = _chunks(len(X_valid), workers)
    dXv = da.from_array(np.ascontiguousarray(X_valid), chunks=(vrows, X_valid.shape[1]))
    dyv = da.from_array(np.asarray(y_valid, dtype=np.float64), chunks=vrows)
    # early stopping watches the loss that is optimised: validation rows weighted alike
    dwv = None if w_valid is None else da.from_array(np.asarray(w_valid, np.float64), chunks=vrows)
    cats = categorical_names(feature_names)
    # lightgbm.dask gives each worker as many LightGBM threads as it has Dask threads.
    skip = ("objective", "verbose", "metric", "num_threads", "n_jobs")
    kw = {k: v for k, v in params.items() if k not in skip}
    model = DaskLGBMClassifier(
        client=client,
        objective="binary",
        n_estimators=num_boost_round,
        verbose=-1,
        **kw,
    )
    model.fit(
        dX,
        dy,
        sample_weight=dw,
        eval_X=(dXv,),
        eval_y=(dyv,),
        eval_sample_weight=None if dwv is None else [dwv],
        eval_names=["validation"],
        eval_metric="binary_logloss",
        feature_name=feature_names,
        categorical_feature=[n for n in feature_names if n in cats] or "auto",
    )
    losses = list(model.evals_result_["validation"]["binary_logloss"])
    best = early_stopping_round(losses, early_stopping_rounds)
    booster = model.booster_
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))
