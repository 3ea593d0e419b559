"""Writing a load: a batch id, the accepted rows as Parquet parts by month in a staging folder
inside the store, moved into place with ``manifest.json`` rewritten last (the commit point)."""

from __future__ import annotations

import hashlib
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.contract import TABLES, TableSpec
from features.files import write_json_atomic
from features.ingest.quarantine import TableOutput
from features.ingest.rules import Array
from features.store import DATA_QUALITY, MANIFEST, QUARANTINE, QUARANTINE_SCHEMA, partition_dir


def batch_id(hashes: list[str]) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{hashlib.sha256(''.join(hashes).encode()).hexdigest()[:8]}"


def utc_months(ts: Array) -> np.ndarray:
    """UTC month of each timestamp as ``YYYY-MM`` strings."""
    vals = pd.Series(ts.to_pandas()).dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    return np.datetime_as_string(vals.astype("datetime64[M]"), unit="M")


def write_table(staging: Path, spec: TableSpec, data: pa.Table, batch: str) -> list[Path]:
    written = []
    pdir = partition_dir(spec)
    if pdir is None:
        path = staging / spec.name / f"part-{batch}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(data, path)
        return [path]
    months = utc_months(data.column(spec.partition_by))
    order = np.argsort(months, kind="stable")
    months_sorted = months[order]
    data = data.take(pa.array(order))
    uniq, starts = np.unique(months_sorted, return_index=True)
    bounds = list(starts) + [len(months_sorted)]
    for i, month in enumerate(uniq):
        part = data.slice(bounds[i], bounds[i + 1] - bounds[i])
        path = staging / spec.name / f"{pdir}={month}" / f"part-{batch}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, path)
        written.append(path)
    return written


def commit_batch(store_dir: Path, staging: Path, manifest: dict[str, Any]) -> None:
    """Move staged files into place, then write the manifest (the commit point)."""
    moved: list[Path] = []
    try:
        for path in sorted(p for p in staging.rglob("*") if p.is_file()):
            target = store_dir / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
            moved.append(target)
        write_json_atomic(store_dir / MANIFEST, manifest)
    except BaseException:
        for target in moved:  # uncommitted parts are ignored anyway; tidy up
            target.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def stage_tables(staging: Path, outputs: dict[str, list[TableOutput]], batch: str) -> None:
    """Write a load's accepted rows (by table, in monthly parts), its quarantine and its
    data-quality rows into ``staging``."""
    for table, outs in outputs.items():
        spec = TABLES[table]
        accepted = [o.accepted for o in outs if o.accepted.num_rows]
        if accepted:
            data = pa.concat_tables(accepted, promote_options="permissive")
            write_table(staging, spec, data, batch)
    quarantine = [o.quarantine for outs in outputs.values() for o in outs]
    qt = pa.concat_tables(quarantine) if quarantine else QUARANTINE_SCHEMA.empty_table()
    if qt.num_rows:
        (staging / QUARANTINE).mkdir()
        pq.write_table(qt, staging / QUARANTINE / f"part-{batch}.parquet")
    dq = [o.data_quality for outs in outputs.values() for o in outs if o.data_quality.num_rows]
    if dq:
        (staging / DATA_QUALITY).mkdir()
        pq.write_table(pa.concat_tables(dq), staging / DATA_QUALITY / f"part-{batch}.parquet")
