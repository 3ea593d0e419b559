"""Training-test settings shared by ``conftest`` and the tests (a module of its own:
``conftest`` is not importable by name across test folders)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

SMALL = {
    "lightgbm": {
        "num_boost_round": 40,
        "early_stopping_rounds": 10,
        "min_data_in_leaf": 20,
        "num_leaves": 15,
    },
    "evaluation": {"shap_sample": 200},
    # The key selection and the capacity grid have their own tests (test_select.py); the other
    # tests train the default keys at the size above.
    "features": {"select": False},
    "capacity": {"grid": False},
}
# Small but real: selection over every candidate key, a two-point capacity grid.
SELECTING = {
    **SMALL,
    "features": {"select": True, "prefixes": [2, 4, 8], "max_entities": 8, "chunk": 24},
    "capacity": {
        "grid": True,
        "leaves": [7, 15],
        "min_leaf_shares": [0.002],
        "feature_fractions": [0.8],
    },
}


def repoint_artifacts(target: Path, template: Path) -> None:
    """Point a copied MLflow store's experiment artifact locations at the copy's own folder."""
    import sqlite3

    con = sqlite3.connect(target / "mlflow.db")
    try:
        con.execute(
            "UPDATE experiments SET artifact_location = REPLACE(artifact_location, ?, ?)",
            (template.as_uri(), target.as_uri()),
        )
        con.commit()
    finally:
        con.close()


@contextmanager
def cli_project(
    folder: Path,
    store: Path,
    mlflow_template: Path,
    model_name: str,
    config: dict[str, Any],
    monkeypatch: Any,
) -> Iterator[Path]:
    """A project folder for ``guomen`` commands; yields its training config file.

    A private copy of the migrated MLflow store, the folder as working directory, the store and
    model name in the environment, ``config`` written as ``train.yaml``; the settings are read
    afresh inside and after.
    """
    from guomen.settings import get_settings

    shutil.copytree(mlflow_template, folder / "mlruns")
    repoint_artifacts(folder / "mlruns", mlflow_template)
    monkeypatch.chdir(folder)
    monkeypatch.setenv("GUOMEN_STORE_DIR", str(store))
    monkeypatch.setenv("GUOMEN_MODEL_NAME", model_name)
    cfg = folder / "train.yaml"
    cfg.write_text(yaml.safe_dump(config))
    get_settings.cache_clear()
    try:
        yield cfg
    finally:
        get_settings.cache_clear()
