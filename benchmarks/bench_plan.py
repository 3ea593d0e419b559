"""The annual monitoring plan against a volume-proportional plan, on the demo's truth.

The plan for the data's last year is made as the office would have made it on the eve of that
year: the tables cut at the cutoff (declarations declared, results known, signals reported and
ratings in force by then), a model trained on them (``training.pipeline.run_training``, default
config, default key set), its calibrated probabilities of the year before the cutoff as the
expected rates, and the past random results. ``policy.plan.allocate`` then allocates N samples.

Measured on ``ground_truth/declaration_truth.parquet`` (which no pipeline reads): a group's
quota is drawn uniformly at random from its declarations of the plan year, so the expected
nonconformities it finds are ``min(quota, year volume) x mean p_true`` of those declarations.
Side by side, the same N:

- ``proposed``: the plan (model rates + past results);
- ``proposed_no_model``: the plan from past random results only (no rescoring run);
- ``volume_proportional``: N in proportion to the base year's volume (same minimum and cap);
- concentration 1 and 3 beside the default 2 (sensitivity).

Every group keeps its floor: checked (floor >= min_floor, quota >= floor, floor within one
sample of its volume share). Also reported: groups of the plan year the plan did not know (new
trade; drawn at the plan's floor rate in serving) and the median expected CI width.

Usage: ``.venv/bin/python benchmarks/bench_plan.py [--raw /work/data/1m-default/raw]
[--declarations 200000] [--samples N] [--work DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.provenance import git_commit, machine  # noqa: E402
from policy.plan import (  # noqa: E402
    PlanConfig,
    PlanError,
    allocate,
    group_frame,
    proportional_quotas,
    wilson_interval,
)
from serving.plan_inputs import plan_groups  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cut(tables: dict[str, pd.DataFrame], at: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The tables as known at ``at``."""
    out = dict(tables)
    decl = tables["declarations"]
    out["declarations"] = decl[decl["declared_at"] <= at].reset_index(drop=True)
    ids = set(out["declarations"]["declaration_id"])
    insp = tables["inspections"]
    out["inspections"] = insp[(insp["inspected_at"] <= at)
                              & insp["declaration_id"].isin(ids)].reset_index(drop=True)  # fmt: skip
    sig = tables.get("risk_signals")
    if sig is not None and len(sig):
        out["risk_signals"] = sig[sig["reported_at"] <= at].reset_index(drop=True)
    cr = tables.get("credit_ratings")
    if cr is not None and len(cr):
        out["credit_ratings"] = cr[cr["effective_from"] <= at].reset_index(drop=True)
    return out


def train_and_score(
    known: dict[str, pd.DataFrame], attributes: dict[str, str], base_ids: pd.Series, work: Path
) -> tuple[pd.Series, dict[str, Any]]:
    """A model trained on what was known at the cutoff; its probabilities of ``base_ids``."""
    from features.build import build_labels, build_offline
    from features.categorical import fit_code_maps
    from features.registry import feature_specs
    from training.config import load_config
    from training.pipeline import run_training

    t = time.perf_counter()
    categories = fit_code_maps(known["declarations"], attributes)
    features = build_offline(known, attributes, categories=categories)
    labels = build_labels(known)
    t_features = time.perf_counter() - t
    result = run_training(
        features, labels, feature_specs(attributes), config=load_config(),
        models_dir=work / "models", model_name="guomen-plan-bench",
        # no declarations: the legacy and plain baselines are skipped (the plan does not use them)
        attributes=attributes, categories=categories,
    )  # fmt: skip
    bundle = result.bundle
    rows = features[features["declaration_id"].astype("str").isin(set(base_ids))]
    X = rows[list(bundle.feature_names)].to_numpy(np.float64)
    p = bundle.probability(X)
    note = {
        "features_s": round(t_features, 1),
        "train_s": round(time.perf_counter() - t - t_features, 1),
        "bundle": str(result.bundle_dir),
        "test_metrics_auc_random": (result.metrics.get("random_sample") or {}).get("auc"),
        "scored_declarations": len(rows),
    }
    return pd.Series(p, index=rows["declaration_id"].astype("str").to_numpy()), note


def evaluate(quotas: pd.Series, truth: pd.DataFrame) -> dict[str, Any]:
    """Expected samples and finds of ``quotas`` (by group id) drawn from the plan year."""
    year = truth.groupby("group_id").agg(volume=("p_true", "size"), p=("p_true", "mean"))
    q = quotas.reindex(year.index).fillna(0.0)
    drawn = np.minimum(q, year["volume"])
    found = drawn * year["p"]
    unknown = ~year.index.isin(quotas.index)
    return {
        "planned_samples": int(quotas.sum()),
        "drawn_samples": float(drawn.sum()),
        "expected_nonconforming": float(found.sum()),
        "nonconforming_per_sample": float(found.sum() / drawn.sum()) if drawn.sum() else None,
        "plan_year_groups": int(len(year)),
        "plan_year_groups_not_in_plan": int(unknown.sum()),
        "plan_year_volume_share_not_in_plan": float(
            year.loc[unknown, "volume"].sum() / year["volume"].sum()
        ),  # fmt: skip
    }


def floors_kept(lines: pd.DataFrame, config: PlanConfig, samples: int) -> dict[str, Any]:
    floor_total = lines["floor"].sum()
    exact = floor_total * lines["volume"] / lines["volume"].sum()
    gap = (lines["floor"] - np.maximum(exact, config.min_floor)).abs()
    capped = lines["floor"] >= np.floor(config.max_sampling_rate * lines["volume"])
    return {
        "groups": int(len(lines)),
        "min_floor": int(lines["floor"].min()),
        "every_group_min_floor": bool((lines["floor"] >= config.min_floor).all()),
        "quota_ge_floor": bool((lines["quota"] >= lines["floor"]).all()),
        "floor_samples": int(floor_total),
        "max_floor_gap_vs_volume_share": float(gap[~capped].max()) if (~capped).any() else 0.0,
        "samples": int(lines["quota"].sum()) == samples,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from features.ingest import ingest
    from features.store import Store

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    if args.raw:
        raw = Path(args.raw)
    else:
        from demo.generate import write_demo_data

        raw = work / "demo"
        if not (raw / "declarations.parquet").exists():
            write_demo_data(raw, args.declarations, args.seed)
    store = work / "store"
    if not (store / "manifest.json").exists():
        ingest(raw, store)
    tables = Store(store).tables()
    attributes = Store(store).attributes
    timings["ingest_s"] = round(time.perf_counter() - t, 1)
    decl = tables["declarations"]
    end = decl["declared_at"].max()
    cutoff = end - pd.Timedelta(days=365)
    known = cut(tables, cutoff)
    base = known["declarations"][known["declarations"]["declared_at"] > cutoff
                                 - pd.Timedelta(days=365)]  # fmt: skip
    t = time.perf_counter()
    cache = work / f"probabilities-{cutoff:%Y%m%d}.parquet"
    if cache.exists():  # a rerun on the same data reuses the model's scores
        note_file = cache.with_suffix(".json")
        frame = pd.read_parquet(cache)
        probabilities = frame.set_index("declaration_id")["probability"]
        model_note = {**json.loads(note_file.read_text()), "reused": True}
    else:
        probabilities, model_note = train_and_score(
            known, attributes, base["declaration_id"].astype("str"), work
        )
        pd.DataFrame({"declaration_id": probabilities.index, "probability": probabilities.to_numpy()}
                     ).to_parquet(cache)  # fmt: skip
        cache.with_suffix(".json").write_text(json.dumps(model_note))
    timings["model_s"] = round(time.perf_counter() - t, 1)
    # the plan year's truth per group
    truth = pd.read_parquet(raw / "ground_truth" / "declaration_truth.parquet",
                            columns=["declaration_id", "p_true"])  # fmt: skip
    truth["declaration_id"] = truth["declaration_id"].astype("str")
    year_decl = decl[decl["declared_at"] > cutoff]
    insp = tables["inspections"]
    rnd_year = insp[(insp["selection"] == "random") & insp["declaration_id"].isin(
        year_decl["declaration_id"])]  # fmt: skip
    samples = args.samples or int(len(rnd_year))
    results: dict[str, Any] = {}
    lines_by: dict[str, pd.DataFrame] = {}
    t = time.perf_counter()
    for level in args.levels:
        keyed = group_frame(year_decl, level).assign(
            declaration_id=year_decl["declaration_id"].astype("str").to_numpy()
        )
        year_truth = keyed.merge(truth, on="declaration_id")
        # the groups once per grain; without a model only model_rate differs (NaN)
        with_model, ports = plan_groups(known, as_of=cutoff.to_pydatetime(),
                                        config=PlanConfig(product_level=level),
                                        probabilities=probabilities)  # fmt: skip
        no_model = with_model.assign(model_rate=np.nan)
        for name, config, groups in (
            ("proposed", PlanConfig(product_level=level), with_model),
            ("proposed_no_model", PlanConfig(product_level=level), no_model),
            ("proposed_concentration_1", PlanConfig(product_level=level, concentration=1.0),
             with_model),
            ("proposed_concentration_3", PlanConfig(product_level=level, concentration=3.0),
             with_model),
        ):  # fmt: skip
            try:
                plan = allocate(groups, samples, int(cutoff.year) + 1, config, ports)
            except PlanError as exc:  # more groups than samples at this grain
                results[f"{level}/{name}"] = {"infeasible": str(exc)}
                continue
            quotas = plan.lines.set_index("group_id")["quota"].astype(float)
            r = evaluate(quotas, year_truth)
            r["floors"] = floors_kept(plan.lines, config, samples)
            r["median_expected_ci_width"] = float(plan.lines["expected_ci_width"].median())
            r["plan_expected_nonconforming"] = plan.summary["expected_nonconforming"]
            results[f"{level}/{name}"] = r
            lines_by[f"{level}/{name}"] = plan.lines
        if f"{level}/proposed" not in lines_by:
            continue
        lines = lines_by[f"{level}/proposed"]
        prop = proportional_quotas(lines["volume"].to_numpy(np.float64), samples,
                                   PlanConfig(product_level=level))  # fmt: skip
        quotas = pd.Series(prop.astype(float), index=lines["group_id"].to_numpy())
        r = evaluate(quotas, year_truth)
        est = lines["estimated_rate"].to_numpy()
        widths = [
            np.subtract(*wilson_interval(e * q, q)[::-1]) for e, q in zip(est, prop, strict=True)
        ]
        r["median_expected_ci_width"] = float(np.median(widths))
        results[f"{level}/volume_proportional"] = r
        # the demo's own random share of that year, for reference (its actual draws)
        rr = rnd_year.merge(truth, on="declaration_id")
        results[f"{level}/demo_random_share_actual"] = {
            "planned_samples": int(len(rr)), "drawn_samples": float(len(rr)),
            "expected_nonconforming": float(rr["p_true"].sum()),
            "nonconforming_per_sample": float(rr["p_true"].mean()) if len(rr) else None,
        }  # fmt: skip
    timings["plans_s"] = round(time.perf_counter() - t, 1)
    ratios = {
        level: results[f"{level}/proposed"]["nonconforming_per_sample"]
        / results[f"{level}/volume_proportional"]["nonconforming_per_sample"]
        for level in args.levels
        if f"{level}/volume_proportional" in results
    }
    return {
        "benchmark": "plan",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(Path(__file__).resolve().parents[1]),
        "machine": machine(),
        "load_average_end": load(),
        "data": {
            "source": str(raw),
            "declarations": int(len(decl)),
            "cutoff": cutoff.isoformat(),
            "end": end.isoformat(),
            "known_declarations": int(len(known["declarations"])),
            "base_year_declarations": int(len(base)),
            "plan_year_declarations": int(len(year_decl)),
            "plan_year_random_samples": int(len(rnd_year)),
        },  # fmt: skip
        "samples": samples,
        "model": model_note,
        "timings": timings,
        "results": results,
        "ratio_per_sample_proposed_vs_proportional": ratios,
    }


def markdown(r: dict[str, Any]) -> str:
    d = r["data"]
    out = [
        f"# Monitoring plan benchmark ({r['date']})", "",
        f"Machine: {r['machine']['nproc']} cores, {r['machine']['ram_gb']} GiB; load average at the"
        f" end {tuple(r['load_average_end'])} (shared machine); commit {r['commit']}.",
        f"Data: {d['source']} ({d['declarations']:,} declarations, ending {d['end'][:10]}). The plan"
        f" for the last year is made at {d['cutoff'][:10]} from the {d['known_declarations']:,}"
        f" declarations known then; the model (trained on them, {r['model']['train_s']} s) scores"
        f" the {d['base_year_declarations']:,} of the base year. Plan year:"
        f" {d['plan_year_declarations']:,} declarations; N = {r['samples']:,} samples (the demo's"
        f" own random share drew {d['plan_year_random_samples']:,} that year).", "",
        "Expected nonconformities found when each group's quota is drawn at random from its"
        " plan-year declarations, on the demo's truth (mean `p_true`):", "",
        "| plan | samples drawn | expected nonconforming | per sample | x proportional |"
        " groups (min floor) | floors kept | median CI width |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]  # fmt: skip
    for key, x in r["results"].items():
        level = key.split("/")[0]
        if "infeasible" in x:
            out.append(f"| {key} | infeasible: {x['infeasible']} | | | | | | |")
            continue
        base = r["results"][f"{level}/volume_proportional"]["nonconforming_per_sample"]
        per = x.get("nonconforming_per_sample")
        f = x.get("floors")
        kept = (f"{f['groups']} ({f['min_floor']})", "yes" if f["every_group_min_floor"]
                and f["quota_ge_floor"] else "NO") if f else ("–", "–")  # fmt: skip
        ci = x.get("median_expected_ci_width")
        out.append(
            f"| {key} | {x['drawn_samples']:,.0f} | {x['expected_nonconforming']:,.1f} | "
            f"{per:.4f} | {per / base:.2f} | {kept[0]} | {kept[1]} | "
            f"{'–' if ci is None else f'{ci:.1%}'} |"
        )
    p = r["results"][f"{next(iter(r['ratio_per_sample_proposed_vs_proportional']))}/proposed"]
    out += [
        "",
        f"Plan-year groups the plan did not know (new trade, drawn at the floor rate in serving):"
        f" {p['plan_year_groups_not_in_plan']} of {p['plan_year_groups']}"
        f" ({p['plan_year_volume_share_not_in_plan']:.2%} of the year's volume).",
        f"Timings: {json.dumps(r['timings'])}; model {json.dumps(r['model'])}.",
        "",
    ]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", default=None, help="a demo raw folder with ground_truth/")
    ap.add_argument("--declarations", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--samples", type=int, default=None, help="N (default: the demo's random "
                    "samples of the plan year)")  # fmt: skip
    ap.add_argument("--levels", nargs="+", default=["chapter", "hs4"])
    ap.add_argument("--work", default="/tmp/guomen-bench-plan")
    ap.add_argument("--out", default="plan", help="results name: results/<out>.{json,md}")
    args = ap.parse_args()
    r = run(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.json").write_text(json.dumps(r, indent=2) + "\n")
    (RESULTS / f"{args.out}.md").write_text(markdown(r))
    print(markdown(r))


if __name__ == "__main__":
    main()
