"""What a checked table becomes: accepted rows, quarantine rows (every reason, the raw row) and
data-quality rows (each bad optional value of an accepted row), with the counts asserted."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import DQ_ISSUE_COUNT
from features.ingest.readers import TableInput
from features.ingest.report import TableReport
from features.ingest.rules import Array, Checked
from features.store import DATA_QUALITY_SCHEMA, QUARANTINE_SCHEMA, canonical_schema


@dataclass
class TableOutput:
    """One checked table of one source file: what is kept, quarantined and recorded."""

    accepted: pa.Table
    quarantine: pa.Table
    data_quality: pa.Table
    report: TableReport
    checked: Checked


def quarantine_rows(
    inp: TableInput, checked: Checked, bad: np.ndarray, batch: str
) -> tuple[pa.Table, dict[str, int]]:
    """One quarantine row per failed source row, all its reasons, the raw row as JSON."""
    idx = np.flatnonzero(bad)
    cols: list[list[str]] = [[] for _ in idx]
    reasons: list[list[str]] = [[] for _ in idx]
    by_reason: dict[str, int] = {}
    for column, reason, mask in checked.problems:
        label = f"{column}: {reason}"
        by_reason[label] = int(mask.sum())
        # Loop over the quarantined rows only (few), never over the file.
        for i in np.flatnonzero(mask[idx]):
            if column not in cols[i]:
                cols[i].append(column)
            reasons[i].append(label)
    # A quarantined row's bad optional values are named too (not counted: the row is not kept).
    for column, reason, mask in checked.issues:
        for i in np.flatnonzero(mask[idx]):
            if column not in cols[i]:
                cols[i].append(column)
            reasons[i].append(f"{column}: {reason} (optional)")
    raw_rows = inp.source.table.take(pa.array(inp.raw_index[idx])).to_pylist() if len(idx) else []
    q = {
        "batch": [batch] * len(idx),
        "source_file": [inp.source.name] * len(idx),
        "source_row": inp.source.source_rows[inp.raw_index[idx]].tolist(),
        "table": [inp.table] * len(idx),
        "column": ["; ".join(c) for c in cols],
        "reason": ["; ".join(r) for r in reasons],
        "raw": [json.dumps(r, ensure_ascii=False, default=str) for r in raw_rows],
    }
    table = pa.table(q, schema=QUARANTINE_SCHEMA)
    if inp.source.bad_rows:
        rows = inp.source.bad_rows
        extra = pa.table(
            {
                "batch": [batch] * len(rows),
                "source_file": [inp.source.name] * len(rows),
                "source_row": [r[0] for r in rows],
                "table": [inp.table] * len(rows),
                "column": [""] * len(rows),
                "reason": [r[1] for r in rows],
                "raw": [json.dumps({"_line": r[2]}, ensure_ascii=False) for r in rows],
            },
            schema=QUARANTINE_SCHEMA,
        )
        table = pa.concat_tables([table, extra])
        for r in rows:
            by_reason[r[1]] = by_reason.get(r[1], 0) + 1
    return table, by_reason


def data_quality_rows(
    inp: TableInput, checked: Checked, keep: np.ndarray, batch: str
) -> tuple[pa.Table, dict[str, int]]:
    """One row per data-quality issue of an accepted row: where, which column, why, raw value.

    Issues of quarantined rows are not listed: the quarantine keeps the whole raw row.
    """
    parts = []
    by_reason: dict[str, int] = {}
    key = checked.spec.key
    for column, reason, mask in checked.issues:
        idx = np.flatnonzero(mask & keep)
        if not len(idx):
            continue
        by_reason[f"{column}: {reason}"] = len(idx)
        take = pa.array(idx)
        raw = checked.raw.get(column)
        raw_text = (
            pc.cast(raw.take(take), pa.string())
            if raw is not None
            else pa.nulls(len(idx), pa.string())
        )
        parts.append(
            pa.table(
                {
                    "batch": pa.array([batch] * len(idx), pa.string()),
                    "source_file": pa.array([inp.source.name] * len(idx), pa.string()),
                    "source_row": pa.array(inp.source.source_rows[inp.raw_index[idx]], pa.int64()),
                    "table": pa.array([inp.table] * len(idx), pa.string()),
                    "key": (
                        pc.cast(checked.typed[key].take(take), pa.string())
                        if key
                        else pa.nulls(len(idx), pa.string())
                    ),
                    "column": pa.array([column] * len(idx), pa.string()),
                    "reason": pa.array([reason] * len(idx), pa.string()),
                    "raw": raw_text,
                },
                schema=DATA_QUALITY_SCHEMA,
            )
        )
    table = pa.concat_tables(parts) if parts else DATA_QUALITY_SCHEMA.empty_table()
    return table, by_reason


def accepted_table(checked: Checked, keep: np.ndarray, extra: dict[str, Array]) -> pa.Table:
    schema = canonical_schema(checked.spec)
    arrays = []
    fields = []
    for f in schema:
        arr = checked.typed[f.name] if f.name in checked.typed else extra[f.name]
        arrays.append(pc.cast(arr, f.type))
        fields.append(f)
    for name, arr in checked.extras.items():
        arrays.append(arr)
        fields.append(pa.field(name, arr.type))
    table = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    return table.filter(pa.array(keep))


def finish_table(
    inp: TableInput, checked: Checked, batch: str, extra: dict[str, Array] | None = None
) -> TableOutput:
    bad = checked.bad()
    quarantine, by_reason = quarantine_rows(inp, checked, bad, batch)
    data_quality, dq_by_reason = data_quality_rows(inp, checked, ~bad, batch)
    counts = checked.issue_counts()
    extra = dict(extra or {})
    if checked.spec.name == "declarations":
        extra[DQ_ISSUE_COUNT] = pa.array(counts, pa.int64())
    accepted = accepted_table(checked, ~bad, extra)
    report = TableReport(
        read=checked.n + len(inp.source.bad_rows),
        accepted=accepted.num_rows,
        quarantined=quarantine.num_rows,
        by_reason=by_reason,
        source_files=[inp.source.name],
        with_dq_issues=int(((counts > 0) & ~bad).sum()),
        dq_issues=data_quality.num_rows,
        dq_by_reason=dq_by_reason,
    )
    report.check(inp.table)
    return TableOutput(accepted, quarantine, data_quality, report, checked)
