"""TreeShap equals LightGBM's own pred_contrib / raw_score on small but varied models."""

from __future__ import annotations

import concurrent.futures

import lightgbm as lgb
import numpy as np
import pytest

from riskmodel.treeshap import TreeShap

TOL = 1e-9
N_FEATURES = 10
CAT = 4  # index of the categorical feature


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Mixed data: NaNs, exact zeros, a categorical column, interactions."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    X[rng.random(X.shape) < 0.12] = np.nan
    X[:, CAT] = rng.integers(0, 12, n).astype(float)
    X[rng.random(n) < 0.05, CAT] = np.nan
    X[:, 5] = np.where(rng.random(n) < 0.3, 0.0, X[:, 5])
    score = (
        np.nan_to_num(X[:, 0])
        + (X[:, CAT] % 3 == 0)
        + np.nan_to_num(X[:, 1]) * np.nan_to_num(X[:, 2])
        - np.isnan(X[:, 3])
        + 0.5 * (X[:, 5] == 0)
    )
    y = (score + rng.logistic(size=n) * 0.5 > 0.5).astype(int)
    return X, y


def _train(
    params: dict, rounds: int, n: int = 1500, seed: int = 0, categorical: bool = True
) -> lgb.Booster:
    X, y = _data(n, seed)
    base = {
        "objective": "binary",
        "verbose": -1,
        "learning_rate": 0.2,
        "num_threads": 1,
        "seed": seed,
    }
    ds = lgb.Dataset(X, y, categorical_feature=[CAT] if categorical else "auto")
    return lgb.train({**base, **params}, ds, num_boost_round=rounds)


def _probe_rows(n: int = 300) -> np.ndarray:
    """Held-out rows plus the edge cases of LightGBM's decision rules."""
    X, _ = _data(n, seed=99)
    edge = np.tile(X[:1], (12, 1))
    edge[0, CAT] = -1.0  # negative category: right
    edge[1, CAT] = -0.5  # truncates to category 0
    edge[2, CAT] = 1e12  # int overflow: right
    edge[3, CAT] = np.inf
    edge[4, CAT] = 3.7  # truncates to 3
    edge[5, CAT] = 1000.0  # beyond the bitset
    edge[6, 0] = 1e-40  # below kZeroThreshold: treated as 0
    edge[7, 0] = -1e-40
    edge[8, :] = np.nan  # all missing
    edge[9, :] = 0.0  # all zero
    edge[10, 1] = np.inf
    edge[11, 1] = -np.inf
    return np.vstack([X, edge])


MODELS = {
    "leaves15": ({"num_leaves": 15}, 30),
    "leaves63_deep": ({"num_leaves": 63, "min_data_in_leaf": 3, "min_data_per_group": 5}, 25),
    "zero_as_missing": ({"num_leaves": 31, "zero_as_missing": True}, 20),
    "no_missing_handling": ({"num_leaves": 31, "use_missing": False}, 20),
    "depth2": ({"num_leaves": 4, "max_depth": 2}, 40),
    "one_tree": ({"num_leaves": 31}, 1),
    "stumps": ({"num_leaves": 2}, 50),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def booster(request: pytest.FixtureRequest) -> lgb.Booster:
    params, rounds = MODELS[request.param]
    return _train(params, rounds)


def test_contributions_equal_pred_contrib(booster: lgb.Booster) -> None:
    X = _probe_rows()
    ts = TreeShap.from_booster(booster)
    got = ts.contributions(X)
    ref = booster.predict(X, pred_contrib=True)
    assert got.shape == ref.shape == (X.shape[0], N_FEATURES + 1)
    np.testing.assert_allclose(got, ref, rtol=0, atol=TOL)


def test_additivity_and_margin(booster: lgb.Booster) -> None:
    X = _probe_rows()
    ts = TreeShap.from_booster(booster)
    margin = booster.predict(X, raw_score=True)
    np.testing.assert_allclose(ts.predict_margin(X), margin, rtol=0, atol=TOL)
    np.testing.assert_allclose(ts.contributions(X).sum(axis=1), margin, rtol=0, atol=TOL)
    assert ts.expected_value == pytest.approx(
        booster.predict(X[:1], pred_contrib=True)[0, -1], abs=TOL
    )


def test_row_path_equals_batch(booster: lgb.Booster) -> None:
    X = _probe_rows(40)
    ts = TreeShap.from_booster(booster)
    batch = ts.contributions(X)
    for i in range(X.shape[0]):
        np.testing.assert_array_equal(ts.contributions_row(X[i]), batch[i])


@pytest.mark.parametrize("min_q", [8, 12, 16, 21])
def test_every_kernel_variant_is_exact(min_q: int) -> None:
    """More Gauss nodes than needed stay exact; this drives the 8/12/generic copies."""
    b = _train(MODELS["leaves63_deep"][0], 10)
    X = _probe_rows(100)
    ts = TreeShap.from_dump(b.dump_model(), min_quadrature=min_q)
    assert int(ts._a.tree_q.max()) >= min_q
    np.testing.assert_allclose(
        ts.contributions(X), b.predict(X, pred_contrib=True), rtol=0, atol=TOL
    )


def test_repeated_features_on_a_path_are_covered() -> None:
    """The deep model must split a feature twice on one path (the hard case of the method)."""
    ts = TreeShap.from_booster(_train(MODELS["leaves63_deep"][0], 25))
    assert (ts._a.prev_same >= 0).sum() > 10


def test_single_leaf_trees() -> None:
    """Trees that cannot split (too few rows per leaf) contribute only to the bias."""
    X, y = _data(60, seed=3)
    b = lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_in_leaf": 1000, "num_threads": 1},
        lgb.Dataset(X, y),
        num_boost_round=3,
    )
    assert all(t["num_leaves"] == 1 for t in b.dump_model()["tree_info"])
    ts = TreeShap.from_booster(b)
    Xp = _probe_rows(20)
    np.testing.assert_allclose(
        ts.contributions(Xp), b.predict(Xp, pred_contrib=True), rtol=0, atol=TOL
    )
    np.testing.assert_allclose(
        ts.predict_margin(Xp), b.predict(Xp, raw_score=True), rtol=0, atol=TOL
    )


def test_mixed_single_leaf_and_split_trees() -> None:
    """Single-leaf trees between split trees (offsets per tree must stay right).

    LightGBM stops training at the first tree that cannot split, so the mixed model is
    assembled from two dumps; SHAP values add over trees, so the reference is the sum of
    the two boosters' ``pred_contrib``.
    """
    split = _train({"num_leaves": 7}, 4)
    X, y = _data(60, seed=3)
    single = lgb.train(
        {"objective": "binary", "verbose": -1, "min_data_in_leaf": 1000, "num_threads": 1},
        lgb.Dataset(X, y),
        num_boost_round=3,
    )
    d_split, d_single = split.dump_model(), single.dump_model()
    mixed = dict(d_split)
    ts_ = d_split["tree_info"]
    mixed["tree_info"] = ts_[:2] + d_single["tree_info"] + ts_[2:]
    Xp = _probe_rows(50)
    ts = TreeShap.from_dump(mixed)
    ref = split.predict(Xp, pred_contrib=True) + single.predict(Xp, pred_contrib=True)
    np.testing.assert_allclose(ts.contributions(Xp), ref, rtol=0, atol=TOL)
    margin = split.predict(Xp, raw_score=True) + single.predict(Xp, raw_score=True)
    np.testing.assert_allclose(ts.predict_margin(Xp), margin, rtol=0, atol=TOL)


def test_save_load_round_trip() -> None:
    b = _train({"num_leaves": 31}, 15)
    loaded = lgb.Booster(model_str=b.model_to_string())
    X = _probe_rows(100)
    a1 = TreeShap.from_booster(b).contributions(X)
    a2 = TreeShap.from_booster(loaded).contributions(X)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_allclose(a2, loaded.predict(X, pred_contrib=True), rtol=0, atol=TOL)


def test_float32_and_list_inputs_match() -> None:
    b = _train({"num_leaves": 15}, 10)
    X = _probe_rows(30)
    ts = TreeShap.from_booster(b)
    X32 = X.astype(np.float32)
    np.testing.assert_allclose(
        ts.contributions(X32), b.predict(X32, pred_contrib=True), rtol=0, atol=TOL
    )
    np.testing.assert_array_equal(ts.contributions_row(X[0].tolist()), ts.contributions(X[:1])[0])


def test_threads_share_one_instance() -> None:
    b = _train({"num_leaves": 31}, 20)
    ts = TreeShap.from_booster(b)
    X = _probe_rows(200)
    expected = ts.contributions(X)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        rows = list(pool.map(ts.contributions_row, X))
    np.testing.assert_array_equal(np.vstack(rows), expected)


def test_refuses_multiclass() -> None:
    X, _ = _data(300, seed=1)
    y = np.random.default_rng(1).integers(0, 3, 300)
    b = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1},
        lgb.Dataset(X, y),
        num_boost_round=2,
    )
    with pytest.raises(ValueError, match="single-output"):
        TreeShap.from_booster(b)


def test_refuses_linear_trees() -> None:
    X, y = _data(300, seed=2)
    Xf = np.nan_to_num(X)
    b = lgb.train(
        {"objective": "binary", "linear_tree": True, "verbose": -1},
        lgb.Dataset(Xf, y),
        num_boost_round=2,
    )
    with pytest.raises(ValueError, match="linear"):
        TreeShap.from_booster(b)


def test_refuses_random_forest() -> None:
    X, y = _data(300, seed=2)
    params = {
        "objective": "binary",
        "boosting": "rf",
        "bagging_fraction": 0.5,
        "bagging_freq": 1,
        "verbose": -1,
    }
    b = lgb.train(params, lgb.Dataset(X, y), num_boost_round=2)
    with pytest.raises(ValueError, match="rf"):
        TreeShap.from_booster(b)


def test_rejects_wrong_width() -> None:
    ts = TreeShap.from_booster(_train({"num_leaves": 4}, 2))
    assert ts.num_features == N_FEATURES
    assert ts.num_trees == 2
    with pytest.raises(ValueError, match="columns"):
        ts.contributions(np.zeros((2, N_FEATURES + 1)))
    with pytest.raises(ValueError, match="1-D"):
        ts.contributions_row(np.zeros((1, N_FEATURES)))


def test_exact_with_the_models_own_categorical_features() -> None:
    """A booster trained the way training trains (``fit_booster``, native categoricals named as
    the registry names them, hundreds of codes so bitsets span several words): TreeShap equals
    ``pred_contrib`` on held-out rows, unseen codes and NaN included."""
    from training.train import fit_booster

    rng = np.random.default_rng(5)
    n = 6000
    hs4 = rng.integers(0, 300, n).astype(float)
    org = rng.integers(0, 40, n).astype(float)
    hs4[rng.random(n) < 0.05] = np.nan
    value = rng.normal(size=n)
    risky = (hs4 % 7 == 0) | ((org % 5 == 1) & (hs4 % 3 == 0))
    y = (rng.random(n) < np.where(risky, 0.5, 0.08) + 0.05 * (value > 1)).astype(float)
    X = np.column_stack([hs4, org, value])
    names = ["decl_hs4_cat_now", "decl_org_cat_now", "decl_log_value_now"]
    booster = fit_booster(
        X[:4000],
        y[:4000],
        None,
        X[4000:5000],
        y[4000:5000],
        names,
        {
            "objective": "binary",
            "verbose": -1,
            "num_leaves": 15,
            "min_data_per_group": 20,
            "max_cat_threshold": 64,
            "num_threads": 1,
            "seed": 1,
        },
        60,
        10,
    )
    dump = booster.dump_model()
    kinds = {
        node.get("decision_type")
        for tree in dump["tree_info"]
        for node in _internal_nodes(tree["tree_structure"])
    }
    assert "==" in kinds  # categorical splits are really there
    probe = X[5000:].copy()
    probe[:20, 0] = 1000.0  # a code no training row had
    probe[20:40, 1] = np.nan
    want = booster.predict(probe, pred_contrib=True)
    got = TreeShap.from_booster(booster).contributions(probe)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def _internal_nodes(node: dict):
    if "split_index" in node:
        yield node
        yield from _internal_nodes(node["left_child"])
        yield from _internal_nodes(node["right_child"])
