"""Online feature assembly with a chosen key set, side by side with an earlier commit (issue 12).

Target: ``OnlineFeatures.vector`` median <= 250 us with the chosen set, measured on the same day
and machine as the code before declared crosses. Each variant runs in its own child process (its
own interpreter, the same store, snapshot time and queries), alternated old / new / old / new, and
the load average is recorded with every figure.

Run::

    .venv/bin/python benchmarks/bench_online_keys.py --store STORE --entities ent,hs6_x_org,...
        [--old-commit db4b273] [--queries 2000] [--rounds 2]

Variants: ``old`` (the earlier commit's code, its default 201-odd features, checked out into a
temporary git worktree), ``default`` (this code, the default key set) and ``chosen`` (this code,
the ``--entities`` set and its feature list, code maps fitted on the store). Writes
``benchmarks/results/online_keys.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

CHILD = r"""
import gc, json, sys, time
import numpy as np, pandas as pd
from features.online import OnlineFeatures
from features.registry import feature_names
from features.snapshot import Snapshot
from features.store import Store
store, n, entities = sys.argv[1], int(sys.argv[2]), sys.argv[3]
st = Store(store)
tables = st.tables()
decl = tables["declarations"]
order = decl["declared_at"].sort_values(kind="stable")
as_of = order.iloc[len(order) - n]
kw, okw = {}, {}
if entities != "-":
    from features.categorical import fit_code_maps
    ents = entities.split(",") if entities != "default" else None
    kw = {"entities": ents}
    okw = {"categories": fit_code_maps(decl, st.attributes)}
    names = feature_names(st.attributes, ents)
else:
    names = feature_names(st.attributes)
snap = Snapshot.build(tables, as_of, st.attributes, **kw)
on = OnlineFeatures(snap, names, **okw)
rows = []
for rec in decl.loc[order.index[len(order) - n:]].to_dict("records"):
    row = {k: (None if not isinstance(v, (list, dict)) and pd.isna(v) else v) for k, v in rec.items()}
    row["declared_at"] = row["declared_at"].to_pydatetime()
    rows.append(row)
del tables, decl
gc.collect()
for row in rows:
    on.vector(row)  # first touch
walls = []
for _ in range(3):
    w = np.empty(len(rows))
    for i, row in enumerate(rows):
        t0 = time.perf_counter_ns(); on.vector(row); w[i] = time.perf_counter_ns() - t0
    walls.append(w / 1e3)
warm = np.median(np.stack(walls), axis=0)
print(json.dumps({"features": len(names), "keys": len(snap.entities) - 1,
                  "p50_us": float(np.percentile(warm, 50)), "p90_us": float(np.percentile(warm, 90)),
                  "p99_us": float(np.percentile(warm, 99))}))
"""


def _child(tree: Path, store: Path, n: int, entities: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(store), str(n), entities],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--entities", required=True, help="comma-separated chosen key set")
    ap.add_argument("--old-commit", default="db4b273")
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"old": [], "default": [], "chosen": []}
    with tempfile.TemporaryDirectory(prefix="bench_online_old_") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(old), args.old_commit],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            for _ in range(args.rounds):
                for name, tree, ents in (
                    ("old", old, "-"),
                    ("default", ROOT, "default"),
                    ("chosen", ROOT, args.entities),
                ):
                    load = os.getloadavg()
                    r = _child(tree, args.store, args.queries, ents)
                    r["load"] = [round(x, 2) for x in load]
                    runs[name].append(r)
                    print(name, r, flush=True)
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False
            )
    summary = {
        k: {
            "features": v[0]["features"],
            "keys": v[0]["keys"],
            "p50_us": sorted(r["p50_us"] for r in v)[len(v) // 2],
            "p99_us": sorted(r["p99_us"] for r in v)[len(v) // 2],
        }
        for k, v in runs.items()
    }
    res = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "store": str(args.store),
        "queries": args.queries,
        "old_commit": args.old_commit,
        "entities": args.entities.split(","),
        "runs": runs,
        "summary": summary,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "online_keys.json").write_text(json.dumps(res, indent=2))
    lines = [
        "### Online feature assembly with the chosen keys (issue 12)",
        "",
        f"{res['date']}, 2 cores shared; store {args.store.name}, {args.queries:,} queries after "
        f"the snapshot; each variant a fresh process, {args.rounds} alternated rounds (upper median of the rounds).",
        f"Chosen keys: {', '.join(res['entities'])}.",
        "",
        "| code | features | keys | warm p50 µs | warm p99 µs | ratio p50 vs old | loads |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    base = summary["old"]["p50_us"]
    for k, v in summary.items():
        loads = "; ".join(str(r["load"]) for r in runs[k])
        lines.append(
            f"| {k} | {v['features']} | {v['keys']} | {v['p50_us']:.1f} | {v['p99_us']:.1f} | "
            f"{v['p50_us'] / base:.2f} | {loads} |"
        )
    ok = summary["chosen"]["p50_us"] <= 250
    lines += ["", f"Target median ≤ 250 µs with the chosen set: **{'met' if ok else 'NOT met'}**."]
    (RESULTS / "online_keys.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
