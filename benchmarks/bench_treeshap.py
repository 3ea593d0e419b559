"""Benchmark riskmodel.treeshap against LightGBM pred_contrib and shap.TreeExplainer.

Run: ``.venv/bin/python benchmarks/bench_treeshap.py`` (about two minutes on 2 cores).
Writes ``benchmarks/results/treeshap.json`` and ``treeshap.md``. All engines run side by
side in one process on the same models and rows; every figure is wall-clock time.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from riskmodel.treeshap import TreeShap  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
N_FEATURES = 200
CAT = 0


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic declarations-like data: 10% NaN, one 40-level categorical, interactions."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    X[rng.random(X.shape) < 0.10] = np.nan
    X[:, CAT] = rng.integers(0, 40, n).astype(float)
    X[:, 1:20] = np.where(rng.random((n, 19)) < 0.3, 0.0, X[:, 1:20])
    coef = np.random.default_rng(7).normal(size=60)
    lin = np.nan_to_num(X[:, 1:61]) @ coef / 4
    score = (
        lin + 1.5 * (X[:, CAT] % 5 == 1) + np.nan_to_num(X[:, 61] * X[:, 62]) - np.isnan(X[:, 63])
    )
    y = (score + rng.logistic(size=n) > 0).astype(int)
    return X, y


def train(
    num_trees: int, num_leaves: int, X: np.ndarray, y: np.ndarray
) -> tuple[lgb.Booster, float]:
    params = {
        "objective": "binary",
        "verbose": -1,
        "learning_rate": 0.05,
        "num_leaves": num_leaves,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "num_threads": 2,
        "seed": 1,
    }
    t0 = time.perf_counter()
    b = lgb.train(params, lgb.Dataset(X, y, categorical_feature=[CAT]), num_boost_round=num_trees)
    return b, time.perf_counter() - t0


def per_call_us(fn: Any, rows: np.ndarray, reps: int) -> dict[str, float]:
    """Latency of fn(row) for one row at a time, cycling through ``rows``."""
    fn(rows[0])
    times = np.empty(reps)
    for i in range(reps):
        r = rows[i % rows.shape[0]]
        t0 = time.perf_counter()
        fn(r)
        times[i] = time.perf_counter() - t0
    us = times * 1e6
    return {"median_us": float(np.median(us)), "p99_us": float(np.percentile(us, 99)), "n": reps}


def rows_per_s(fn: Any, X: np.ndarray) -> float:
    t0 = time.perf_counter()
    fn(X)
    return X.shape[0] / (time.perf_counter() - t0)


def compile_times(model_path: Path) -> dict[str, float]:
    """First-call cost in fresh processes: empty numba cache, then the cache it left."""
    code = textwrap.dedent(
        f"""
        import json, sys, time
        t0 = time.perf_counter()
        sys.path.insert(0, {str(ROOT)!r})
        import lightgbm as lgb, numpy as np
        from riskmodel.treeshap import TreeShap
        t1 = time.perf_counter()
        ts = TreeShap.from_booster(lgb.Booster(model_file={str(model_path)!r}))
        t2 = time.perf_counter()
        ts.warm_up()
        t3 = time.perf_counter()
        print(json.dumps({{"import_s": t1 - t0, "parse_s": t2 - t1, "first_call_s": t3 - t2}}))
        """
    )
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold_cache", "warm_cache"):
            res = subprocess.run(
                [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
            )
            for k, v in json.loads(res.stdout.strip().splitlines()[-1]).items():
                out[f"{label}_{k}"] = v
    return out


def bench_model(
    num_trees: int, num_leaves: int, X: np.ndarray, y: np.ndarray, Xt: np.ndarray
) -> dict[str, Any]:
    import shap

    b, train_s = train(num_trees, num_leaves, X, y)
    dump = b.dump_model()
    leaves = [t["num_leaves"] for t in dump["tree_info"]]
    t0 = time.perf_counter()
    ts = TreeShap.from_booster(b)
    build_s = time.perf_counter() - t0
    ts.warm_up()
    explainer = shap.TreeExplainer(b, feature_perturbation="tree_path_dependent")

    # Exactness on the benchmark rows.
    ref = b.predict(Xt[:300], pred_contrib=True)
    ours = ts.contributions(Xt[:300])
    shap_vals = np.asarray(explainer.shap_values(Xt[:300]))
    margin = b.predict(Xt[:300], raw_score=True)

    def lgb_row(r: np.ndarray) -> Any:
        return b.predict(r[None, :], pred_contrib=True, num_threads=1)

    def shap_row(r: np.ndarray) -> Any:
        return explainer.shap_values(r[None, :])

    def lgb_pred_row(r: np.ndarray) -> Any:
        return b.predict(r[None, :], raw_score=True, num_threads=1)

    res: dict[str, Any] = {
        "trees": num_trees,
        "num_leaves": num_leaves,
        "mean_leaves": float(np.mean(leaves)),
        "features": N_FEATURES,
        "train_s": train_s,
        "treeshap_build_s": build_s,
        "quadrature_nodes_mean": float(ts._a.tree_q.mean()),
        "max_abs_diff_vs_pred_contrib": float(np.abs(ours - ref).max()),
        "max_abs_diff_shap_vs_pred_contrib": float(np.abs(shap_vals - ref[:, :-1]).max()),
        "max_additivity_error": float(np.abs(ours.sum(axis=1) - margin).max()),
        "one_row": {
            "treeshap": per_call_us(ts.contributions_row, Xt, 2000),
            "lightgbm_pred_contrib": per_call_us(lgb_row, Xt, 60),
            "shap_tree_explainer": per_call_us(shap_row, Xt, 60),
            "lightgbm_predict_only": per_call_us(lgb_pred_row, Xt, 2000),
        },
        "batch_rows_per_s": {
            "treeshap_1_thread": rows_per_s(ts.contributions, Xt[:4000]),
            "lightgbm_pred_contrib_2_threads": rows_per_s(
                lambda Z: b.predict(Z, pred_contrib=True), Xt[:400]
            ),
            "shap_tree_explainer": rows_per_s(explainer.shap_values, Xt[:400]),
        },
    }
    o = res["one_row"]
    res["speedup_one_row_vs_pred_contrib"] = (
        o["lightgbm_pred_contrib"]["median_us"] / o["treeshap"]["median_us"]
    )
    res["speedup_one_row_vs_shap"] = (
        o["shap_tree_explainer"]["median_us"] / o["treeshap"]["median_us"]
    )
    br = res["batch_rows_per_s"]
    res["speedup_batch_vs_pred_contrib"] = (
        br["treeshap_1_thread"] / br["lightgbm_pred_contrib_2_threads"]
    )
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "model.txt"
        b.save_model(str(path))
        res["numba_first_call"] = compile_times(path)
    return res


def machine() -> dict[str, Any]:
    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    import numba
    import shap

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "ram_gib": round(mem_kb / 2**20, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "lightgbm": lgb.__version__,
        "shap": shap.__version__,
        "numba": numba.__version__,
        "loadavg_at_start": os.getloadavg(),
    }


def to_markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Exact TreeSHAP benchmark (`riskmodel.treeshap`)",
        "",
        f"{m['date']}, nproc={m['nproc']}, RAM {m['ram_gib']} GiB, lightgbm {m['lightgbm']}, shap {m['shap']}, "
        f"numba {m['numba']}; load average at start {m['loadavg_at_start'][0]:.1f} (shared machine), "
        f"at end {report['loadavg_at_end'][0]:.1f}.",
        f"Synthetic data: {N_FEATURES} features, 10% NaN, one 40-level categorical; all engines side by side "
        "in one process, wall-clock; one-row figures are single calls on a 1-row array.",
        "",
        "| model | engine | one row median µs | one row p99 µs | batch rows/s |",
        "|---|---|---:|---:|---:|",
    ]
    for r in report["models"]:
        name = f"{r['trees']}×{r['num_leaves']} leaves"
        o, b = r["one_row"], r["batch_rows_per_s"]
        lines += [
            f"| {name} | riskmodel.treeshap (1 thread) | {o['treeshap']['median_us']:.0f} | "
            f"{o['treeshap']['p99_us']:.0f} | {b['treeshap_1_thread']:.0f} |",
            f"| {name} | LightGBM pred_contrib | {o['lightgbm_pred_contrib']['median_us']:.0f} | "
            f"{o['lightgbm_pred_contrib']['p99_us']:.0f} | {b['lightgbm_pred_contrib_2_threads']:.0f} (2 threads) |",
            f"| {name} | shap.TreeExplainer (tree_path_dependent) | {o['shap_tree_explainer']['median_us']:.0f} | "
            f"{o['shap_tree_explainer']['p99_us']:.0f} | {b['shap_tree_explainer']:.0f} |",
            f"| {name} | LightGBM predict only (reference) | {o['lightgbm_predict_only']['median_us']:.0f} | "
            f"{o['lightgbm_predict_only']['p99_us']:.0f} | |",
        ]
    lines += ["", "| model | speedup one row vs pred_contrib | vs shap | batch vs pred_contrib | max abs diff "
              "vs pred_contrib | max additivity error | numba first call, cold cache s | warm cache s |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for r in report["models"]:
        c = r["numba_first_call"]
        lines.append(
            f"| {r['trees']}×{r['num_leaves']} | {r['speedup_one_row_vs_pred_contrib']:.1f}× | "
            f"{r['speedup_one_row_vs_shap']:.1f}× | {r['speedup_batch_vs_pred_contrib']:.1f}× | "
            f"{r['max_abs_diff_vs_pred_contrib']:.1e} | {r['max_additivity_error']:.1e} | "
            f"{c['cold_cache_first_call_s']:.1f} | {c['warm_cache_first_call_s']:.2f} |"
        )
    lines += [
        "",
        "First call = `warm_up()` in a fresh process after parsing (compile, or load from numba's "
        "`cache=True` files the first process left). Parse (`from_booster`) times are in the JSON.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    report: dict[str, Any] = {"machine": machine(), "models": []}
    X, y = make_data(30_000, seed=0)
    Xt, _ = make_data(5_000, seed=1)
    for trees, leaves in ((300, 31), (400, 63)):
        r = bench_model(trees, leaves, X, y, Xt)
        print(
            json.dumps({k: v for k, v in r.items() if k != "numba_first_call"}, indent=1),
            flush=True,
        )
        report["models"].append(r)
    report["loadavg_at_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "treeshap.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "treeshap.md").write_text(to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
