"""Writing a load: a batch id, the accepted rows as Parquet parts by month in a staging folder
inside the store, moved into place with ``manifest.json`` rewritten last (the commit point)."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
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
from features.store import DATA_QUALITY, MANIFEST, QUARANTINE, partition_dir


def batch_id(hashes: list[str]) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{hashlib.sha256(''.join(hashes).encode()).hexdigest()[:8]}"


def utc_months(ts: Array) -> np.ndarray:
    """UTC month of each timestamp as ``YYYY-MM`` strings."""
    vals = pd.Series(ts.to_pandas()).dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    return np.datetime_as_string(vals.astype("datetime64[M]"), unit="M")


def _by_month(spec: TableSpec, data: pa.Table) -> Iterator[tuple[str | None, pa.Table]]:
    """The rows of ``data`` by storage partition: ``(month, rows)``, or ``(None, data)`` for an
    unpartitioned table."""
    if partition_dir(spec) is None:
        yield None, data
        return
    months = utc_months(data.column(spec.partition_by))
    order = np.argsort(months, kind="stable")
    months_sorted = months[order]
    data = data.take(pa.array(order))
    uniq, starts = np.unique(months_sorted, return_index=True)
    bounds = list(starts) + [len(months_sorted)]
    for i, month in enumerate(uniq):
        yield str(month), data.slice(bounds[i], bounds[i + 1] - bounds[i])


def _part_path(staging: Path, spec: TableSpec, month: str | None, batch: str) -> Path:
    pdir = partition_dir(spec)
    folder = staging / spec.name if month is None else staging / spec.name / f"{pdir}={month}"
    return folder / f"part-{batch}.parquet"


def write_table(staging: Path, spec: TableSpec, data: pa.Table, batch: str) -> list[Path]:
    written = []
    for month, part in _by_month(spec, data):
        path = _part_path(staging, spec, month, batch)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, path)
        written.append(path)
    return written


def _align(table: pa.Table, schema: pa.Schema, path: Path) -> pa.Table:
    """A later chunk or file in the first one's schema (a column it lacks becomes null)."""
    new = [n for n in table.column_names if schema.get_field_index(n) < 0]
    if new:
        raise ValueError(f"{path.name}: columns {new} appear only in a later source of the table")
    cols = [
        table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(cols, schema=schema)


class StagingWriter:
    """Writes a load's checked rows into ``staging`` as they come, chunk after chunk: one
    Parquet file per table and month (the store's layout, one row group per chunk), one for the
    quarantine and one for the data-quality rows. Nothing is kept in memory between chunks."""

    def __init__(self, staging: Path, batch: str) -> None:
        self.staging, self.batch = staging, batch
        self._writers: dict[Path, pq.ParquetWriter] = {}

    def _append(self, path: Path, table: pa.Table) -> None:
        writer = self._writers.get(path)
        if writer is None:
            path.parent.mkdir(parents=True, exist_ok=True)
            writer = self._writers[path] = pq.ParquetWriter(path, table.schema)
        elif not table.schema.equals(writer.schema):
            table = _align(table, writer.schema, path)
        writer.write_table(table)

    def add(self, table: str, out: TableOutput) -> None:
        """Stage one checked file or chunk of ``table``."""
        spec = TABLES[table]
        if out.accepted.num_rows:
            for month, part in _by_month(spec, out.accepted):
                self._append(_part_path(self.staging, spec, month, self.batch), part)
        if out.quarantine.num_rows:
            path = self.staging / QUARANTINE / f"part-{self.batch}.parquet"
            self._append(path, out.quarantine)
        if out.data_quality.num_rows:
            path = self.staging / DATA_QUALITY / f"part-{self.batch}.parquet"
            self._append(path, out.data_quality)

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()


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
