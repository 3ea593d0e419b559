"""Benchmark: ``write_demo_data`` at 1,000,000 declarations (parquet), wall time and peak RSS.

Each run happens in a fresh subprocess, so the peak resident memory read from
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` is the generator's alone (plus the interpreter
and imports). Writes ``benchmarks/results/demo_data.json`` and ``demo_data.md``.

Usage: ``.venv/bin/python benchmarks/bench_demo_data.py [--declarations N] [--repeats R]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TARGET_SECONDS = 60.0
TARGET_GB = 4.0

CHILD = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
from demo.generate import write_demo_data
rows = write_demo_data(Path(sys.argv[1]), int(sys.argv[2]), seed=7, fmt="parquet")
print(json.dumps({"seconds_in_process": time.perf_counter() - t0, "rows": rows}))
"""


def _machine() -> dict[str, object]:
    mem_kb = 0
    with open("/proc/meminfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    return {
        "nproc": os.cpu_count(),
        "ram_gib": round(mem_kb / 1024**2, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run_once(n: int) -> dict[str, object]:
    """Generate ``n`` declarations in a child process; return wall seconds and peak RSS."""
    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, tmp, str(n)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t0
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    return {
        "wall_seconds": round(wall, 2),
        "seconds_in_process": round(out["seconds_in_process"], 2),
        # ru_maxrss of children is the max over all waited-for children; runs only grow it,
        # so report it together with the value before the run.
        "peak_rss_gb": round(peak_kb / 1024**2, 3),
        "peak_rss_before_gb": round(before / 1024**2, 3),
        "bytes_written": size,
        "rows": out["rows"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--declarations", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    runs = [run_once(args.declarations) for _ in range(args.repeats)]
    walls = sorted(r["wall_seconds"] for r in runs)
    median_wall = (
        walls[len(walls) // 2]
        if len(walls) % 2
        else sum(walls[len(walls) // 2 - 1 : len(walls) // 2 + 1]) / 2
    )
    peak = max(r["peak_rss_gb"] for r in runs)
    result = {
        "benchmark": "demo_data",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "declarations": args.declarations,
        "format": "parquet",
        "seed": 7,
        "runs": runs,
        "median_wall_seconds": round(median_wall, 2),
        "peak_rss_gb": peak,
        "target_seconds": TARGET_SECONDS,
        "target_gb": TARGET_GB,
        "time_ratio_to_target": round(median_wall / TARGET_SECONDS, 3),
        "memory_ratio_to_target": round(peak / TARGET_GB, 3),
        "meets_targets": bool(median_wall <= TARGET_SECONDS and peak <= TARGET_GB),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "demo_data.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    rows = runs[0]["rows"]
    m = result["machine"]
    md = [
        "# demo-data benchmark",
        "",
        f"{result['date']}, {m['nproc']} cores, {m['ram_gib']} GiB RAM, Python {m['python']}; "
        f"`write_demo_data` with {args.declarations:,} declarations, parquet, seed 7, "
        f"{args.repeats} runs in fresh subprocesses.",
        "",
        "| metric | measured | target | ratio |",
        "|---|---|---|---|",
        f"| wall time (median) | {median_wall:.1f} s | {TARGET_SECONDS:.0f} s | "
        f"{result['time_ratio_to_target']:.2f} |",
        f"| peak RSS | {peak:.2f} GB | {TARGET_GB:.0f} GB | "
        f"{result['memory_ratio_to_target']:.2f} |",
        "",
        "Rows: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()) + ".",
        "",
    ]
    (RESULTS / "demo_data.md").write_text("\n".join(md), encoding="utf-8")
    print("\n".join(md))


if __name__ == "__main__":
    main()
