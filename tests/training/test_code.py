"""Code tests: split, calibration, metrics, config (small synthetic inputs, no store)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.training.training_synth import FEATURES
from training.calibrate import fit_platt
from training.config import load_config
from training.evaluate import (
    evaluate_scores,
    evaluation_frame,
    expected_calibration_error,
    top_k_mask,
)
from training.split import TEST, TRAIN, VALIDATION, time_split
from training.train import fit_booster, prepare


def test_time_split_no_overlap_and_test_is_last(synthetic):
    features, _, _ = synthetic
    split = time_split(features["declared_at"], test_months=4, validation_months=3)
    seg = split.segment(features["declared_at"])
    ts = features["declared_at"]
    assert set(np.unique(seg)) == {TRAIN, VALIDATION, TEST}
    # Segments are ordered intervals: every train < every validation < every test.
    assert ts[seg == TRAIN].max() < ts[seg == VALIDATION].min()
    assert ts[seg == VALIDATION].max() < ts[seg == TEST].min()
    assert ts[seg == TEST].max() == ts.max()
    assert split.test_start.day == 1 and split.validation_start.day == 1
    assert (split.test_start - split.validation_start).days in range(89, 93)


def test_split_too_short_is_an_error():
    ts = pd.Series(pd.date_range("2024-01-01", periods=100, freq="D", tz="UTC"))
    with pytest.raises(ValueError, match="too short"):
        time_split(ts, test_months=3, validation_months=2)


def test_labels_known_only_before_next_segment(synthetic):
    features, labels, _ = synthetic
    labels = labels.copy()
    data = prepare(features, labels, FEATURES, 4, 3)
    # A train row whose result arrived after validation began must not be a training label.
    late = labels["inspected_at"].copy()
    i = int(np.flatnonzero((data.segment == TRAIN) & data.known)[-1])
    did = data.frame.loc[i, "declaration_id"]
    late[labels["declaration_id"] == did] = data.split.validation_start + pd.Timedelta(hours=1)
    labels["inspected_at"] = late
    again = prepare(features, labels, FEATURES, 4, 3)
    assert data.known[i] and not again.known[i]
    assert again.known.sum() == data.known.sum() - 1


def test_platt_recovers_parameters_and_identity_holds():
    rng = np.random.default_rng(3)
    margin = rng.normal(0, 1.5, 50_000)
    y = rng.random(50_000) < 1 / (1 + np.exp(-(0.6 * margin - 1.5)))
    cal = fit_platt(margin, y)
    assert cal.a == pytest.approx(0.6, abs=0.03)
    assert cal.b == pytest.approx(-1.5, abs=0.05)
    p = cal.probability(margin)
    np.testing.assert_allclose(np.log(p / (1 - p)), cal.a * margin + cal.b, atol=1e-9)


def test_calibrated_shap_is_additive_in_log_odds(synthetic):
    features, labels, _ = synthetic
    data = prepare(features, labels, FEATURES, 4, 3)
    tr, va = data.rows(TRAIN), data.rows(VALIDATION)
    y = data.labels["y"].to_numpy()
    cfg = load_config(overrides={"lightgbm": {"num_boost_round": 20, "min_data_in_leaf": 20}})
    booster = fit_booster(
        data.matrix(tr), y[tr], None, data.matrix(va), y[va], FEATURES,
        cfg.lightgbm.params(1), 20, 5,
    )  # fmt: skip
    cal = fit_platt(booster.predict(data.matrix(va), raw_score=True), y[va])
    X = data.matrix(data.rows(TEST, labelled=False))[:200]
    contrib = booster.predict(X, pred_contrib=True)
    base = cal.a * contrib[:, -1] + cal.b
    p = cal.probability(booster.predict(X, raw_score=True))
    np.testing.assert_allclose(
        base + (cal.a * contrib[:, :-1]).sum(axis=1), np.log(p / (1 - p)), atol=1e-9
    )


def test_ece_known_values():
    p = np.array([0.1, 0.1, 0.9, 0.9])
    assert expected_calibration_error(p, np.array([0, 0, 1, 1]), 10) == pytest.approx(0.1)
    assert expected_calibration_error(p, np.array([1, 0, 1, 0]), 10) == pytest.approx(0.4)
    assert expected_calibration_error(np.full(4, 0.5), np.array([1, 0, 1, 0]), 10) == 0.0


def test_top_k_takes_the_highest_and_breaks_ties_deterministically():
    s = np.array([0.1, 0.9, 0.5, 0.5, 0.5, 0.2, 0.0, 0.3, 0.4, 0.6])
    m = top_k_mask(s, 0.2)
    assert m.sum() == 2 and m[1] and m[9]
    a, b = top_k_mask(s, 0.3, seed=4), top_k_mask(s, 0.3, seed=4)
    assert (a == b).all() and a[[1, 9]].all() and a[[2, 3, 4]].sum() == 1


def test_budget_metrics_by_hand():
    # 10 declarations; the top 20% (2) are ids 0 and 1.
    labels = pd.DataFrame(
        {
            "declaration_id": [str(i) for i in range(10)],
            "inspected": [True, True, False, True, True, False, True, False, False, True],
            "nonconforming": [1, 0, np.nan, 1, 0, np.nan, 1, np.nan, np.nan, 0],
            "selection": ["random", "targeted", None, "random", "targeted", None, "random",
                          None, None, "random"],
            "severity": ["critical", None, None, "minor", None, None, "critical", None, None, None],
            "hazard_type": [None] * 10,
            "inspected_at": [pd.NaT] * 10,
        }
    )  # fmt: skip
    features = labels[["declaration_id"]]
    frame = evaluation_frame(features, labels)
    scores = np.linspace(1, 0, 10)
    truth = pd.DataFrame(
        {"p_true": np.linspace(0.1, 0.5, 10), "critical_p_true": np.zeros(10) + 0.01}
    )
    m = evaluate_scores(scores, frame, probabilities=False, budgets=(0.2,), truth=truth)
    b = m["budgets"]["0.2"]
    assert b["selected"] == 2
    assert b["all_inspected"]["precision"] == 0.5  # ids 0 (nc) and 1 (ok)
    assert b["all_inspected"]["recall"] == pytest.approx(1 / 3)  # nc: 0, 3, 6
    assert b["all_inspected"]["critical_recall"] == 0.5  # critical: 0, 6
    assert b["random_sample"]["precision"] == 1.0  # only id 0 is random among the top
    assert b["random_sample"]["recall"] == pytest.approx(1 / 3)
    # Oracle: the two largest p_true are ids 9 and 8.
    assert b["truth"]["oracle_found"] == pytest.approx(0.5 + truth["p_true"][8])
    assert b["truth"]["ratio"] == pytest.approx(
        (0.1 + truth["p_true"][1]) / b["truth"]["oracle_found"]
    )


def test_oracle_ranking_scores_ratio_one(synthetic):
    features, labels, truth = synthetic
    frame = evaluation_frame(features, labels)
    m = evaluate_scores(truth["p_true"].to_numpy(), frame, probabilities=True, truth=truth)
    for entry in m["budgets"].values():
        assert entry["truth"]["ratio"] == pytest.approx(1.0)
    rnd = evaluate_scores(
        np.random.default_rng(0).random(len(frame)), frame, probabilities=False, truth=truth
    )
    assert rnd["budgets"]["0.05"]["truth"]["ratio"] < 0.5


def test_config_defaults_overrides_and_unknown_keys(tmp_path):
    cfg = load_config()
    assert cfg.lightgbm.num_boost_round <= 300 and cfg.lightgbm.num_leaves <= 31
    assert cfg.policy.budget == 0.05 and cfg.policy.monitoring_share == 0.01
    params = cfg.lightgbm.params(cfg.seed)
    assert params["deterministic"] and params["force_col_wise"] and params["num_threads"] >= 1
    user = tmp_path / "c.yaml"
    user.write_text("lightgbm:\n  num_leaves: 7\npolicy:\n  budget: 0.1\n")
    cfg2 = load_config(user)
    assert (
        cfg2.lightgbm.num_leaves == 7 and cfg2.lightgbm.learning_rate == cfg.lightgbm.learning_rate
    )
    assert cfg2.policy.budget == 0.1
    user.write_text("lightgbm:\n  num_leafs: 7\n")
    with pytest.raises(ValueError):
        load_config(user)


def test_training_is_deterministic(synthetic, small_config):
    features, labels, _ = synthetic
    from training.train import train_model

    data = prepare(features, labels, FEATURES, 4, 3)
    a = train_model(data, small_config)
    b = train_model(data, small_config)
    assert a.booster.model_to_string() == b.booster.model_to_string()
    assert a.calibration == b.calibration and a.correction == b.correction
