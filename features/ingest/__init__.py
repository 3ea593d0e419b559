"""``guomen ingest``: read contract tables, validate every rule, quarantine unusable rows, record
data-quality issues, append the rest to the Parquet store.

The rules come from ``features.contract`` (never re-typed here) and are checked column by column
with vectorised Arrow/pandas operations: each rule yields one boolean mask over the rows. A row that
fails a rule on a required column (or a table rule: duplicate key, unknown declaration, ...) is
quarantined once, with every reason it failed. A bad value in an optional column (contract 1.1)
keeps the row: the value becomes missing and a ``data_quality`` row records it (source file and
row, column, reason, raw value); declarations carry their issue count in ``dq_issue_count``.
Rows read = accepted + quarantined for every table, asserted before anything is written.

File-level failures (missing required column, undecodable encoding, empty or unreadable file)
raise :class:`FileLevelError` before the store is touched. The load is staged in a folder inside
the store and committed by rewriting ``manifest.json`` last, so a failed load leaves the store as
it was. User documentation: ``docs/contract.md``.

By step: :mod:`~features.ingest.readers` (source files into Arrow), :mod:`~features.ingest.rules`
(column rules), :mod:`~features.ingest.table_rules` (keys, references, rates),
:mod:`~features.ingest.quarantine` (accepted, quarantine and data-quality rows),
:mod:`~features.ingest.commit` (staging and the manifest commit), :mod:`~features.ingest.report`
and :mod:`~features.ingest.pipeline` (the load).
"""

from features.ingest.pipeline import ingest
from features.ingest.readers import RawFile, find_sources, read_source
from features.ingest.report import FileLevelError, IngestReport, TableReport
from features.ingest.rules import Checked, check_columns, parse_bool, parse_float, parse_timestamp

__all__ = [
    "Checked",
    "FileLevelError",
    "IngestReport",
    "RawFile",
    "TableReport",
    "check_columns",
    "find_sources",
    "ingest",
    "parse_bool",
    "parse_float",
    "parse_timestamp",
    "read_source",
]
