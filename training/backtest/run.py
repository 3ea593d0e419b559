"""``guomen backtest``: read the store, replay (resuming a killed run), report, log to MLflow."""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features.progress import Progress, no_progress
from training.backtest.engine import Backtest, BacktestSpec, load_world, training_config
from training.backtest.outbreaks import median_delay, outbreak_delays
from training.backtest.policies import Policy
from training.backtest.report import (
    auc_trend,
    compare,
    log_to_mlflow,
    monthly_evaluation,
    reference_of,
    totals,
    write_report,
)


def results_of(bt: Backtest, store_dir: Path) -> dict[str, Any]:
    """The deterministic results of a finished replay (the ``results`` of ``backtest.json``)."""
    w = bt.world
    u = w.universe
    spec = bt.spec
    weeks = [str(ws.tz_convert(spec.timezone).date()) for ws, _ in bt.weeks]
    held = (
        f"{spec.held_aside_share:g} of every week's declarations, drawn with the seed (never "
        "shown to a policy)"
        if u.mode != "inspected_only"
        else "the store's random-selection inspections of each week"
    )
    policies: dict[str, dict[str, Any]] = {}
    for name, st in bt.states.items():
        recs = [r for r in bt.records if r["policy"] == name]
        has_prob = st.policy.needs_model
        months = monthly_evaluation(weeks, st.eval_rows, st.eval_score, u.nonconforming, has_prob)
        entry: dict[str, Any] = {
            "kind": st.policy.kind,
            "total": totals(recs),
            "weeks": [{k: v for k, v in r.items() if k != "policy"} for r in recs],
            "months": months,
            "auc_trend": auc_trend(months),
            "outbreaks": [],
            "retrain_notes": st.retrain_notes,
        }
        policies[name] = entry
    if spec.warnings_step_days and w.outbreaks and w.truth is not None:
        t0 = time.perf_counter()
        for name, st in bt.states.items():
            bt.say(f"warnings under {name}")
            rows, rnd = st.selected()
            own = u.inspection_rows(rows, rnd, w.ids)
            insp = pd.concat([w.history[list(own.columns)], own], ignore_index=True)
            insp["inspected_at"] = pd.to_datetime(insp["inspected_at"], utc=True)
            obs = outbreak_delays(
                w.tables, insp, w.outbreaks, w.truth, spec.start_ts, spec.end_ts,
                spec.warnings_step_days,
            )  # fmt: skip
            policies[name]["outbreaks"] = obs
            policies[name]["total"]["outbreaks_warned"] = sum(o["warned"] for o in obs)
            policies[name]["total"]["outbreaks_planted"] = len(obs)
            policies[name]["total"]["median_warning_delay_days"] = median_delay(obs)
        bt.timings["warnings_s"] = time.perf_counter() - t0
    comparisons: dict[str, Any] = {}
    for key, kind in (("vs_legacy", "legacy"), ("vs_exploit", "exploit")):
        ref = reference_of(policies, kind)
        if ref is not None:
            comparisons[key] = {"reference": ref, "policies": compare(policies, ref)}
    return {
        "config": {
            "store": str(store_dir),
            **{k: v for k, v in asdict(spec).items()},
            "policies": list(policies),
            "training": {
                "fixed": "default history keys; no key selection, no capacity grid, "
                "selection-bias candidate none",
                "lightgbm": bt.config.lightgbm.model_dump(),
                "validation_months": bt.config.split.validation_months,
                "severity_weights": bt.config.severity_weights.model_dump(),
            },
        },
        "universe": {
            "mode": u.mode,
            "note": u.note,
            "held_aside": held,
            "eligible_in_period": int(
                (u.eligible & (w.t_ns >= spec.start_ts.value) & (w.t_ns < spec.end_ts.value)).sum()
            ),
        },
        "weeks": weeks,
        "policies": policies,
        "comparisons": comparisons,
    }


def run_backtest(
    store_dir: Path,
    out: Path,
    spec: BacktestSpec,
    policies: list[Policy],
    *,
    ground_truth: Path | None = None,
    config_path: Path | None = None,
    tracking_uri: str | None = None,
    artifact_root: Path | str | None = None,
    progress: Progress | None = None,
    stop_after: int | None = None,
) -> dict[str, Any] | None:
    """Replay ``spec`` for ``policies`` on the store and write the report into ``out``.

    A run whose ``out/state`` holds a checkpoint of the same inputs continues after its last
    completed week. ``stop_after`` ends the call after that many weeks (returns None).

    Returns
    -------
    dict or None
        ``backtest.json``'s content, or None when stopped early.
    """
    t0 = time.perf_counter()
    say = progress or no_progress
    need = any(p.needs_model or p.needs_features for p in policies)
    world = load_world(store_dir, spec, ground_truth, need, say)
    t_load = time.perf_counter() - t0
    bt = Backtest(world, spec, policies, out, training_config(config_path), say)
    done = bt.resume()
    if done:
        say(f"resuming after week {done} of {len(bt.weeks)}")
    if not bt.run(stop_after=stop_after):
        return None
    results = results_of(bt, store_dir)
    run = {
        "written": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - t0,
        "load_seconds": t_load,
        "timings": bt.timings,
        "resumed_after_week": done,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    write_report(Path(out), results, run)
    if tracking_uri:
        run["mlflow_run_id"] = log_to_mlflow(
            Path(out), results, tracking_uri, artifact_root or Path(out) / "mlruns"
        )
        write_report(Path(out), results, run)
    return {"results": results, "run": run}
