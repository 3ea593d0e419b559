"""The scoring API's tail under concurrency, measured with wrk (issue 14, part 1).

wrk is a C load generator: on this 2-core box it takes far less of the CPU the servers need than
the Python client of ``bench_api.py`` (kept beside it). Side by side in one run, with the same
number of uvicorn workers:

- guomen ``POST /v1/score`` (online features, exact TreeSHAP, top-5 reasons, decision, audit row
  in SQLite) with the inspector key; the bodies are the 256 held-out demo declarations of
  ``bench_api.py``, each request with a fresh ``declaration_id`` and ``declared_at`` = now (UTC),
  as an inspector's declarations arrive;
- ``mlflow models serve`` of the same booster in MLflow's LightGBM flavour (no signature: MLflow
  at its fastest), ``POST /invocations`` with the declarations' feature rows (prediction only).

For each worker count (1 and 2) and each client count (1, 8, 32) the two servers run in the order
A B B A, half the phase each (load drift on the shared box hits both alike); the two halves are
pooled from 1000 latency quantiles each. Then 60 s at 32 clients against guomen alone: every
status counted, audit rows added == 200 answers. Every figure carries the load average.

Data: the prepared work dir of ``bench_api.py`` (``benchmarks/work/api``: 200k demo declarations,
two registered versions, snapshot, keys; made on first use).

Run::

    .venv/bin/python benchmarks/bench_api_wrk.py [--quick] [--workers 1,2] [--clients 1,8,32]

Writes ``benchmarks/results/api_wrk.{json,md}`` (``api_wrk-quick.*`` with ``--quick``). Every
server started is stopped (its whole process group), even on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_api as base  # noqa: E402  (the shared preparation, servers and helpers)
from provenance import git_commit  # noqa: E402

ROOT = base.ROOT
RESULTS = base.RESULTS
LUA = Path(__file__).resolve().parent / "bench_api_wrk.lua"
AT_MARK = "__BENCH_AT__"
SERVERS = ("guomen", "mlflow_lgbm")
# Targets of issue 14, part 1.
P99_C8_TARGET_MS = {1: 30.0, 2: 20.0}
P99_C1_TARGET_MS = 5.0
RATIO_TARGET = 2.5


@dataclass(frozen=True)
class Profile:
    """Sizes of one run."""

    declarations: int
    phase_seconds: float
    warmup_seconds: float
    long_seconds: float
    long_clients: int
    workers: tuple[int, ...]
    clients: tuple[int, ...]


FULL = Profile(200_000, 20.0, 5.0, 60.0, 32, (1, 2), (1, 8, 32))
QUICK = Profile(30_000, 4.0, 2.0, 10.0, 32, (1,), (1, 8))


def _log(message: str) -> None:
    print(f"[bench_api_wrk {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


# --------------------------------------------------------------------------------------------
# bodies and one wrk run
# --------------------------------------------------------------------------------------------
def write_bodies(work: Path, facts: dict[str, Any]) -> dict[str, Path]:
    """One body per line for each server: guomen's with the id and time marks, MLflow's
    feature rows with NaN for missing values (the LightGBM flavour has no schema to map null)."""
    guomen = []
    for text in facts["guomen_bodies"]:
        body = json.loads(text)
        body["declared_at"] = AT_MARK
        guomen.append(json.dumps(body, ensure_ascii=False))
    mlflow = [base.NULL_RE.sub(b"NaN", b.encode()).decode() for b in facts["mlflow_bodies"]]
    paths = {"guomen": work / "wrk-guomen.jsonl", "mlflow_lgbm": work / "wrk-mlflow.jsonl"}
    paths["guomen"].write_text("\n".join(guomen) + "\n", encoding="utf-8")
    paths["mlflow_lgbm"].write_text("\n".join(mlflow) + "\n", encoding="utf-8")
    return paths


def _now_body(line: str, declaration_id: str) -> bytes:
    at = datetime.now(UTC).isoformat(timespec="seconds")
    return line.replace(base.ID_MARK.decode(), declaration_id).replace(AT_MARK, at).encode()


def check_bodies(path: Path, port: int, url_path: str, headers: dict[str, str]) -> Path:
    """Send every body once (marks filled in as wrk does); keep those answered 200."""
    lines = [x for x in path.read_text(encoding="utf-8").splitlines() if x]
    good: list[tuple[str, int, Any]] = []
    bad: list[tuple[str, int, Any]] = []
    for k, line in enumerate(lines):
        status, detail = base._post(
            port, url_path, headers, _now_body(line, f"wrk-check-{os.getpid()}-{k}")
        )
        (good if status == 200 else bad).append((line, status, detail))
    if bad:
        _log(f"{len(bad)} of {len(lines)} bodies refused on {url_path}: {bad[0][1:]}")
    if not good:
        raise RuntimeError(f"every body was refused on {url_path}: {bad[0][1:]}")
    checked = path.with_suffix(".ok.jsonl")
    checked.write_text("\n".join(x for x, _, _ in good) + "\n", encoding="utf-8")
    return checked


def wrk(
    port: int,
    url_path: str,
    bodies: Path,
    headers: dict[str, str],
    clients: int,
    seconds: float,
    token: str,
) -> dict[str, Any]:
    """One wrk run (1 thread for 1 connection, else 2: one per core); its ``done()`` JSON."""
    threads = 1 if clients == 1 else 2
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{clients}",
        f"-d{seconds:g}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        f"http://{base.HOST}:{port}{url_path}",
        "--",
        str(bodies),
        token,
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            out = json.loads(line[len("WRK_JSON ") :])
            out["clients"] = clients
            return out
    raise RuntimeError(f"wrk gave no result (exit {proc.returncode}): {proc.stderr[-500:]}")


def pooled_quantile(runs: list[dict[str, Any]], q: float) -> float:
    """The ``q`` quantile (0..1) of several runs' latencies together, in ms.

    Each run is represented by its 1000 quantiles (0.1 % steps), weighted by its requests: the
    pooled CDF at x is the request-weighted mean of the runs' CDFs.
    """
    runs = [r for r in runs if r["requests"] > 0]
    if not runs:
        return float("nan")
    grid = np.arange(1, 1001) / 1000.0
    weights = np.array([r["requests"] for r in runs], dtype=float)
    weights /= weights.sum()
    xs = np.unique(np.concatenate([np.asarray(r["quantiles_us"], dtype=float) for r in runs]))
    cdf = np.zeros_like(xs)
    for w, r in zip(weights, runs, strict=True):
        qs = np.asarray(r["quantiles_us"], dtype=float)
        cdf += w * np.interp(xs, qs, grid, left=0.0, right=1.0)
    i = int(np.searchsorted(cdf, q - 1e-12))
    return float(xs[min(i, len(xs) - 1)]) / 1e3


def pool(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one server and client count as one phase."""
    statuses: dict[str, int] = {}
    errors: dict[str, int] = {}
    for r in runs:
        for k, v in r["statuses"].items():
            statuses[k] = statuses.get(k, 0) + v
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    requests = sum(r["requests"] for r in runs)
    seconds = sum(r["duration_us"] for r in runs) / 1e6
    ok = statuses.get("200", 0)
    return {
        "runs": runs,  # each half's own figures and quantiles, for re-analysis
        "clients": runs[0]["clients"],
        "seconds": seconds,
        "requests": requests,
        "ok": ok,
        "errors": requests - ok + sum(v for k, v in errors.items() if k != "status"),
        "status_counts": statuses,
        "socket_errors": errors,
        "requests_per_s": ok / seconds if seconds else float("nan"),
        "latency_ms": {
            **{f"p{q}": pooled_quantile(runs, q / 100) for q in (50, 90, 99)},
            "p99.9": pooled_quantile(runs, 0.999),
            "max": max(r["latency_us"]["max"] for r in runs) / 1e3,
            "mean": sum(r["latency_us"]["mean"] * r["requests"] for r in runs)
            / max(1, requests)
            / 1e3,
        },
    }


@dataclass
class Endpoint:
    """Where one server's load goes."""

    server: base.Server
    path: str
    bodies: Path
    headers: dict[str, str]


def measure(endpoint: Endpoint, clients: int, seconds: float, token: str) -> dict[str, Any]:
    """One wrk run with the server's process-group CPU seconds and the load average."""
    assert endpoint.server.proc is not None
    pgid = endpoint.server.proc.pid
    cpu0 = base.group_cpu_seconds(pgid)
    load_before = os.getloadavg()[0]
    run = wrk(endpoint.server.port, endpoint.path, endpoint.bodies, endpoint.headers, clients,
              seconds, token)  # fmt: skip
    run["server_cpu_s"] = base.group_cpu_seconds(pgid) - cpu0
    run["loadavg_1min"] = [load_before, os.getloadavg()[0]]
    return run


# --------------------------------------------------------------------------------------------
# one configuration of workers
# --------------------------------------------------------------------------------------------
def bench_workers(
    workers: int, profile: Profile, facts: dict[str, Any], work: Path, bodies: dict[str, Path]
) -> dict[str, Any]:
    """Start both servers with ``workers`` workers, run every client count, the long run."""
    from mlflow import MlflowClient

    env = base.work_env(work)
    tracking = env["GUOMEN_MLFLOW_TRACKING_URI"]
    v1 = facts["versions"][0]
    MlflowClient(tracking_uri=tracking, registry_uri=tracking).set_registered_model_alias(
        base.MODEL_NAME, "champion", v1
    )
    guomen, how = base.guomen_server(workers, work, env)
    mlflow = base.mlflow_server(
        workers, f"models:/{base.BASELINE_NAME}/{facts['baseline_version']}", "mlflow_lgbm", work
    )
    servers = {"guomen": guomen, "mlflow_lgbm": mlflow}
    out: dict[str, Any] = {"workers": workers, "guomen_command": how}
    token = f"wrk{int(time.time())}w{workers}"
    try:
        for server in servers.values():
            server.start({**env, "MLFLOW_TRACKING_URI": tracking}, work)
        for server in servers.values():
            server.wait_ready()
        out["ready_after_s"] = {name: s.ready_after_s for name, s in servers.items()}
        _log(f"workers={workers}: servers ready ({how})")
        json_headers = {"Content-Type": "application/json"}
        guomen_headers = {**json_headers, "X-API-Key": facts["keys"]["inspector"]}
        endpoints = {
            "guomen": Endpoint(
                guomen,
                "/v1/score",
                check_bodies(bodies["guomen"], guomen.port, "/v1/score", guomen_headers),
                {"X-API-Key": facts["keys"]["inspector"]},
            ),
            "mlflow_lgbm": Endpoint(
                mlflow,
                "/invocations",
                check_bodies(bodies["mlflow_lgbm"], mlflow.port, "/invocations", json_headers),
                {},
            ),
        }
        for name, e in endpoints.items():  # warm-up: every worker, caches, allocator
            wrk(e.server.port, e.path, e.bodies, e.headers, 4 * workers,
                profile.warmup_seconds, f"{token}warm{name}")  # fmt: skip

        phases: dict[str, Any] = {}
        half = profile.phase_seconds / 2
        order = [*SERVERS, *SERVERS[::-1]]
        for clients in profile.clients:
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in SERVERS}
            for k, name in enumerate(order):
                _log(f"workers={workers}: {clients} client(s) -> {name}")
                runs[name].append(measure(endpoints[name], clients, half, f"{token}c{clients}h{k}"))
            for name, parts in runs.items():
                summary = pool(parts)
                summary["server_cpu_ms_per_request"] = (
                    1e3 * sum(p["server_cpu_s"] for p in parts) / max(1, summary["ok"])
                )
                summary["loadavg_1min"] = [p["loadavg_1min"] for p in parts]
                phases[f"{name}_c{clients}"] = summary
        out["phases"] = phases
        out["ratios"] = {
            f"c{c}": phases[f"guomen_c{c}"]["requests_per_s"]
            / phases[f"mlflow_lgbm_c{c}"]["requests_per_s"]
            for c in profile.clients
        }
        out["long_run"] = long_run(endpoints["guomen"], profile, env, f"{token}long")
    finally:
        for server in servers.values():
            server.stop()
    return out


def audit_rows_of_run(database_url: str, token: str) -> int:
    """Audit rows of the declarations one wrk run sent (their ids start with its token)."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            query = sa.text("SELECT count(*) FROM score_audit WHERE declaration_id LIKE :prefix")
            return int(conn.execute(query, {"prefix": f"{token}-%"}).scalar_one())
    finally:
        engine.dispose()


def long_run(endpoint: Endpoint, profile: Profile, env: dict[str, str], token: str) -> dict:
    """``long_clients`` for ``long_seconds``: zero errors, one audit row per request sent.

    wrk stops at its deadline with up to one request per connection sent and not yet read;
    the server answers (and audits) those too, so the audit rows are compared with the
    requests sent, and the 200 answers with the answers read.
    """
    _log(f"long run: {profile.long_clients} clients, {profile.long_seconds:.0f} s")
    run = measure(endpoint, profile.long_clients, profile.long_seconds, token)
    time.sleep(1.0)  # the requests in flight at wrk's deadline finish (and are audited)
    s = pool([run])
    s["sent"] = run["sent"]
    s["in_flight_at_deadline"] = run["sent"] - run["requests"]
    s["server_cpu_ms_per_request"] = 1e3 * run["server_cpu_s"] / max(1, s["ok"])
    s["loadavg_1min"] = run["loadavg_1min"]
    s["audit_rows_added"] = audit_rows_of_run(env["GUOMEN_DATABASE_URL"], token)
    s["audit_equals_sent"] = s["audit_rows_added"] == run["sent"]
    return s


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
def checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 14 part 1 against the numbers."""
    out = []
    for cfg in report["configurations"]:
        w, phases = cfg["workers"], cfg["phases"]
        if "guomen_c1" in phases:
            p99 = phases["guomen_c1"]["latency_ms"]["p99"]
            out.append({"met": p99 <= P99_C1_TARGET_MS,
                        "text": f"workers={w}, 1 client: guomen p99 {p99:.2f} ms "
                                f"(target <= {P99_C1_TARGET_MS:g} ms)"})  # fmt: skip
        if "guomen_c8" in phases and w in P99_C8_TARGET_MS:
            p99 = phases["guomen_c8"]["latency_ms"]["p99"]
            target = P99_C8_TARGET_MS[w]
            out.append({"met": p99 <= target,
                        "text": f"workers={w}, 8 clients: guomen p99 {p99:.2f} ms "
                                f"(target <= {target:g} ms)"})  # fmt: skip
        for c in (1, 8):
            if f"c{c}" in cfg["ratios"]:
                r = cfg["ratios"][f"c{c}"]
                out.append({"met": r >= RATIO_TARGET,
                            "text": f"workers={w}, {c} client(s): guomen / MLflow LightGBM "
                                    f"flavour throughput {r:.2f}x (target >= "
                                    f"{RATIO_TARGET:g}x)"})  # fmt: skip
        lr = cfg.get("long_run")
        if lr:
            out.append({"met": lr["errors"] == 0 and lr["audit_equals_sent"],
                        "text": f"workers={w}, {lr['clients']} clients {lr['seconds']:.0f} s: "
                                f"{lr['errors']} errors, audit rows {lr['audit_rows_added']:,} "
                                f"= requests sent {lr['sent']:,} (200 answers read "
                                f"{lr['ok']:,}, {lr['in_flight_at_deadline']} in flight at "
                                "wrk's deadline)"})  # fmt: skip
    return out


def _f(x: Any, digits: int = 2) -> str:
    return base._fmt(x, digits)


def markdown(report: dict[str, Any]) -> str:
    """The results tables."""
    mach, model = report["machine"], report["model"]
    lines = [
        f"# Scoring API under concurrency, wrk ({report['date']}, commit {report['commit']})",
        "",
        *([f"Code measured: {report['label']}", ""] if report.get("label") else []),
        f"Machine: {mach['nproc']} cores ({mach['cpu']}), {mach['ram_gib']} GiB RAM, Python "
        f"{mach['python']}, {report['wrk_version']}; load average at start "
        f"{mach['loadavg_at_start'][0]:.2f} (shared box: wrk and both servers on the same 2 "
        "cores).",
        f"Model: `{base.MODEL_NAME}` v{report['versions'][0]}: {model['trees']} trees, "
        f"{model['leaves_total']:,} leaves, {model['features']} features; "
        f"{report['declarations']:,} demo declarations, snapshot as of "
        f"{report['snapshot_as_of']}.",
        "guomen: `POST /v1/score` with the inspector key (online features, exact TreeSHAP, "
        "top-5 reasons, decision, audit row in SQLite); bodies: 256 held-out declarations, a "
        "fresh `declaration_id` per request and `declared_at` = now. mlflow_lgbm: `mlflow models "
        "serve` of the same booster in MLflow's LightGBM flavour (no signature), one feature row "
        "per request, prediction only.",
        f"Phases: A B B A, {report['profile']['phase_seconds'] / 2:g} s each half, pooled (1000 "
        "latency quantiles per half); wrk with 1 thread for 1 connection, else 2. CPU ms/req: "
        "CPU seconds of the server's process group / 200 answers. Load: 1-minute load average "
        "before/after each half.",
        "",
        "| workers | clients | server | requests | errors | req/s | p50 ms | p90 ms | p99 ms "
        "| p99.9 ms | max ms | CPU ms/req | load avg | guomen / MLflow |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for cfg in report["configurations"]:
        for c in report["profile"]["clients"]:
            for name in SERVERS:
                p = cfg["phases"].get(f"{name}_c{c}")
                if p is None:
                    continue
                lat = p["latency_ms"]
                loads = "/".join(f"{x:.1f}" for pair in p["loadavg_1min"] for x in pair[1:])
                ratio = f"**{cfg['ratios'][f'c{c}']:.2f}x**" if name == "guomen" else ""
                lines.append(
                    f"| {cfg['workers']} | {c} | {name} | {p['requests']:,} | {p['errors']} "
                    f"| {p['requests_per_s']:,.0f} | {_f(lat['p50'])} | {_f(lat['p90'])} "
                    f"| {_f(lat['p99'])} | {_f(lat['p99.9'])} | {_f(lat['max'], 1)} "
                    f"| {_f(p['server_cpu_ms_per_request'])} | {loads} | {ratio} |"
                )
    lines += ["", "## Long run (guomen alone)", ""]
    for cfg in report["configurations"]:
        lr = cfg.get("long_run")
        if lr:
            lat = lr["latency_ms"]
            lines.append(
                f"- workers={cfg['workers']}, {lr['clients']} clients, {lr['seconds']:.0f} s: "
                f"{lr['requests']:,} requests, {lr['errors']} errors (statuses "
                f"{lr['status_counts']}, socket errors {lr['socket_errors']}), "
                f"{lr['requests_per_s']:,.0f} req/s, p50 {_f(lat['p50'])} ms, p99 "
                f"{_f(lat['p99'])} ms, max {_f(lat['max'], 1)} ms; audit rows "
                f"{lr['audit_rows_added']:,} = requests sent {lr['sent']:,} (200 answers read "
                f"{lr['ok']:,}, {lr['in_flight_at_deadline']} in flight at wrk's deadline): "
                f"{'yes' if lr['audit_equals_sent'] else '**no**'}; load "
                f"{lr['loadavg_1min'][0]:.1f} -> {lr['loadavg_1min'][1]:.1f}"
            )
    lines += ["", "## Targets (issue 14, part 1)", ""]
    for check in report["checks"]:
        lines.append(f"- {'met' if check['met'] else '**missed**'}: {check['text']}")
    lines += ["", "Run: `.venv/bin/python benchmarks/bench_api_wrk.py` (`--quick`: smoke run).", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Prepare (or reuse) the data, run every worker count, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data, short phases")
    parser.add_argument("--workers", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--clients", help="comma-separated client counts (default 1,8,32)")
    parser.add_argument("--phase-seconds", type=float, help="seconds per server and clients")
    parser.add_argument("--work", type=Path, help="work dir (default benchmarks/work/api)")
    parser.add_argument("--render", type=Path, help="only re-render an existing results JSON")
    parser.add_argument("--stem", help="results file name (default api_wrk[-quick])")
    parser.add_argument("--label", default="", help="what was measured (e.g. the code's commit)")
    args = parser.parse_args(argv)
    if args.render:
        rendered = json.loads(args.render.read_text())
        args.render.with_suffix(".md").write_text(markdown(rendered))
        return 0
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    profile = QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.workers:
        changes["workers"] = tuple(int(w) for w in args.workers.split(","))
    if args.clients:
        changes["clients"] = tuple(int(c) for c in args.clients.split(","))
    if args.phase_seconds:
        changes["phase_seconds"] = args.phase_seconds
    profile = Profile(**{**profile.__dict__, **changes})
    work = (
        args.work or ROOT / "benchmarks" / "work" / ("api-quick" if args.quick else "api")
    ).resolve()
    for sig in (signal.SIGTERM, signal.SIGHUP):  # -> SystemExit: the finally blocks stop servers
        signal.signal(sig, lambda *_: sys.exit(143))
    mach = base.machine()
    base_profile = base.QUICK if args.quick else base.FULL
    facts = base.prepare(work, base_profile)
    bodies = write_bodies(work, facts)
    version = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(ROOT),
        "label": args.label,
        "machine": mach,
        "wrk_version": (version.stdout or version.stderr).split("\n")[0].split(" [")[0].strip(),
        "profile": profile.__dict__,
        "declarations": facts["declarations"],
        "versions": facts["versions"],
        "model": facts["model"],
        "snapshot_as_of": facts["snapshot_as_of"],
        "configurations": [],
    }
    for workers in profile.workers:
        report["configurations"].append(bench_workers(workers, profile, facts, work, bodies))
    report["loadavg_at_end"] = os.getloadavg()
    report["checks"] = checks(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = args.stem or ("api_wrk-quick" if args.quick else "api_wrk")
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1, default=str))
    (RESULTS / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all(c["met"] for c in report["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
