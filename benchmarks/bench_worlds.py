"""The model on worlds it was not designed for (issue 12): model vs oracle, ceiling and plain baseline.

For each generator world (``demo/worlds.py``; contract layout, and the flat foreign layout with
``--layouts flat``) at each size: generate -> ``guomen ingest`` (the documented mapping for the
``attribute`` world and for the flat layout) -> point-in-time features and training through the
real pipeline (``training.pipeline.run_training``, default config) -> the model's expected
precision at 5 % and 10 % of all test declarations against

- the oracle (true probabilities; the ratio ``x`` is what ``training.evaluate`` reports),
- the world's ceiling (``benchmarks/ceilings.py``: a predictor told every planted component the
  data can reveal, latent effects inferred by Bayes from their own key's earlier results),
- the plain baseline a data scientist tries first, ``training.baselines.plain_lightgbm_scores``
  (LightGBM on the raw declaration columns with native categoricals and no history), read from
  the training run's own report: the table's plain baseline is the report's, one computation,

plus AUC on the inspected test declarations (and on the random monitoring sample).

Targets (issue 12): on every world, model >= 0.85 x the oracle at 5 % or within 0.03 of the
world's ceiling when that is lower, and >= 5 % (relative) above the plain baseline at 5 %; the
default world at 1M does not get worse than 0.826 x.

Cached per world in ``--work`` (default ``/tmp/guomen-bench-worlds``): the generated data, the
store and the ceiling are kept (they depend on the data only), so re-running after a model
change only rebuilds features and retrains (``--regenerate`` starts over).
``benchmarks/results/worlds.json`` keeps the latest result of every (layout, world, size) run so
far, each with its date, commit, machine and load average; ``worlds.md`` is rebuilt from it.

Usage::

    .venv/bin/python benchmarks/bench_worlds.py                     # all worlds, 200k, contract
    .venv/bin/python benchmarks/bench_worlds.py --worlds default --sizes 1000000
    .venv/bin/python benchmarks/bench_worlds.py --layouts flat      # flat layout, 54k rows
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from provenance import git_commit  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MAPPINGS = {
    ("contract", "attribute"): ROOT / "docs" / "examples" / "demo_attribute_mapping.yaml",
    ("flat", None): ROOT / "docs" / "examples" / "foreign_flat_mapping.yaml",
}
BUDGETS = (0.05, 0.10)
TARGET_ORACLE_RATIO = 0.85
TARGET_CEILING_GAP = 0.03
TARGET_OVER_PLAIN = 1.05
# today's model on the default world at 1M (issue 12's 0.826; training.json of 2026-12-01 has
# 0.82557, which this harness reproduces exactly)
DEFAULT_1M_RATIO = 0.8255
FLAT_SIZE = 54_000  # the held-out flat-layout dataset of issue 12 had 54,000 declarations


def _mem_gib() -> float:
    with open("/proc/meminfo") as fh:
        kb = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
    return round(kb / 2**20, 1)


# ---------------------------------------------------------------------------------------------
# data: generate and ingest (cached)
# ---------------------------------------------------------------------------------------------
def prepare_world(work: Path, layout: str, world: str, n: int, seed: int) -> dict[str, Any]:
    """Generate and ingest one world into ``work`` unless already done; return the timings."""
    from demo.foreign import write_foreign_flat
    from demo.generate import write_demo_data
    from features.ingest import ingest

    done = work / "prepared.json"
    if done.exists():
        return dict(json.loads(done.read_text()))
    shutil.rmtree(work, ignore_errors=True)
    src, store = work / "src", work / "store"
    t0 = time.perf_counter()
    if layout == "flat":
        write_foreign_flat(src / "foreign_flat.csv", n, seed, world=world, truth=True)
        mapping: Path | None = MAPPINGS[("flat", None)]
    else:
        write_demo_data(src, n, seed, world=world)
        mapping = MAPPINGS.get(("contract", world))
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ingest(src, store, mapping_file=mapping)
    info = {
        "layout": layout,
        "world": world,
        "declarations": n,
        "seed": seed,
        "mapping": str(mapping.relative_to(ROOT)) if mapping else None,
        "seconds_generate": round(gen_s, 1),
        "seconds_ingest": round(time.perf_counter() - t0, 1),
    }
    done.write_text(json.dumps(info, indent=2) + "\n")
    return info


def truth_path(work: Path, layout: str) -> Path:
    gt = work / "src" / "ground_truth"
    return gt / ("foreign_truth.parquet" if layout == "flat" else "declaration_truth.parquet")


def load_truth(work: Path, layout: str, ids: pd.Series) -> pd.DataFrame:
    """The ground truth aligned to the store's declaration order."""
    truth = pd.read_parquet(truth_path(work, layout))
    truth["declaration_id"] = truth["declaration_id"].astype("str")
    aligned = truth.set_index("declaration_id").reindex(ids.astype("str").to_numpy())
    if aligned["p_true"].isna().any():
        raise ValueError("the ground truth lacks some declarations of the store")
    return aligned.reset_index()


# ---------------------------------------------------------------------------------------------
# one world
# ---------------------------------------------------------------------------------------------
def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """Ratio and expected precision at each budget, and AUCs, from ``evaluate_scores``."""
    out: dict[str, Any] = {
        "auc_all_inspected": metrics["all_inspected"]["auc"],
        "auc_random_sample": metrics["random_sample"]["auc"],
    }
    for b in BUDGETS:
        t = metrics["budgets"][f"{b:g}"]["truth"]
        out[f"ratio_at_{b:g}"] = t["ratio"]
        out[f"expected_precision_at_{b:g}"] = t["expected_precision"]
    return out


def run_world(work: Path, layout: str, world: str, n: int, seed: int, retrain: bool) -> dict:
    """Prepare (cached), compute the ceiling (cached), train and evaluate (with the plain
    baseline, as the training report has it)."""
    from ceilings import CeilingInputs, world_ceilings

    from demo.generate import NOISE_SD
    from training.config import load_config
    from training.pipeline import load_inputs, run_training
    from training.train import TEST, prepare

    prep = prepare_world(work, layout, world, n, seed)
    cfg = load_config()
    t0 = time.perf_counter()
    inputs = load_inputs(work / "store")
    seconds = {"features": time.perf_counter() - t0}
    decl = inputs.tables["declarations"].reset_index(drop=True)
    truth = load_truth(work, layout, decl["declaration_id"])
    names = [s["name"] if isinstance(s, dict) else s.name for s in inputs.specs]
    data = prepare(
        inputs.features, inputs.labels, names, cfg.split.test_months, cfg.split.validation_months
    )
    # align the store's declaration order with the training frame's
    frame_ids = data.frame["declaration_id"].astype("str").to_numpy()
    pos = pd.Index(decl["declaration_id"].astype("str")).get_indexer(frame_ids)
    if (pos < 0).any():
        raise ValueError("features and declarations disagree")
    decl_f = decl.iloc[pos].reset_index(drop=True)
    truth_f = truth.iloc[pos].reset_index(drop=True)
    test = data.segment == TEST
    test_truth = truth_f.loc[test, ["declaration_id", "p_true", "critical_p_true"]].reset_index(
        drop=True
    )

    cached = work / "data_results.json"
    if cached.exists():
        fixed = json.loads(cached.read_text())
    else:
        t0 = time.perf_counter()
        labels = inputs.labels.set_index(inputs.labels["declaration_id"].astype("str"))
        labels = labels.reindex(frame_ids)
        cinp = CeilingInputs(
            declarations=decl_f,
            inspected=labels["inspected"].to_numpy(dtype=bool),
            nonconforming=np.nan_to_num(labels["nonconforming"].to_numpy(dtype=np.float64)),
            inspected_ns=pd.to_datetime(labels["inspected_at"], utc=True)
            .astype("int64")
            .to_numpy(),
            truth=truth_f,
            noise_sd=NOISE_SD if layout == "contract" else 0.0,
        )
        ceilings = world_ceilings(cinp, np.flatnonzero(test), BUDGETS)
        fixed = {
            "ceilings": ceilings,
            "seconds_ceiling": round(time.perf_counter() - t0, 1),
        }
        cached.write_text(json.dumps(fixed, indent=2, default=float) + "\n")

    model_json = work / "model_result.json"
    if model_json.exists() and not retrain:
        model = json.loads(model_json.read_text())
    else:
        shutil.rmtree(work / "models", ignore_errors=True)
        t0 = time.perf_counter()

        def progress(step: str) -> None:  # each step's start, for the log and its timings
            print(f"   {time.perf_counter() - t0:7.1f} s  {step}", flush=True)

        result = run_training(
            inputs.features,
            inputs.labels,
            inputs.specs,
            config=cfg,
            models_dir=work / "models",
            model_name="guomen-risk",
            declarations=inputs.tables["declarations"],
            credit_ratings=inputs.tables.get("credit_ratings"),
            attributes=inputs.attributes,
            store_fingerprint=inputs.store_fingerprint,
            ground_truth=test_truth,
            # as `guomen train` does: the bundle's code maps, and the tables to choose keys from
            categories=inputs.categories,
            tables=inputs.tables,
            progress=progress,
        )
        seconds["train_evaluate"] = time.perf_counter() - t0
        model = {
            **_summary(result.metrics),
            "model_size": result.fitted.size,
            "correction": result.fitted.correction,
            "counts": result.counts,
            "split": result.split,
            "n_features": len(result.bundle.feature_names),
            "entities": result.bundle.entities,
            "capacity": result.bundle.metrics.get("capacity", {}).get("chosen"),
            "plain_verdict": result.bundle.metrics.get("plain_baseline", {}).get("statement"),
            "plain_columns": result.bundle.metrics.get("plain_baseline", {}).get("features"),
            "training_baselines": {
                k: _summary(v) for k, v in result.baselines.items() if "budgets" in v
            },
            "seconds": {
                **{k: round(v, 1) for k, v in seconds.items()},
                **{f"training.{k}": round(v, 1) for k, v in result.timings.items()},
            },
            # when and with what the model was trained (a --no-retrain run only re-reports it)
            "trained": {
                "date": datetime.now(UTC).isoformat(timespec="seconds"),
                "commit": git_commit(ROOT) or "unknown",
                "loadavg": [round(x, 2) for x in os.getloadavg()],
            },
        }
        model_json.write_text(json.dumps(model, indent=2, default=float) + "\n")
        # the training report (selection table, capacity grid, corrections) stays for reading
        shutil.copy(result.report_dir / "metrics.json", work / "training_report.json")
        shutil.rmtree(work / "models", ignore_errors=True)  # bundles are not needed here

    return {
        "layout": layout,
        "world": world,
        "declarations": n,
        "seed": seed,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(ROOT) or "unknown",
        "machine": {
            "nproc": os.cpu_count(),
            "ram_gib": _mem_gib(),
            "python": platform.python_version(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        },
        "prepared": prep,
        "model": model,
        "ceilings": fixed["ceilings"],
        "seconds_ceiling": fixed.get("seconds_ceiling"),
        # the training report's plain baseline (training.baselines.plain_lightgbm_scores)
        "plain_baseline": {
            **model["training_baselines"]["plain_lightgbm"],
            "columns": model.get("plain_columns"),
        },
    }


def targets_of(r: dict[str, Any]) -> dict[str, Any]:
    """Issue 12's targets for one stored run (recomputed when the report is written)."""
    ceiling5 = r["ceilings"]["ceiling"]["0.05"]["ratio"]
    ratio5 = r["model"]["ratio_at_0.05"]
    model_ep = r["model"]["expected_precision_at_0.05"]
    plain5 = r["plain_baseline"]["expected_precision_at_0.05"]
    need = TARGET_ORACLE_RATIO if ceiling5 >= TARGET_ORACLE_RATIO else ceiling5 - TARGET_CEILING_GAP
    targets = {
        "ratio_needed_at_5": round(need, 4),
        "meets_oracle_or_ceiling": bool(ratio5 >= need),
        "over_plain_at_5": model_ep / plain5 if plain5 else None,
        "meets_plain": bool(model_ep >= TARGET_OVER_PLAIN * plain5),
        # No predictor beats the oracle's expected precision (it ranks by the true
        # probabilities), nor, from what the data reveals, the ceiling: 1.05 x plain above
        # either cannot be met by any model.
        "plain_target_ratio": TARGET_OVER_PLAIN * r["plain_baseline"]["ratio_at_0.05"],
    }
    targets["plain_target_reachable"] = bool(targets["plain_target_ratio"] <= 1.0)
    targets["plain_target_within_ceiling"] = bool(targets["plain_target_ratio"] <= ceiling5)
    if r["layout"] == "contract" and r["world"] == "default" and r["declarations"] >= 1_000_000:
        targets["default_not_worse"] = bool(ratio5 >= DEFAULT_1M_RATIO)
    return targets


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def _key(r: dict[str, Any]) -> str:
    return f"{r['layout']}/{r['world']}/{r['declarations']}"


def _fmt(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "—"
    return f"{x:.{nd}f}"


def write_report(runs: dict[str, dict[str, Any]]) -> str:
    """``worlds.md`` from every stored run."""
    from demo.worlds import TUNING_WORLDS, WORLD_NAMES

    order = {w: i for i, w in enumerate(WORLD_NAMES)}
    rows = sorted(
        runs.values(),
        key=lambda r: (r["layout"] != "contract", r["declarations"], order.get(r["world"], 99)),
    )
    lines = [
        "# The model on worlds it was not designed for (issue 12)",
        "",
        "Each world (`demo/worlds.py`, `docs/demo-data.md`) generated with its fixed benchmark "
        "seed, ingested (`attribute` and the flat layout through their documented mappings), "
        "trained with `training.pipeline.run_training` and the default config. Ratios are "
        "expected nonconformities found in the top 5 % / 10 % of all test declarations over the "
        "oracle's (true probabilities). *Ceiling*: told every planted component the data can "
        "reveal, latent effects (enterprise, the world's grain) by Bayes from their own earlier "
        "results (`benchmarks/ceilings.py`). *Plain*: the training report's baseline "
        "(`training.baselines.plain_lightgbm_scores`), LightGBM on the raw declaration columns "
        "with native categoricals and no history. AUC on the inspected "
        "test declarations (random sample in brackets). Targets: model ≥ 0.85 × oracle at 5 % "
        "(or ≥ ceiling − 0.03 where the ceiling is below 0.85) and ≥ 1.05 × plain at 5 %. "
        f"Tuning worlds: {', '.join(TUNING_WORLDS)}; report on all.",
        "",
        "| layout | world | n | oracle EP@5% | model ×@5% | ceiling ×@5% | plain ×@5% | "
        "model ×@10% | ceiling ×@10% | plain ×@10% | model AUC | plain AUC | model/plain @5% | "
        "targets met | trained: date, commit, load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        r["targets"] = t = targets_of(r)
        m, c, p = r["model"], r["ceilings"], r["plain_baseline"]
        trained = m.get("trained") or {
            "date": r["date"],
            "commit": r["commit"],
            "loadavg": r["machine"]["loadavg"],
        }
        met = "yes" if t["meets_oracle_or_ceiling"] and t["meets_plain"] else (
            "no (" + ", ".join(
                k for k, ok in (("oracle/ceiling", t["meets_oracle_or_ceiling"]),
                                ("plain", t["meets_plain"])) if not ok
            ) + ")"
        )  # fmt: skip
        if not t["meets_plain"] and not t["plain_target_reachable"]:
            met += f" — 1.05 × plain = {t['plain_target_ratio']:.3f} × oracle: out of reach"
        elif not t["meets_plain"] and not t["plain_target_within_ceiling"]:
            met += f" — 1.05 × plain = {t['plain_target_ratio']:.3f} × oracle, above the ceiling"
        if "default_not_worse" in t:
            met += (
                f"; not worse than {DEFAULT_1M_RATIO}: {'yes' if t['default_not_worse'] else 'no'}"
            )
        lines.append(
            f"| {r['layout']} | {r['world']} | {r['declarations']:,} | "
            f"{_fmt(c['oracle_p']['0.05']['oracle_expected_precision'])} | "
            f"**{_fmt(m['ratio_at_0.05'])}** | {_fmt(c['ceiling']['0.05']['ratio'])} | "
            f"{_fmt(p['ratio_at_0.05'])} | {_fmt(m['ratio_at_0.1'])} | "
            f"{_fmt(c['ceiling']['0.1']['ratio'])} | {_fmt(p['ratio_at_0.1'])} | "
            f"{_fmt(m['auc_all_inspected'])} ({_fmt(m['auc_random_sample'])}) | "
            f"{_fmt(p['auc_all_inspected'])} ({_fmt(p['auc_random_sample'])}) | "
            f"{_fmt(t['over_plain_at_5'])} | {met} | {trained['date'][:16]}, "
            f"{trained['commit']}, {trained['loadavg'][0]} |"
        )
    missing = [
        f"{layout} {w}"
        for layout in ("contract", "flat")
        for w in WORLD_NAMES
        if not any(r["layout"] == layout and r["world"] == w for r in rows)
    ]
    if missing:
        lines += [
            "",
            f"Not in this table (no run stored): {', '.join(missing)}; earlier runs, before the "
            "key selection and with the harness's own plain baseline, are in "
            "`worlds_before_rework.md`.",
        ]
    lines += [
        "",
        "Other predictors (ratio to the oracle at 5 %): *all but noise* knows every component "
        "exactly; *no latent information* knows every component but the enterprise and the "
        "world's grain, which it sets to their mean; *cells latent* is the ceiling with the "
        "generator's HS4 x origin hazard and overseas-party quality inferred from their own "
        "keys' earlier results too (`benchmarks/ceilings.py`, `CELL_KEYS`): no column shows "
        "them, so a model meets them only as that key's history, while the ceiling is given "
        "them (contract layout only).",
        "",
        "| layout | world | n | all but noise | ceiling | cells latent | no latent information | "
        "legacy rule | logistic regression | model trees | features |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        c, m = r["ceilings"], r["model"]
        tb = m.get("training_baselines", {})
        lines.append(
            f"| {r['layout']} | {r['world']} | {r['declarations']:,} | "
            f"{_fmt(c['all_but_noise']['0.05']['ratio'])} | {_fmt(c['ceiling']['0.05']['ratio'])} | "
            f"{_fmt(c.get('cells_latent', {}).get('0.05', {}).get('ratio'))} | "
            f"{_fmt(c['no_latent_information']['0.05']['ratio'])} | "
            f"{_fmt(tb.get('legacy_rule', {}).get('ratio_at_0.05'))} | "
            f"{_fmt(tb.get('logistic_regression', {}).get('ratio_at_0.05'))} | "
            f"{m['model_size'].get('trees', '—')} | {m['n_features']} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    from demo.worlds import BENCHMARK_SEEDS, FLAT_SEED_OFFSET, WORLD_NAMES, check_world

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worlds", default=",".join(WORLD_NAMES), help="comma-separated names")
    ap.add_argument("--sizes", default="200000", help="comma-separated declaration counts")
    ap.add_argument("--layouts", default="contract", help="contract, flat or contract,flat")
    ap.add_argument("--flat-sizes", default=str(FLAT_SIZE), help="row counts of the flat layout")
    ap.add_argument("--work", type=Path, default=Path("/tmp/guomen-bench-worlds"))
    ap.add_argument("--results", type=Path, default=RESULTS, help="folder of worlds.json/.md")
    ap.add_argument("--regenerate", action="store_true", help="drop the cached data first")
    ap.add_argument(
        "--no-retrain", action="store_true", help="reuse a cached model result when there is one"
    )
    ap.add_argument(
        "--report-only", action="store_true", help="rewrite worlds.md from worlds.json and stop"
    )
    args = ap.parse_args()
    if args.report_only:
        stored = json.loads((args.results / "worlds.json").read_text())
        (args.results / "worlds.md").write_text(write_report(stored["runs"]))
        print((args.results / "worlds.md").read_text())
        return
    worlds = [check_world(w.strip()).name for w in args.worlds.split(",") if w.strip()]
    results: Path = args.results
    out_json = results / "worlds.json"
    stored = json.loads(out_json.read_text()) if out_json.exists() else {"runs": {}}
    for layout in [x.strip() for x in args.layouts.split(",") if x.strip()]:
        if layout not in ("contract", "flat"):
            raise SystemExit(f"--layouts: unknown layout {layout!r}")
        sizes = args.sizes if layout == "contract" else args.flat_sizes
        for n in [int(s) for s in sizes.split(",") if s.strip()]:
            for world in worlds:
                seed = BENCHMARK_SEEDS[world] + (FLAT_SEED_OFFSET if layout == "flat" else 0)
                work = args.work / f"{layout}_{world}_{n}_s{seed}"
                if args.regenerate:
                    shutil.rmtree(work, ignore_errors=True)
                t0 = time.perf_counter()
                print(f"== {layout} {world} n={n} seed={seed}", flush=True)
                r = run_world(work, layout, world, n, seed, retrain=not args.no_retrain)
                r["seconds_total"] = round(time.perf_counter() - t0, 1)
                r["targets"] = targets_of(r)
                stored["runs"][_key(r)] = r
                print(
                    f"   model x@5% {r['model']['ratio_at_0.05']:.3f}  ceiling "
                    f"{r['ceilings']['ceiling']['0.05']['ratio']:.3f}  plain "
                    f"{r['plain_baseline']['ratio_at_0.05']:.3f}  ({r['seconds_total']} s, "
                    f"load {r['machine']['loadavg'][0]})",
                    flush=True,
                )
                stored["updated"] = r["date"]
                results.mkdir(parents=True, exist_ok=True)
                out_json.write_text(json.dumps(stored, indent=2, default=float) + "\n")
                (results / "worlds.md").write_text(write_report(stored["runs"]))
    print((results / "worlds.md").read_text())


if __name__ == "__main__":
    sys.exit(main())
