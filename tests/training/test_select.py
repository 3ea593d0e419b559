"""History keys chosen on validation, the capacity grid and the plain baseline (issue 12)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.online import OnlineFeatures
from features.registry import candidate_entities, default_entities, feature_names
from features.snapshot import Snapshot
from tests.training.training_support import SELECTING
from training.baselines import (
    PLAIN_MAX_CATEGORIES,
    compare_to_plain,
    plain_columns,
    plain_lightgbm_scores,
)
from training.config import load_config
from training.evaluate import significantly_lower
from training.train import capacity_grid, shap_cost


@pytest.fixture(scope="module")
def selected(demo, tmp_path_factory: pytest.TempPathFactory):
    """One training run that chooses its keys and capacity on validation."""
    from training.pipeline import load_ground_truth, run_training

    root, inputs = demo
    return run_training(
        inputs.features,
        inputs.labels,
        inputs.specs,
        config=load_config(overrides=SELECTING),
        models_dir=tmp_path_factory.mktemp("models"),
        model_name="guomen-test",
        declarations=inputs.tables["declarations"],
        credit_ratings=inputs.tables["credit_ratings"],
        attributes=inputs.attributes,
        ground_truth=load_ground_truth(root / "src" / "ground_truth" / "declaration_truth.parquet"),
        categories=inputs.categories,
        tables=inputs.tables,
    )


def test_the_chosen_keys_are_what_the_bundle_and_serving_build(demo, selected) -> None:
    _, inputs = demo
    bundle = selected.bundle
    attrs = inputs.attributes
    sel = bundle.metrics["feature_selection"]
    assert bundle.entities == sel["entities"] and 1 <= len(bundle.entities) <= 8
    assert bundle.feature_names == feature_names(attrs, bundle.entities)
    # Every candidate is accounted for, with a reason.
    pool = set(candidate_entities(attrs)) | set(default_entities(attrs))
    listed = {row["entity"] for row in sel["keys"]}
    assert listed <= pool and len(listed) >= len(pool) - 1
    assert all(row["why"] for row in sel["keys"])
    assert {r["entity"] for r in sel["keys"] if r["kept"]} == set(bundle.entities)
    report = selected.report_dir / "metrics.json"
    assert '"feature_selection"' in report.read_text(encoding="utf-8")
    # Serving: a snapshot of exactly those keys gives the offline row (code maps from the bundle).
    from features.build import build_offline

    offline = build_offline(
        inputs.tables, attrs, entities=bundle.entities, categories=bundle.categories
    )
    decl = inputs.tables["declarations"]
    i = int(np.argmax(decl["declared_at"].to_numpy()))
    row = {k: (None if pd.isna(v) else v) for k, v in decl.iloc[i].items()}
    snap = Snapshot.build(inputs.tables, row["declared_at"], attrs, entities=bundle.entities)
    assert set(snap.entities) - {"global"} == set(bundle.entities)
    vec = OnlineFeatures(snap, bundle.feature_names, categories=bundle.categories).vector(row)
    want = offline.loc[i, bundle.feature_names].to_numpy(dtype=np.float64)
    assert np.allclose(vec, want, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_capacity_comes_from_the_grid_within_the_shap_budget(selected) -> None:
    cap = selected.bundle.metrics["capacity"]
    # the configured point (15 leaves, 20 per leaf) is one of the grid's two here
    assert len(cap["grid"]) == 2 and sum(r["kept"] for r in cap["grid"]) == 1
    assert sum(r["configured"] for r in cap["grid"]) == 1
    kept = next(r for r in cap["grid"] if r["kept"])
    best = min(r["validation_logloss"] for r in cap["grid"])
    # the grid's best, or the configured point when the best is not better beyond noise
    assert kept["validation_logloss"] == best or kept["configured"]
    assert cap["chosen"]["num_leaves"] == kept["num_leaves"]
    size = selected.fitted.size
    assert size["leaves_max"] <= kept["num_leaves"]
    budget = load_config(overrides=SELECTING).capacity.shap_cost_budget
    assert shap_cost(size["trees"], size["leaves_max"], 8) <= budget


def test_grid_scales_with_the_labelled_rows_and_caps_trees() -> None:
    cfg = load_config(overrides={"capacity": {"shap_cost_budget": 300 * 31 * 64}})
    small, big = capacity_grid(cfg, 10_000), capacity_grid(cfg, 1_000_000)
    assert len(small) == len(big) == 12
    assert {p["min_data_in_leaf"] for p in small} == {20}  # the floor
    assert {p["min_data_in_leaf"] for p in big} == {500, 2000}
    for p in big:
        assert p["num_boost_round"] * p["num_leaves"] * 64 <= 300 * 31 * 64
    assert max(p["num_boost_round"] for p in big if p["num_leaves"] == 63) == 147


def test_the_plain_baseline_is_in_every_evaluation(demo, selected) -> None:
    assert "plain_lightgbm" in selected.baselines
    verdict = selected.bundle.metrics["plain_baseline"]
    assert set(verdict["budgets"]) == {"0.05", "0.1"}
    assert verdict["statement"].startswith("The model ")
    # The raw columns of the declarations table (the HS code also at 2/4/6 digits), no feature of
    # the model: nothing counted over earlier events.
    _, inputs = demo
    cols = set(verdict["features"])
    assert {"hs2", "hs4", "hs6", "origin_country", "port_code", "month", "usd_per_kg"} <= cols
    derived = {"hs2", "hs4", "hs6", "month", "weekday", "hour", "usd_per_kg"}
    assert cols <= derived | set(inputs.tables["declarations"].columns)
    assert not {"declaration_id", "declared_at"} & cols


def test_the_report_and_the_worlds_harness_share_one_plain_baseline(demo, selected) -> None:
    """The training report's plain baseline is ``plain_lightgbm_scores`` on the same rows (the
    harness reads the report's): calling it directly gives the report's numbers exactly."""
    from training.evaluate import evaluate_scores
    from training.train import TEST, TRAIN, VALIDATION, prepare

    _, inputs = demo
    cfg = load_config(overrides=SELECTING)
    names = selected.bundle.feature_names
    from features.build import build_offline

    feats = build_offline(
        inputs.tables,
        inputs.attributes,
        entities=selected.bundle.entities,
        categories=selected.bundle.categories,
    )
    data = prepare(feats, inputs.labels, names, cfg.split.test_months, cfg.split.validation_months)
    decl = inputs.tables["declarations"].set_index("declaration_id", drop=False)
    decl = decl.loc[data.frame["declaration_id"].to_numpy()].reset_index(drop=True)
    test = data.rows(TEST, labelled=False)
    scores, cols = plain_lightgbm_scores(
        decl,
        inputs.attributes,
        data.labels["y"].to_numpy(dtype=np.float64),
        data.rows(TRAIN),
        data.rows(VALIDATION),
        test,
        cfg.seed,
        cfg.lightgbm.num_threads,
    )
    assert cols == selected.bundle.metrics["plain_baseline"]["features"]
    got = evaluate_scores(
        scores, data.labels[test].reset_index(drop=True), probabilities=True, budgets=(0.05, 0.1)
    )
    want = selected.baselines["plain_lightgbm"]
    for b in ("0.05", "0.1"):
        assert got["budgets"][b]["all_inspected"]["precision"] == pytest.approx(
            want["budgets"][b]["all_inspected"]["precision"], abs=1e-12
        )
    assert got["all_inspected"]["auc"] == pytest.approx(want["all_inspected"]["auc"], abs=1e-12)


def test_plain_baseline_finds_risk_in_a_raw_column_and_codes_unseen_values_missing() -> None:
    """Risk planted in the full HS code alone: the plain baseline ranks it (AUC well above
    0.5), IDs with too many values are left out, unseen values become missing."""
    rng = np.random.default_rng(3)
    n = 6000
    catalogue = np.array([f"{c:010d}" for c in rng.integers(1_000_000_000, 9_999_999_999, 40)])
    codes = catalogue[rng.integers(0, 40, n)]
    risky = np.isin(codes, catalogue[:5])
    y = (rng.random(n) < np.where(risky, 0.6, 0.05)).astype(np.float64)
    decl = pd.DataFrame(
        {
            "declaration_id": [f"D{i}" for i in range(n)],
            "declared_at": pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC"),
            "hs_code": codes,
            "enterprise_id": [f"E{i}" for i in range(n)],  # one value per row: left out
            "declared_value_usd": rng.lognormal(8, 1, n),
            "grade": rng.choice(["a", "b"], n),
        }
    )
    train = np.arange(n) < 4000
    valid = (np.arange(n) >= 4000) & (np.arange(n) < 5000)
    test = np.arange(n) >= 5000
    X = plain_columns(decl, {"grade": "categorical"}, train)
    assert "enterprise_id" not in X.columns and n > PLAIN_MAX_CATEGORIES
    assert {"hs2", "hs4", "hs6", "hs_code", "declared_value_usd", "grade"} <= set(X.columns)
    assert {"month", "weekday", "hour"} <= set(X.columns)
    decl.loc[n - 1, "hs_code"] = "9999999999"
    X = plain_columns(decl, {"grade": "categorical"}, train)
    assert pd.isna(X.loc[n - 1, "hs_code"]) and pd.isna(X.loc[n - 1, "hs6"])
    scores, _ = plain_lightgbm_scores(decl, {"grade": "categorical"}, y, train, valid, test, 0)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y[test], scores) > 0.75


def test_the_report_says_plainly_when_the_plain_baseline_wins() -> None:
    def m(p5: float, p10: float) -> dict:
        return {
            "budgets": {
                "0.05": {"all_inspected": {"precision": p5}},
                "0.1": {"all_inspected": {"precision": p10}},
            }
        }

    lost = compare_to_plain(m(0.30, 0.25), m(0.32, 0.24))
    assert not lost["beats_all"] and not lost["budgets"]["0.05"]["beats"]
    assert "does NOT beat the plain LightGBM baseline" in lost["statement"]
    assert "at 5 % (0.300 vs 0.320)" in lost["statement"]
    won = compare_to_plain(m(0.40, 0.30), m(0.32, 0.24))
    assert won["beats_all"] and "beats the plain LightGBM baseline at 5 %" in won["statement"]
    assert won["budgets"]["0.05"]["relative"] == pytest.approx(0.25)


def test_the_default_set_is_replaced_only_beyond_validation_noise() -> None:
    rng = np.random.default_rng(0)
    incumbent = rng.exponential(0.3, 2000)
    noise = incumbent + rng.normal(0, 0.2, 2000)  # as good, rows differ by noise
    assert not significantly_lower(noise - 0.001, incumbent, 2.0)
    assert significantly_lower(incumbent - 0.05, incumbent + rng.normal(0, 0.01, 2000), 2.0)
    assert not significantly_lower(incumbent[:1], incumbent[:1], 0.0)


def test_a_swap_drops_the_lowest_gain_keys_but_never_a_needed_parent() -> None:
    from features.registry import default_entities, resolve_entities
    from training.select import swap_in

    defaults = list(default_entities(None))
    gain = {e: 10.0 for e in defaults} | {"hs2": 0.0, "port": 1.0, "osp_x_hs4": 2.0}
    trial = swap_in(defaults, "hsc_x_org", gain, None, 12)
    assert trial is not None and "hsc_x_org" in trial
    # hsc_x_org brings its parent hsc: two keys go, the lowest-gain removable ones; hs2 has
    # the lowest gain but hs4 needs it as the prior of its smoothed rate
    assert set(defaults) - set(trial) == {"port", "osp_x_hs4"}
    assert "hs2" in trial and len(resolve_entities(trial)) == 12
    # nothing removable: a budget below the new key's own parents
    assert swap_in(["ent"], "hsc_x_org", gain, None, 3) is None


def test_the_score_statistic_finds_what_the_model_lacks_not_what_it_has() -> None:
    from training.select import score_z

    rng = np.random.default_rng(5)
    n = 20_000
    known, missing = rng.normal(size=n), rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-2.0 + known + 0.5 * missing)))).astype(np.float64)
    p = 1 / (1 + np.exp(-(-2.0 + known)))  # the model knows `known` only
    assert score_z(y, p, missing) > 10  # what it lacks
    assert abs(score_z(y, p, rng.normal(size=n))) < 4  # noise
    # a copy of what it already has adds about nothing, even though it predicts y well
    assert abs(score_z(y, p, known + rng.normal(0, 0.01, n))) < abs(score_z(y, p, missing)) / 3
    holes = missing.copy()
    holes[::2] = np.nan  # unseen keys carry no information, the rest still counts
    assert score_z(y, p, holes) > 5
    assert np.isnan(score_z(y, p, np.ones(n)))


def test_out_of_fold_probability_does_not_see_its_own_rows() -> None:
    """On labels that are pure noise, an in-sample fit ranks its own train rows above chance;
    the out-of-fold probabilities (each fold predicted by a model fitted on the others) do not,
    so the score statistic against them does not reward what the default set overfits."""
    from sklearn.metrics import roc_auc_score

    from training.config import load_config
    from training.select import _fit_logloss, out_of_fold_probability

    cfg = load_config()
    rng = np.random.default_rng(3)
    n = 3000
    X = rng.normal(size=(n, 8))
    y = (rng.random(n) < 0.2).astype(np.float64)
    X_va = rng.normal(size=(800, 8))
    y_va = (rng.random(800) < 0.2).astype(np.float64)
    names = [f"x{i}" for i in range(8)]
    # let both fits grow (patience beyond the 150 rounds): an overfit shows in-sample
    cfg = cfg.model_copy(
        update={"lightgbm": cfg.lightgbm.model_copy(update={"early_stopping_rounds": 200})}
    )
    p_oof = out_of_fold_probability(X, y, X_va, y_va, names, cfg, 3)
    booster, _ = _fit_logloss(X, y, X_va, y_va, names, cfg)
    p_in = booster.predict(X, num_iteration=booster.best_iteration or None)
    assert p_oof.shape == (n,) and np.isfinite(p_oof).all()
    assert roc_auc_score(y, p_in) > 0.55
    assert abs(roc_auc_score(y, p_oof) - 0.5) < 0.03
