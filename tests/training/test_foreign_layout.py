"""A file in a foreign layout, loaded through a mapping, trains too, its extra attributes used.

The whole chain on the flat foreign export (``demo.foreign``): write the CSV, ingest it with
``docs/examples/foreign_flat_mapping.yaml``, build features from the store, train, and check that
the mapping's extra attributes reach the model and that the booster actually splits on them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from demo.foreign import write_foreign_flat
from features.bundle import load_bundle
from features.ingest import ingest
from features.mapping import load_mapping
from features.registry import feature_specs
from training.config import load_config
from training.pipeline import load_inputs, run_training

MAPPING = Path(__file__).resolve().parents[2] / "docs" / "examples" / "foreign_flat_mapping.yaml"
ROWS = 20_000

# Small and quick: the point is the chain, not the model's quality.
CONFIG = {
    "lightgbm": {
        "num_boost_round": 40,
        "early_stopping_rounds": 10,
        "min_data_in_leaf": 30,
        "num_leaves": 15,
    },
    "evaluation": {"shap_sample": 200},
}


@pytest.fixture(scope="module")
def foreign_run(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("foreign")
    write_foreign_flat(root / "src" / "foreign_flat.csv", ROWS, seed=5)
    report = ingest(root / "src", root / "store", mapping_file=MAPPING)
    assert report.wrote
    inputs = load_inputs(root / "store")
    result = run_training(
        inputs.features,
        inputs.labels,
        inputs.specs,
        config=load_config(overrides=CONFIG),
        models_dir=root / "models",
        model_name="guomen-foreign-test",
        declarations=inputs.tables["declarations"],
        categories=inputs.categories,
        credit_ratings=inputs.tables["credit_ratings"],
        attributes=inputs.attributes,
        store_fingerprint=inputs.store_fingerprint,
    )
    return inputs, result


def test_mapping_attributes_become_model_features(foreign_run):
    inputs, result = foreign_run
    declared = load_mapping(MAPPING).attributes
    assert inputs.attributes == declared
    n_num = sum(kind == "numeric" for kind in declared.values())
    n_cat = sum(kind == "categorical" for kind in declared.values())
    assert n_num >= 1 and n_cat >= 1
    base = {s.name for s in feature_specs()}
    attr_features = [s.name for s in feature_specs(declared) if s.name not in base]
    # one pass-through feature per numeric attribute; per categorical one, five aggregates of
    # its history and its native category code
    assert len(attr_features) == n_num + 6 * n_cat
    assert {f"attr_{n}_cat_now" for n, k in declared.items() if k == "categorical"} <= set(
        attr_features
    )
    bundle = load_bundle(result.bundle_dir)
    assert set(attr_features) <= set(bundle.feature_names)
    assert bundle.attributes == declared
    assert set(bundle.feature_names) == set(result.fitted.booster.feature_name())


def test_booster_splits_on_attributes(foreign_run):
    _, result = foreign_run
    booster = result.fitted.booster
    gain = dict(zip(booster.feature_name(), booster.feature_importance("gain"), strict=True))
    attr_gain = {k: v for k, v in gain.items() if k.startswith("attr_")}
    assert any(v > 0 for v in attr_gain.values())
    # The generator plants risk in payment type 43 and import type 29: their features are used.
    planted = sum(
        v for k, v in attr_gain.items() if k.startswith(("attr_payment_type_", "attr_import_type_"))
    )
    assert planted > 0


def test_foreign_model_ranks_and_keeps_no_correction(foreign_run):
    _, result = foreign_run
    test = result.metrics["all_inspected"]
    assert test["n"] > 1_000 and test["positives"] > 50
    assert test["auc"] > 0.6
    assert np.isfinite(test["ece"]) and test["ece"] < 0.05
    # Every row of the export is inspected and none is a random monitoring draw: a selection
    # correction cannot be judged, so only "none" is trained and kept.
    assert result.counts["test_random_sample"] == 0
    assert result.fitted.correction == "none"
    assert set(result.fitted.candidates) == {"none"}
