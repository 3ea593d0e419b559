"""Benchmark ``guomen ingest``: 1M demo declarations and their tables, Parquet and CSV input.

Target (issue 2): ingest of 1M declarations and their tables in at most 60 s on the 2-core box.

Run::

    .venv/bin/python benchmarks/bench_ingest.py [--declarations 1000000] [--data DIR]
        [--baseline OTHER_CHECKOUT --repeat 3]

``--baseline`` times another checkout of the project (e.g. ``git worktree add /tmp/base main``)
on the same data in the same run, runs alternating, and reports the median time ratio; its
results go to ``ingest_vs_baseline.json`` / ``.md`` instead of the main result files.

Writes ``benchmarks/results/ingest.json`` and ``benchmarks/results/ingest.md``. The demo input
is generated once into ``--data`` (kept between runs; generation time is not part of the figure).
Each ingest runs in a fresh child process into an empty store so its wall time and peak RSS are
its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from provenance import git_commit, machine, ram_gb  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET_S = 60.0

CHILD = """
import json, sys, time, resource
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from features.ingest import ingest
t0, c0 = time.perf_counter(), time.process_time()
r = ingest(Path(sys.argv[1]), Path(sys.argv[2]))
dt, cpu = time.perf_counter() - t0, time.process_time() - c0
print(json.dumps({"seconds": dt, "cpu_seconds": cpu, "tables": r.to_dict()["tables"],
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _generate(data: Path, n: int, fmt: str) -> Path:
    out = data / f"demo_{n}_{fmt}"
    if (out / f"declarations.{fmt}").exists():
        return out
    sys.path.insert(0, str(ROOT))
    from demo.generate import write_demo_data

    t0 = time.perf_counter()
    write_demo_data(out, n_declarations=n, seed=7, fmt=fmt)
    print(f"generated {fmt} in {time.perf_counter() - t0:.1f} s", flush=True)
    return out


def _run_ingest(src: Path, code: Path = ROOT) -> dict:
    store = Path(tempfile.mkdtemp(prefix="bench_store_"))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(src), str(store / "s"), str(code)],
            cwd=code,
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        size = sum(p.stat().st_size for p in (store / "s").rglob("*") if p.is_file())
        result["store_mb"] = round(size / 1e6, 1)
        return result
    finally:
        shutil.rmtree(store, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--declarations", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "guomen_bench")
    ap.add_argument("--formats", default="parquet,csv")
    ap.add_argument("--baseline", type=Path, default=None, help="another checkout to compare")
    ap.add_argument("--repeat", type=int, default=3, help="runs per checkout with --baseline")
    args = ap.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    if args.baseline is not None:
        _compare(args)
        return
    runs = {}
    for fmt in args.formats.split(","):
        src = _generate(args.data, args.declarations, fmt)
        input_mb = sum(p.stat().st_size for p in src.glob(f"*.{fmt}")) / 1e6
        res = _run_ingest(src)
        res["input_mb"] = round(input_mb, 1)
        rows = sum(t["read"] for t in res["tables"].values())
        res["rows_total"] = rows
        res["rows_per_s"] = round(rows / res["seconds"])
        runs[fmt] = res
        print(f"{fmt}: {res['seconds']:.1f} s, peak {res['peak_rss_mb']:.0f} MB", flush=True)
    ratio = None
    if "csv" in runs and "parquet" in runs:
        ratio = round(runs["csv"]["seconds"] / runs["parquet"]["seconds"], 2)
    payload = {
        "benchmark": "ingest",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "declarations": args.declarations,
        "target_seconds": TARGET_S,
        "runs": runs,
        "csv_over_parquet": ratio,
        "meets_target": all(r["seconds"] <= TARGET_S for r in runs.values()),
        "child_peak_rss_note": "ru_maxrss of the ingest child process",
        "parent_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest.json").write_text(json.dumps(payload, indent=2))
    lines = [
        f"# Ingest benchmark ({payload['date']})",
        "",
        f"Machine: {payload['machine']['nproc']} cores, {payload['machine']['ram_gb']} GiB RAM, "
        f"Python {payload['machine']['python']}. {args.declarations:,} demo declarations "
        f"(seed 7) and their tables; fresh store; target <= {TARGET_S:.0f} s.",
        "",
        "| input | input MB | rows (all tables) | seconds | rows/s | peak RSS MB | store MB | target |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for fmt, r in runs.items():
        ok = "met" if r["seconds"] <= TARGET_S else "MISSED"
        lines.append(
            f"| {fmt} | {r['input_mb']} | {r['rows_total']:,} | {r['seconds']:.1f} | "
            f"{r['rows_per_s']:,} | {r['peak_rss_mb']:.0f} | {r['store_mb']} | {ok} |"
        )
    if ratio is not None:
        lines += ["", f"CSV / Parquet time ratio (same run, same data): {ratio}"]
    (RESULTS / "ingest.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _compare(args: argparse.Namespace) -> None:
    """This checkout against ``--baseline`` on the same inputs, alternating runs."""
    import statistics

    rows = {}
    for fmt in args.formats.split(","):
        src = _generate(args.data, args.declarations, fmt)
        times: dict[str, list[float]] = {"current": [], "baseline": []}
        cpu: dict[str, list[float]] = {"current": [], "baseline": []}
        counts = {}
        for _ in range(args.repeat):
            for name, code in (("baseline", args.baseline), ("current", ROOT)):
                res = _run_ingest(src, code)
                times[name].append(res["seconds"])
                cpu[name].append(res["cpu_seconds"])
                counts[name] = {t: v["read"] for t, v in res["tables"].items()}
                print(f"{fmt} {name}: {res['seconds']:.2f} s, cpu {res['cpu_seconds']:.2f} s",
                      flush=True)  # fmt: skip
        assert counts["current"] == counts["baseline"], counts
        med = {k: statistics.median(v) for k, v in times.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
        rows[fmt] = {"seconds": times, "cpu_seconds": cpu, "median": med, "median_cpu": med_cpu,
                     "ratio_current_over_baseline": round(med["current"] / med["baseline"], 3),
                     "cpu_ratio_current_over_baseline": round(
                         med_cpu["current"] / med_cpu["baseline"], 3)}  # fmt: skip
    payload = {
        "benchmark": "ingest_vs_baseline",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "declarations": args.declarations,
        "baseline": str(args.baseline),
        "baseline_commit": git_commit(args.baseline) if args.baseline else None,
        "current_commit": git_commit(ROOT),
        "repeat": args.repeat,
        "load_average": os.getloadavg(),
        "machine": {"nproc": os.cpu_count(), "ram_gb": ram_gb()},
        "runs": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ingest_vs_baseline.json").write_text(json.dumps(payload, indent=2))
    lines = [
        f"# Ingest: this checkout vs baseline ({payload['date']})",
        "",
        f"{args.declarations:,} demo declarations (seed 7) and their tables, fresh store, "
        f"{args.repeat} alternating runs each; load average at the end "
        f"{', '.join(f'{x:.1f}' for x in payload['load_average'])} on "
        f"{payload['machine']['nproc']} cores. Baseline: `{args.baseline}` at "
        f"{payload['baseline_commit']}; current: {payload['current_commit']}.",
        "",
        "Wall time suffers from the other jobs on a loaded machine; the CPU time of the ingest "
        "process (user + system) much less.",
        "",
        "| input | baseline median s | current median s | wall ratio | baseline CPU s | "
        "current CPU s | CPU ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for fmt, r in rows.items():
        lines.append(
            f"| {fmt} | {r['median']['baseline']:.2f} | {r['median']['current']:.2f} | "
            f"{r['ratio_current_over_baseline']} | {r['median_cpu']['baseline']:.2f} | "
            f"{r['median_cpu']['current']:.2f} | {r['cpu_ratio_current_over_baseline']} |"
        )
    (RESULTS / "ingest_vs_baseline.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
