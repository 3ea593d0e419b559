"""Benchmark the point-in-time feature layer (issue 3, "Speed and memory").

Targets: offline features for 1M declarations in at most 60 s and 6 GB peak; growth from 100k to
300k to 1M close to linear; speed ratio against a plain pandas groupby-apply; online assembly of
one declaration with a median of at most 200 microseconds.

Run::

    .venv/bin/python benchmarks/bench_features.py [--sizes 100000 300000 1000000] [--repeats 2]

Data: ``demo.generate.write_demo_data(dir, n, seed=7)``, then ``features.ingest.ingest`` into a
store, then ``Store(root).tables()`` (what users run). Generated data and stores are kept in
``benchmarks/work/features`` between runs; generation and ingest are not part of any figure.
Each offline build runs in a fresh child process, so its wall time, CPU time and peak RSS are its
own. The machine is shared: every figure is a median of repeats and the load average is recorded.
Writes ``benchmarks/results/features.json`` and ``benchmarks/results/features.md``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from provenance import machine  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "work" / "features"
TARGET_OFFLINE_S = 60.0
TARGET_PEAK_GB = 6.0
TARGET_ONLINE_US = 200.0
SEED = 7

CHILD = """
import json, resource, sys, time
t0 = time.perf_counter()
from features.store import Store
from features.build import build_offline
store = Store(sys.argv[1])
tables = store.tables()
attrs = store.attributes
t1 = time.perf_counter()
c1 = time.process_time()
df = build_offline(tables, attrs)
t2 = time.perf_counter()
c2 = time.process_time()
assert len(df) == len(tables["declarations"])
print(json.dumps({"read_s": t1 - t0, "build_s": t2 - t1, "build_cpu_s": c2 - c1,
                  "rows": len(df), "features": df.shape[1] - 3,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2}))
"""


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def prepare_store(n: int) -> Path:
    """Demo data (seed 7) ingested into a store, cached under ``benchmarks/work/features``."""
    from demo.generate import write_demo_data
    from features.ingest import ingest

    src, store = WORK / f"demo_{n}", WORK / f"store_{n}"
    if not (src / "declarations.parquet").exists():
        t0 = time.perf_counter()
        write_demo_data(src, n_declarations=n, seed=SEED)
        print(f"generated {n} in {time.perf_counter() - t0:.1f} s", flush=True)
    if not (store / "manifest.json").exists():
        t0 = time.perf_counter()
        ingest(src, store)
        print(f"ingested {n} in {time.perf_counter() - t0:.1f} s", flush=True)
    return store


def offline_run(store: Path) -> dict[str, Any]:
    """One ``build_offline`` in a fresh child; peak RSS also from ``RUSAGE_CHILDREN``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    load = _load()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(store)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # RUSAGE_CHILDREN keeps the largest child so far: it only speaks for this run if it grew.
    out["children_maxrss_gb"] = after / 1024**2 if after > before else None
    out["load_before"] = load
    return out


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return float(np.median([r[key] for r in runs]))


# --------------------------------------------------------------------------- pandas baseline
PANDAS_FEATURES = [
    f"{e}_{agg}_{w}"
    for e in ("ent", "hs6")
    for agg, ws in (
        ("decl_cnt", ("30d", "90d", "365d", "all")),
        ("insp_cnt", ("365d", "all")),
        ("nc_cnt", ("90d", "365d", "all")),
    )
    for w in ws
]


def pandas_groupby_features(tables: dict[str, Any]) -> Any:
    """Enterprise and HS6 counts over the windows, by a plain per-entity groupby-apply.

    The straightforward way: per entity group, its declarations and results sorted by time, and
    for each declaration the events in ``[t - w, t)`` found by ``searchsorted`` in that group.
    """
    import pandas as pd

    from features.build import final_inspections
    from features.registry import DAY_NS

    decl = tables["declarations"].reset_index(drop=True)
    d = pd.DataFrame(
        {
            "row": np.arange(len(decl)),
            "t": decl["declared_at"].astype("datetime64[ns, UTC]").astype("int64"),
            "ent": decl["enterprise_id"],
            "hs6": decl["hs_code"].str.slice(0, 6).where(decl["hs_code"].str.len() >= 6),
        }
    )
    ins = final_inspections(tables["inspections"])
    ins = pd.DataFrame(
        {
            "declaration_id": ins["declaration_id"],
            "ti": ins["inspected_at"].astype("datetime64[ns, UTC]").astype("int64"),
            "nc": (ins["result"] == "nonconforming").fillna(False).astype("int64"),
        }
    )
    ins = ins.merge(
        pd.DataFrame({"declaration_id": decl["declaration_id"], "ent": d["ent"], "hs6": d["hs6"]}),
        on="declaration_id",
    )
    windows = {"30d": 30 * DAY_NS, "90d": 90 * DAY_NS, "365d": 365 * DAY_NS}
    out = pd.DataFrame(index=d.index, columns=PANDAS_FEATURES, dtype="float64")

    for ent in ("ent", "hs6"):
        by_insp = {k: g.sort_values("ti") for k, g in ins.groupby(ent)}

        def per_entity(g: pd.DataFrame, ent: str = ent, by_insp: dict = by_insp) -> pd.DataFrame:
            g = g.sort_values("t", kind="stable")
            t = g["t"].to_numpy()
            res = {}
            hi = np.searchsorted(t, t, side="left")
            res[f"{ent}_decl_cnt_all"] = hi
            for w, wn in windows.items():
                res[f"{ent}_decl_cnt_{w}"] = hi - np.searchsorted(t, t - wn, side="left")
            gi = by_insp.get(g[ent].iloc[0])
            ti = gi["ti"].to_numpy() if gi is not None else np.zeros(0, np.int64)
            nc = np.concatenate([[0], np.cumsum(gi["nc"].to_numpy())]) if gi is not None else [0]
            nc = np.asarray(nc)
            ihi = np.searchsorted(ti, t, side="left")
            res[f"{ent}_insp_cnt_all"] = ihi
            res[f"{ent}_nc_cnt_all"] = nc[ihi]
            for w in ("90d", "365d"):
                ilo = np.searchsorted(ti, t - windows[w], side="left")
                res[f"{ent}_nc_cnt_{w}"] = nc[ihi] - nc[ilo]
                if w == "365d":
                    res[f"{ent}_insp_cnt_{w}"] = ihi - ilo
            return pd.DataFrame(res, index=g["row"].to_numpy())

        parts = d.dropna(subset=[ent]).groupby(ent, sort=False)[["row", "t", ent]].apply(per_entity)
        parts = parts.reset_index(level=0, drop=True)
        out.loc[parts.index, parts.columns] = parts.astype("float64")
    return out


def pandas_ratio(store: Path, repeats: int) -> dict[str, Any]:
    """Pandas groupby-apply vs the fast path on the same store and feature columns."""
    from features.build import build_offline
    from features.store import Store

    st = Store(store)
    tables = st.tables()
    fast_s, fast_cpu, pd_s, pd_cpu = [], [], [], []
    fast = slow = None
    for _ in range(repeats):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        fast = build_offline(tables, st.attributes)
        fast_s.append(time.perf_counter() - t0)
        fast_cpu.append(time.process_time() - c0)
        del fast
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        slow = pandas_groupby_features(tables)
        pd_s.append(time.perf_counter() - t0)
        pd_cpu.append(time.process_time() - c0)
    fast = build_offline(tables, st.attributes)
    a = fast[PANDAS_FEATURES].to_numpy(dtype=np.float64)
    b = slow[PANDAS_FEATURES].to_numpy(dtype=np.float64)
    agree = bool(((a == b) | (np.isnan(a) & np.isnan(b))).all())
    return {
        "declarations": len(tables["declarations"]),
        "columns_compared": PANDAS_FEATURES,
        "agree_exactly": agree,
        "fast_all_features_s": float(np.median(fast_s)),
        "fast_all_features_cpu_s": float(np.median(fast_cpu)),
        "pandas_subset_s": float(np.median(pd_s)),
        "pandas_subset_cpu_s": float(np.median(pd_cpu)),
        "ratio_wall": float(np.median(pd_s) / np.median(fast_s)),
        "ratio_cpu": float(np.median(pd_cpu) / np.median(fast_cpu)),
        "note": (
            f"pandas computes {len(PANDAS_FEATURES)} columns, the fast path all "
            f"{fast.shape[1] - 3}: the ratio understates the per-feature speed-up"
        ),
        "load": _load(),
    }


# --------------------------------------------------------------------------- online
def online(store: Path, n_queries: int) -> dict[str, Any]:
    """Snapshot build / save / load at the 1M store, then ``vector()`` latency."""
    import pandas as pd

    from features.online import OnlineFeatures
    from features.registry import feature_names
    from features.snapshot import Snapshot
    from features.store import Store

    st = Store(store)
    tables = st.tables()
    decl = tables["declarations"]
    order = decl["declared_at"].sort_values(kind="stable")
    # The snapshot is taken just before the last n_queries declarations; those are scored.
    as_of = order.iloc[len(order) - n_queries]
    gc.collect()
    load_build = _load()
    t0 = time.perf_counter()
    snap = Snapshot.build(tables, as_of, st.attributes)
    build_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(prefix="bench_snapshot_") as tmp:
        t0 = time.perf_counter()
        snap.save(Path(tmp) / "s")
        save_s = time.perf_counter() - t0
        size_mb = sum(p.stat().st_size for p in (Path(tmp) / "s").rglob("*") if p.is_file()) / 1e6
        del snap
        gc.collect()
        load_s = []
        for _ in range(3):
            t0 = time.perf_counter()
            snap = Snapshot.load(Path(tmp) / "s")
            load_s.append(time.perf_counter() - t0)
    names = feature_names(st.attributes)
    from features.categorical import fit_code_maps

    on = OnlineFeatures(
        snap, names, categories=fit_code_maps(tables["declarations"], st.attributes)
    )
    picked = decl.loc[order.index[len(order) - n_queries :]]
    rows = []
    for rec in picked.to_dict("records"):
        row = {
            k: (None if not isinstance(v, (list, dict)) and pd.isna(v) else v)
            for k, v in rec.items()
        }
        row["declared_at"] = row["declared_at"].to_pydatetime()
        rows.append(row)
    del tables, decl
    gc.collect()

    def one_pass() -> tuple[np.ndarray, np.ndarray]:
        wall, cpu = np.empty(len(rows)), np.empty(len(rows))
        for i, row in enumerate(rows):
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            on.vector(row)
            wall[i] = time.perf_counter_ns() - t0
            cpu[i] = time.thread_time_ns() - c0
        return wall / 1e3, cpu / 1e3

    def pct(x: np.ndarray) -> dict[str, float]:
        p50, p90, p99 = np.percentile(x, [50, 90, 99])
        return {
            "p50": round(float(p50), 1),
            "p90": round(float(p90), 1),
            "p99": round(float(p99), 1),
        }

    load_q = _load()
    cold_wall, cold_cpu = one_pass()  # first touch of every key (materialised from columns)
    passes = [one_pass() for _ in range(3)]
    warm_wall = np.median(np.stack([w for w, _ in passes]), axis=0)
    warm_cpu = np.median(np.stack([c for _, c in passes]), axis=0)
    vec = on.vector(rows[0])
    return {
        "as_of": str(as_of),
        "queries": len(rows),
        "features": int(vec.shape[0]),
        "snapshot_build_s": build_s,
        "snapshot_save_s": save_s,
        "snapshot_load_s": float(np.median(load_s)),
        "snapshot_mb": round(size_mb, 1),
        "cold_us_wall": pct(cold_wall),
        "cold_us_cpu": pct(cold_cpu),
        "warm_us_wall": pct(warm_wall),
        "warm_us_cpu": pct(warm_cpu),
        "load_snapshot_build": load_build,
        "load_queries": load_q,
    }


# --------------------------------------------------------------------------- report
def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    lines = [
        "### Features (issue 3)",
        "",
        f"{res['date']}, {m['nproc']} cores, {m['ram_gb']} GB RAM, shared machine: load average "
        f"{res['load_start']} at start, {res['load_end']} at end (1/5/15 min). Demo data seed "
        f"{SEED}, via ingest and `Store.tables()`. Medians of repeats; CPU = process CPU time "
        "(less sensitive to the load than wall time).",
        "",
        "| declarations | build wall s | build CPU s | s per 100k (wall) | CPU s per 100k | "
        "peak RSS GB | store read s | runs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n, r in res["offline"].items():
        lines.append(
            f"| {int(n):,} | {r['build_s']:.1f} | {r['build_cpu_s']:.1f} | "
            f"{r['s_per_100k']:.2f} | {r['cpu_s_per_100k']:.2f} | {r['peak_rss_gb']:.2f} | "
            f"{r['read_s']:.1f} | {r['runs']} |"
        )
    big = res["offline"].get("1000000")
    if big:
        ok = big["build_s"] <= TARGET_OFFLINE_S and big["peak_rss_gb"] <= TARGET_PEAK_GB
        lines += [
            "",
            f"Target 1M: ≤ {TARGET_OFFLINE_S:.0f} s and ≤ {TARGET_PEAK_GB:.0f} GB: "
            f"**{'met' if ok else 'NOT met'}** ({big['build_s']:.1f} s wall, "
            f"{big['peak_rss_gb']:.2f} GB).",
        ]
    pr = res.get("pandas")
    if pr:
        lines += [
            "",
            f"Pandas groupby-apply ({len(pr['columns_compared'])} enterprise/HS6 count columns, "
            f"{pr['declarations']:,} declarations): {pr['pandas_subset_s']:.1f} s vs fast path "
            f"{pr['fast_all_features_s']:.1f} s for all features: **{pr['ratio_wall']:.1f}x** "
            f"wall ({pr['ratio_cpu']:.1f}x CPU); columns agree exactly: {pr['agree_exactly']}. "
            f"{pr['note']}.",
        ]
    on = res.get("online")
    if on:
        w, c, cw = on["warm_us_wall"], on["warm_us_cpu"], on["cold_us_wall"]
        lines += [
            "",
            f"Online `vector()` ({on['queries']:,} real declarations after a snapshot of the "
            f"1M store; {on['features']} features): warm p50/p90/p99 **{w['p50']}** / {w['p90']} /"
            f" {w['p99']} µs wall, {c['p50']} / {c['p90']} / {c['p99']} µs CPU; first pass "
            f"(keys materialised on first use) {cw['p50']} / {cw['p90']} / {cw['p99']} µs wall. "
            f"Target median ≤ {TARGET_ONLINE_US:.0f} µs: "
            f"**{'met' if w['p50'] <= TARGET_ONLINE_US else 'NOT met'}**.",
            f"Snapshot at 1M: build {on['snapshot_build_s']:.1f} s, save "
            f"{on['snapshot_save_s']:.1f} s, load {on['snapshot_load_s']:.2f} s, "
            f"{on['snapshot_mb']} MB on disk.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--repeats", type=int, default=2, help="offline runs per size (median)")
    ap.add_argument("--pandas-size", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=3000)
    ap.add_argument("--skip-online", action="store_true")
    args = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {
        "benchmark": "features",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_start": _load(),
        "targets": {
            "offline_1m_s": TARGET_OFFLINE_S,
            "peak_gb": TARGET_PEAK_GB,
            "online_median_us": TARGET_ONLINE_US,
        },
        "offline": {},
    }
    stores = {n: prepare_store(n) for n in sorted(set(args.sizes) | {args.pandas_size})}
    for n in sorted(args.sizes):
        runs = [offline_run(stores[n]) for _ in range(args.repeats)]
        r = {
            "runs": len(runs),
            "build_s": _median(runs, "build_s"),
            "build_cpu_s": _median(runs, "build_cpu_s"),
            "read_s": _median(runs, "read_s"),
            "peak_rss_gb": max(x["peak_rss_gb"] for x in runs),
            "features": runs[0]["features"],
            "all_runs": runs,
        }
        r["s_per_100k"] = r["build_s"] / (n / 100_000)
        r["cpu_s_per_100k"] = r["build_cpu_s"] / (n / 100_000)
        res["offline"][str(n)] = r
        print(f"offline {n}: {r['build_s']:.1f} s, {r['peak_rss_gb']:.2f} GB", flush=True)
    res["children_maxrss_gb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
    (RESULTS / "features.json").write_text(json.dumps(res, indent=2))  # partial, if later fails
    res["pandas"] = pandas_ratio(stores[args.pandas_size], repeats=2)
    print(f"pandas ratio {res['pandas']['ratio_wall']:.1f}x", flush=True)
    if not args.skip_online:
        res["online"] = online(stores[max(args.sizes)], args.queries)
        print(f"online {res['online']['warm_us_wall']}", flush=True)
    res["load_end"] = _load()
    (RESULTS / "features.json").write_text(json.dumps(res, indent=2))
    (RESULTS / "features.md").write_text(markdown(res), encoding="utf-8")
    print(markdown(res))


if __name__ == "__main__":
    main()
