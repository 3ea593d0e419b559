"""Benchmark the foreign alert feed path (issue 19): a RASFF-like export through the mapping.

Measures, on a demo world of ``--declarations``:

1. mapping coverage and ingest time of the generated feed at several intensities (notifications
   per year), the feed loaded alone into a store that holds the world;
2. what the feed alone tells the warnings: the world is loaded without its own risk signals, the
   default feed on top, and ``policy.warnings.propose`` (the function ``guomen warnings propose``
   calls) is replayed weekly over the last year of data. For each planted outbreak on a food
   product: the first week its product x origin is proposed, and the report-driven proposals about
   pairs with no planted outbreak (distinct subjects).

Run::

    .venv/bin/python benchmarks/bench_signal_feed.py [--declarations 200000] [--data DIR]

Writes ``benchmarks/results/signal_feed.json`` and ``benchmarks/results/signal_feed.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
MAPPING = ROOT / "docs" / "examples" / "rasff_mapping.yaml"


def _world(data: Path, n: int, seed: int) -> Path:
    from demo.generate import write_demo_data

    out = data / f"world_{n}_{seed}"
    if not (out / "declarations.parquet").exists():
        write_demo_data(out, n, seed=seed)
    return out


def _coverage_runs(world: Path, work: Path, intensities: list[float]) -> list[dict]:
    from demo.rasff import write_rasff_feed
    from features.ingest import ingest

    base = work / "base_store"
    if not base.exists():
        ingest(world, base)
    runs = []
    for per_year in intensities:
        feed = work / f"feed_{int(per_year)}"
        t0 = time.perf_counter()
        n = write_rasff_feed(feed / "rasff_notifications.csv", world, seed=7, per_year=per_year)
        t_write = time.perf_counter() - t0
        store = work / f"store_{int(per_year)}"
        shutil.rmtree(store, ignore_errors=True)
        shutil.copytree(base, store)
        t0 = time.perf_counter()
        report = ingest(feed, store, mapping_file=MAPPING)
        seconds = time.perf_counter() - t0
        cov = report.signal_coverage["rasff_notifications.csv"]
        t = report.tables["risk_signals"]
        unmatched = sum(sum(v.values()) for v in cov["unmatched_countries"].values())
        runs.append(
            {
                "per_year": per_year,
                "notifications": n,
                "write_seconds": round(t_write, 2),
                "ingest_seconds": round(seconds, 2),
                "rows_per_second": round(n / seconds),
                "accepted": t.accepted,
                "quarantined": t.quarantined,
                "hs4_share": cov["hs4_share"],
                "chapter_only_share": cov["chapter_only_share"],
                "unmapped_share": cov["unmapped_share"],
                "rule_share": round(
                    sum(v for k, v in cov["by_rule"].items() if k.startswith("rule:")) / n, 4
                ),
                "unmatched_country_names": unmatched,
                "top_unmapped_products": cov["top_unmapped_products"][:3],
            }
        )
        print(runs[-1], flush=True)
    return runs


def _replay(world: Path, work: Path, weeks: int) -> dict:
    from demo.rasff import PRODUCTS, write_rasff_feed
    from features.ingest import ingest
    from features.store import Store
    from policy.warnings import load_warning_config, propose

    src = work / "world_without_signals"
    if not src.exists():
        src.mkdir()
        for f in world.glob("*.parquet"):
            if f.name != "risk_signals.parquet":
                os.link(f, src / f.name)
    store = work / "feed_only_store"
    if not store.exists():
        ingest(src, store)
        feed = work / "feed_default"
        write_rasff_feed(feed / "rasff_notifications.csv", world, seed=7)
        ingest(feed, store, mapping_file=MAPPING)
    tables = Store(store).tables()
    cfg = load_warning_config()
    outbreaks = json.loads((world / "ground_truth" / "outbreaks.json").read_text("utf-8"))
    planted = {f"{o['hs4']}/{o['origin_country']}": o for o in outbreaks}
    end = pd.Timestamp(tables["declarations"]["declared_at"].max()).tz_convert("UTC").floor("D")
    first_seen: dict[str, dict] = {}
    t0 = time.perf_counter()
    for k in range(weeks, -1, -1):
        as_of = end - pd.Timedelta(days=7 * k)
        for w in propose(tables, as_of, cfg):
            if w["subject_kind"] != "hs4_origin":
                continue
            key = w["subject_key"]
            if key not in first_seen:
                first_seen[key] = {
                    "as_of": as_of.date().isoformat(),
                    "level": w["level"],
                    "report_driven": bool(w.get("report_driven")),
                }
    seconds = time.perf_counter() - t0
    start = end - pd.Timedelta(days=7 * weeks)
    food = []
    for key, o in planted.items():
        if o["hs4"] not in PRODUCTS:
            continue
        begin = pd.Timestamp(o["start"]).tz_convert("UTC")
        seen = first_seen.get(key)
        in_replay = begin >= start
        delay = None
        if seen is not None and in_replay:
            delay = (pd.Timestamp(seen["as_of"], tz="UTC") - begin).days
        food.append(
            {
                "outbreak": o["id"],
                "subject": key,
                "start": begin.date().isoformat(),
                "in_replay": in_replay,
                "proposed": seen,
                "days_after_start": delay,
            }
        )
    others = {k: v for k, v in first_seen.items() if k not in planted}
    return {
        "weeks": weeks,
        "replay_seconds": round(seconds, 1),
        "food_outbreaks": food,
        "hs4_origin_proposals_without_planted_cause": len(others),
        "of_which_report_driven": sum(v["report_driven"] for v in others.values()),
    }


def _markdown(result: dict) -> str:
    lines = [
        f"# Foreign alert feed (RASFF-like) through the mapping ({result['date']})",
        "",
        f"Machine: {result['machine']}; load average before/after "
        f"{result['load_before']} / {result['load_after']}. World: "
        f"{result['declarations']:,} declarations, seed {result['seed']}.",
        "",
        "| notifications/yr | rows | write s | ingest s | rows/s | HS4 | chapter only | none | "
        "by keyword rule | unmatched countries | quarantined |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["coverage"]:
        lines.append(
            f"| {r['per_year']:,.0f} | {r['notifications']:,} | {r['write_seconds']} | "
            f"{r['ingest_seconds']} | {r['rows_per_second']:,} | {r['hs4_share']:.1%} | "
            f"{r['chapter_only_share']:.1%} | {r['unmapped_share']:.1%} | {r['rule_share']:.1%} | "
            f"{r['unmatched_country_names']} | {r['quarantined']} |"
        )
    rp = result["replay"]
    lines += [
        "",
        f"Weekly `propose` over the last {rp['weeks']} weeks with the feed as the only risk "
        f"signals ({rp['replay_seconds']} s):",
        "",
        "| outbreak | subject | start | in replay | first proposed | level | report-driven | "
        "days after start |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for f in rp["food_outbreaks"]:
        p = f["proposed"] or {}
        lines.append(
            f"| {f['outbreak']} | {f['subject']} | {f['start']} | {f['in_replay']} | "
            f"{p.get('as_of', '–')} | {p.get('level', '–')} | {p.get('report_driven', '–')} | "
            f"{f['days_after_start'] if f['days_after_start'] is not None else '–'} |"
        )
    lines += [
        "",
        f"HS4 x origin subjects proposed without a planted cause: "
        f"{rp['hs4_origin_proposals_without_planted_cause']} "
        f"(report-driven: {rp['of_which_report_driven']}).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--declarations", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "guomen_bench_feed")
    ap.add_argument("--intensities", default="700,7000,70000")
    ap.add_argument("--weeks", type=int, default=104)
    args = ap.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    load_before = [round(x, 2) for x in os.getloadavg()]
    world = _world(args.data, args.declarations, args.seed)
    work = args.data / f"work_{args.declarations}_{args.seed}"
    work.mkdir(exist_ok=True)
    coverage = _coverage_runs(world, work, [float(x) for x in args.intensities.split(",")])
    replay = _replay(world, work, args.weeks)
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "declarations": args.declarations,
        "seed": args.seed,
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "coverage": coverage,
        "replay": replay,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "signal_feed.json").write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    (RESULTS / "signal_feed.md").write_text(_markdown(result), "utf-8")
    print(_markdown(result))


if __name__ == "__main__":
    main()
