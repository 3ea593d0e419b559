"""History keys chosen on validation, the capacity grid and the plain baseline (issue 12)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.online import OnlineFeatures
from features.registry import candidate_entities, default_entities, feature_names
from features.snapshot import Snapshot
from tests.training.training_support import SELECTING
from training.baselines import compare_to_plain, plain_feature_names
from training.config import load_config
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
    assert len(cap["grid"]) == 2 and sum(r["kept"] for r in cap["grid"]) == 1
    kept = next(r for r in cap["grid"] if r["kept"])
    assert kept["validation_logloss"] == min(r["validation_logloss"] for r in cap["grid"])
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


def test_the_plain_baseline_is_in_every_evaluation(selected) -> None:
    assert "plain_lightgbm" in selected.baselines
    verdict = selected.bundle.metrics["plain_baseline"]
    assert set(verdict["budgets"]) == {"0.05", "0.1"}
    assert verdict["statement"].startswith("The model ")
    assert all(n.startswith(("decl_", "attr_")) for n in verdict["features"])
    assert "decl_hs4_cat_now" in verdict["features"]
    # The declaration's own values only ("now"), nothing counted over earlier events.
    assert all(n.endswith("_now") for n in verdict["features"])


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


def test_plain_columns_carry_no_history() -> None:
    names = feature_names({"grade": "categorical", "rate": "numeric"})
    plain = plain_feature_names(names)
    assert "attr_grade_cat_now" in plain and "attr_rate_value_now" in plain
    assert "attr_grade_decl_cnt_all" not in plain and "hs6_uv_log_ratio_month" not in plain
