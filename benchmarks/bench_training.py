"""Benchmark the whole training pipeline on demo data (default 1M declarations, seed 7).

Steps timed separately: demo generation and ingest (setup, not counted in the target), then
features + training (all selection-bias candidates) + calibration + evaluation + baselines +
plots + bundle, and MLflow registration. Writes ``benchmarks/results/training.json`` and
``training.md`` with model vs baselines vs oracle.

Usage: ``.venv/bin/python benchmarks/bench_training.py [--declarations N] [--work DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _mem_gib() -> float:
    with open("/proc/meminfo") as fh:
        kb = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
    return round(kb / 2**20, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--declarations", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--work", type=Path, default=Path("/tmp/guomen-bench-training"))
    ap.add_argument("--keep", action="store_true", help="reuse generated data in --work")
    args = ap.parse_args()

    from demo.generate import write_demo_data
    from features.ingest import ingest
    from training.config import load_config
    from training.pipeline import headline, load_ground_truth, load_inputs, run_training
    from training.registry import ensure_sqlite_parent, log_and_register
    from training.report import budget_table, ranking_table

    work = args.work
    src, store = work / "src", work / "store"
    seconds: dict[str, float] = {}
    if not (args.keep and (store / "manifest.json").exists()):
        shutil.rmtree(work, ignore_errors=True)
        t0 = time.perf_counter()
        write_demo_data(src, n_declarations=args.declarations, seed=args.seed)
        seconds["setup.demo_data"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ingest(src, store)
        seconds["setup.ingest"] = time.perf_counter() - t0
    cfg = load_config()
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    inputs = load_inputs(store)
    seconds["features"] = time.perf_counter() - t0
    truth = load_ground_truth(src / "ground_truth" / "declaration_truth.parquet")
    result = run_training(
        inputs.features,
        inputs.labels,
        inputs.specs,
        config=cfg,
        models_dir=work / "models",
        model_name="guomen-risk",
        declarations=inputs.tables["declarations"],
        categories=inputs.categories,
        tables=inputs.tables,
        credit_ratings=inputs.tables["credit_ratings"],
        attributes=inputs.attributes,
        store_fingerprint=inputs.store_fingerprint,
        ground_truth=truth,
    )
    for k, v in result.timings.items():
        seconds[f"training.{k}"] = v
    t0 = time.perf_counter()
    uri = f"sqlite:///{work / 'mlruns' / 'mlflow.db'}"
    ensure_sqlite_parent(uri)
    reg = log_and_register(
        result, cfg, tracking_uri=uri, artifact_root=work / "mlruns" / "artifacts",
        model_name="guomen-risk",
    )  # fmt: skip
    seconds["register"] = time.perf_counter() - t0
    seconds["total_features_train_evaluate_register"] = time.perf_counter() - t_all

    b = f"{cfg.policy.budget:g}"
    model_b = result.metrics["budgets"][b]
    targets = {
        "precision_at_5_vs_oracle": model_b["truth"]["ratio"],
        "critical_recall_at_5_vs_critical_oracle": model_b["truth"]["critical_ratio"],
        "critical_recall_at_5_vs_p_oracle": model_b["truth"]["critical_ratio_vs_p_oracle"],
        "ece_test_random_sample": result.metrics["random_sample"]["ece"],
        "ece_test_all_inspected": result.metrics["all_inspected"]["ece"],
        "beats_every_baseline_expected_precision_at_5": all(
            model_b["truth"]["expected_precision"] > v["budgets"][b]["truth"]["expected_precision"]
            for v in result.baselines.values()
        ),
        "beats_every_baseline_precision_at_5_random_sample": all(
            model_b["random_sample"]["precision"] > v["budgets"][b]["random_sample"]["precision"]
            for v in result.baselines.values()
        ),
        "beats_every_baseline_precision_at_5_all_inspected": all(
            model_b["all_inspected"]["precision"] > v["budgets"][b]["all_inspected"]["precision"]
            for v in result.baselines.values()
        ),
        "total_seconds": seconds["total_features_train_evaluate_register"],
    }
    payload = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "ram_gib": _mem_gib(),
            "python": platform.python_version(),
            "loadavg_at_end": os.getloadavg(),
        },
        "declarations": args.declarations,
        "seed": args.seed,
        "seconds": seconds,
        "counts": result.counts,
        "split": result.split,
        "model_size": result.fitted.size,
        "correction_kept": result.fitted.correction,
        "candidates": result.candidates,
        "calibration": {"a": result.fitted.calibration.a, "b": result.fitted.calibration.b},
        "targets": targets,
        "headline": headline(result.metrics, cfg.policy.budget),
        "model": result.metrics,
        "baselines": result.baselines,
        "registered": {"version": reg.version, "run_id": reg.run_id},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "training.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")
    results = {"model": result.metrics, **result.baselines}
    oracle_rows = []
    for name, m in results.items():
        t = m["budgets"][b]["truth"]
        oracle_rows.append(
            f"| {name} | {t['expected_found']:.1f} | {t['oracle_found']:.1f} | {t['ratio']:.3f} | "
            f"{t['expected_critical_found']:.2f} | {t['oracle_critical_found']:.2f} | "
            f"{t['critical_ratio']:.3f} | {t['critical_ratio_vs_p_oracle']:.3f} |"
        )
    md = [
        f"# Training benchmark ({payload['date']})",
        "",
        f"Machine: {payload['machine']['nproc']} cores, {payload['machine']['ram_gib']} GiB RAM; "
        f"load average at the end {tuple(round(x, 1) for x in payload['machine']['loadavg_at_end'])} "
        "(shared machine). "
        f"Demo data: {args.declarations:,} declarations, seed {args.seed}. "
        f"Test period {result.split['test_start'][:10]} .. {result.split['test_end'][:10]} "
        f"({result.counts['test_declarations']:,} declarations, "
        f"{result.counts['test_labelled']:,} inspected, "
        f"{result.counts['test_random_sample']:,} in the random sample).",
        "",
        "## Time (seconds)",
        "",
        "| step | seconds |",
        "|---|---:|",
        *[f"| {k} | {v:.1f} |" for k, v in seconds.items()],
        "",
        f"Model: {result.fitted.size['trees']} trees, {result.fitted.size['leaves_max']} leaves max, "
        f"depth {result.fitted.size['depth_max']}; selection correction kept: "
        f"{result.fitted.correction}.",
        "",
        "## Targets",
        "",
        "| target | value |",
        "|---|---|",
        *[
            f"| {k} | {v if isinstance(v, bool) else round(float(v), 4)} |"
            for k, v in targets.items()
        ],
        "",
        f"## Expected nonconformities at a {float(b) * 100:g}% budget (ground truth)",
        "",
        "| scorer | expected found | oracle | ratio | expected critical | critical oracle | "
        "ratio | ratio vs p-oracle |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *oracle_rows,
        "",
        "## Ranking and calibration (test period)",
        "",
        ranking_table(results),
        "",
        "## Budgets, random monitoring sample (unbiased)",
        "",
        budget_table(results, "random_sample"),
        "",
        "## Budgets, all inspected declarations",
        "",
        budget_table(results, "all_inspected"),
        "",
    ]
    (RESULTS / "training.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
