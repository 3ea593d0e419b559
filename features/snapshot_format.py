"""A snapshot on disk: its directory layout, writing it and reading it back (no pickle).

:class:`features.snapshot.Snapshot` turns its state into :class:`SnapshotTables` and back; this
module is the only one that knows the files. Layout of a saved snapshot (a directory)::

    snapshot.json                 as_of, cutoffs, attributes, signal patterns, version
    entities/<entity>.parquet     key, first, <kind>_n, <kind>_times (list<int64>), nc_last
    signals.parquet               pattern, key, t, channel, severity
    credit.parquet                enterprise_id, t, tier
    enterprises.parquet           enterprise_id, type_code, registered
    unit_values.parquet           hs6, values (list<float64>, sorted; before base month)
    unit_values_pending.parquet   hs6, t, luv (declarations since the base month)
    pending.parquet               declaration_id and key fields of declarations without a result
    behaviour/<entity>.parquet    key, times (list<int64>), <sum>_base, <sum>_terms (list<float64>)

``snapshot.json``'s ``format`` is checked on reading: a snapshot of another format is refused
with the command that rebuilds it. Callers make the write atomic (``features.files.write_directory``
stages the directory and swaps it in).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.snapshot_state import (
    _BEHAVIOUR_SCHEMA,
    _ENTITY_SCHEMA,
    SNAPSHOT_FORMAT,
    BehaviourTable,
    EntityTable,
)


@dataclass
class SnapshotTables:
    """A snapshot's content as the tables its directory holds (the ``Snapshot`` arguments).

    Attributes
    ----------
    meta
        ``snapshot.json``: format, as-of and cutoffs (ns), attributes, history keys, signal
        patterns, vocabularies.
    entities, behaviour
        Per history key: event series and behaviour running sums.
    signals, credit, enterprises, uv_pending, pending
        Risk signals, credit history, enterprise attributes, recent HS6 unit values and the key
        fields of declarations still waiting for a result.
    uv_base
        Sorted HS6 unit values before the base month (``hs6``, ``values`` list<float64>).
    """

    meta: dict[str, Any]
    entities: dict[str, EntityTable]
    signals: pd.DataFrame
    credit: pd.DataFrame
    enterprises: pd.DataFrame
    uv_base: pa.Table
    uv_pending: pd.DataFrame
    pending: pd.DataFrame
    behaviour: dict[str, BehaviourTable]


def write_snapshot(directory: Path | str, tables: SnapshotTables) -> None:
    """Write ``tables`` into ``directory`` in the layout above (Parquet + JSON).

    Parameters
    ----------
    directory
        Created if missing; files of the same names are overwritten.
    tables
        What :meth:`features.snapshot.Snapshot.save` hands over.
    """
    d = Path(directory)
    (d / "entities").mkdir(parents=True, exist_ok=True)
    for name, table in tables.entities.items():
        pq.write_table(table.to_table(), d / "entities" / f"{name}.parquet")
    (d / "behaviour").mkdir(exist_ok=True)
    for name, btable in tables.behaviour.items():
        pq.write_table(btable.to_table(), d / "behaviour" / f"{name}.parquet")
    pq.write_table(
        pa.Table.from_pandas(tables.signals.astype({"key": object}), preserve_index=False),
        d / "signals.parquet",
    )
    _write(tables.credit, d / "credit.parquet")
    _write(tables.enterprises, d / "enterprises.parquet")
    pq.write_table(tables.uv_base, d / "unit_values.parquet")
    _write(tables.uv_pending, d / "unit_values_pending.parquet")
    _write(tables.pending, d / "pending.parquet")
    (d / "snapshot.json").write_text(json.dumps(tables.meta, indent=2, ensure_ascii=False))


def read_snapshot(directory: Path | str) -> SnapshotTables:
    """Read a directory written by :func:`write_snapshot`.

    Raises
    ------
    ValueError
        The snapshot is of another format (rebuild it with ``guomen snapshot``).
    """
    d = Path(directory)
    meta = json.loads((d / "snapshot.json").read_text())
    if meta.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(
            f"{d}: snapshot format {meta.get('format')} != {SNAPSHOT_FORMAT}; "
            "rebuild it with `guomen snapshot`"
        )

    def read(name: str) -> pd.DataFrame:
        return pq.read_table(d / name).to_pandas()

    return SnapshotTables(
        meta=meta,
        entities={
            p.stem: EntityTable(pq.read_table(p).cast(_ENTITY_SCHEMA))
            for p in sorted((d / "entities").glob("*.parquet"))
        },
        signals=read("signals.parquet"),
        credit=read("credit.parquet"),
        enterprises=read("enterprises.parquet"),
        uv_base=pq.read_table(d / "unit_values.parquet"),
        uv_pending=read("unit_values_pending.parquet"),
        pending=read("pending.parquet"),
        behaviour={
            p.stem: BehaviourTable(pq.read_table(p).cast(_BEHAVIOUR_SCHEMA))
            for p in sorted((d / "behaviour").glob("*.parquet"))
        },
    )


def _write(df: pd.DataFrame, path: Path) -> None:
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
