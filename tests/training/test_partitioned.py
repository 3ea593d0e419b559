"""Training from partitioned features: the rows in memory equal the in-memory build's (as
float32) below the cap, a uniform sample above it, and ``guomen train --features`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from features.partitioned import StoreSource, build_partitioned
from tests.training.training_support import SMALL, cli_project
from training.partitioned import load_partitioned_inputs
from training.split import TEST, TRAIN, time_split


@pytest.fixture(scope="module")
def partitions(demo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root, inputs = demo
    out = tmp_path_factory.mktemp("parts") / "features"
    build_partitioned(
        StoreSource(root / "store"), out, inputs.attributes, categories=inputs.categories,
        partition_months=2,
    )  # fmt: skip
    return out


def test_below_the_cap_rows_are_the_in_memory_ones(demo, partitions: Path) -> None:
    root, inputs = demo
    part = load_partitioned_inputs(
        partitions, root / "store", test_months=4, validation_months=3, max_rows=10**9
    )
    assert part.sample.rates == {"train": 1.0, "validation": 1.0, "test": 1.0}
    full = inputs.features.set_index("declaration_id")
    got = part.features.set_index("declaration_id").loc[full.index]
    names = [s.name for s in part.specs]
    assert names == list(inputs.features.columns[3:])
    a = full[names].to_numpy(dtype=np.float32)
    b = got[names].to_numpy()
    assert b.dtype == np.float32
    assert ((a == b) | (np.isnan(a) & np.isnan(b))).all()
    labels = part.labels.set_index("declaration_id").loc[full.index]
    want = inputs.labels.set_index("declaration_id")
    assert (labels["inspected"] == want["inspected"]).all()
    # The legacy baseline's rows: the test period and each enterprise's first declaration.
    decl = inputs.tables["declarations"]
    first = decl.groupby("enterprise_id")["declared_at"].min()
    mine = part.declarations.groupby("enterprise_id")["declared_at"].min()
    assert mine.sort_index().equals(first.sort_index())


def test_above_the_cap_each_segment_is_a_uniform_sample(demo, partitions: Path) -> None:
    root, inputs = demo
    cap = 4000
    part = load_partitioned_inputs(
        partitions, root / "store", test_months=4, validation_months=3, max_rows=cap, seed=3
    )
    split = time_split(inputs.features["declared_at"], 4, 3)
    seg = split.segment(inputs.features["declared_at"])
    assert part.sample.rows[TRAIN] == int((seg == TRAIN).sum()) > cap
    rate = part.sample.rates[TRAIN]
    assert rate == pytest.approx(cap / part.sample.rows[TRAIN])
    kept = part.sample.kept[TRAIN]
    assert abs(kept - cap) < 5 * np.sqrt(cap)
    # Labelled and unlabelled alike: the inspected share of the sample is the population's.
    ids = part.features.loc[split.segment(part.features["declared_at"]) == TRAIN, "declaration_id"]
    lab = inputs.labels.set_index("declaration_id")["inspected"]
    share_all = lab.loc[inputs.features.loc[seg == TRAIN, "declaration_id"]].mean()
    assert lab.loc[ids].mean() == pytest.approx(share_all, abs=0.03)
    again = load_partitioned_inputs(
        partitions, root / "store", test_months=4, validation_months=3, max_rows=cap, seed=3
    )
    assert again.features["declaration_id"].equals(part.features["declaration_id"])
    assert part.sample.kept[TEST] <= part.sample.rows[TEST]


def test_model_from_partitions_is_the_in_memory_model(demo, partitions: Path, tmp_path) -> None:
    """Below the cap, training from the partitions gives the model trained on the in-memory
    features cast to float32, tree for tree (the same rows, the same float32 values)."""
    from training.config import load_config
    from training.pipeline import run_training

    root, inputs = demo
    cfg = load_config(overrides={**SMALL, "selection": {"candidates": ["none"]}})
    part = load_partitioned_inputs(
        partitions, root / "store", test_months=cfg.split.test_months,
        validation_months=cfg.split.validation_months, max_rows=10**9,
    )  # fmt: skip
    as_float32 = inputs.features.copy()
    names = [s.name for s in part.specs]
    as_float32[names] = as_float32[names].astype(np.float32)
    common = {"config": cfg, "model_name": "m", "attributes": part.attributes,
              "categories": part.categories, "entities": part.entities}  # fmt: skip
    a = run_training(part.features, part.labels, part.specs, models_dir=tmp_path / "a",
                     declarations=part.declarations, **common)  # fmt: skip
    b = run_training(as_float32, inputs.labels, part.specs, models_dir=tmp_path / "b",
                     declarations=inputs.tables["declarations"], **common)  # fmt: skip
    assert a.fitted.booster.model_to_string() == b.fitted.booster.model_to_string()
    assert a.metrics["random_sample"]["auc"] == b.metrics["random_sample"]["auc"]


def test_train_from_partitions_through_the_cli(demo, mlflow_template, tmp_path, monkeypatch):
    from guomen.cli import app

    root, _ = demo
    config = {**SMALL, "selection": {"candidates": ["none"]}}
    with cli_project(tmp_path, root / "store", mlflow_template, "guomen-parts-test", config,
                     monkeypatch) as cfg:  # fmt: skip
        runner = CliRunner()
        res = runner.invoke(
            app, ["features", "build", "--store", str(root / "store"), "--out", "feats",
                  "--partition-months", "3"],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        assert "partitions -> feats" in res.output
        res = runner.invoke(
            app, ["train", "--config", str(cfg), "--features", "feats", "--max-rows", "6000"]
        )
        assert res.exit_code == 0, res.output
        assert "registered guomen-parts-test v1 as challenger" in res.output
        report = next((tmp_path / "models").glob("guomen-parts-test-*.report/metrics.json"))
        sample = json.loads(report.read_text())["sample"]
        assert sample["max_rows"] == 6000 and sample["rates"]["train"] < 1.0
        assert sample["kept"]["train"] < sample["rows"]["train"]
        bundle = next((tmp_path / "models").glob("guomen-parts-test-*/bundle.json"))
        assert json.loads(bundle.read_text())["metrics"]["sample"] == sample


def test_bad_cap_is_refused(demo, partitions: Path) -> None:
    root, _ = demo
    with pytest.raises(ValueError, match="max_rows"):
        load_partitioned_inputs(partitions, root / "store", test_months=4, validation_months=3,
                                max_rows=0)  # fmt: skip


def test_not_a_feature_folder(demo, tmp_path: Path) -> None:
    root, _ = demo
    with pytest.raises(FileNotFoundError, match="features build"):
        load_partitioned_inputs(tmp_path, root / "store", test_months=4, validation_months=3)


def test_model_from_partitions_is_within_tolerance_of_the_float64_model(
    demo, partitions: Path, tmp_path
) -> None:
    """Against the in-memory float64 features the trees can differ where the float32 rounding
    of the partitions moves a value across a bin boundary. The documented tolerance
    (docs/scale.md): random-sample test AUC within 0.01, test predictions rank-correlated above
    0.98, mean absolute probability difference below 0.005."""
    from scipy.stats import spearmanr

    from training.config import load_config
    from training.pipeline import run_training

    root, inputs = demo
    cfg = load_config(overrides={**SMALL, "selection": {"candidates": ["none"]}})
    part = load_partitioned_inputs(
        partitions, root / "store", test_months=cfg.split.test_months,
        validation_months=cfg.split.validation_months, max_rows=10**9,
    )  # fmt: skip
    common = {"config": cfg, "model_name": "m", "attributes": part.attributes,
              "categories": part.categories, "entities": part.entities}  # fmt: skip
    a = run_training(part.features, part.labels, part.specs, models_dir=tmp_path / "a",
                     declarations=part.declarations, **common)  # fmt: skip
    b = run_training(inputs.features, inputs.labels, part.specs, models_dir=tmp_path / "b",
                     declarations=inputs.tables["declarations"], **common)  # fmt: skip
    names = [s.name for s in part.specs]
    split = time_split(inputs.features["declared_at"], cfg.split.test_months,
                       cfg.split.validation_months)  # fmt: skip
    test = np.asarray(split.segment(inputs.features["declared_at"]) == TEST)
    X = inputs.features.loc[test, names].to_numpy(dtype=np.float64)
    pa_, pb = a.fitted.booster.predict(X), b.fitted.booster.predict(X)
    auc_gap = abs(a.metrics["random_sample"]["auc"] - b.metrics["random_sample"]["auc"])
    rho = spearmanr(pa_, pb).statistic
    mad = float(np.abs(pa_ - pb).mean())
    print(f"float32 vs float64: AUC gap {auc_gap:.4f}, Spearman {rho:.4f}, mean |dp| {mad:.5f}")
    assert auc_gap <= 0.01
    assert rho >= 0.98
    assert mad <= 0.005
