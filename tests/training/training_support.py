"""Training-test settings shared by ``conftest`` and the tests (a module of its own:
``conftest`` is not importable by name across test folders)."""

from __future__ import annotations

from pathlib import Path

SMALL = {
    "lightgbm": {
        "num_boost_round": 40,
        "early_stopping_rounds": 10,
        "min_data_in_leaf": 20,
        "num_leaves": 15,
    },
    "evaluation": {"shap_sample": 200},
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
