"""``guomen backtest`` as users run it: a flat export of inspected rows with no code, and a run
killed part-way that continues from its last completed week to the same report."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.training.backtest.conftest import END, HELD_ASIDE, POLICY_SPECS, START

REPO = Path(__file__).resolve().parents[3]
GUOMEN = str(Path(sys.executable).with_name("guomen"))


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "GUOMEN_HOME": str(home)}


def _run(args: list[str], home: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([GUOMEN, *args], env=_env(home), cwd=home, capture_output=True,
                          text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def test_a_flat_export_of_inspected_rows_backtests_with_no_code(tmp_path) -> None:
    """The foreign flat layout, ingested with the shipped mapping: every row was inspected, so
    the recorded results are the universe; the run is logged to MLflow."""
    from mlflow import MlflowClient

    _run(["demo-data", "--layout", "flat", "--declarations", "8000", "--seed", "107",
          "--out", str(tmp_path / "src")], tmp_path)  # fmt: skip
    _run(["ingest", str(tmp_path / "src"), "--store", str(tmp_path / "store"), "--mapping",
          str(REPO / "docs/examples/foreign_flat_mapping.yaml")], tmp_path)  # fmt: skip
    proc = _run(["backtest", "--store", str(tmp_path / "store"), "--start", "2021-09-01",
                 "--end", "2021-12-31", "--policy", "random", "--policy", "legacy",
                 "--policy", "exploit", "--out", str(tmp_path / "bt")], tmp_path)  # fmt: skip
    assert "universe: all_inspected" in proc.stdout
    doc = json.loads((tmp_path / "bt" / "backtest.json").read_text())
    res = doc["results"]
    assert res["universe"]["mode"] == "all_inspected"
    t = {n: p["total"] for n, p in res["policies"].items()}
    assert t["exploit"]["inspected"] == t["random"]["inspected"] > 0
    assert t["exploit"]["retrainings"] == 4  # September to December, monthly
    # Found counts are recorded results (whole numbers), the same as what was revealed.
    assert t["exploit"]["found"] == t["exploit"]["found_revealed"]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlruns/mlflow.db")
    exp = client.get_experiment_by_name("guomen-backtest")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params["universe"] == "all_inspected"
    assert run.data.metrics["exploit.found"] == t["exploit"]["found"]
    assert doc["run"]["mlflow_run_id"] == run.info.run_id


def test_a_killed_run_continues_from_its_last_completed_week(tiny, tiny_run, tmp_path) -> None:
    store, truth = tiny
    out = tmp_path / "bt"
    args = ["backtest", "--store", str(store), "--start", START, "--end", END,
            "--ground-truth", str(truth), "--held-aside", str(HELD_ASIDE), "--warnings-every",
            "0", "--no-mlflow", "--out", str(out)]  # fmt: skip
    for p in POLICY_SPECS:
        args += ["--policy", p]
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen([GUOMEN, *args], env=_env(tmp_path), cwd=tmp_path, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    checkpoint = out / "state" / "checkpoint.json"
    deadline = time.monotonic() + 600
    done = 0
    while done < 3:
        assert first.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.2)
        if checkpoint.exists():
            try:
                done = json.loads(checkpoint.read_text())["weeks_done"]
            except ValueError:
                continue
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = json.loads(checkpoint.read_text())["weeks_done"]
    assert 3 <= killed_at < 13 and not (out / "backtest.json").exists()
    proc = _run(args, tmp_path)
    assert f"resuming after week {killed_at}" in proc.stdout
    doc = json.loads((out / "backtest.json").read_text())
    assert doc["run"]["resumed_after_week"] == killed_at
    assert doc["results"] == tiny_run[1]["results"]
