"""Where ``POST /v1/score``'s slow requests spend their time (issue 14, part 1: the tail).

Starts ``guomen serve`` (1 worker, ``bench_api_wrk.py``'s prepared 200k demo) with
``GUOMEN_PHASE_TIMINGS`` on (``serving.phase_timing``), loads it with wrk, stops it and reads
the per-request records: for the typical request (median of each phase) and for the slowest
1 % (mean of each phase over them), the time in each phase of the request path, the main
thread's CPU time against the wall time, the GC pauses, and the gap between requests (uvicorn
reading and parsing the next one). Optional ``ENV=VALUE`` settings for the server, to test a
suspect (``GUOMEN_RELOAD_POLL_SECONDS=100000``, ...).

Run::

    .venv/bin/python benchmarks/bench_api_phases.py --clients 1 --seconds 20 [ENV=VALUE ...]

Writes ``benchmarks/results/api_phases.{json,md}`` (``--stem`` to change the name).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_api as base  # noqa: E402
import bench_api_wrk as bw  # noqa: E402
from provenance import git_commit  # noqa: E402

ROOT = base.ROOT
# The marks of the request path, in order (serving.phase_timing.mark calls); each phase is
# the time from the previous mark (the middleware's entry for the first) to its own.
PHASES = {
    "route": "middleware, auth, body validation (to the scoring service)",
    "features": "declaration row, online features",
    "explain": "TreeSHAP, calibration",
    "decide": "tier, decision",
    "bodies": "reasons, answer and audit dicts",
    "queued": "audit rows bound; only when handed to the committer thread",
    "audit": "audit commit",
    "snapshot": "snapshot add",
    "json": "answer to JSON",
    "app": "to the response start",
}


def phase_table(records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Per-request phase durations (ns); a phase whose mark is missing counts 0."""
    out: dict[str, list[float]] = {p: [] for p in PHASES}
    out.update({"rest": [], "wall": [], "cpu": [], "gc": [], "gap": []})
    for r in records:
        marks = dict(r["marks"])
        previous = 0
        for p in PHASES:
            at = marks.get(p)
            out[p].append(0 if at is None else at - previous)
            previous = previous if at is None else at
        out["rest"].append(r["wall_ns"] - previous)
        out["wall"].append(r["wall_ns"])
        out["cpu"].append(r["cpu_ns"])
        out["gc"].append(r["gc_ns"])
        out["gap"].append(r["gap_ns"] or 0)
    return {k: np.asarray(v, dtype=float) for k, v in out.items()}


def summarise(records: list[dict[str, Any]], tail: float = 0.01) -> dict[str, Any]:
    """Median per phase of every request, mean per phase of the slowest ``tail`` (by the wall
    time in the app plus the gap before it)."""
    t = phase_table([r for r in records if r["status"] == 200])
    total = t["wall"] + t["gap"]
    n = len(total)
    slow = np.argsort(total)[-max(1, int(n * tail)) :]
    names = [*PHASES, "rest", "gap", "wall", "cpu", "gc"]
    return {
        "requests": n,
        "tail_requests": len(slow),
        "total_ms_quantiles": {
            q: float(np.quantile(total, v) / 1e6) for q, v in (("p50", 0.5), ("p99", 0.99))
        },
        "median_ms": {k: float(np.median(t[k]) / 1e6) for k in names},
        "mean_ms": {k: float(np.mean(t[k]) / 1e6) for k in names},
        "tail_mean_ms": {k: float(np.mean(t[k][slow]) / 1e6) for k in names},
        # which phase took the most time in each slow request: a histogram of the causes
        "tail_dominant_phase": dict(
            collections.Counter(
                max([*PHASES, "rest", "gap"], key=lambda k: float(t[k][i])) for i in slow
            ).most_common()
        ),  # fmt: skip
        "over_5ms": {k: int(np.sum(t[k] > 5e6)) for k in [*PHASES, "rest", "gap"]},
        "tail_gc_share": float(np.mean(t["gc"][slow] > 0)),
        "all_gc_share": float(np.mean(t["gc"] > 0)),
    }


def markdown(report: dict[str, Any]) -> str:
    s = report["summary"]
    q = s["total_ms_quantiles"]
    lines = [
        f"# Phases of POST /v1/score ({report['date']}, commit {report['commit']})",
        "",
        f"1 worker, {report['clients']} client(s), {report['seconds']:g} s of wrk, server "
        f"settings {report['env'] or 'as shipped'}, autogroup nice "
        f"{report['priority'] if report['priority'] is not None else 'unchanged'}; load average {report['loadavg'][0]:.1f} -> "
        f"{report['loadavg'][1]:.1f}. {s['requests']:,} answers: gap + in-app p50 "
        f"{q['p50']:.2f} ms, p99 {q['p99']:.2f} ms; wrk {report['wrk']['req_s']:.0f} req/s, p50 "
        f"{report['wrk']['p50']:.2f} / p99 {report['wrk']['p99']:.2f} ms.",
        "",
        f"| phase | what | median ms | mean ms | slowest {s['tail_requests']} mean ms |",
        "|---|---|---:|---:|---:|",
    ]
    what = {
        **PHASES,
        "rest": "response body sent, middleware exits",
        "gap": "between requests: uvicorn reads and parses the next",
        "wall": "in the app (middleware entry to exit)",
        "cpu": "main thread CPU time in the app",
        "gc": "cyclic GC pauses in the app",
    }
    for k in what:
        lines.append(
            f"| {k} | {what[k]} | {s['median_ms'][k]:.3f} | {s['mean_ms'][k]:.3f} "
            f"| {s['tail_mean_ms'][k]:.3f} |"
        )
    lines += [
        "",
        f"Requests with a GC pause: {100 * s['all_gc_share']:.1f} % of all, "
        f"{100 * s['tail_gc_share']:.1f} % of the slowest.",
        "",
        "The phase that took longest in each of the slowest requests: "
        + ", ".join(f"{k} {v}" for k, v in s["tail_dominant_phase"].items())
        + ". Requests with a phase over 5 ms: "
        + (", ".join(f"{k} {v}" for k, v in s["over_5ms"].items() if v) or "none")
        + ".",
        "",
        "Run: `.venv/bin/python benchmarks/bench_api_phases.py --help`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--work", type=Path, help="work dir (default benchmarks/work/api)")
    parser.add_argument("--stem", default="api_phases", help="results file name")
    parser.add_argument("--priority", type=int, help="autogroup nice value (root), e.g. -20")
    parser.add_argument("--keep", action="store_true", help="keep the raw records file")
    parser.add_argument("env", nargs="*", help="ENV=VALUE settings of the server")
    args = parser.parse_args(argv)
    work = (args.work or ROOT / "benchmarks" / "work" / "api").resolve()
    facts = base.prepare(work, base.FULL)
    bodies = bw.write_bodies(work, facts)["guomen"]
    extra = dict(x.split("=", 1) for x in args.env)
    timings = work / f"phases-{os.getpid()}.jsonl"
    timings.unlink(missing_ok=True)
    env = base.work_env(work)
    env.update(extra)
    env["GUOMEN_PHASE_TIMINGS"] = str(timings)
    server, _ = base.guomen_server(1, work, env)
    server.start(env, work)
    headers = {"X-API-Key": facts["keys"]["inspector"]}
    try:
        server.wait_ready()
        if args.priority is not None:  # as bench_api_ab.py: the server and wrk first on the CPU
            assert server.proc is not None
            Path(f"/proc/{server.proc.pid}/autogroup").write_text(str(args.priority))
            Path("/proc/self/autogroup").write_text(str(args.priority))
        bw.wrk(server.port, "/v1/score", bodies, headers, 4, 3, f"phw{time.time():.0f}")
        load0 = os.getloadavg()[0]
        mark = time.perf_counter_ns()  # records before this are the warm-up's
        run = bw.wrk(server.port, "/v1/score", bodies, headers, args.clients, args.seconds,
                     f"ph{time.time():.0f}")  # fmt: skip
        load1 = os.getloadavg()[0]
    finally:
        server.stop()
    records = [json.loads(line) for line in timings.read_text().splitlines()]
    if args.keep:
        print(f"records kept in {timings}")
    else:
        timings.unlink()
    # perf_counter is CLOCK_MONOTONIC on Linux: comparable between the two processes.
    records = [r for r in records if r["start_ns"] >= mark]
    qs = run["quantiles_us"]
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(ROOT),
        "clients": args.clients,
        "seconds": args.seconds,
        "env": " ".join(args.env),
        "priority": args.priority,
        "loadavg": [load0, load1],
        "wrk": {
            "req_s": run["requests"] / (run["duration_us"] / 1e6),
            "p50": qs[499] / 1e3,
            "p99": qs[989] / 1e3,
        },
        "summary": summarise(records),
    }
    base.RESULTS.mkdir(parents=True, exist_ok=True)
    (base.RESULTS / f"{args.stem}.json").write_text(json.dumps(report, indent=1))
    text = markdown(report)
    (base.RESULTS / f"{args.stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
