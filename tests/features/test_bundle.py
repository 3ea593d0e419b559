import json

import lightgbm as lgb
import numpy as np
import pytest

from features.bundle import (
    BundleVerificationError,
    Calibration,
    ModelBundle,
    load_bundle,
    manifest_digest,
    save_bundle,
)


@pytest.fixture(scope="module")
def bundle():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 4))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + rng.normal(size=500) > 0.5).astype(int)
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 7, "num_threads": 1},
        lgb.Dataset(X, y),
        num_boost_round=10,
    )
    return ModelBundle(
        booster=booster,
        calibration=Calibration(a=0.9, b=-0.2),
        feature_names=["f0", "f1", "f2", "f3"],
        policy={"budget": 0.05},
        metrics={"auc": 0.8},
        fingerprint="abc",
    ), X


def test_round_trip_gives_identical_scores(bundle, tmp_path):
    b, X = bundle
    path = save_bundle(b, tmp_path / "b1")
    loaded = load_bundle(path)
    np.testing.assert_array_equal(loaded.probability(X), b.probability(X))
    assert loaded.feature_names == b.feature_names
    assert loaded.metrics == {"auc": 0.8}
    logit = np.log(loaded.probability(X) / (1 - loaded.probability(X)))
    np.testing.assert_allclose(logit, 0.9 * b.margin(X) - 0.2, atol=1e-9)


def test_tampered_booster_is_refused(bundle, tmp_path):
    b, _ = bundle
    path = save_bundle(b, tmp_path / "b2")
    text = (path / "booster.txt").read_text()
    (path / "booster.txt").write_text(text.replace("leaf_value=", "leaf_value=1", 1))
    with pytest.raises(BundleVerificationError, match="booster.txt"):
        load_bundle(path)


def test_tampered_metadata_and_extra_files_are_refused(bundle, tmp_path):
    b, _ = bundle
    path = save_bundle(b, tmp_path / "b3")
    meta = json.loads((path / "bundle.json").read_text())
    meta["calibration"]["a"] = 5.0
    (path / "bundle.json").write_text(json.dumps(meta))
    with pytest.raises(BundleVerificationError):
        load_bundle(path)
    path4 = save_bundle(b, tmp_path / "b4")
    (path4 / "evil.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(BundleVerificationError, match="unexpected"):
        load_bundle(path4)


def test_registry_pinned_digest(bundle, tmp_path):
    b, _ = bundle
    path = save_bundle(b, tmp_path / "b5")
    load_bundle(path, expected_manifest_digest=manifest_digest(path))
    with pytest.raises(BundleVerificationError, match="registry"):
        load_bundle(path, expected_manifest_digest="0" * 64)


def test_bundles_are_immutable(bundle, tmp_path):
    b, _ = bundle
    save_bundle(b, tmp_path / "b6")
    with pytest.raises(FileExistsError):
        save_bundle(b, tmp_path / "b6")


def test_feature_set_and_code_maps_round_trip(bundle, tmp_path):
    """The chosen history keys and the categorical code maps travel inside the bundle."""
    b, X = bundle
    from dataclasses import replace

    chosen = replace(
        b,
        entities=["ent", "hs6", "org", "hs6_x_org"],
        categories={"decl_hs2_cat_now": ["84", "03"], "decl_org_cat_now": ["CN"]},
    )
    loaded = load_bundle(save_bundle(chosen, tmp_path / "b2"))
    assert loaded.entities == ["ent", "hs6", "org", "hs6_x_org"]
    assert loaded.categories == {"decl_hs2_cat_now": ["84", "03"], "decl_org_cat_now": ["CN"]}
    # A bundle written before these fields existed loads with the defaults.
    old = load_bundle(save_bundle(b, tmp_path / "b3"))
    assert old.entities is None and old.categories == {}
