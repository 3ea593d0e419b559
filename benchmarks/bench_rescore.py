"""Batch rescoring speed: 1M declarations with exact explanations, local and on Dask.

Side by side in one run, on the same model and rows:

- raw prediction without explanations (``Booster.predict``, 2 threads): the ceiling;
- exact TreeSHAP as rescoring computes it (``riskmodel.treeshap``), 1 thread and 2 threads over
  row chunks (the local engine's split);
- ``shap.TreeExplainer`` (tree-path-dependent, the same values) and LightGBM ``pred_contrib`` on
  a subset;
- end-to-end ``rescore`` from the store's tables (point-in-time features, partition files,
  scoring with exact SHAP, aggregation, profiles, Parquet and SQLite writes) for periods holding
  about 100k, 300k and 1M declarations, with the local engine (2 threads) and the Dask engine
  (``LocalCluster``, 2 worker processes x 1 thread, started once before the runs).

Data: ``demo.generate.write_demo_data`` (1M declarations over about three years), ingested into a
store. Model: trained by ``training.pipeline.run_training`` with ``training/default_config.yaml``
(what ``guomen train`` runs: selection-bias candidates, early stopping, Platt calibration, policy),
once per work folder and reused by later runs with the same ``--work``.

The machine is shared: each run records the load average and the process CPU time; compare
rows in the same run (ratios), not across runs.

Usage: ``.venv/bin/python benchmarks/bench_rescore.py [--sizes 100000,300000,1000000]
[--work benchmarks/work/rescore]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.provenance import machine  # noqa: E402
from demo.generate import write_demo_data  # noqa: E402
from features.build import build_offline  # noqa: E402
from features.bundle import ModelBundle, load_bundle  # noqa: E402
from features.ingest import ingest  # noqa: E402
from features.store import Store  # noqa: E402
from serving.rescore import rescore  # noqa: E402
from serving.rescore.explain import MatrixScorer  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TIMEZONE = "Asia/Shanghai"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def train_or_reuse(store_dir: Path, work: Path) -> tuple[ModelBundle, dict[str, Any]]:
    """The champion-to-be: ``run_training`` with the default config, as ``guomen train`` runs it.

    The bundle and a note on how it was made are kept in ``work``; a later run reuses them.
    """
    from training.config import load_config
    from training.pipeline import load_inputs, run_training
    from training.train import model_size

    note_file = work / "model.json"
    if note_file.is_file():
        note = json.loads(note_file.read_text())
        bundle_dir = Path(note["bundle_dir"])
        if bundle_dir.is_dir():
            note["reused"] = True
            return load_bundle(bundle_dir), note
    t = time.perf_counter()
    inputs = load_inputs(store_dir)
    result = run_training(
        inputs.features,
        inputs.labels,
        inputs.specs,
        config=load_config(),
        models_dir=work / "models",
        model_name="guomen-risk",
        declarations=inputs.tables["declarations"],
        credit_ratings=inputs.tables["credit_ratings"],
        attributes=inputs.attributes,
        store_fingerprint=inputs.store_fingerprint,
    )
    note = {
        "bundle_dir": str(result.bundle_dir),
        "trained_by": "training.pipeline.run_training, training/default_config.yaml",
        "training_seconds": round(time.perf_counter() - t, 1),
        "correction": result.fitted.correction,
        "size": model_size(result.fitted.booster),
        "reused": False,
    }
    note_file.write_text(json.dumps(note, indent=2))
    return load_bundle(result.bundle_dir), note


def rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds > 0 else float("nan")


def timed(fn: Any) -> tuple[Any, float, float]:
    """``fn()``, its wall seconds and this process's CPU seconds."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def side_by_side(bundle: ModelBundle, X: np.ndarray, shap_subset: int) -> dict[str, Any]:
    """Rows/s of the ceiling, our exact SHAP (1 and 2 threads), shap and pred_contrib."""
    import shap

    booster = bundle.booster
    scorer = MatrixScorer(bundle, threads=1)
    scorer.score(X[:10])  # numba compile / cache load
    out: dict[str, Any] = {"load_start": load(), "explainer": scorer.explainer_method}
    _, w, c = timed(lambda: booster.predict(X, raw_score=True, num_threads=2))
    out["predict_2threads"] = {"rows": len(X), "rows_per_s": rate(len(X), w), "cpu_s": c}
    sub = X[: min(100_000, len(X))]
    _, w, c = timed(lambda: scorer.explainer.contributions(sub))
    out["exact_shap_1thread"] = {"rows": len(sub), "rows_per_s": rate(len(sub), w), "cpu_s": c}
    step = 4096
    with ThreadPoolExecutor(2) as pool:
        _, w, c = timed(
            lambda: list(
                pool.map(
                    lambda s: scorer.explainer.contributions(sub[s : s + step]),
                    range(0, len(sub), step),
                )
            )
        )
    out["exact_shap_2threads"] = {"rows": len(sub), "rows_per_s": rate(len(sub), w), "cpu_s": c}
    rows = X[:shap_subset]
    explainer = shap.TreeExplainer(booster)
    sv, w, c = timed(lambda: explainer.shap_values(rows))
    out["shap_treeexplainer"] = {"rows": len(rows), "rows_per_s": rate(len(rows), w), "cpu_s": c}
    _, w, c = timed(lambda: booster.predict(rows, pred_contrib=True, num_threads=2))
    out["lightgbm_pred_contrib_2threads"] = {
        "rows": len(rows),
        "rows_per_s": rate(len(rows), w),
        "cpu_s": c,
    }
    ours = scorer.explainer.contributions(rows)
    sv = np.asarray(sv[1] if isinstance(sv, list) else sv)
    out["max_abs_diff_ours_vs_shap"] = float(np.max(np.abs(ours[:, :-1] - sv)))
    out["load_end"] = load()
    return out


def period_for(declared_at: pd.Series, n: int, as_of: str) -> int:
    """Days (ending with the as-of local day) of the shortest period holding at least ``n``
    declarations: the runs rescore whole local days, so the count is about ``n``."""
    days = declared_at.dt.tz_convert(TIMEZONE).dt.normalize().dt.tz_localize(None)
    first = days.sort_values(ascending=False).iloc[min(n, len(days)) - 1]
    return int((pd.Timestamp(as_of) - first).days) + 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="100000,300000,1000000")
    parser.add_argument("--shap-subset", type=int, default=2000)
    parser.add_argument("--partitions", type=int, default=16)
    parser.add_argument("--work", type=Path, default=ROOT / "benchmarks" / "work" / "rescore")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "benchmark": "rescore",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_start": load(),
        "sizes": sizes,
        "partitions": args.partitions,
    }
    n_total = max(sizes)
    demo, store_dir = work / "demo", work / "store"
    if not (demo / "declarations.parquet").exists():
        write_demo_data(demo, n_declarations=n_total, seed=7)
    if not (store_dir / "manifest.json").exists():
        ingest(demo, store_dir)
    bundle, note = train_or_reuse(store_dir, work)
    size = note["size"]
    result["model"] = {
        "trees": size["trees"],
        "num_leaves": size["leaves_max"],
        "leaves_total": size["leaves_total"],
        "max_depth": size["depth_max"],
        "features": bundle.booster.num_feature(),
        "trained_by": note["trained_by"],
        "selection_correction": note["correction"],
        "training_seconds": note["training_seconds"],
        "bundle": Path(note["bundle_dir"]).name,
    }
    store = Store(store_dir)
    tables = store.tables()
    features, w, c = timed(lambda: build_offline(tables, store.attributes))
    result["feature_build"] = {"rows": len(features), "seconds": round(w, 1), "cpu_s": round(c, 1)}
    X = features[bundle.feature_names].to_numpy(np.float64)[-200_000:]
    result["side_by_side"] = side_by_side(bundle, X, args.shap_subset)
    print(json.dumps(result["side_by_side"], indent=1), flush=True)
    declared_at = features["declared_at"]
    as_of = declared_at.max().tz_convert(TIMEZONE).date().isoformat()
    del features, X

    # --- end to end, local and Dask -------------------------------------------------------
    from distributed import Client

    from serving.rescore.engines import start_local_cluster

    runs = []
    t = time.perf_counter()
    cluster = start_local_cluster(n_workers=2, threads_per_worker=1)
    client = Client(cluster)
    result["dask_cluster_start_seconds"] = round(time.perf_counter() - t, 1)
    try:
        for n in sizes:
            days = period_for(declared_at, n, as_of)
            for engine in ("local", "dask"):
                out = work / f"out-{engine}-{n}"
                shutil.rmtree(out, ignore_errors=True)
                stages: dict[str, float] = {}
                t0 = time.perf_counter()

                def progress(
                    stage: str, done: int, total: int, stages: dict = stages, t0: float = t0
                ) -> None:
                    # Time from the start of the run to the end of each stage.
                    if done == total:
                        stages[stage] = round(time.perf_counter() - t0, 1)

                before = load()
                res, seconds, cpu = timed(
                    lambda out=out, days=days, engine=engine, progress=progress: rescore(
                        as_of,
                        bundle=bundle,
                        out_dir=out,
                        tables=tables,
                        attributes=store.attributes,
                        period_days=days,
                        partitions=args.partitions,
                        engine=engine,
                        client=client if engine == "dask" else None,
                        threads=2,
                        database=f"sqlite:///{out}/profiles.db",
                        progress=progress,
                    )
                )
                scored_bytes = sum(
                    p.stat().st_size for p in (res.root / "scored").glob("*.parquet")
                )
                runs.append(
                    {
                        "declarations": res.declarations,
                        "period_days": days,
                        "engine": engine,
                        "seconds": round(seconds, 1),
                        "rows_per_s": round(rate(res.declarations, seconds)),
                        "main_process_cpu_s": round(cpu, 1),
                        "stage_end_s": stages,
                        "enterprises": res.enterprises,
                        "scored_parquet_mb": round(scored_bytes / 1e6),
                        "load_before": before,
                        "load_after": load(),
                    }
                )
                print(runs[-1], flush=True)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        client.close()
        cluster.close()
    result["runs"] = runs
    result["load_end"] = load()
    target = [r for r in runs if r["declarations"] >= 1_000_000]
    result["meets_5_minutes_at_1M"] = bool(target) and all(r["seconds"] <= 300 for r in target)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rescore.json").write_text(json.dumps(result, indent=2))
    (RESULTS / "rescore.md").write_text(markdown(result))
    print(markdown(result))


def markdown(r: dict[str, Any]) -> str:
    m, s = r["model"], r["side_by_side"]
    fb = r["feature_build"]
    lines = [
        "### Batch rescoring (`benchmarks/bench_rescore.py`)",
        "",
        f"{r['date']}, {r['machine']['nproc']} cores, {r['machine']['ram_gb']} GiB RAM, shared "
        f"machine: load average (1/5/15 min) {r['load_start']} at start, {r['load_end']} at end. "
        f"Model: {m['trees']} trees x {m['num_leaves']} leaves (max depth {m['max_depth']}, "
        f"{m['leaves_total']:,} leaves in all), {m['features']} features, trained by "
        f"{m['trained_by']} (kept correction: {m['selection_correction']}; early stopping). "
        f"Demo data, {fb['rows']:,} declarations; `build_offline` alone: {fb['seconds']} s.",
        "",
        f"Side by side, same model, same process (load {s['load_start']} -> {s['load_end']}):",
        "",
        "| method | rows | rows/s | vs. exact SHAP (ours, 1 thread) | CPU s / wall s |",
        "|---|---:|---:|---:|---:|",
    ]
    ours = s["exact_shap_1thread"]["rows_per_s"]
    for label, key in (
        ("raw prediction, no explanation (2 threads): the ceiling", "predict_2threads"),
        (f"exact TreeSHAP, `{s['explainer']}`, 1 thread", "exact_shap_1thread"),
        (f"exact TreeSHAP, `{s['explainer']}`, 2 threads over row chunks", "exact_shap_2threads"),
        ("LightGBM `pred_contrib` (2 threads)", "lightgbm_pred_contrib_2threads"),
        ("`shap.TreeExplainer` (tree path dependent)", "shap_treeexplainer"),
    ):
        e = s[key]
        wall = e["rows"] / e["rows_per_s"]
        lines.append(
            f"| {label} | {e['rows']:,} | {e['rows_per_s']:,.0f} | "
            f"{e['rows_per_s'] / ours:.2f}x | {e['cpu_s'] / wall:.2f} |"
        )
    lines += [
        "",
        f"Largest difference between our contributions and `shap.TreeExplainer`'s: "
        f"{s['max_abs_diff_ours_vs_shap']:.1e}. CPU/wall above 1 means both cores were used; "
        "below the thread count means the load took the rest.",
        "",
        f"End to end (`rescore` from the store's tables: features, {r['partitions']} partitions, "
        "exact SHAP, aggregation, profiles, Parquet with all float64 contributions, SQLite). Dask: "
        f"`LocalCluster` 2 workers x 1 thread, started once before the runs "
        f"({r['dask_cluster_start_seconds']} s, not included). Stage columns: seconds from the "
        "start of the run to the end of the stage.",
        "",
        "| declarations | engine | seconds | rows/s | features done | scoring done | profiles done "
        "| scored Parquet MB | load before -> after |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in r["runs"]:
        st = run["stage_end_s"]
        lines.append(
            f"| {run['declarations']:,} | {run['engine']} | {run['seconds']} | "
            f"{run['rows_per_s']:,} | {st.get('features', '')} | {st.get('score', '')} | "
            f"{st.get('profiles', '')} | {run['scored_parquet_mb']:,} | "
            f"{run['load_before'][0]} -> {run['load_after'][0]} |"
        )
    by = {(x["declarations"], x["engine"]): x["seconds"] for x in r["runs"]}
    sizes = sorted({x["declarations"] for x in r["runs"]})
    if len(sizes) > 1:
        lines += ["", "Growth (seconds relative to the smallest size, same engine):", ""]
        for engine in ("local", "dask"):
            base = by.get((sizes[0], engine))
            if base:
                steps = ", ".join(
                    f"{n:,}: {by[(n, engine)] / base:.2f}x" for n in sizes if (n, engine) in by
                )
                lines.append(f"- {engine}: {steps} (rows x{sizes[-1] / sizes[0]:.1f})")
        lines.append(
            "- dask / local at each size: "
            + ", ".join(
                f"{n:,}: {by[(n, 'dask')] / by[(n, 'local')]:.2f}"
                for n in sizes
                if (n, "dask") in by and (n, "local") in by
            )
        )
    lines += [
        "",
        f"Target: 1M declarations with exact explanations in at most 5 minutes end to end: "
        f"{'met' if r['meets_5_minutes_at_1M'] else 'NOT met'}.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
