"""Rescoring from partitioned features: streamed time partitions give the scores of the same
features held in memory, and partitions of another feature set are refused."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.build import build_labels
from features.bundle import ModelBundle, load_bundle, manifest_digest, save_bundle
from features.categorical import fit_code_maps
from features.partitioned import StoreSource, build_partitioned
from features.registry import feature_specs
from features.store import Store
from policy.tiers import derive_policy
from serving.rescore import rescore

AS_OF = "2026-06-30"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from demo.generate import write_demo_data
    from features.ingest import ingest
    from training.calibrate import fit_platt

    base = tmp_path_factory.mktemp("streamed")
    write_demo_data(base / "demo", n_declarations=6000, seed=12)
    ingest(base / "demo", base / "store")
    store = Store(base / "store")
    tables = store.tables()
    maps = fit_code_maps(tables["declarations"], store.attributes)
    build_partitioned(
        StoreSource(base / "store"), base / "parts", store.attributes, categories=maps,
        partition_months=2,
    )  # fmt: skip
    files = sorted((base / "parts" / "features").glob("part-*.parquet"))
    features = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    labels = build_labels(tables).set_index("declaration_id").loc[features["declaration_id"]]
    specs = feature_specs(store.attributes)
    names = [s.name for s in specs]
    X = features[names].to_numpy(np.float64)
    inspected = labels["inspected"].to_numpy()
    y = labels["nonconforming"].to_numpy()[inspected]
    half = int(inspected.sum()) // 2
    params = {"objective": "binary", "verbose": -1, "num_leaves": 7, "min_data_in_leaf": 5,
              "num_threads": 1, "seed": 1}  # fmt: skip
    booster = lgb.train(params, lgb.Dataset(X[inspected][:half], y[:half]), num_boost_round=20)
    cal = fit_platt(booster.predict(X[inspected][half:], raw_score=True), y[half:])
    bundle = ModelBundle(
        booster=booster,
        calibration=cal,
        feature_names=names,
        feature_specs=[s.to_dict() for s in specs],
        policy=derive_policy(cal.probability(booster.predict(X, raw_score=True))).to_dict(),
        model_name="guomen-risk",
        model_version="3",
        categories=maps,
    )
    path = save_bundle(bundle, base / "bundle")
    return {
        "base": base,
        "tables": tables,
        "attributes": store.attributes,
        "features": features,
        "bundle": load_bundle(path, manifest_digest(path)),
    }


def _scored(root: Path) -> pd.DataFrame:
    files = sorted((root / "scored").glob("part-*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def test_streamed_partitions_score_like_the_frame_in_memory(world, tmp_path: Path) -> None:
    common = {
        "bundle": world["bundle"],
        "attributes": world["attributes"],
        "credit_ratings": world["tables"]["credit_ratings"],
        "enterprises": world["tables"]["enterprises"],
        "partitions": 4,
        "period_days": 200,
    }
    streamed = rescore(AS_OF, out_dir=tmp_path / "a", feature_dir=world["base"] / "parts", **common)
    framed = rescore(AS_OF, out_dir=tmp_path / "b", features=world["features"], **common)
    assert streamed.declarations == framed.declarations > 500
    a, b = _scored(streamed.root), _scored(framed.root)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(
        pd.read_parquet(streamed.profiles_path).drop(columns=["run_id"]),
        pd.read_parquet(framed.profiles_path).drop(columns=["run_id"]),
    )
    # Resumed: the features stage is not redone, the result is the same.
    again = rescore(AS_OF, out_dir=tmp_path / "a", feature_dir=world["base"] / "parts", **common)
    assert again.run_id == streamed.run_id
    pd.testing.assert_frame_equal(_scored(again.root), a)


def test_partitions_of_another_feature_set_are_refused(world, tmp_path: Path) -> None:
    build_partitioned(
        StoreSource(world["base"] / "store"), tmp_path / "other", world["attributes"],
        entities=["ent", "hs6_x_org"],
    )  # fmt: skip
    with pytest.raises(ValueError, match="lack columns|history keys"):
        rescore(
            AS_OF,
            bundle=world["bundle"],
            out_dir=tmp_path / "out",
            feature_dir=tmp_path / "other",
            credit_ratings=world["tables"]["credit_ratings"],
            enterprises=world["tables"]["enterprises"],
        )
