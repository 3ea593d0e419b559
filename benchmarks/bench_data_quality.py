"""Rows kept by contract 1.1: quarantined and data-quality counts of ingest, before vs after.

Two inputs: the flat foreign layout with the values real exports have (``Net Mass`` 0, origin
``ZZ``: ``write_foreign_flat(..., unknown_values=True)``, ingested through
``docs/examples/foreign_flat_mapping.yaml``) and the demo contract tables. Each is ingested into
a fresh store by this checkout and, with ``--baseline``, by another checkout (e.g. the commit
before contract 1.1: ``git worktree add --detach /tmp/base e57a213``), each in a child process.

Run::

    .venv/bin/python benchmarks/bench_data_quality.py [--flat-rows 54000] \\
        [--declarations 200000] [--baseline /tmp/base]

Writes ``benchmarks/results/data_quality.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from provenance import git_commit  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MAPPING = ROOT / "docs" / "examples" / "foreign_flat_mapping.yaml"

CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from features.ingest import ingest
mapping = Path(sys.argv[3]) if sys.argv[3] else None
t0 = time.perf_counter()
r = ingest(Path(sys.argv[1]), Path(sys.argv[2]), mapping_file=mapping)
print(json.dumps({"seconds": time.perf_counter() - t0, "tables": r.to_dict()["tables"]}))
"""


def _ingest(src: Path, mapping: Path | None, code: Path) -> dict:
    store = Path(tempfile.mkdtemp(prefix="bench_dq_"))
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(src), str(store / "s"), str(mapping or ""),
             str(code)],
            cwd=code, capture_output=True, text=True, check=True,
        )  # fmt: skip
        return json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(store, ignore_errors=True)


def _inputs(data: Path, flat_rows: int, declarations: int) -> dict[str, tuple[Path, Path | None]]:
    sys.path.insert(0, str(ROOT))
    from demo.foreign import write_foreign_flat
    from demo.generate import write_demo_data

    flat = data / f"flat_{flat_rows}_unknown"
    if not (flat / "foreign_flat.csv").exists():
        write_foreign_flat(flat / "foreign_flat.csv", flat_rows, seed=5, unknown_values=True)
    demo = data / f"demo_{declarations}_parquet"
    if not (demo / "declarations.parquet").exists():
        write_demo_data(demo, n_declarations=declarations, seed=7, fmt="parquet")
    return {
        f"flat foreign layout, {flat_rows:,} rows (seed 5, --unknown-values)": (flat, MAPPING),
        f"demo contract tables, {declarations:,} declarations (seed 7)": (demo, None),
    }


def _summary(tables: dict) -> dict:
    out = {}
    for name, t in tables.items():
        out[name] = {
            "read": t["read"],
            "accepted": t["accepted"],
            "with_dq_issues": t.get("with_dq_issues"),
            "quarantined": t["quarantined"],
            "by_reason": t["by_reason"],
            "dq_by_reason": t.get("dq_by_reason"),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flat-rows", type=int, default=54_000)
    ap.add_argument("--declarations", type=int, default=200_000)
    ap.add_argument("--baseline", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "guomen_bench_dq")
    args = ap.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    codes = {"current": ROOT}
    if args.baseline is not None:
        codes = {"baseline": args.baseline, **codes}
    runs: dict[str, dict] = {}
    for label, (src, mapping) in _inputs(args.data, args.flat_rows, args.declarations).items():
        runs[label] = {}
        for name, code in codes.items():
            res = _ingest(src, mapping, code)
            runs[label][name] = _summary(res["tables"])
            print(label, name, json.dumps(runs[label][name]["declarations"]), flush=True)
    payload = {
        "benchmark": "data_quality",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "baseline": str(args.baseline) if args.baseline else None,
        "baseline_commit": git_commit(args.baseline) if args.baseline else None,
        "current_commit": git_commit(ROOT),
        "load_average": os.getloadavg(),
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "data_quality.json").write_text(json.dumps(payload, indent=2))
    lines = [
        f"# Rows kept by contract 1.1 ({payload['date']})",
        "",
        "Ingest of each input into a fresh store; `baseline` is "
        f"`{payload['baseline']}` at {payload['baseline_commit']} (contract 1), `current` "
        f"{payload['current_commit']} (contract 1.1). Load average at the end "
        f"{', '.join(f'{x:.1f}' for x in payload['load_average'])} (2 cores).",
        "",
        "| input | table | code | read | accepted | with DQ issues | quarantined | reasons |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for label, by_code in runs.items():
        for name, tables in by_code.items():
            for table, t in tables.items():
                reasons = {**t["by_reason"], **{f"DQ {k}": v for k, v in
                                                (t["dq_by_reason"] or {}).items()}}  # fmt: skip
                text = "; ".join(f"{k} ({v:,})" for k, v in reasons.items()) or "-"
                dq = "-" if t["with_dq_issues"] is None else f"{t['with_dq_issues']:,}"
                lines.append(
                    f"| {label} | {table} | {name} | {t['read']:,} | {t['accepted']:,} | {dq} | "
                    f"{t['quarantined']:,} | {text} |"
                )
    (RESULTS / "data_quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
