from pathlib import Path

import pytest
from pydantic import ValidationError

from guomen.settings import Settings


def test_env_prefix_and_types(monkeypatch):
    monkeypatch.setenv("GUOMEN_PORT", "8123")
    monkeypatch.setenv("GUOMEN_TIMEZONE", "Europe/Berlin")
    s = Settings()
    assert s.port == 8123 and s.timezone == "Europe/Berlin"


def test_invalid_values_fail_at_start_up(monkeypatch):
    monkeypatch.setenv("GUOMEN_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValidationError, match="timezone"):
        Settings()
    monkeypatch.setenv("GUOMEN_TIMEZONE", "Asia/Shanghai")
    monkeypatch.setenv("GUOMEN_PORT", "99999")
    with pytest.raises(ValidationError, match="port"):
        Settings()


def test_secret_is_not_printed():
    s = Settings(monitoring_secret="s3cret-value")
    assert "s3cret-value" not in repr(s) and "s3cret-value" not in str(s.model_dump())


def test_home_moves_every_path_together(monkeypatch, tmp_path):
    """GUOMEN_HOME resolves the store, snapshot, models, MLflow and database to one root."""
    monkeypatch.setenv("GUOMEN_HOME", str(tmp_path))
    s = Settings()
    for path in (s.store_dir, s.snapshot_dir, s.models_dir, s.mlflow_artifact_root):
        assert path.is_absolute() and path.is_relative_to(tmp_path), path
    assert s.store_dir.parent == s.snapshot_dir.parent == tmp_path / "data"
    assert s.database_url == f"sqlite:///{tmp_path}/data/guomen.db"
    assert s.mlflow_tracking_uri == f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    assert s.data_dir == tmp_path / "data"


def test_absolute_paths_and_other_databases_are_kept(tmp_path):
    s = Settings(
        home=tmp_path,
        store_dir=Path("/srv/store"),
        database_url="postgresql+psycopg://u@h/db",
        mlflow_tracking_uri="sqlite:////var/mlflow.db",
    )
    assert s.store_dir == Path("/srv/store")
    assert s.database_url == "postgresql+psycopg://u@h/db"
    assert s.mlflow_tracking_uri == "sqlite:////var/mlflow.db"
    assert s.models_dir == tmp_path / "models"
