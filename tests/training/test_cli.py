"""End to end through the CLI: ``guomen train`` on a real (small) demo store, then ``promote``
and ``evaluate``, against a private copy of the migrated MLflow store."""

from __future__ import annotations

import pandas as pd
import yaml
from typer.testing import CliRunner

from guomen.cli import app
from tests.training.training_support import SMALL, cli_project


def test_train_promote_evaluate(demo, mlflow_template, tmp_path, monkeypatch):
    root, _ = demo
    config = {**SMALL, "selection": {"candidates": ["none", "random_upweight"]}}
    with cli_project(tmp_path, root / "store", mlflow_template, "guomen-cli-test", config,
                     monkeypatch) as cfg:  # fmt: skip
        runner = CliRunner()
        res = runner.invoke(app, ["train", "--config", str(cfg)])
        assert res.exit_code == 0, res.output
        assert "registered guomen-cli-test v1 as challenger" in res.output
        assert list((tmp_path / "models").glob("guomen-cli-test-*/manifest.json"))
        res = runner.invoke(app, ["promote", "--config", str(cfg)])
        assert res.exit_code == 0, res.output
        assert "first model: becomes champion" in res.output
        res = runner.invoke(app, ["promote", "--force"])
        assert res.exit_code != 0 and "reason" in res.output
        bundle = next((tmp_path / "models").glob("guomen-cli-test-*/bundle.json"))
        split = yaml.safe_load(bundle.read_text())["metrics"]["split"]
        start = pd.Timestamp(split["test_start"]).tz_convert("Asia/Shanghai").date()
        res = runner.invoke(
            app, ["evaluate", "--version", "champion", "--start", str(start), "--end", "2026-10-31",
                  "--out", str(tmp_path / "ev.json")],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        assert "AUC all" in res.output and (tmp_path / "ev.json").exists()
