"""Benchmark the out-of-core path end to end (issue 14, parts 2-3): demo-data, ingest, features,
train, rescore at 1M / 5M / 20M declarations, each step through the README's commands.

Target: 20M end to end within 24 GiB peak; each step's seconds per million within 1.3x of the
1M figure; the 1M figures no worse than the in-memory path (``--compare STEP ...`` runs each
in-memory step right after its out-of-core one).

Run::

    .venv/bin/python benchmarks/bench_scale.py --sizes 1000000 [--compare features train rescore]
        [--partition-months 3] [--last features|train|rescore] [--merge]

Every step is a child process (``guomen ...``); its wall time and the peak RSS of its whole
process tree (sampled every 0.2 s with psutil: the step and any workers it starts) are recorded,
with the load average before and after. Work folders: ``benchmarks/work/scale/<n>`` (kept, not
in git). Writes ``benchmarks/results/scale.json`` and ``benchmarks/results/scale.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "work" / "scale"
GUOMEN = [str(ROOT / ".venv" / "bin" / "guomen")]
STEPS = ("demo-data", "ingest", "features", "train", "rescore")


def run_step(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run one command; wall seconds, CPU seconds and the peak RSS (GB) of its process tree."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=env["GUOMEN_HOME"], env=env, stdout=out, stderr=out)
        root = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                procs = [root, *root.children(recursive=True)]
                rss = sum(p.memory_info().rss for p in procs if p.is_running())
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.2)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}); see {log}")
    # CPU of the step and every descendant it waited for: the shared machine's load inflates
    # wall time, CPU time much less.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_gb": round(peak / 1e9, 2)}


def last_day(store: Path) -> str:
    """The local date of the last declaration (the rescoring as-of)."""
    from features.store import Store

    decl = Store(store).read("declarations", columns=["declared_at"])["declared_at"]
    return str(decl.max().tz_convert("Asia/Shanghai").date())


def measure(
    n: int,
    partition_months: int,
    max_rows: int,
    compare: tuple[str, ...],
    save: Callable[[dict[str, Any]], None],
    last: str = "rescore",
    chunk_rows: int = 1_000_000,
    first: str = "demo-data",
    previous: dict[str, Any] | None = None,
    rescore_days: int = 365,
    feature_threads: int = 1,
) -> dict[str, Any]:
    """Run the steps at ``n`` declarations from ``first`` up to ``last``, each in-memory step of
    ``compare`` right after its out-of-core one (side by side at the same load); ``save`` is
    called with the partial result after every step (a run cut short by a deadline keeps what
    finished). From a later ``first`` the work folder of an earlier run is reused and its
    steps (``previous``) are kept."""
    work = WORK / str(n)
    home = work / "home"
    if first == "demo-data":
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
    elif not home.is_dir():
        raise SystemExit(f"--first {first}: no earlier run in {work}")
    env = {
        **os.environ,
        "GUOMEN_HOME": str(home),
        "GUOMEN_STORE_DIR": str(home / "store"),
        "GUOMEN_DATABASE_URL": f"sqlite:///{home / 'guomen.db'}",
        "PYTHONPATH": str(ROOT),
    }
    raw = work / "raw"
    steps: dict[str, dict[str, Any]] = dict((previous or {}).get("steps", {}))
    result: dict[str, Any] = {"declarations": n, "steps": steps, "max_rows": max_rows,
                              "ingest_chunk_rows": chunk_rows}  # fmt: skip
    if first == "demo-data" or STEPS.index(first) <= STEPS.index("features"):
        result["feature_threads"] = feature_threads
        result["partition_months"] = partition_months
    elif previous and "feature_threads" in previous:
        result["feature_threads"] = previous["feature_threads"]
    if previous and previous.get("in_memory"):
        result["in_memory"] = previous["in_memory"]
    logs = work / "logs"
    logs.mkdir(exist_ok=True)

    mem: dict[str, Any] = {}

    def step(name: str, cmd: list[str], in_memory: list[str] | None = None) -> None:
        if STEPS.index(name) < STEPS.index(first):
            return
        load = os.getloadavg()
        steps[name] = {**run_step(cmd, env, logs / f"{name}.log"), "load_before": load}
        steps[name]["load_after"] = os.getloadavg()
        print(n, name, steps[name], flush=True)
        save(result)
        if in_memory is not None and name in compare:
            mem.update(result.get("in_memory", {}))
            result["in_memory"] = mem
            load = os.getloadavg()
            mem[name] = {**run_step(in_memory, env, logs / f"mem-{name}.log"), "load_before": load}
            mem[name]["load_after"] = os.getloadavg()
            print(n, "in-memory", name, mem[name], flush=True)
            save(result)

    if first == "demo-data":
        shutil.rmtree(raw, ignore_errors=True)
    step("demo-data", [*GUOMEN, "demo-data", "--out", str(raw), "--declarations", str(n)])
    step("ingest", [*GUOMEN, "ingest", str(raw), "--store", str(home / "store"),
                    "--chunk-rows", str(chunk_rows)])  # fmt: skip
    feats = home / "features"
    step(
        "features",
        [*GUOMEN, "features", "build", "--store", str(home / "store"), "--out", str(feats),
         "--partition-months", str(partition_months), "--threads", str(feature_threads)],
        [*GUOMEN, "features", "build", "--store", str(home / "store"),
         "--out", str(home / "features.parquet")],
    )  # fmt: skip
    if last == "features":
        return result
    step("train", [*GUOMEN, "train", "--features", str(feats), "--max-rows", str(max_rows)],
         [*GUOMEN, "train"])  # fmt: skip
    if last == "train":
        return result
    if STEPS.index(first) <= STEPS.index("train") or "rescore" not in steps:
        # (again after a run that stopped at train; a second promote of the same model is a
        # no-op or a refusal, either way the champion is the model trained here)
        subprocess.run([*GUOMEN, "promote"], cwd=home, env=env, check=False, capture_output=True)
    as_of = last_day(home / "store")
    result["rescore_days"] = rescore_days
    step("rescore", [*GUOMEN, "rescore", "--as-of", as_of, "--features", str(feats),
                     "--out", str(home / "rescore"), "--period-days", str(rescore_days)],
         [*GUOMEN, "rescore", "--as-of", as_of, "--out", str(home / "rescore-mem")])  # fmt: skip
    return result


def markdown(payload: dict[str, Any]) -> str:
    runs = payload["runs"]
    lines = [
        "### Out of core end to end (issue 14, parts 2-3)",
        "",
        f"{payload['date']}, {payload['machine']}; partitions of {payload['partition_months']} "
        f"month(s), training sample cap {payload['max_rows']:,} rows per segment, ingest chunks of "
        f"{payload.get('ingest_chunk_rows') or 0:,} declarations (0: whole files). Each step is "
        "its `guomen` command in a child process; peak RSS of the whole process tree; load "
        "average (1 min) before/after each step in the JSON.",
        "",
        "| declarations | step | wall s | s per M | CPU s | peak RSS GB | load 1 min |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        m = r["declarations"] / 1e6
        for name in STEPS:
            if name not in r["steps"]:
                continue
            s = r["steps"][name]
            lines.append(
                f"| {r['declarations']:,} | {name} | {s['wall_s']} | {s['wall_s'] / m:.1f} | "
                f"{s.get('cpu_s', '')} | {s['peak_rss_gb']} | {s['load_before'][0]:.1f} |"
            )
        if r.get("rescore_days", 365) != 365 and "rescore" in r["steps"]:
            lines.append(f"| {r['declarations']:,} | (rescore over a {r['rescore_days']}-day "
                         "period at this size, not 365) | | | | | |")  # fmt: skip
        months = r.get("partition_months", payload["partition_months"])
        if months != payload["partition_months"] and "features" in r["steps"]:
            lines.append(f"| {r['declarations']:,} | (features in {months}-month partitions "
                         "at this size) | | | | | |")  # fmt: skip
        if r.get("feature_threads", 1) != 1 and "features" in r["steps"]:
            lines.append(f"| {r['declarations']:,} | (features with --threads "
                         f"{r['feature_threads']} at this size) | | | | | |")  # fmt: skip
        if r.get("max_rows", payload["max_rows"]) != payload["max_rows"]:
            lines.append(f"| {r['declarations']:,} | (training sample cap {r['max_rows']:,} rows "
                         "per segment at this size) | | | | | |")  # fmt: skip
        total = sum(s["wall_s"] for s in r["steps"].values())
        peak = max(s["peak_rss_gb"] for s in r["steps"].values())
        label = "end to end" if set(STEPS) <= set(r["steps"]) else "the steps run (not end to end)"
        lines.append(f"| {r['declarations']:,} | **{label}** | {total:.0f} | "
                     f"{total / m:.1f} | | {peak} | |")  # fmt: skip
        for name, s in r.get("in_memory", {}).items():
            lines.append(
                f"| {r['declarations']:,} | {name} (in memory, today's path) | {s['wall_s']} | "
                f"{s['wall_s'] / m:.1f} | {s.get('cpu_s', '')} | {s['peak_rss_gb']} | "
                f"{s['load_before'][0]:.1f} |"
            )
    base = next(
        (r for r in runs if r["declarations"] == min(x["declarations"] for x in runs)), None
    )
    if base and len(runs) > 1:
        lines += ["", "Seconds per million relative to the smallest size (target ≤ 1.3):", ""]
        for r in runs:
            if r is base:
                continue
            ratios = []
            for name in STEPS:
                if name not in base["steps"] or name not in r["steps"]:
                    continue
                if name == "rescore" and r.get("rescore_days", 365) != base.get(
                    "rescore_days", 365
                ):
                    continue  # different periods: not comparable per million
                if name == "train" and r.get("max_rows") != base.get("max_rows"):
                    continue  # a different sample cap: not comparable per million
                for key, unit in (("wall_s", "wall"), ("cpu_s", "CPU")):
                    a = base["steps"][name].get(key) or 0
                    b = r["steps"][name].get(key) or 0
                    if a and b:
                        x = (b / r["declarations"]) / (a / base["declarations"])
                        ratios.append(f"{name} {unit} {x:.2f}×")
            lines.append(f"- {r['declarations']:,}: " + ", ".join(ratios))
    if payload.get("note"):
        lines += ["", payload["note"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--partition-months", type=int, default=3)
    ap.add_argument("--max-rows", type=int, default=3_000_000)
    ap.add_argument("--chunk-rows", type=int, default=1_000_000, help="guomen ingest's chunk")
    ap.add_argument(
        "--compare",
        nargs="*",
        default=[],
        choices=("features", "train", "rescore"),
        help="also these steps of the in-memory path, each beside its own",
    )
    ap.add_argument(
        "--last",
        default="rescore",
        choices=("features", "train", "rescore"),
        help="stop after this step (a size whose later steps do not fit the time)",
    )
    ap.add_argument("--merge", action="store_true", help="keep earlier sizes of scale.json")
    ap.add_argument("--rescore-days", type=int, default=365, help="rescoring's period (days)")
    ap.add_argument(
        "--feature-threads", type=int, default=1,
        help="guomen features build --threads (partitions at once; CPU seconds unchanged)",
    )  # fmt: skip
    ap.add_argument(
        "--first",
        default="demo-data",
        choices=STEPS,
        help="start at this step in the work folder of an earlier run (its results kept)",
    )
    args = ap.parse_args()
    from benchmarks.provenance import git_commit

    runs: list[dict[str, Any]] = []
    earlier: dict[int, dict[str, Any]] = {}
    if (args.merge or args.first != "demo-data") and (RESULTS / "scale.json").exists():
        old = json.loads((RESULTS / "scale.json").read_text())
        earlier = {r["declarations"]: r for r in old["runs"]}
        runs = [r for r in old["runs"] if r["declarations"] not in args.sizes]

    def save(partial: dict[str, Any]) -> None:
        done = [r for r in runs if r["declarations"] != partial["declarations"]]
        payload = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{os.cpu_count()} cores, "
            f"{psutil.virtual_memory().total / 2**30:.1f} GiB, {platform.machine()}",
            "commit": git_commit(ROOT),
            "partition_months": args.partition_months,
            "max_rows": args.max_rows,
            "ingest_chunk_rows": args.chunk_rows,
            "runs": sorted([*done, partial], key=lambda r: r["declarations"]),
        }
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "scale.json").write_text(json.dumps(payload, indent=2))
        (RESULTS / "scale.md").write_text(markdown(payload))

    for n in args.sizes:
        result = measure(
            n, args.partition_months, args.max_rows, tuple(args.compare), save, args.last,
            args.chunk_rows, args.first, earlier.get(n) if args.first != "demo-data" else None,
            args.rescore_days, args.feature_threads,
        )  # fmt: skip
        runs = [r for r in runs if r["declarations"] != n] + [result]


if __name__ == "__main__":
    main()
