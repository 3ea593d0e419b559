"""Chunked ingest: a large declarations file checked ``chunk_rows`` rows at a time, so memory is
bounded by that setting rather than by the file.

What crosses chunks is small and exact:

- :class:`KeyDigests`: a 128-bit digest of every declaration id seen so far in the load (two
  independent 64-bit SipHash values, 16 bytes a row instead of a Python string), with the
  accepted rows' ``declared_at``; it answers "duplicate key in file" for a later chunk and
  "known declaration, declared when" for the inspections;
- the ids of quarantined declarations (few), for "declaration quarantined in this batch".

Each chunk's accepted, quarantine and data-quality rows are written to the staging folder as soon
as the chunk is checked (:class:`features.ingest.commit.StagingWriter`), so nothing accumulates.
The rules and their reasons are the ones of a whole-file check: tested equal on a file cut in
several chunks (``tests/features/test_ingest_chunks.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.ingest.readers import RawFile, TableInput
from features.ingest.report import FileLevelError

#: Rows of a declarations file checked at once (``guomen ingest --chunk-rows``).
DEFAULT_CHUNK_ROWS = 1_000_000

# 16-byte SipHash keys (pandas' hash_array); two keys give two independent 64-bit digests.
_KEYS = ("guomen.ingest.k1", "guomen.ingest.k2")


def digests(ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Two independent 64-bit digests of each (non-null) id."""
    values = ids.astype("object").to_numpy()
    # categorize=False: ids are (nearly) unique, so factorizing first only costs (6x slower).
    return tuple(pd.util.hash_array(values, hash_key=k, categorize=False) for k in _KEYS)  # type: ignore[return-value]


@dataclass
class KeyDigests:
    """Ids seen so far (as 128-bit digests), each with an int64 value (``declared_at`` in ns).

    Lookups are exact up to a 128-bit digest collision (probability about n^2 / 2^129).
    """

    _h1: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    _h2: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    _values: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))
    _pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self._h1) + sum(len(p[0]) for p in self._pending)

    def add(self, ids: pd.Series, values: np.ndarray | None = None) -> None:
        """Remember the non-null ``ids`` (with ``values``, else 0)."""
        keep = ids.notna().to_numpy()
        if not keep.any():
            return
        h1, h2 = digests(ids[keep])
        vals = np.zeros(len(h1), np.int64) if values is None else np.asarray(values)[keep]
        self._pending.append((h1, h2, vals.astype(np.int64)))

    def _consolidate(self) -> None:
        if not self._pending:
            return
        h1 = np.concatenate([self._h1, *(p[0] for p in self._pending)])
        h2 = np.concatenate([self._h2, *(p[1] for p in self._pending)])
        vals = np.concatenate([self._values, *(p[2] for p in self._pending)])
        order = np.argsort(h1, kind="stable")
        self._h1, self._h2, self._values = h1[order], h2[order], vals[order]
        self._pending = []

    def find(self, ids: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        """``(found, values)`` per id: whether it was seen, and its value (0 where not)."""
        self._consolidate()
        n = len(ids)
        found = np.zeros(n, dtype=bool)
        values = np.zeros(n, dtype=np.int64)
        present = ids.notna().to_numpy()
        if not len(self._h1) or not present.any():
            return found, values
        rows = np.flatnonzero(present)
        q1, q2 = digests(ids[present])
        pos = np.searchsorted(self._h1, q1)
        inside = pos < len(self._h1)
        at = np.minimum(pos, len(self._h1) - 1)
        same1 = inside & (self._h1[at] == q1)
        hit = same1 & (self._h2[at] == q2)
        # The first digest alone collides (about n^2 / 2^65): walk the run of equal first digests.
        for i in np.flatnonzero(same1 & ~hit):
            j = int(at[i]) + 1
            while j < len(self._h1) and self._h1[j] == q1[i]:
                if self._h2[j] == q2[i]:
                    hit[i], at[i] = True, j
                    break
                j += 1
        found[rows] = hit
        values[rows[hit]] = self._values[at[hit]]
        return found, values


@dataclass
class BatchDeclarations:
    """What the inspections of a load need to know of the declarations accepted before them."""

    accepted: KeyDigests = field(default_factory=KeyDigests)
    quarantined: set[str] = field(default_factory=set)


def iter_chunks(inp: TableInput, chunk_rows: int | None) -> Iterator[TableInput]:
    """The input as consecutive row chunks of at most ``chunk_rows`` (one chunk when it fits or
    ``chunk_rows`` is None). A lazily opened Parquet file is streamed; otherwise the rows
    already read are sliced. Source row numbers and CSV parser rejects stay with the file (the
    rejects reported once, with the first chunk)."""
    source = inp.source
    if source.path is not None:  # lazy Parquet: read one batch of rows at a time
        yield from _stream_parquet(inp, chunk_rows)
        return
    n = inp.data.num_rows
    if chunk_rows is None or n <= chunk_rows:
        yield inp
        return
    later = replace(source, bad_rows=[])
    for k, lo in enumerate(range(0, n, chunk_rows)):
        hi = min(n, lo + chunk_rows)
        yield replace(
            inp,
            source=source if k == 0 else later,
            data=inp.data.slice(lo, hi - lo),
            raw_index=inp.raw_index[lo:hi],
        )


def _stream_parquet(inp: TableInput, chunk_rows: int | None) -> Iterator[TableInput]:
    source = inp.source
    assert source.path is not None
    names = inp.data.column_names  # stripped header names
    try:
        pf = pq.ParquetFile(source.path)
        if chunk_rows is None or pf.metadata.num_rows <= chunk_rows:
            batches: Iterator[pa.RecordBatch | pa.Table] = iter([pf.read()])
        else:
            batches = pf.iter_batches(batch_size=chunk_rows)
        offset = 0
        for batch in batches:
            table = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
            table = table.rename_columns(names)
            m = table.num_rows
            rows = np.arange(offset + 1, offset + m + 1, dtype=np.int64)
            offset += m
            chunk = RawFile(source.name, table, source.encoding, source.sha256, rows)
            yield replace(inp, source=chunk, data=table, raw_index=np.arange(m))
    except (pa.ArrowException, OSError) as exc:
        raise FileLevelError(f"{source.name}: unreadable Parquet file ({exc})") from None
