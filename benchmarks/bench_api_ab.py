"""A/B of the scoring API's code versions under wrk, side by side in one run (issue 14, part 1).

Each variant is a ``guomen serve`` of its own (same prepared data as ``bench_api_wrk.py``, a copy
of the database each, so no server replays another's audit rows), all started at once and
loaded in turn, the order reversed every round (A B, B A, ...), so load drift on a shared box
hits every variant alike. A variant is this checkout (``new``) or the code of a git ref (its
packages extracted to a temporary folder put first on ``PYTHONPATH``), with optional
environment variables. Per variant and client count: requests per second, latency quantiles
pooled over the rounds, server CPU ms per answer (user + sys of its process group) and the load
average of each phase.

``--priority N`` sets the autogroup nice value of the servers and of this process (and so of
wrk) to N (root; e.g. -20): on a box shared with other jobs the variants then get most of the
CPU, as on a quiet machine. Without it a one-threaded server gets a smaller share of a crowded
CPU than a many-threaded one, which measures the neighbours rather than the code.

Run::

    .venv/bin/python benchmarks/bench_api_ab.py --ref main --clients 1,8,32 [--priority -20]

Writes ``benchmarks/results/api_ab.{json,md}`` (``--stem`` to change the name).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_api as base  # noqa: E402
import bench_api_wrk as bw  # noqa: E402
from provenance import git_commit  # noqa: E402

ROOT = base.ROOT
PACKAGES = ("serving", "features", "policy", "riskmodel", "guomen")


def _log(message: str) -> None:
    print(f"[bench_api_ab {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def code_of(ref: str, into: Path) -> str:
    """Extract the packages of ``ref`` into ``into``; returns the ref's commit."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", ref],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, *PACKAGES],
                             capture_output=True, check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return commit


def copy_database(work: Path, name: str) -> Path:
    """A consistent copy of the prepared database for one variant (SQLite's backup API)."""
    target = work / f"ab-{name}.db"
    target.unlink(missing_ok=True)
    source, copy = sqlite3.connect(work / "guomen.db"), sqlite3.connect(target)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    return target


def group_cpu(pgid: int) -> float:
    """User + system CPU seconds of a process group."""
    return base.group_cpu_seconds(pgid)


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One variant at one client count, its rounds pooled."""
    pooled = bw.pool(runs)
    answers = max(1, pooled["ok"])
    return {
        "requests_per_s": pooled["requests_per_s"],
        "per_round_requests_per_s": [r["requests"] / (r["duration_us"] / 1e6) for r in runs],
        "latency_ms": pooled["latency_ms"],
        "errors": pooled["errors"],
        "server_cpu_ms_per_answer": 1e3 * sum(r["server_cpu_s"] for r in runs) / answers,
        "loadavg_1min": [r["loadavg_1min"] for r in runs],
    }


def markdown(report: dict[str, Any]) -> str:
    """The side-by-side table."""
    lines = [
        f"# Scoring API A/B under wrk ({report['date']}, checkout {report['commit']})",
        "",
        f"Variants: {', '.join(f'`{n}` = {v}' for n, v in report['variants'].items())}. "
        f"{report.get('workers', 1)} worker(s) each; {report['rounds']} rounds of {report['seconds']:g} s per variant and "
        f"client count, order reversed every round; autogroup nice "
        f"{report['priority'] if report['priority'] is not None else 'unchanged'}; load "
        f"average at start {report['loadavg_at_start'][0]:.1f}. Data: `bench_api_wrk.py`'s "
        "prepared 200k demo, every request a fresh declaration dated now.",
        "",
        "| clients | variant | req/s | per round | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms "
        "| CPU ms/answer | errors | load |",
        "|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in report["clients"]:
        for name in report["variants"]:
            s = report["results"][f"{name}_c{c}"]
            lat = s["latency_ms"]
            per = "/".join(f"{x:.0f}" for x in s["per_round_requests_per_s"])
            load = "/".join(f"{x[0]:.1f}" for x in s["loadavg_1min"])
            lines.append(
                f"| {c} | {name} | {s['requests_per_s']:.0f} | {per} | {lat['p50']:.2f} "
                f"| {lat['p90']:.2f} | {lat['p99']:.2f} | {lat['p99.9']:.2f} | {lat['max']:.1f} "
                f"| {s['server_cpu_ms_per_answer']:.2f} | {s['errors']} | {load} |"
            )
    lines += ["", "Run: `.venv/bin/python benchmarks/bench_api_ab.py --help`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Start every variant, load each in turn, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ref", default="main", help="git ref of the variant `ref` ('' for none)")
    parser.add_argument("--variant", action="append", default=[],
                        help="more variants, NAME:ENV=VALUE,ENV=VALUE (this checkout)")  # fmt: skip
    parser.add_argument("--clients", default="1,8", help="comma-separated client counts")
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers per server")
    parser.add_argument("--priority", type=int, help="autogroup nice value (root), e.g. -20")
    parser.add_argument("--work", type=Path, help="work dir (default benchmarks/work/api)")
    parser.add_argument("--stem", default="api_ab", help="results file name")
    args = parser.parse_args(argv)
    work = (args.work or ROOT / "benchmarks" / "work" / "api").resolve()
    facts = base.prepare(work, base.FULL)
    bodies = bw.write_bodies(work, facts)["guomen"]
    clients = [int(c) for c in args.clients.split(",")]
    variants: dict[str, dict[str, str]] = {}
    described: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-api-ab-") as tmp:
        if args.ref:
            commit = code_of(args.ref, Path(tmp))
            variants["ref"] = {"PYTHONPATH": tmp}
            described["ref"] = f"{args.ref} ({commit})"
        variants["new"] = {}
        described["new"] = f"this checkout ({git_commit(ROOT)})"
        for spec in args.variant:
            name, _, envs = spec.partition(":")
            variants[name] = dict(x.split("=", 1) for x in envs.split(",") if x)
            described[name] = f"this checkout with {envs}"
        report: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "commit": git_commit(ROOT),
            "variants": described,
            "clients": clients,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "priority": args.priority,
            "workers": args.workers,
            "loadavg_at_start": os.getloadavg(),
            "machine": base.machine(),
        }
        servers: dict[str, base.Server] = {}
        runs: dict[str, list[dict[str, Any]]] = {f"{n}_c{c}": [] for n in variants for c in clients}
        headers = {"X-API-Key": facts["keys"]["inspector"]}
        try:
            for name, extra in variants.items():
                env = base.work_env(work)
                env["GUOMEN_DATABASE_URL"] = f"sqlite:///{copy_database(work, name)}"
                env.update(extra)
                server, _ = base.guomen_server(args.workers, work, env)
                server.log_path = work / f"ab-{name}.log"
                server.start(env, work)
                servers[name] = server
            for server in servers.values():
                server.wait_ready()
            if args.priority is not None:
                for server in servers.values():
                    assert server.proc is not None
                    Path(f"/proc/{server.proc.pid}/autogroup").write_text(str(args.priority))
                Path("/proc/self/autogroup").write_text(str(args.priority))
            for name, server in servers.items():  # warm-up: first-use costs out of the way
                bw.wrk(
                    server.port,
                    "/v1/score",
                    bodies,
                    headers,
                    4,
                    3,
                    f"abwarm{name}{time.time():.0f}",
                )
            order = list(variants)
            for r in range(args.rounds):
                for c in clients:
                    for name in order if r % 2 == 0 else order[::-1]:
                        server = servers[name]
                        assert server.proc is not None
                        cpu0, load0 = group_cpu(server.proc.pid), os.getloadavg()[0]
                        run = bw.wrk(server.port, "/v1/score", bodies, headers, c, args.seconds,
                                     f"ab{name}r{r}c{c}t{time.time():.0f}")  # fmt: skip
                        run["server_cpu_s"] = group_cpu(server.proc.pid) - cpu0
                        run["loadavg_1min"] = [load0, os.getloadavg()[0]]
                        runs[f"{name}_c{c}"].append(run)
                        _log(f"round {r} {name} c={c}: "
                             f"{run['requests'] / (run['duration_us'] / 1e6):.0f} req/s")  # fmt: skip
        finally:
            for server in servers.values():
                server.stop()
    report["results"] = {k: summary(v) for k, v in runs.items()}
    report["loadavg_at_end"] = os.getloadavg()
    base.RESULTS.mkdir(parents=True, exist_ok=True)
    (base.RESULTS / f"{args.stem}.json").write_text(json.dumps(report, indent=1, default=str))
    text = markdown(report)
    (base.RESULTS / f"{args.stem}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
