"""Rescoring's features stage from partitioned features (``guomen features build
--partition-months``): time partitions streamed into the enterprise-hash partition files.

The in-memory stage (``serving.rescore.run``) builds every declaration's features and keeps the
period in memory. This one reads the period's time partitions one at a time (only the model's
columns, only the period's rows), appends each row to its enterprise-hash partition through one
Parquet writer per hash partition, then sorts each hash partition on its own as the in-memory
stage does. Peak memory: one time partition plus one hash partition (``--partitions``).
The features are the partitions' float32 values; the scores equal those of the in-memory frame
cast to float32 (tested).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.bundle import ModelBundle
from features.files import write_json_atomic
from features.partitioned import add_months, month_start, read_manifest
from features.progress import Progress
from serving.rescore.files import RunLayout, write_parquet_atomic
from serving.rescore.partition import partition_column

ID_COLUMNS = ["declaration_id", "declared_at", "enterprise_id"]


def check_matches(manifest: dict[str, Any], bundle: ModelBundle) -> None:
    """Refuse partitions built for another feature set than the bundle's (keys, code maps)."""
    missing = [n for n in bundle.feature_names if n not in manifest["feature_names"]]
    if missing:
        raise ValueError(f"the partitioned features lack columns the model needs: {missing[:5]}")
    if (manifest.get("entities") or None) != (bundle.entities or None):
        raise ValueError(
            f"the partitions were built for history keys {manifest.get('entities')}, the model "
            f"uses {bundle.entities}: rebuild with --entities {','.join(bundle.entities or [])}"
        )
    cats = {n: v for n, v in (bundle.categories or {}).items() if n in bundle.feature_names}
    theirs = manifest.get("categories") or {}
    if any(theirs.get(n) != v for n, v in cats.items()):
        raise ValueError("the partitions' category code maps differ from the model's")


def stage_features_streamed(
    layout: RunLayout,
    bundle: ModelBundle,
    partitions: int,
    start: pd.Timestamp,
    end: pd.Timestamp,
    feature_dir: Path,
    progress: Progress,
) -> dict[str, Any]:
    """Write the hash-partition feature files of the period ``[start, end)`` from the time
    partitions in ``feature_dir``; same layout and success marker as the in-memory stage."""
    manifest = read_manifest(feature_dir)
    check_matches(manifest, bundle)
    columns = ID_COLUMNS + list(bundle.feature_names)
    spool = layout.root / "features-spool"
    shutil.rmtree(spool, ignore_errors=True)
    spool.mkdir(parents=True)
    writers: dict[int, pq.ParquetWriter] = {}
    rows = [0] * partitions
    lo, hi = start.value, end.value
    try:
        for part in manifest["partitions"]:
            first = month_start(part["months"][0])
            after = month_start(add_months(part["months"][-1], 1))
            if after <= lo or first >= hi:
                continue
            path = Path(feature_dir) / "features" / f"part-{part['name']}.parquet"
            table = pq.read_table(path, columns=columns)
            t = table.column("declared_at").cast(pa.int64()).to_numpy()
            table = table.filter(pa.array((t >= lo) & (t < hi)))
            if table.num_rows == 0:
                continue
            hashes = partition_column(table.column("enterprise_id").to_pandas(), partitions)
            order = np.argsort(hashes, kind="stable")
            table = table.take(pa.array(order))
            hashes = hashes[order]
            cuts = np.searchsorted(hashes, np.arange(partitions + 1))
            for h in range(partitions):
                n = int(cuts[h + 1] - cuts[h])
                if n == 0:
                    continue
                if h not in writers:
                    writers[h] = pq.ParquetWriter(spool / f"{h}.parquet", table.schema)
                writers[h].write_table(table.slice(int(cuts[h]), n))
                rows[h] += n
    finally:
        for w in writers.values():
            w.close()
    empty = pd.DataFrame({c: pd.Series(dtype="float32") for c in columns})
    for h in range(partitions):
        path = spool / f"{h}.parquet"
        frame = pd.read_parquet(path) if path.exists() else empty
        frame = frame.assign(
            declaration_id=frame["declaration_id"].astype("str"),
            enterprise_id=frame["enterprise_id"].astype("str"),
        )
        if frame["declaration_id"].duplicated().any():
            raise ValueError("declaration_id is not unique in the partitioned features")
        frame = frame.sort_values(["enterprise_id", "declared_at", "declaration_id"], kind="stable")
        write_parquet_atomic(frame.reset_index(drop=True), layout.features(h))
        path.unlink(missing_ok=True)
        progress("features", h + 1, partitions)
    shutil.rmtree(spool, ignore_errors=True)
    done = {"rows": int(sum(rows)), "partition_rows": rows}
    write_json_atomic(layout.features_success, done, sort_keys=True)
    return done
