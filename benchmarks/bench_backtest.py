"""Selection-policy backtest (issue 16): what each policy finds over 12 months, and how long it takes.

For each world: the last 12 months of the demo replayed week by week with monthly retraining at a
5 % budget, the universe the demo's ground truth. Reported per policy: nonconformities and
critical ones found (expected counts), more or fewer than ``legacy`` and ``exploit``, the share
of the oracle, exploit's AUC on the held-aside random sample in the first and the last month,
and the delay to the first warning of each planted outbreak; plus wall time and load average.

The default world is read from an existing store (``--store``/``--truth``: the shared read-only
1M demo); the variants are generated and ingested into ``--work`` at ``--variant-declarations``.

Usage::

    .venv/bin/python benchmarks/bench_backtest.py --store /work/data/1m-default/store \\
        --truth /work/data/1m-default/raw/ground_truth/declaration_truth.parquet \\
        --name 1m-default
    .venv/bin/python benchmarks/bench_backtest.py --world hs6_origin --variant-declarations 200000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
WORLD_SEEDS = {"default": 7, "hs6_origin": 101, "declarant": 102, "overseas_hs4": 103,
               "port_chapter": 104, "attribute": 105, "weak_enterprise": 106}  # fmt: skip
FIVE = ("random", "legacy", "exploit", "hybrid:explore=0.1,by=random", "thompson")
SEVEN = (*FIVE, "hybrid:explore=0.1,by=uncertainty", "hybrid:explore=0.1,by=novelty")


def prepare_world(world: str, n: int, work: Path) -> tuple[Path, Path]:
    """Generate and ingest a demo world (reused when present); returns (store, truth)."""
    from demo.generate import write_demo_data
    from features.ingest import ingest

    base = work / f"{world}-{n}"
    store, src = base / "store", base / "src"
    if not (store / "manifest.json").exists():
        write_demo_data(src, n, WORLD_SEEDS[world], world=world)
        ingest(src, store)
    return store, src / "ground_truth" / "declaration_truth.parquet"


def one_run(
    name: str, store: Path, truth: Path, policies: tuple[str, ...], work: Path, args: Any
) -> dict[str, Any]:
    from training.backtest import BacktestSpec, parse_policy, run_backtest

    spec = BacktestSpec(start=args.start, end=args.end, budget=args.budget, retrain=args.retrain,
                        seed=7, warnings_step_days=args.warnings_every)  # fmt: skip
    out = work / f"run-{name}"
    load0 = os.getloadavg()
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    samples: list[float] = []
    done = threading.Event()

    def sample_load() -> None:  # the 1-minute load average every 20 s while the run lasts
        while not done.wait(20):
            samples.append(os.getloadavg()[0])

    sampler = threading.Thread(target=sample_load, daemon=True)
    sampler.start()
    try:
        doc = run_backtest(store, out, spec, [parse_policy(p) for p in policies],
                           ground_truth=truth,
                           progress=lambda m: print(f"[{name} {time.perf_counter() - t0:7.1f} s] "
                                                    f"{m}", flush=True))  # fmt: skip
    finally:
        done.set()
    assert doc is not None
    seconds = time.perf_counter() - t0
    row = row_of(name, store, doc, seconds, _cpu_seconds() - cpu0, load0, args, out)
    if samples:
        row["load_average_during"] = {
            "min": round(min(samples), 2),
            "mean": round(sum(samples) / len(samples), 2),
            "max": round(max(samples), 2),
            "samples": len(samples),
        }
    return row


def row_of(
    name: str, store: Path, doc: dict[str, Any], seconds: float, cpu: float,
    load0: tuple[float, float, float], args: Any, out: Path,
) -> dict[str, Any]:  # fmt: skip
    """The benchmark's row of one finished run (``backtest.json``'s content)."""
    res = doc["results"]
    pols = res["policies"]
    rows = {}
    for pname, p in pols.items():
        t = p["total"]
        rows[pname] = {
            "found": t["found"],
            "critical_found": t["critical_found"],
            "precision": t["precision"],
            "vs_oracle": t.get("vs_oracle"),
            "critical_vs_oracle": t.get("critical_vs_oracle"),
            "vs_legacy": res["comparisons"]["vs_legacy"]["policies"][pname],
            "vs_exploit": res["comparisons"]["vs_exploit"]["policies"][pname],
            "auc_first_month": p["auc_trend"]["first"],
            "auc_last_month": p["auc_trend"]["last"],
            "auc_change": p["auc_trend"]["change"],
            "outbreaks_warned": t.get("outbreaks_warned"),
            "outbreaks_planted": t.get("outbreaks_planted"),
            "median_warning_delay_days": t.get("median_warning_delay_days"),
        }
    return {
        "name": name,
        "store": str(store),
        "declarations_in_period": res["universe"]["eligible_in_period"],
        "weeks": len(res["weeks"]),
        "start": args.start,
        "end": args.end,
        "budget": args.budget,
        "retrain": args.retrain,
        "warnings_every_days": args.warnings_every,
        "policies": rows,
        "oracle_found": next(iter(pols.values()))["total"].get("oracle_found"),
        "oracle_critical": next(iter(pols.values()))["total"].get("oracle_critical"),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "timings": doc["run"]["timings"],
        "load_average_before": [round(x, 2) for x in load0],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "report": str(out / "backtest.md"),
    }


def _secs(value: float | None) -> str:
    return "not timed" if value is None else f"{value:.0f} s"


def _during(run: dict[str, Any]) -> str:
    d = run.get("load_average_during")
    if not d:
        return ""
    return f", {d['min']}-{d['max']} (mean {d['mean']}) while it ran"


def _cpu_seconds() -> float:
    """CPU time of this process so far (user + system, every thread): on a machine shared with
    other jobs the wall time says more about them than about the backtest."""
    import resource

    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def markdown(doc: dict[str, Any]) -> str:
    lines = ["# Selection-policy backtest (issue 16)", "",
             "12 months replayed week by week, 5 % budget, monthly retraining, the demo's ground "
             "truth as the universe (expected counts). `+`/`−`: nonconformities (critical) found "
             "more or fewer than the reference policy over the 12 months.", ""]  # fmt: skip
    for run in doc["runs"]:
        lines += [f"## {run['name']} ({run['declarations_in_period']:,} declarations in the period, "
                  f"{run['weeks']} weeks)", "",
                  f"Wall time {run['seconds']:.0f} s, CPU time {run.get('cpu_seconds', '?')} s "
                  f"(wall: features {run['timings'].get('features_s', 0):.0f} s, "
                  f"retraining {run['timings'].get('retrain_s', 0):.0f} s, warnings "
                  f"{_secs(run['timings'].get('warnings_s'))}); load average "
                  f"{run['load_average_before']} before, {run['load_average_after']} after"
                  f"{_during(run)}; "
                  f"{run['date']}, commit {run.get('commit')}.", "",
                  *([f"Note: {run['note']}.", ""] if run.get("note") else []),
                  f"Oracle: {run['oracle_found']:,.1f} nonconformities, {run['oracle_critical']:,.1f} critical.", "",
                  "| policy | found | critical | vs oracle | vs legacy | critical vs legacy | vs exploit | critical vs exploit | AUC first → last month | outbreaks warned | median delay (days) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip  # noqa: E501
        for name, r in run["policies"].items():
            auc = ("–" if r["auc_first_month"] is None
                   else f"{r['auc_first_month']:.3f} → {r['auc_last_month']:.3f}")  # fmt: skip
            warned = ("–" if r["outbreaks_planted"] is None
                      else f"{r['outbreaks_warned']}/{r['outbreaks_planted']}")  # fmt: skip
            lines.append(
                f"| `{name}` | {r['found']:,.1f} | {r['critical_found']:,.1f} | "
                f"{r['vs_oracle'] or 0:.3f} | {r['vs_legacy']['found']:+,.1f} | "
                f"{r['vs_legacy']['critical_found']:+,.1f} | {r['vs_exploit']['found']:+,.1f} | "
                f"{r['vs_exploit']['critical_found']:+,.1f} | {auc} | {warned} | "
                f"{r['median_warning_delay_days'] if r['median_warning_delay_days'] is not None else '–'} |"  # noqa: E501
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, help="an existing store (default world)")
    ap.add_argument("--truth", type=Path, help="its declaration_truth.parquet")
    ap.add_argument("--name", default=None, help="label of the run in the results")
    ap.add_argument("--world", default=None, help="generate this world instead (demo/worlds.py)")
    ap.add_argument("--variant-declarations", type=int, default=200_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-backtest"))
    ap.add_argument("--start", default="2025-11-01")
    ap.add_argument("--end", default="2026-10-31")
    ap.add_argument("--budget", type=float, default=0.05)
    ap.add_argument("--retrain", default="monthly")
    ap.add_argument("--warnings-every", type=int, default=7)
    ap.add_argument("--policies", default="five", choices=("five", "seven"))
    ap.add_argument("--results", default="backtest", help="results file stem (merged by name)")
    ap.add_argument("--note", default=None, help="a sentence printed with the run's figures")
    args = ap.parse_args()
    from benchmarks.provenance import git_commit

    args.work.mkdir(parents=True, exist_ok=True)
    policies = FIVE if args.policies == "five" else SEVEN
    if args.world:
        store, truth = prepare_world(args.world, args.variant_declarations, args.work)
        name = args.name or f"{args.world} {args.variant_declarations // 1000}k"
    else:
        if args.store is None or args.truth is None:
            ap.error("give --store and --truth, or --world")
        store, truth = args.store, args.truth
        name = args.name or store.name
    run = one_run(name.replace(" ", "-"), store, truth, policies, args.work, args)
    run["name"] = name
    run["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    run["commit"] = git_commit(ROOT)
    run["cpus"] = os.cpu_count()
    if args.note:
        run["note"] = args.note
    RESULTS.mkdir(exist_ok=True)
    file = RESULTS / f"{args.results}.json"
    doc = json.loads(file.read_text()) if file.exists() else {"runs": []}
    doc["runs"] = [r for r in doc["runs"] if r["name"] != name] + [run]
    file.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    (RESULTS / f"{args.results}.md").write_text(markdown(doc), encoding="utf-8")
    print(markdown({"runs": [run]}))


if __name__ == "__main__":
    main()
