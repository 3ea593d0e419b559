"""Benchmark the scoring API against ``mlflow models serve`` (issue 5, "Speed").

Both servers serve the SAME registered model version, side by side in one run, with the same
number of uvicorn workers. guomen's ``POST /v1/score`` computes features from the online
snapshot, exact TreeSHAP reasons, the decision, and writes an audit row; MLflow's
``/invocations`` only predicts from a ready-made feature row. A third server, also
``mlflow models serve``, runs the same booster logged with ``mlflow.lightgbm`` and no signature
(no per-column schema enforcement): the fastest MLflow baseline, reported beside the target one.
Each phase records the CPU seconds of each server's process group, a figure much less sensitive
than latency to other load on the shared 2-core box.

Measured (each configuration of workers):

1. one client: latency p50/p90/p99 of both (target: guomen p99 <= 10 ms);
2. 1 and 8 concurrent clients: requests/s of both and the ratio (target: guomen >= 1.0x);
3. a long run at 32 clients against guomen: zero errors, audit rows added == successes;
4. during that run the ``champion`` alias moves to another registered version and
   ``POST /v1/admin/reload`` is called: zero failed requests, and the responses show the switch.

The load generator is a small multi-process client (``http.client`` keep-alive connections, one
per simulated client) that records every request's latency, status and the model version it was
answered with, bounded in count and time. Traffic goes only to 127.0.0.1. Every guomen request
carries a fresh ``declaration_id`` (one of 256 real held-out declarations as the template), so
no two inputs are identical; MLflow gets the feature rows of the same 256 declarations.

Data (cached under ``benchmarks/work/api[-quick]/``, git-ignored): demo data (200k declarations,
seed 7) -> ``guomen ingest`` -> training (v1, promoted to ``champion``) -> a second training
with another seed (v2, the reload target) -> online snapshot as of the first held-out
declaration -> API keys (inspector, admin) created in the server's DB.

Run::

    .venv/bin/python benchmarks/bench_api.py [--quick] [--workers 2,1]

Writes ``benchmarks/results/api.json`` and ``benchmarks/results/api.md`` (``api-quick.*`` with
``--quick``). Every server started is stopped (its whole process group), even on failure.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import multiprocessing as mp
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
VENV_BIN = ROOT / ".venv" / "bin"
HOST = "127.0.0.1"
MODEL_NAME = "guomen-risk"
# Same booster logged with MLflow's own LightGBM flavour, no signature: MLflow at its fastest.
BASELINE_NAME = "guomen-bench-lightgbm-flavour"
N_TEMPLATES = 256
P99_TARGET_MS = 10.0
RATIO_TARGET = 1.0
ID_MARK = b"__BENCH_ID__"
VERSION_RE = re.compile(rb'"version"\s*:\s*"([^"]*)"')
SERVERS = ("guomen", "mlflow", "mlflow_lgbm")
# a bare JSON null (json.dumps writes ", " between items), not a quoted name
NULL_RE = re.compile(rb"(?<=[\[,\s])null(?=[,\]\s])")


@dataclass(frozen=True)
class Profile:
    """Sizes of one benchmark run."""

    declarations: int
    seed: int
    phase_seconds: float
    warmup_seconds: float
    long_seconds: float
    long_clients: int
    reload_at: float
    workers: tuple[int, ...]


FULL = Profile(200_000, 7, 15.0, 5.0, 60.0, 32, 20.0, (2, 1))
QUICK = Profile(30_000, 7, 4.0, 2.0, 12.0, 32, 4.0, (2,))


# --------------------------------------------------------------------------------------------
# data preparation
# --------------------------------------------------------------------------------------------
def work_env(work: Path) -> dict[str, str]:
    """``GUOMEN_*`` variables pointing every path of the settings into ``work``."""
    return {
        "GUOMEN_HOME": str(work),
        "GUOMEN_STORE_DIR": str(work / "store"),
        "GUOMEN_DATABASE_URL": f"sqlite:///{work / 'guomen.db'}",
        "GUOMEN_MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlruns' / 'mlflow.db'}",
        "GUOMEN_MLFLOW_ARTIFACT_ROOT": str(work / "mlruns" / "artifacts"),
        "GUOMEN_MODELS_DIR": str(work / "models"),
        "GUOMEN_SNAPSHOT_DIR": str(work / "snapshot"),
        "GUOMEN_MODEL_NAME": MODEL_NAME,
        "GUOMEN_MONITORING_SECRET": "bench-monitoring-secret",
        "GUOMEN_MEASURE_SECRET": "bench-measure-draw-secret",
        "GUOMEN_SESSION_SECRET": "bench-session-signing-secret",
        # short poll so every worker (not only the one that got /admin/reload) swaps quickly
        "GUOMEN_RELOAD_POLL_SECONDS": "2",
    }


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(extra)
    # `mlflow models serve` starts `uvicorn` from PATH
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def _cli_has(command: str, env: dict[str, str]) -> str | None:
    """``guomen COMMAND --help`` text, or None when the subcommand does not exist (yet)."""
    proc = subprocess.run(
        [str(VENV_BIN / "guomen"), *command.split(), "--help"],
        capture_output=True,
        text=True,
        env=_child_env(env),
        cwd=env["GUOMEN_HOME"],
        check=False,
    )
    return proc.stdout if proc.returncode == 0 else None


def _log(message: str) -> None:
    print(f"[bench_api {datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


def prepare(work: Path, profile: Profile) -> dict[str, Any]:
    """Create (or reuse) demo data, store, two registered versions, snapshot and keys.

    Returns the facts the load phases need (versions, keys, request templates).
    """
    work.mkdir(parents=True, exist_ok=True)
    env = work_env(work)
    os.environ.update(env)  # the library calls below read nothing else
    sys.path.insert(0, str(ROOT))
    prepared = work / "prepared.json"
    if prepared.exists():
        facts = json.loads(prepared.read_text())
        if facts.get("declarations") == profile.declarations:
            _log(f"reusing prepared data in {work}")
            if "baseline_version" not in facts:
                facts.update(_register_baseline(env, facts["versions"][0]))
                prepared.write_text(json.dumps(facts, indent=1))
            return facts
        shutil.rmtree(work)
        work.mkdir(parents=True)
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    from demo.generate import write_demo_data

    source = work / "source"
    write_demo_data(source, n_declarations=profile.declarations, seed=profile.seed)
    timings["demo_data"] = time.perf_counter() - t0
    _log("demo data written; ingesting")
    t = time.perf_counter()
    subprocess.run(
        [str(VENV_BIN / "guomen"), "ingest", str(source), "--store", env["GUOMEN_STORE_DIR"]],
        env=_child_env(env),
        cwd=work,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    timings["ingest"] = time.perf_counter() - t

    versions, train_mode = _train_two_versions(work, env, timings)
    facts = {
        "declarations": profile.declarations,
        "seed": profile.seed,
        "versions": versions,
        "train_mode": train_mode,
        **_snapshot_and_templates(work, env, versions),
        "keys": _create_keys(env),
        **_register_baseline(env, versions[0]),
        "timings_s": timings,
    }
    prepared.write_text(json.dumps(facts, indent=1))
    _log(f"prepared in {time.perf_counter() - t0:.0f} s")
    return facts


def _train_two_versions(
    work: Path, env: dict[str, str], timings: dict[str, float]
) -> tuple[list[str], str]:
    """v1 (promoted to champion) and v2 (another seed; the reload target).

    ``guomen train``/``guomen promote`` are used when the CLI has them; otherwise the same
    library functions the CLI wires (``training.pipeline`` and ``training.registry``).
    """
    from training.config import load_config
    from training.pipeline import load_inputs, run_training
    from training.registry import CHAMPION, log_and_register, promote, resolve_version

    tracking = env["GUOMEN_MLFLOW_TRACKING_URI"]
    (work / "mlruns").mkdir(exist_ok=True)
    cli_train = _cli_has("train", env) is not None and _cli_has("promote", env) is not None
    versions: list[str] = []
    inputs = None
    for i, seed in enumerate((7, 8)):
        t = time.perf_counter()
        if cli_train and i == 0:
            _log("training v1 with `guomen train` + `guomen promote`")
            for cmd in (["train", "--store", env["GUOMEN_STORE_DIR"]], ["promote"]):
                subprocess.run(
                    [str(VENV_BIN / "guomen"), *cmd],
                    env=_child_env(env),
                    cwd=work,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
            version = resolve_version(tracking, MODEL_NAME, CHAMPION)
            if version is None:
                raise RuntimeError("`guomen train` + `guomen promote` left no champion")
        else:
            _log(f"training v{i + 1} (seed {seed}) with training.pipeline/registry")
            if inputs is None:
                inputs = load_inputs(Path(env["GUOMEN_STORE_DIR"]))
            config = load_config(overrides={"seed": seed})
            result = run_training(
                inputs.features,
                inputs.labels,
                inputs.specs,
                config=config,
                models_dir=Path(env["GUOMEN_MODELS_DIR"]),
                model_name=MODEL_NAME,
                declarations=inputs.tables["declarations"],
                credit_ratings=inputs.tables["credit_ratings"],
                attributes=inputs.attributes,
                store_fingerprint=inputs.store_fingerprint,
            )
            reg = log_and_register(
                result,
                config,
                tracking_uri=tracking,
                artifact_root=env["GUOMEN_MLFLOW_ARTIFACT_ROOT"],
                model_name=MODEL_NAME,
            )
            version = reg.version
            if i == 0:
                promote(
                    tracking_uri=tracking,
                    artifact_root=env["GUOMEN_MLFLOW_ARTIFACT_ROOT"],
                    model_name=MODEL_NAME,
                    config=config,
                    features=inputs.features,
                    labels=inputs.labels,
                )
        versions.append(str(version))
        timings[f"train_v{i + 1}"] = time.perf_counter() - t
    if resolve_version(tracking, MODEL_NAME, CHAMPION) != versions[0]:
        raise RuntimeError("champion is not v1 after preparation")
    return versions, "cli" if cli_train else "library"


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return str(value) if not isinstance(value, int | float) else value


def _snapshot_and_templates(work: Path, env: dict[str, str], versions: list[str]) -> dict[str, Any]:
    """Snapshot as of the first of the last ``N_TEMPLATES`` declarations; request templates.

    guomen gets those declarations in contract fields (the server converts the value to USD);
    MLflow gets their feature rows, computed from the same snapshot by ``OnlineFeatures``.
    """
    from features.online import OnlineFeatures
    from features.registry import default_entities
    from features.snapshot import Snapshot
    from features.store import Store
    from riskmodel.registry import load_model
    from serving.schemas import Declaration

    store = Store(Path(env["GUOMEN_STORE_DIR"]))
    tables = store.tables()
    decl = tables["declarations"].sort_values("declared_at", kind="stable")
    held = decl.tail(N_TEMPLATES)
    as_of = held["declared_at"].iloc[0]
    # The snapshot keeps the history keys of every version the run serves (the reload swaps
    # v1 for v2, and each version's selection may have chosen other keys), as `guomen
    # snapshot` keeps the champion's and the challenger's.
    bundles = [
        load_model(env["GUOMEN_MLFLOW_TRACKING_URI"], MODEL_NAME, v).bundle for v in versions
    ]
    entities: list[str] = []
    for b in bundles:
        entities.extend(e for e in (b.entities or default_entities(store.attributes))
                        if e not in entities)  # fmt: skip
    snapshot = Snapshot.build(tables, as_of, store.attributes, entities=entities)
    snap_dir = Path(env["GUOMEN_SNAPSHOT_DIR"])
    if snap_dir.exists():
        shutil.rmtree(snap_dir)
    snapshot.save(snap_dir)
    bundle = bundles[0]
    online = OnlineFeatures(snapshot, bundle.feature_names, categories=bundle.categories)
    allowed = set(Declaration.model_fields) - {"attributes", "declared_value_usd"}
    guomen_bodies, mlflow_bodies = [], []
    for record in held.to_dict(orient="records"):
        clean = {k: _json_value(v) for k, v in record.items()}
        body = {k: v for k, v in clean.items() if k in allowed and v is not None}
        body["declaration_id"] = ID_MARK.decode()
        guomen_bodies.append(json.dumps(body, ensure_ascii=False))
        x = online.vector(record)
        row = [None if math.isnan(v) else float(v) for v in x]
        mlflow_bodies.append(
            json.dumps({"dataframe_split": {"columns": bundle.feature_names, "data": [row]}})
        )
    booster = bundle.booster
    trees = booster.dump_model()["tree_info"]
    return {
        "snapshot_as_of": as_of.isoformat(),
        "guomen_bodies": guomen_bodies,
        "mlflow_bodies": mlflow_bodies,
        "model": {
            "features": len(bundle.feature_names),
            "trees": len(trees),
            "leaves_total": int(sum(t["num_leaves"] for t in trees)),
            "leaves_max": int(max(t["num_leaves"] for t in trees)),
        },
    }


def _register_baseline(env: dict[str, str], version: str) -> dict[str, Any]:
    """Register v``version``'s booster with ``mlflow.lightgbm`` (no signature, so no schema
    enforcement) as a second MLflow baseline; its requests carry NaN for missing values."""
    import mlflow
    import mlflow.lightgbm

    from riskmodel.registry import load_model
    from training.registry import experiment_id

    tracking = env["GUOMEN_MLFLOW_TRACKING_URI"]
    bundle = load_model(tracking, MODEL_NAME, version).bundle
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(tracking)
    exp = experiment_id(tracking, env["GUOMEN_MLFLOW_ARTIFACT_ROOT"], "guomen-bench")
    with mlflow.start_run(experiment_id=exp, run_name=f"lightgbm flavour of v{version}"):
        info = mlflow.lightgbm.log_model(
            bundle.booster, name="model", registered_model_name=BASELINE_NAME
        )
    return {"baseline_version": str(info.registered_model_version)}


def _create_keys(env: dict[str, str]) -> dict[str, str]:
    """An inspector and an admin key in the server's DB: ``guomen keys create --role ROLE``
    (first stdout line is the key), or ``serving.auth.create_key`` before the CLI had it."""
    if _cli_has("keys create", env) is not None:
        keys = {}
        for role in ("inspector", "admin"):
            proc = subprocess.run(
                [str(VENV_BIN / "guomen"), "keys", "create", "--role", role, "--name", "bench"],
                env=_child_env(env),
                cwd=env["GUOMEN_HOME"],
                capture_output=True,
                text=True,
                check=True,
            )
            keys[role] = proc.stdout.strip().splitlines()[0]
        return keys
    from serving.auth import create_key
    from serving.db import create_schema, make_engine

    engine = make_engine(env["GUOMEN_DATABASE_URL"])
    try:
        create_schema(engine)
        return {
            role: create_key(engine, role, f"bench-{role}")[0] for role in ("inspector", "admin")
        }
    finally:
        engine.dispose()


# --------------------------------------------------------------------------------------------
# servers
# --------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A server process started in its own process group."""

    name: str
    command: list[str]
    port: int
    ready_path: str
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_after_s: float = float("nan")

    def start(self, env: dict[str, str], cwd: Path) -> None:
        """Spawn in a new session (process group) so the whole tree can be stopped."""
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.command,
            env=_child_env(env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.started_at = time.perf_counter()

    def wait_ready(self, timeout: float = 300.0) -> None:
        """Poll ``ready_path`` until it answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.proc.returncode}); see {self.log_path}"
                )
            try:
                conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
                conn.request("GET", self.ready_path)
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    self.ready_after_s = time.perf_counter() - self.started_at
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL it if still alive after 20 s."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the leader's pid is the group id
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=20)
        # children that outlived their parent
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        self.proc = None


def guomen_server(workers: int, work: Path, env: dict[str, str]) -> tuple[Server, str]:
    """``guomen serve`` when the CLI has it, else the same app through uvicorn's factory."""
    port = _free_port()
    env.update({"GUOMEN_HOST": HOST, "GUOMEN_PORT": str(port), "GUOMEN_WORKERS": str(workers)})
    help_text = _cli_has("serve", env)
    if help_text is not None:
        cmd = [str(VENV_BIN / "guomen"), "serve"]
        for flag, value in (("--host", HOST), ("--port", str(port)), ("--workers", str(workers))):
            if flag in help_text:
                cmd += [flag, value]
        how = "guomen serve"
    else:
        cmd = [
            str(VENV_BIN / "uvicorn"),
            "serving.app:app_from_env",
            "--factory",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        how = "uvicorn --factory serving.app:app_from_env (no `guomen serve` yet)"
    log = work / f"guomen-serve-w{workers}.log"
    return Server("guomen", cmd, port, "/readyz", log), how


def mlflow_server(workers: int, model_uri: str, name: str, work: Path) -> Server:
    """``mlflow models serve`` of a registered version, local env, same workers."""
    port = _free_port()
    cmd = [
        str(VENV_BIN / "mlflow"),
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    return Server(name, cmd, port, "/ping", work / f"{name}-serve-w{workers}.log")


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in group ``pgid`` (server and workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the comm field: state ppid pgrp ... utime(12) stime(13)
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / tick


# --------------------------------------------------------------------------------------------
# load generator
# --------------------------------------------------------------------------------------------
@dataclass
class Target:
    """What the clients send."""

    port: int
    path: str
    headers: dict[str, str]
    bodies: list[bytes]
    unique_ids: bool


def _client_thread(
    target: Target, start: float, end: float, max_requests: int, tag: str, out: list[Any]
) -> None:
    """One keep-alive connection; records (t_start, latency_s, status, version) per request."""
    starts: list[float] = []
    lat: list[float] = []
    status: list[int] = []
    version: list[str] = []
    conn = http.client.HTTPConnection(HOST, target.port, timeout=30)
    n_bodies = len(target.bodies)
    i = int.from_bytes(tag.encode()[-2:], "little") % n_bodies  # clients start apart
    n = 0
    while time.time() < start:
        time.sleep(0.001)
    while n < max_requests:
        now = time.time()
        if now >= end:
            break
        body = target.bodies[i % n_bodies]
        i += 1
        n += 1
        if target.unique_ids:
            body = body.replace(ID_MARK, f"bench-{tag}-{n}".encode())
        t0 = time.perf_counter()
        code, ver = -1, ""
        try:
            conn.request("POST", target.path, body, target.headers)
            resp = conn.getresponse()
            data = resp.read()
            code = resp.status
            m = VERSION_RE.search(data) if code == 200 else None
            ver = m.group(1).decode() if m else ""
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection(HOST, target.port, timeout=30)
        starts.append(now - start)
        lat.append(time.perf_counter() - t0)
        status.append(code)
        version.append(ver)
    conn.close()
    out.append((starts, lat, status, version))


def _client_process(
    target: Target, threads: int, start: float, end: float, max_requests: int, pid: int, pipe: Any
) -> None:
    out: list[Any] = []
    workers = [
        threading.Thread(
            target=_client_thread,
            args=(target, start, end, max_requests, f"{os.getpid()}-{pid}-{k}", out),
        )
        for k in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    merged: dict[str, list[Any]] = {"t": [], "lat": [], "status": [], "version": []}
    for starts, lat, status, version in out:
        merged["t"] += starts
        merged["lat"] += lat
        merged["status"] += status
        merged["version"] += version
    pipe.send_bytes(json.dumps(merged).encode())  # JSON, not pickle
    pipe.close()


@dataclass
class Run:
    """Every request of one load phase."""

    clients: int
    seconds: float
    t: np.ndarray
    lat: np.ndarray
    status: np.ndarray
    version: np.ndarray
    events: dict[str, Any] = field(default_factory=dict)

    def merge(self, other: Run) -> Run:
        """Two runs of the same kind as one (their seconds add up)."""
        return Run(
            clients=self.clients,
            seconds=self.seconds + other.seconds,
            t=np.concatenate([self.t, other.t + self.seconds]),
            lat=np.concatenate([self.lat, other.lat]),
            status=np.concatenate([self.status, other.status]),
            version=np.concatenate([self.version, other.version]),
            events={**self.events, **other.events},
        )

    def summary(self) -> dict[str, Any]:
        """Counts, throughput over the phase, latency percentiles (ms), status histogram."""
        ok = self.status == 200
        codes, counts = np.unique(self.status, return_counts=True)
        lat_ms = self.lat[ok] * 1e3
        pct = (
            {f"p{q}": float(np.percentile(lat_ms, q)) for q in (50, 90, 99)} if len(lat_ms) else {}
        )
        versions, vcounts = np.unique(self.version[ok], return_counts=True)
        return {
            "clients": self.clients,
            "seconds": self.seconds,
            "requests": int(len(self.status)),
            "ok": int(ok.sum()),
            "errors": int((~ok).sum()),
            "status_counts": {str(int(c)): int(n) for c, n in zip(codes, counts, strict=True)},
            "requests_per_s": float(ok.sum() / self.seconds),
            "latency_ms": {
                **pct,
                "mean": float(lat_ms.mean()) if len(lat_ms) else float("nan"),
                "max": float(lat_ms.max()) if len(lat_ms) else float("nan"),
            },
            "versions": {str(v): int(n) for v, n in zip(versions, vcounts, strict=True)},
            **self.events,
        }


def run_load(
    target: Target,
    clients: int,
    seconds: float,
    *,
    max_requests: int = 200_000,
    during: Any = None,
) -> Run:
    """``clients`` concurrent keep-alive clients for ``seconds``, in up to 8 processes.

    ``during(start_wall_time)`` runs in this process while the clients work (the reload).
    """
    procs_n = min(clients, 8)
    per = [clients // procs_n + (1 if k < clients % procs_n else 0) for k in range(procs_n)]
    ctx = mp.get_context("fork")
    start = time.time() + 0.5
    end = start + seconds
    cap = max(1, max_requests // clients)
    procs, pipes = [], []
    for k, threads in enumerate(per):
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(
            target=_client_process, args=(target, threads, start, end, cap, k, send), daemon=True
        )
        p.start()
        send.close()
        procs.append(p)
        pipes.append(recv)
    events: dict[str, Any] = {}
    try:
        if during is not None:
            events = during(start) or {}
        parts = [json.loads(pipe.recv_bytes()) for pipe in pipes]
    finally:
        for p in procs:
            p.join(timeout=60)
            if p.is_alive():
                p.kill()
    elapsed = min(seconds, max(max(part["t"], default=0.0) for part in parts) + 1e-9)
    return Run(
        clients=clients,
        seconds=float(elapsed if elapsed < seconds * 0.999 else seconds),
        t=np.array([x for part in parts for x in part["t"]], dtype=np.float64),
        lat=np.array([x for part in parts for x in part["lat"]], dtype=np.float64),
        status=np.array([x for part in parts for x in part["status"]], dtype=np.int64),
        version=np.array([x for part in parts for x in part["version"]], dtype=object),
        events=events,
    )


# --------------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------------
def audit_rows(database_url: str) -> int:
    """Rows in ``score_audit``, read through SQLAlchemy with the server's URL."""
    import sqlalchemy as sa

    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM score_audit")).scalar_one())
    finally:
        engine.dispose()


def _post(port: int, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, Any]:
    conn = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        conn.request("POST", path, body, headers)
        resp = conn.getresponse()
        data = resp.read()
        try:
            return resp.status, json.loads(data)
        except ValueError:
            return resp.status, data.decode(errors="replace")[:500]
    finally:
        conn.close()


def _check_bodies(target: Target) -> list[bytes]:
    """Send every template once; keep those answered 200 (the rest are reported)."""
    good, bad = [], []
    for k, body in enumerate(target.bodies):
        if target.unique_ids:
            body_k = body.replace(ID_MARK, f"bench-check-{os.getpid()}-{k}".encode())
        else:
            body_k = body
        status, detail = _post(target.port, target.path, target.headers, body_k)
        (good if status == 200 else bad).append((body, status, detail))
    if bad:
        _log(f"{len(bad)} of {len(target.bodies)} bodies refused on {target.path}: {bad[0][1:]}")
    if not good:
        raise RuntimeError(f"every request body was refused on {target.path}: {bad[0][1:]}")
    return [b for b, _, _ in good]


def _measure(server: Server, target: Target, clients: int, seconds: float) -> Run:
    """One load phase with the server's CPU seconds and the machine's load average."""
    assert server.proc is not None
    pgid = server.proc.pid
    cpu0 = group_cpu_seconds(pgid)
    run = run_load(target, clients, seconds)
    run.events = {
        "server_cpu_s": group_cpu_seconds(pgid) - cpu0,
        "loadavg_1min_after": os.getloadavg()[0],
    }
    return run


def bench_workers(
    workers: int, profile: Profile, facts: dict[str, Any], work: Path
) -> dict[str, Any]:
    """Start the servers with ``workers`` workers each, run the phases, stop them."""
    from mlflow import MlflowClient

    env = work_env(work)
    tracking = env["GUOMEN_MLFLOW_TRACKING_URI"]
    v1, v2 = facts["versions"][0], facts["versions"][1]
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    client.set_registered_model_alias(MODEL_NAME, "champion", v1)  # every configuration: v1

    guomen, how = guomen_server(workers, work, env)
    servers = [
        guomen,
        mlflow_server(workers, f"models:/{MODEL_NAME}/{v1}", "mlflow", work),
        mlflow_server(
            workers, f"models:/{BASELINE_NAME}/{facts['baseline_version']}", "mlflow_lgbm", work
        ),
    ]
    out: dict[str, Any] = {"workers": workers, "guomen_command": how}
    try:
        for server in servers:
            server.start({**env, "MLFLOW_TRACKING_URI": tracking}, work)
        for server in servers:
            server.wait_ready()
        out["ready_after_s"] = {s.name: s.ready_after_s for s in servers}
        _log(f"workers={workers}: servers ready ({how})")

        json_headers = {"Content-Type": "application/json"}
        mlflow_bodies = [b.encode() for b in facts["mlflow_bodies"]]
        targets = {
            "guomen": Target(
                guomen.port,
                "/v1/score",
                {**json_headers, "X-API-Key": facts["keys"]["inspector"]},
                [b.encode() for b in facts["guomen_bodies"]],
                True,
            ),
            "mlflow": Target(servers[1].port, "/invocations", json_headers, mlflow_bodies, False),
            # the LightGBM flavour has no schema to turn null into NaN: send NaN literals
            "mlflow_lgbm": Target(
                servers[2].port,
                "/invocations",
                json_headers,
                [NULL_RE.sub(b"NaN", b) for b in mlflow_bodies],
                False,
            ),
        }
        for target in targets.values():
            target.bodies = _check_bodies(target)
        out["bodies"] = {name: len(t.bodies) for name, t in targets.items()}
        # Warm-up: JIT, caches and every worker (more clients than workers).
        for target in targets.values():
            run_load(target, 2 * workers, profile.warmup_seconds)

        phases: dict[str, Any] = {}
        by_name = {s.name: s for s in servers}
        order = list(targets) + list(targets)[::-1]  # A B C C B A: drift hits all alike
        half = profile.phase_seconds / 2
        for clients in (1, 8):
            runs: dict[str, Run] = {}
            for name in order:
                _log(f"workers={workers}: {clients} client(s) -> {name}")
                run = _measure(by_name[name], targets[name], clients, half)
                if name in runs:
                    cpu = runs[name].events["server_cpu_s"] + run.events["server_cpu_s"]
                    runs[name] = runs[name].merge(run)
                    runs[name].events["server_cpu_s"] = cpu
                else:
                    runs[name] = run
            for name, run in runs.items():
                summary = run.summary()
                summary["server_cpu_ms_per_request"] = (
                    1e3 * summary["server_cpu_s"] / max(1, summary["ok"])
                )
                phases[f"{name}_c{clients}"] = summary
        out["phases"] = phases
        out["ratios"] = {
            f"{base}_c{c}": phases[f"guomen_c{c}"]["requests_per_s"]
            / phases[f"{base}_c{c}"]["requests_per_s"]
            for base in ("mlflow", "mlflow_lgbm")
            for c in (1, 8)
        }

        if workers == profile.workers[0]:
            out["long_run"] = _long_run(
                targets["guomen"], guomen.port, profile, facts, env, client, v2
            )
    finally:
        for server in servers:
            server.stop()
        client.set_registered_model_alias(MODEL_NAME, "champion", v1)
    return out


def _long_run(
    g: Target,
    port: int,
    profile: Profile,
    facts: dict[str, Any],
    env: dict[str, str],
    client: Any,
    v2: str,
) -> dict[str, Any]:
    """``long_clients`` clients for ``long_seconds``; champion -> v2 and an admin reload midway."""
    url = env["GUOMEN_DATABASE_URL"]
    admin = {"X-API-Key": facts["keys"]["admin"]}

    def reload_midway(start: float) -> dict[str, Any]:
        time.sleep(max(0.0, start + profile.reload_at - time.time()))
        t_alias = time.time() - start
        client.set_registered_model_alias(MODEL_NAME, "champion", v2)
        t0 = time.time()
        status, body = _post(port, "/v1/admin/reload", admin)
        return {
            "reload": {
                "alias_moved_at_s": t_alias,
                "admin_reload_at_s": t0 - start,
                "admin_reload_seconds": time.time() - t0,
                "admin_reload_status": status,
                "admin_reload_response": body,
            }
        }

    before = audit_rows(url)
    _log(
        f"long run: {profile.long_clients} clients, {profile.long_seconds:.0f} s, reload at "
        f"{profile.reload_at:.0f} s"
    )
    run = run_load(g, profile.long_clients, profile.long_seconds, during=reload_midway)
    after = audit_rows(url)
    s = run.summary()
    ok = run.status == 200
    old = ok & (run.version == facts["versions"][0])
    new = ok & (run.version == v2)
    s["audit_rows_added"] = after - before
    s["audit_equals_ok"] = (after - before) == s["ok"]
    s["reload"]["last_old_version_at_s"] = float(run.t[old].max()) if old.any() else None
    s["reload"]["first_new_version_at_s"] = float(run.t[new].min()) if new.any() else None
    window = (run.t >= profile.reload_at - 1) & (run.t <= profile.reload_at + 15)
    s["reload"]["requests_in_reload_window"] = int(window.sum())
    s["reload"]["errors_in_reload_window"] = int((window & ~ok).sum())
    lat = run.lat[window & ok] * 1e3
    s["reload"]["p99_ms_in_reload_window"] = float(np.percentile(lat, 99)) if len(lat) else None
    return s


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    """nproc, RAM, CPU model, load average at start."""
    ram = float("nan")
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal"):
                ram = round(int(line.split()[1]) / 1024 / 1024, 1)
    cpu = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "ram_gib": ram,
        "cpu": cpu,
        "python": platform.python_version(),
        "loadavg_at_start": os.getloadavg(),
    }


def _fmt(x: Any, digits: int = 2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:,.{digits}f}" if isinstance(x, float) else f"{x:,}"


def markdown(report: dict[str, Any]) -> str:
    """The results table."""
    mach, model = report["machine"], report["model"]
    lines = [
        f"# Scoring API benchmark ({report['date']})",
        "",
        f"Machine: {mach['nproc']} cores ({mach['cpu']}), {mach['ram_gib']} GiB RAM, Python "
        f"{mach['python']}; load average at start {mach['loadavg_at_start'][0]:.2f} (the box is "
        "shared, client and servers run on the same 2 cores).",
        f"Model: `{MODEL_NAME}` v{report['versions'][0]} (its booster in all three servers): {model['trees']} trees, "
        f"{model['leaves_total']:,} leaves (max {model['leaves_max']} per tree), "
        f"{model['features']} features. Data: {report['declarations']:,} demo declarations "
        f"(seed {report['seed']}); requests are {N_TEMPLATES} held-out declarations (fresh id "
        "per request) scored against the snapshot as of the first of them.",
        "guomen: `POST /v1/score` (online features, exact TreeSHAP, top-5 reasons, decision, "
        "audit row in SQLite). MLflow: `mlflow models serve --env-manager local`, "
        "`POST /invocations` with one feature row (prediction only).",
        f"Load generator: {report['load_generator']}",
        "",
        f"`mlflow` serves the registered pyfunc (`{MODEL_NAME}`, {model['features']}-column "
        "signature enforced on every request); `mlflow_lgbm` serves the same booster logged with `mlflow.lightgbm` "
        "without a signature (MLflow at its fastest, uncalibrated output). Phases run "
        "A B C C B A (half the time each) so load drift on the shared box hits all three alike. "
        "CPU ms/req = CPU seconds of the server's whole process group / successful requests "
        "(less sensitive to other load on the box than wall-clock latency).",
        "",
        "| workers | clients | server | requests | errors | req/s | p50 ms | p90 ms | p99 ms "
        "| server CPU ms/req | load avg | guomen / this req/s |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cfg in report["configurations"]:
        if "phases" not in cfg:
            continue
        for c in (1, 8):
            for name in SERVERS:
                p = cfg["phases"][f"{name}_c{c}"]
                ratio = "" if name == "guomen" else f"**{cfg['ratios'][f'{name}_c{c}']:.2f}x**"
                lat = p["latency_ms"]
                lines.append(
                    f"| {cfg['workers']} | {c} | {name} | {p['requests']:,} | {p['errors']} "
                    f"| {p['requests_per_s']:,.0f} | {_fmt(lat.get('p50'))} "
                    f"| {_fmt(lat.get('p90'))} | {_fmt(lat.get('p99'))} "
                    f"| {_fmt(p['server_cpu_ms_per_request'])} "
                    f"| {_fmt(p['loadavg_1min_after'], 1)} | {ratio} |"
                )
    lines += ["", "## Targets", ""]
    for check in report["checks"]:
        lines.append(f"- {'met' if check['met'] else '**missed**'}: {check['text']}")
    for cfg in report["configurations"]:
        lr = cfg.get("long_run")
        if not lr:
            continue
        r = lr["reload"]
        lines += [
            "",
            f"## {lr['clients']} clients, {lr['seconds']:.0f} s, workers={cfg['workers']}, "
            "with a model reload",
            "",
            f"- requests {lr['requests']:,}, ok {lr['ok']:,}, errors {lr['errors']} "
            f"(status counts {lr['status_counts']}), {lr['requests_per_s']:,.0f} req/s, "
            f"p50 {_fmt(lr['latency_ms'].get('p50'))} ms, p99 {_fmt(lr['latency_ms'].get('p99'))} ms",
            f"- audit rows added {lr['audit_rows_added']:,} vs successful requests {lr['ok']:,}: "
            f"{'equal' if lr['audit_equals_ok'] else '**different**'}",
            f"- reload: `champion` moved v{report['versions'][0]} -> v{report['versions'][1]} at "
            f"{r['alias_moved_at_s']:.1f} s, `POST /v1/admin/reload` -> {r['admin_reload_status']} "
            f"in {r['admin_reload_seconds']:.2f} s ({r['admin_reload_response']}); "
            f"answers by version {lr['versions']}; first v{report['versions'][1]} answer at "
            f"{_fmt(r['first_new_version_at_s'])} s, last v{report['versions'][0]} answer at "
            f"{_fmt(r['last_old_version_at_s'])} s; errors from 1 s before to 15 s after: "
            f"{r['errors_in_reload_window']} of {r['requests_in_reload_window']:,} "
            f"(p99 there {_fmt(r['p99_ms_in_reload_window'])} ms)",
        ]
    lines += [
        "",
        "Run: `.venv/bin/python benchmarks/bench_api.py` (`--quick` for a smoke run).",
        "",
    ]
    return "\n".join(lines)


def checks(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 5 against the numbers."""
    out = []
    for cfg in report["configurations"]:
        if "phases" not in cfg:
            continue
        w = cfg["workers"]
        p99 = cfg["phases"]["guomen_c1"]["latency_ms"].get("p99", float("inf"))
        out.append(
            {
                "met": p99 <= P99_TARGET_MS,
                "text": f"workers={w}, one client: guomen p99 {p99:.2f} ms (target <= "
                f"{P99_TARGET_MS:g} ms)",
            }
        )
        for c in (1, 8):
            r = cfg["ratios"][f"mlflow_c{c}"]
            r2 = cfg["ratios"][f"mlflow_lgbm_c{c}"]
            out.append(
                {
                    "met": r >= RATIO_TARGET,
                    "text": f"workers={w}, {c} client(s): guomen/MLflow (same registered "
                    f"version) throughput {r:.2f}x (target >= {RATIO_TARGET:g}x); against the "
                    f"LightGBM-flavour baseline {r2:.2f}x",
                }
            )
        lr = cfg.get("long_run")
        if lr:
            out.append(
                {
                    "met": lr["errors"] == 0 and lr["audit_equals_ok"],
                    "text": f"workers={w}, {lr['clients']} clients {lr['seconds']:.0f} s: "
                    f"{lr['errors']} errors, audit rows {lr['audit_rows_added']:,} = ok "
                    f"{lr['ok']:,}: {lr['audit_equals_ok']}",
                }
            )
            r = lr["reload"]
            swapped = r["first_new_version_at_s"] is not None
            out.append(
                {
                    "met": lr["errors"] == 0 and swapped and r["admin_reload_status"] == 200,
                    "text": f"workers={w}: reload during the run: {lr['errors']} failed requests, "
                    f"new version served: {swapped}",
                }
            )
    return out


def main(argv: list[str] | None = None) -> int:
    """Prepare, benchmark every worker count, write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small data, short phases")
    parser.add_argument("--workers", help="comma-separated worker counts (default 2,1)")
    parser.add_argument("--work", type=Path, help="work dir (default benchmarks/work/api)")
    parser.add_argument(
        "--render", type=Path, help="only re-render the markdown of an existing results JSON"
    )
    args = parser.parse_args(argv)
    if args.render:
        report = json.loads(args.render.read_text())
        args.render.with_suffix(".md").write_text(markdown(report))
        return 0
    profile = QUICK if args.quick else FULL
    if args.workers:
        profile = Profile(
            **{**profile.__dict__, "workers": tuple(int(w) for w in args.workers.split(","))}
        )
    work = (
        args.work or ROOT / "benchmarks" / "work" / ("api-quick" if args.quick else "api")
    ).resolve()
    # SIGTERM/SIGHUP -> SystemExit, so the finally blocks stop the servers.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(143))

    mach = machine()
    facts = prepare(work, profile)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": mach,
        "profile": profile.__dict__,
        "declarations": facts["declarations"],
        "seed": facts["seed"],
        "versions": facts["versions"],
        "train_mode": facts["train_mode"],
        "model": facts["model"],
        "snapshot_as_of": facts["snapshot_as_of"],
        "load_generator": (
            "multi-process Python client (up to 8 processes x threads, one http.client keep-alive "
            "connection per client; every request's latency and status recorded); "
            f"{profile.phase_seconds:.0f} s per phase after a {profile.warmup_seconds:.0f} s "
            "warm-up per server."
        ),
        "configurations": [],
    }
    for workers in profile.workers:
        report["configurations"].append(bench_workers(workers, profile, facts, work))
    report["checks"] = checks(report)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "api-quick" if args.quick else "api"
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1, default=str))
    (RESULTS / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    return 0 if all(c["met"] for c in report["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
