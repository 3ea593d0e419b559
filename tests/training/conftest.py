"""Fixtures for the training tests: one migrated MLflow SQLite store per session (copied per
test), small synthetic frames, and a small demo store with real features."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.training.training_support import SMALL, repoint_artifacts
from training.config import TrainConfig, load_config


@pytest.fixture(scope="session")
def small_config() -> TrainConfig:
    return load_config(overrides=SMALL)


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite tracking store migrated once per session (migrations take seconds)."""
    from training.registry import EXPERIMENT, PROMOTION_EXPERIMENT, experiment_id

    root = tmp_path_factory.mktemp("mlflow-template")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    for name in (EXPERIMENT, PROMOTION_EXPERIMENT):
        experiment_id(uri, root / "artifacts", name)
    return root


@pytest.fixture()
def tracking(mlflow_template: Path, tmp_path: Path) -> tuple[str, Path]:
    """(tracking URI, artifact root) of a private copy of the migrated store."""
    target = tmp_path / "mlruns"
    shutil.copytree(mlflow_template, target)
    # The experiments' artifact locations point into the template; use the copy's own folder.
    repoint_artifacts(target, mlflow_template)
    return f"sqlite:///{target / 'mlflow.db'}", target / "artifacts"


@pytest.fixture(scope="session")
def synthetic():
    from tests.training.training_synth import synthetic_frames

    return synthetic_frames()


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory):
    """A small demo data set ingested into a store, with real features and labels."""
    from demo.generate import write_demo_data
    from features.ingest import ingest
    from training.pipeline import load_inputs

    root = tmp_path_factory.mktemp("demo")
    write_demo_data(root / "src", n_declarations=30_000, seed=11)
    ingest(root / "src", root / "store")
    inputs = load_inputs(root / "store")
    return root, inputs


@pytest.fixture(scope="session")
def trained(demo, small_config: TrainConfig, tmp_path_factory: pytest.TempPathFactory):
    """One training run on the small demo store (shared by the behavioural tests)."""
    from training.pipeline import load_ground_truth, run_training

    root, inputs = demo
    return run_training(
        inputs.features,
        inputs.labels,
        inputs.specs,
        config=small_config,
        models_dir=tmp_path_factory.mktemp("models"),
        model_name="guomen-test",
        declarations=inputs.tables["declarations"],
        categories=inputs.categories,
        credit_ratings=inputs.tables["credit_ratings"],
        attributes=inputs.attributes,
        store_fingerprint=inputs.store_fingerprint,
        ground_truth=load_ground_truth(root / "src" / "ground_truth" / "declaration_truth.parquet"),
    )
