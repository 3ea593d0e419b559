"""The typed, partitioned Parquet store written by ``guomen ingest``.

Layout (see ``docs/architecture.md`` and ``docs/contract.md``)::

    STORE/
      declarations/declared_month=YYYY-MM/part-<batch>.parquet
      inspections/inspected_month=YYYY-MM/part-<batch>.parquet
      risk_signals/reported_month=YYYY-MM/part-<batch>.parquet
      enterprises/part-<batch>.parquet
      credit_ratings/part-<batch>.parquet
      quarantine/part-<batch>.parquet
      data_quality/part-<batch>.parquet
      reports/<batch>.json
      manifest.json

``manifest.json`` is the commit point: a part file whose batch is not listed there (left over by
a load that died between moving files and writing the manifest) is ignored by every reader.
Months are UTC months of the partition timestamp.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.contract import CONTRACT_VERSION, DQ_ISSUE_COUNT, LOAD_ORDER, TABLES, TableSpec

MANIFEST = "manifest.json"
QUARANTINE = "quarantine"
DATA_QUALITY = "data_quality"
TS_TYPE = pa.timestamp("ns", tz="UTC")

_ARROW_TYPES = {
    "id": pa.string(),
    "str": pa.string(),
    "enum": pa.string(),
    "hs": pa.string(),
    "hs_list": pa.string(),
    "country": pa.string(),
    "currency": pa.string(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": TS_TYPE,
}

QUARANTINE_SCHEMA = pa.schema(
    [
        ("batch", pa.string()),
        ("source_file", pa.string()),
        ("source_row", pa.int64()),
        ("table", pa.string()),
        ("column", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)


# One row per bad optional value of an accepted row (contract 1.1): the row was kept, the value
# read as missing. ``key`` is the row's key (declaration_id, signal_id, ...; null if none).
DATA_QUALITY_SCHEMA = pa.schema(
    [
        ("batch", pa.string()),
        ("source_file", pa.string()),
        ("source_row", pa.int64()),
        ("table", pa.string()),
        ("key", pa.string()),
        ("column", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),
    ]
)


def canonical_schema(spec: TableSpec) -> pa.Schema:
    """Arrow schema of the contract columns of a table (with the columns ingest derives:
    ``declared_value_usd`` and ``dq_issue_count`` for declarations)."""
    fields = [pa.field(c.name, _ARROW_TYPES[c.kind]) for c in spec.columns]
    if spec.name == "declarations":
        fields.append(pa.field("declared_value_usd", pa.float64()))
        fields.append(pa.field(DQ_ISSUE_COUNT, pa.int64()))
    return pa.schema(fields)


def partition_dir(spec: TableSpec) -> str | None:
    """Name of the hive partition key of a table (``declared_month``), or None."""
    if spec.partition_by is None:
        return None
    return spec.partition_by.removesuffix("_at") + "_month"


def empty_manifest() -> dict[str, Any]:
    return {"contract_version": CONTRACT_VERSION, "batches": [], "attributes": {}}


class Store:
    """Read side of the Parquet store.

    Parameters
    ----------
    root : Path
        Store folder (may not exist yet: then every table is empty).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- manifest -------------------------------------------------------------------------
    @property
    def manifest(self) -> dict[str, Any]:
        """The parsed ``manifest.json`` (an empty manifest when the store is new)."""
        path = self.root / MANIFEST
        if not path.exists():
            return empty_manifest()
        return json.loads(path.read_text("utf-8"))

    @property
    def batches(self) -> list[str]:
        """Committed batch ids, oldest first."""
        return [b["batch"] for b in self.manifest["batches"]]

    @property
    def loaded_hashes(self) -> dict[str, dict[str, Any]]:
        """sha256 of every source file already loaded -> its manifest entry."""
        out: dict[str, dict[str, Any]] = {}
        for b in self.manifest["batches"]:
            for f in b["files"]:
                out[f["sha256"]] = {**f, "batch": b["batch"]}
        return out

    @property
    def attributes(self) -> dict[str, str]:
        """Extra declaration columns declared as model attributes: name -> categorical|numeric."""
        return dict(self.manifest.get("attributes", {}))

    # -- tables ---------------------------------------------------------------------------
    def _parts(self, folder: str, months: list[str] | None = None) -> list[Path]:
        batches = self.batches
        order = {b: i for i, b in enumerate(batches)}
        base = self.root / folder
        if not base.exists():
            return []
        parts = [p for p in base.rglob("part-*.parquet") if p.stem[5:] in order]
        if months is not None:
            wanted = set(months)
            parts = [p for p in parts if p.parent.name.partition("=")[2] in wanted]
        # Oldest batch first, then partition (month) order: later batches win on replace.
        return sorted(parts, key=lambda p: (order[p.stem[5:]], str(p.parent)))

    def months(self, table: str = "declarations") -> list[str]:
        """The months (``YYYY-MM``) of a partitioned table holding committed parts, in order."""
        return sorted({p.parent.name.partition("=")[2] for p in self._parts(table)})

    def _read_arrow(
        self, folder: str, columns: list[str] | None = None, months: list[str] | None = None
    ) -> list[pa.Table]:
        tables = []
        for part in self._parts(folder, months):
            pf = pq.ParquetFile(part)
            cols = None
            if columns is not None:
                cols = [c for c in columns if c in pf.schema_arrow.names]
            tables.append(pf.read(columns=cols))
        return tables

    def read(
        self, table: str, columns: list[str] | None = None, months: list[str] | None = None
    ) -> pd.DataFrame:
        """One contract table with canonical dtypes.

        Parameters
        ----------
        table : str
            A contract table name.
        columns : list of str, optional
            Read only these columns (others are skipped on disk).
        months : list of str, optional
            Read only these partitions (``YYYY-MM``) of a partitioned table (``months()``).

        Returns
        -------
        pd.DataFrame
            ids/strings/enums: ``str``; timestamps: ``datetime64[ns, UTC]``; floats: ``float64``;
            bools: ``bool``; extra source columns kept. ``enterprises`` keeps the newest row per
            ``enterprise_id`` (a later batch replaces an enterprise).
        """
        spec = TABLES[table]
        schema = canonical_schema(spec)
        parts = self._read_arrow(table, columns, months)
        if columns is not None:
            schema = pa.schema([f for f in schema if f.name in columns])
        if not parts:
            return schema.empty_table().to_pandas()
        data = pa.concat_tables(parts, promote_options="permissive")
        df = data.to_pandas()
        if table == "declarations" and (columns is None or DQ_ISSUE_COUNT in columns):
            # Parts written before contract 1.1 have no count: no issue was recorded for them.
            if DQ_ISSUE_COUNT in df:
                df[DQ_ISSUE_COUNT] = df[DQ_ISSUE_COUNT].fillna(0).astype("int64")
            else:
                df[DQ_ISSUE_COUNT] = pd.Series(0, index=df.index, dtype="int64")
        if table == "enterprises" and "enterprise_id" in df.columns and df.size:
            df = df.drop_duplicates("enterprise_id", keep="last").reset_index(drop=True)
        return df

    def tables(self) -> dict[str, pd.DataFrame]:
        """All five contract tables (empty frames with the right columns when never loaded)."""
        return {name: self.read(name) for name in LOAD_ORDER}

    def quarantine(self) -> pd.DataFrame:
        """Every quarantined row: batch, source_file, source_row, table, column, reason, raw."""
        parts = self._read_arrow(QUARANTINE)
        if not parts:
            return QUARANTINE_SCHEMA.empty_table().to_pandas()
        return pa.concat_tables(parts).to_pandas()

    def data_quality(self) -> pd.DataFrame:
        """Every data-quality issue of accepted rows: batch, source_file, source_row, table, key,
        column, reason, raw (the value as received; the store holds it as missing)."""
        parts = self._read_arrow(DATA_QUALITY)
        if not parts:
            return DATA_QUALITY_SCHEMA.empty_table().to_pandas()
        return pa.concat_tables(parts).to_pandas()

    def reports(self) -> list[dict[str, Any]]:
        """Load reports of committed batches, oldest first."""
        out = []
        for batch in self.batches:
            path = self.root / "reports" / f"{batch}.json"
            if path.exists():
                out.append(json.loads(path.read_text("utf-8")))
        return out
