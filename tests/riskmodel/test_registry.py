"""The one loader: resolves aliases and versions, refuses a bundle the registry does not vouch for."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import lightgbm as lgb
import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from features.bundle import (
    BundleVerificationError,
    Calibration,
    ModelBundle,
    manifest_digest,
    save_bundle,
)
from riskmodel.registry import (
    BUNDLE_ARTIFACT,
    BUNDLE_DIR_TAG,
    MANIFEST_TAG,
    RegistryError,
    load_model,
    load_ref,
    resolve,
    served_entities,
)

NAME = "riskmodel-test"


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> tuple[str, Path, str]:
    root = tmp_path_factory.mktemp("registry")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 4))
    y = (X[:, 0] > 0).astype(float)
    booster = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(X, y), 5)
    bundle = ModelBundle(booster, Calibration(1.1, -0.2), [f"f{i}" for i in range(4)])
    path = save_bundle(bundle, root / "bundle")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(path), BUNDLE_ARTIFACT)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model(NAME)
    mv = client.create_model_version(
        NAME,
        f"runs:/{run.info.run_id}/{BUNDLE_ARTIFACT}",
        run_id=run.info.run_id,
        tags={MANIFEST_TAG: manifest_digest(path), BUNDLE_DIR_TAG: str(path)},
    )
    client.set_registered_model_alias(NAME, "champion", mv.version)
    return uri, path, str(mv.version)


def test_alias_and_version_load_the_same_verified_bundle(registry, tmp_path):
    uri, path, version = registry
    by_alias = load_model(uri, NAME, "champion", cache_dir=tmp_path)
    by_version = load_model(uri, NAME, version, cache_dir=tmp_path)
    assert by_alias.ref.version == by_version.ref.version == version
    assert by_alias.ref.alias == "champion" and by_version.ref.alias is None
    assert by_alias.path == path  # the local copy, its manifest matching the pinned digest
    assert by_alias.bundle.model_version == version


def test_a_tampered_local_copy_is_refused_and_a_stale_one_replaced_by_the_download(
    registry, tmp_path
):
    uri, path, version = registry
    ref = resolve(uri, NAME, version)
    tampered = tmp_path / "tampered"
    shutil.copytree(path, tampered)
    (tampered / "booster.txt").write_text("tampered")
    with pytest.raises(BundleVerificationError):  # manifest pinned, booster differs: refused
        load_ref(replace(ref, bundle_dir=str(tampered)), tracking_uri=uri, home=tmp_path,
                 cache_dir=tmp_path / "cache")  # fmt: skip
    stale = tmp_path / "stale"
    shutil.copytree(path, stale)
    (stale / "manifest.json").write_text("{}")
    loaded = load_ref(replace(ref, bundle_dir=str(stale)), tracking_uri=uri, home=tmp_path,
                      cache_dir=tmp_path / "cache")  # fmt: skip
    assert loaded.path == tmp_path / "cache" / NAME / version  # downloaded from the run
    with pytest.raises(BundleVerificationError):  # a download not matching the pin is refused
        load_ref(replace(ref, bundle_dir=None, manifest_sha256="0" * 64), tracking_uri=uri,
                 home=tmp_path, cache_dir=tmp_path / "cache2")  # fmt: skip


def test_unknown_alias_is_a_registry_error(registry):
    with pytest.raises(RegistryError):
        resolve(registry[0], NAME, "nonexistent")


def test_served_entities_union_the_registered_bundles_and_name_the_missing_aliases(
    registry, tmp_path
):
    from features.registry import default_entities

    uri, _, _ = registry
    missing: list[str] = []
    keys = served_entities(uri, NAME, {}, home=tmp_path, cache_dir=tmp_path / "cache",
                           on_unreadable=lambda alias, exc: missing.append(alias))  # fmt: skip
    # the champion bundle chose no set: it needs the default one; no challenger is registered
    assert keys == list(default_entities({})) and missing == ["challenger"]
    nothing = served_entities(uri, "no-such-model", {}, home=tmp_path, cache_dir=tmp_path / "c")
    assert nothing is None  # no model registered: the snapshot keeps the default set
