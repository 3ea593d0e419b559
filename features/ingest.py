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
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.contract import (
    CONTRACT_VERSION,
    COUNTRY_CODES,
    COUNTRY_PATTERN,
    CURRENCY_PATTERN,
    DIGITS_PATTERN,
    DQ_ISSUE_COUNT,
    FALSE_TEXT,
    FLOAT_PATTERN,
    LOAD_ORDER,
    R_BOOL,
    R_COUNTRY_FMT,
    R_COUNTRY_UNKNOWN,
    R_CURRENCY_FMT,
    R_ENUM,
    R_HS_DIGITS,
    R_MISSING,
    R_NUMBER,
    R_TS,
    REQUIRED_TABLES,
    TABLES,
    TIMESTAMP_PATTERN,
    TRUE_TEXT,
    ColumnSpec,
    TableSpec,
    expected_missing_reason,
)
from features.files import sha256_file, write_json_atomic
from features.mapping import Mapping, MappingError, load_mapping
from features.products import native_coverage
from features.rates import RateTable, RateTableError, load_rates
from features.store import (
    DATA_QUALITY,
    DATA_QUALITY_SCHEMA,
    MANIFEST,
    QUARANTINE,
    QUARANTINE_SCHEMA,
    TS_TYPE,
    Store,
    canonical_schema,
    empty_manifest,
    partition_dir,
)

_TS_RE = TIMESTAMP_PATTERN
_TS_OFFSET_RE = r"[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)$"
_SOURCE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_BOM = b"\xef\xbb\xbf"

# Reason texts: stable strings, counted in reports and asserted by the corpus tests (the value
# rules' reasons come from ``features.contract``, shared with the API).
R_TRUNCATED = "truncated row"
R_TOO_MANY = "too many fields"
R_CURRENCY_UNKNOWN = "unknown currency"
R_NO_RATE = "no rate in force at declared_at"
R_DUP_FILE = "duplicate key in file"
R_DUP_STORE = "duplicate key already in store"
R_NO_SUBJECT = "no subject"
R_UNKNOWN_DECL = "unknown declaration"
R_DECL_QUARANTINED = "declaration quarantined in this batch"
R_BEFORE = "inspected before declared"
R_TWO_RESULTS = "two final results for one declaration"
R_RESULT_IN_STORE = "declaration already has a final result in store"


class FileLevelError(Exception):
    """A source file cannot be loaded at all; the message names the file (and column)."""


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
@dataclass
class TableReport:
    """Counts for one table of one load."""

    read: int = 0
    accepted: int = 0
    quarantined: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    source_files: list[str] = field(default_factory=list)
    replaced: int = 0
    # Accepted rows with at least one data-quality issue, the issues, and issues by reason.
    with_dq_issues: int = 0
    dq_issues: int = 0
    dq_by_reason: dict[str, int] = field(default_factory=dict)

    def check(self, table: str) -> None:
        if self.read != self.accepted + self.quarantined:
            raise AssertionError(
                f"{table}: rows read {self.read} != accepted {self.accepted} "
                f"+ quarantined {self.quarantined}"
            )
        if not 0 <= self.with_dq_issues <= min(self.accepted, self.dq_issues):
            raise AssertionError(
                f"{table}: {self.with_dq_issues} rows with data-quality issues of "
                f"{self.accepted} accepted ({self.dq_issues} issues)"
            )

    def merge(self, other: TableReport) -> None:
        """Add the counts of another file's report of the same table."""
        self.read += other.read
        self.accepted += other.accepted
        self.quarantined += other.quarantined
        self.replaced += other.replaced
        self.with_dq_issues += other.with_dq_issues
        self.dq_issues += other.dq_issues
        self.source_files += other.source_files
        for k, v in other.by_reason.items():
            self.by_reason[k] = self.by_reason.get(k, 0) + v
        for k, v in other.dq_by_reason.items():
            self.dq_by_reason[k] = self.dq_by_reason.get(k, 0) + v


@dataclass
class IngestReport:
    """What one ``ingest`` call did: per table read / accepted / quarantined / by reason."""

    batch: str | None
    source_dir: str
    store_dir: str
    timezone: str
    rates: str
    tables: dict[str, TableReport] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)
    already_loaded: list[str] = field(default_factory=list)
    mapping: str | None = None
    seconds: float = 0.0
    created_at: str = ""
    # risk_signals source file -> how many rows name an HS4, a chapter only, or no product
    signal_coverage: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def wrote(self) -> bool:
        return self.batch is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "batch": self.batch,
            "created_at": self.created_at,
            "source_dir": self.source_dir,
            "store_dir": self.store_dir,
            "timezone": self.timezone,
            "rates": self.rates,
            "mapping": self.mapping,
            "contract_version": CONTRACT_VERSION,
            "seconds": round(self.seconds, 3),
            "files": self.files,
            "already_loaded": self.already_loaded,
            "tables": {
                name: {
                    "read": t.read,
                    "accepted": t.accepted,
                    "quarantined": t.quarantined,
                    "replaced": t.replaced,
                    "with_dq_issues": t.with_dq_issues,
                    "dq_issues": t.dq_issues,
                    "by_reason": dict(sorted(t.by_reason.items(), key=lambda kv: -kv[1])),
                    "dq_by_reason": dict(sorted(t.dq_by_reason.items(), key=lambda kv: -kv[1])),
                    "source_files": t.source_files,
                }
                for name, t in self.tables.items()
            },
            "signal_coverage": self.signal_coverage,
        }

    def to_text(self) -> str:
        lines = []
        if self.batch is None:
            lines.append("nothing written: every source file is already loaded")
        else:
            lines.append(f"batch {self.batch} -> {self.store_dir} ({self.seconds:.1f} s)")
        for name in self.already_loaded:
            lines.append(f"  already loaded: {name}")
        for f in self.files:
            if f.get("status") == "loaded":
                lines.append(f"  {f['file']}: encoding {f['encoding']}")
        if self.tables:
            lines.append(
                f"{'table':<16}{'read':>12}{'accepted':>12}{'with DQ issues':>16}"
                f"{'quarantined':>13}"
            )
        for name, t in self.tables.items():
            lines.append(
                f"{name:<16}{t.read:>12,}{t.accepted:>12,}{t.with_dq_issues:>16,}"
                f"{t.quarantined:>13,}"
            )
            for reason, count in sorted(t.by_reason.items(), key=lambda kv: -kv[1]):
                lines.append(f"{'':<18}{count:>10,}  quarantined: {reason}")
            for reason, count in sorted(t.dq_by_reason.items(), key=lambda kv: -kv[1]):
                lines.append(f"{'':<18}{count:>10,}  data quality (kept, value missing): {reason}")
            if t.replaced:
                lines.append(f"{'':<18}{t.replaced:>10,}  replaced an older row (accepted)")
        for name, cov in self.signal_coverage.items():
            lines.extend(_coverage_lines(name, cov))
        return "\n".join(lines)


def _coverage_lines(name: str, cov: dict[str, Any]) -> list[str]:
    """The signal coverage of one file, for the terminal."""
    lines = [
        f"signal coverage of {name}: {cov['rows']:,} rows; HS4 {cov['hs4_share']:.1%}, "
        f"chapter only {cov['chapter_only_share']:.1%}, no product {cov['unmapped_share']:.1%}"
    ]
    for key, title in (
        ("top_unmapped_products", "most frequent product texts mapped to nothing"),
        ("top_chapter_only_products", "most frequent product texts mapped to a chapter only"),
    ):
        if cov.get(key):
            lines.append(f"  {title}:")
            lines += [f"{'':<18}{t['count']:>10,}  {t['text']}" for t in cov[key]]
    for column, names in (cov.get("unmatched_countries") or {}).items():
        top = sorted(names.items(), key=lambda kv: -kv[1])[:10]
        listed = ", ".join(f"{n!r} ({c})" for n, c in top)
        lines.append(f"  unmatched country names in {column} (kept missing): {listed}")
    if cov.get("unknown_categories"):
        top = sorted(cov["unknown_categories"].items(), key=lambda kv: -kv[1])[:10]
        lines.append("  categories not in the table: " + ", ".join(f"{n!r} ({c})" for n, c in top))
    return lines


# ---------------------------------------------------------------------------------------------
# Reading source files
# ---------------------------------------------------------------------------------------------
@dataclass
class RawFile:
    """A source file read into Arrow, before any contract rule.

    ``source_rows`` gives each parsed row its row number in the file (CSV: header is row 1, the
    first data record is row 2; Parquet: first row is 1). ``bad_rows`` are records the CSV parser
    could not split into the header's number of fields: (row, reason, text).
    """

    name: str
    table: pa.Table
    encoding: str
    sha256: str
    source_rows: np.ndarray
    bad_rows: list[tuple[int, str, str]] = field(default_factory=list)


def _decode(name: str, data: bytes) -> tuple[bytes, str]:
    """UTF-8 (BOM stripped) first, then GB18030 (a superset of GBK); returns UTF-8 bytes."""
    encoding = "utf-8"
    if data.startswith(_BOM):
        data, encoding = data[len(_BOM) :], "utf-8-sig"
    try:
        data.decode("utf-8")
        return data, encoding
    except UnicodeDecodeError as utf_err:
        try:
            return data.decode("gb18030").encode("utf-8"), "gb18030"
        except UnicodeDecodeError:
            raise FileLevelError(
                f"{name}: undecodable encoding (neither UTF-8 nor GB18030/GBK; first bad byte "
                f"at offset {utf_err.start})"
            ) from None


def _read_csv(name: str, raw: bytes) -> RawFile:
    sha = hashlib.sha256(raw).hexdigest()
    if len(raw) == 0:
        raise FileLevelError(f"{name}: empty file (0 bytes, no header)")
    data = raw
    if name.endswith(".gz"):
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise FileLevelError(f"{name}: unreadable gzip file ({exc})") from None
    data, encoding = _decode(name, data)
    if not data.strip():
        raise FileLevelError(f"{name}: empty file (no header)")
    first = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8")
    header = next(csv.reader([first]))
    names = [h.strip().lstrip("\ufeff") for h in header]
    if any(not n for n in names):
        raise FileLevelError(f"{name}: header has an empty column name")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FileLevelError(f"{name}: column {dupes[0]!r} appears twice in the header")

    bad: list[tuple[int | None, int, int, str]] = []

    def on_invalid(row: Any) -> str:
        bad.append((row.number, row.expected_columns, row.actual_columns, row.text))
        return "skip"

    def parse(threads: bool) -> pa.Table:
        return pacsv.read_csv(
            io.BytesIO(data),
            read_options=pacsv.ReadOptions(
                use_threads=threads, column_names=names, skip_rows=1, block_size=1 << 24
            ),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=True,
                null_values=[""],  # "NA" is Namibia, not a null
                quoted_strings_can_be_null=True,
            ),
        )

    try:
        table = parse(True)
        if bad and any(b[0] is None for b in bad):
            # Multithreaded parsing does not know line numbers; re-read serially to get them.
            bad.clear()
            table = parse(False)
    except pa.ArrowInvalid as exc:
        raise FileLevelError(f"{name}: unreadable CSV ({exc})") from None
    n_total = table.num_rows + len(bad)
    numbers = np.arange(2, n_total + 2, dtype=np.int64)
    bad_rows: list[tuple[int, str, str]] = []
    if bad:
        bad_numbers = np.array([b[0] for b in bad], dtype=np.int64)
        numbers = numbers[~np.isin(numbers, bad_numbers)][: table.num_rows]
        for number, expected, actual, text in bad:
            reason = R_TRUNCATED if actual < expected else R_TOO_MANY
            bad_rows.append((int(number or 0), reason, text))
    return RawFile(name, table, encoding, sha, numbers, bad_rows)


def _read_parquet(name: str, path: Path) -> RawFile:
    sha = sha256_file(path)
    if path.stat().st_size == 0:
        raise FileLevelError(f"{name}: empty file (0 bytes)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise FileLevelError(f"{name}: unreadable Parquet file ({exc})") from None
    names = [n.strip() for n in table.column_names]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FileLevelError(f"{name}: column {dupes[0]!r} appears twice")
    table = table.rename_columns(names)
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    return RawFile(name, table, "parquet", sha, rows)


def read_source(path: Path, name: str | None = None) -> RawFile:
    """Read one CSV (``.csv``/``.csv.gz``) or Parquet file, every CSV column as a string.

    Raises
    ------
    FileLevelError
        Empty file, undecodable encoding, unreadable Parquet/CSV/gzip, duplicate header names.
    """
    name = name or path.name
    if path.name.endswith(".parquet"):
        return _read_parquet(name, path)
    return _read_csv(name, path.read_bytes())


def find_sources(source_dir: Path) -> dict[str, Path]:
    """Contract table files in a folder: ``<table>.csv``, ``.csv.gz`` or ``.parquet``."""
    found: dict[str, Path] = {}
    for table in LOAD_ORDER:
        hits = [source_dir / f"{table}{s}" for s in _SOURCE_SUFFIXES]
        hits = [h for h in hits if h.is_file()]
        if len(hits) > 1:
            raise FileLevelError(
                f"{hits[0].name}: two files for table {table!r} ({', '.join(h.name for h in hits)})"
            )
        if hits:
            found[table] = hits[0]
    return found


# ---------------------------------------------------------------------------------------------
# Column rules (vectorised: one boolean mask per rule)
# ---------------------------------------------------------------------------------------------
Array: TypeAlias = pa.Array | pa.ChunkedArray


def _np(mask: Array) -> np.ndarray:
    """Arrow boolean (nulls = False) -> numpy bool."""
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def _norm_str(col: Array) -> Array:
    """Any column -> trimmed strings, empty = null."""
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    s = pc.utf8_trim_whitespace(col)
    return pc.if_else(pc.equal(s, ""), pa.scalar(None, pa.string()), s)


def _parse_iso(strings: Array, target: pa.DataType) -> Array:
    """Arrow's ISO-8601 cast (fast); pandas per-value coercion when some value is impossible."""
    try:
        return pc.cast(strings, target)
    except pa.ArrowInvalid:
        s = pd.Series(strings.to_pandas(), dtype=object)
        utc = target.tz is not None
        parsed = pd.to_datetime(s, format="ISO8601", errors="coerce", utc=utc)
        unit = "datetime64[ns, UTC]" if utc else "datetime64[ns]"
        return pa.array(parsed.astype(unit), type=target)  # type: ignore[call-overload]


def parse_timestamp(col: Array, tz: str) -> tuple[Array, np.ndarray]:
    """Column -> ``timestamp[ns, UTC]`` and a mask of present-but-unparseable values.

    Naive values (no offset) are local time of ``tz``; at a DST gap or overlap the earliest
    valid instant is taken.
    """
    t = col.type
    if pa.types.is_timestamp(t):
        if t.tz is None:
            col = pc.assume_timezone(
                pc.cast(col, pa.timestamp("ns")),
                timezone=tz,
                ambiguous="earliest",
                nonexistent="earliest",
            )
        return pc.cast(col, TS_TYPE), np.zeros(len(col), dtype=bool)
    if pa.types.is_date(t):
        naive = pc.cast(pc.cast(col, pa.timestamp("s")), pa.timestamp("ns"))
        local = pc.assume_timezone(naive, timezone=tz, ambiguous="earliest", nonexistent="earliest")
        return pc.cast(local, TS_TYPE), np.zeros(len(col), dtype=bool)
    s = _norm_str(col)
    shape_ok = pc.match_substring_regex(s, _TS_RE)
    s = pc.if_else(shape_ok, s, pa.scalar(None, pa.string()))
    has_offset = _np(pc.match_substring_regex(s, _TS_OFFSET_RE))
    s_np_valid = _np(pc.is_valid(s))
    naive_s = pc.if_else(pa.array(s_np_valid & ~has_offset), s, pa.scalar(None, pa.string()))
    naive = _parse_iso(naive_s, pa.timestamp("ns"))
    local = pc.cast(
        pc.assume_timezone(naive, timezone=tz, ambiguous="earliest", nonexistent="earliest"),
        TS_TYPE,
    )
    if has_offset.any():
        off_s = pc.if_else(pa.array(has_offset), s, pa.scalar(None, pa.string()))
        offset = _parse_iso(off_s, TS_TYPE)
        local = pc.if_else(pa.array(has_offset), offset, local)
    bad = _np(pc.is_valid(_norm_str(col))) & ~_np(pc.is_valid(local))
    return local, bad


def parse_float(col: Array) -> tuple[Array, np.ndarray]:
    """Column -> float64 and a mask of present-but-not-a-number values (inf/NaN text included)."""
    if (
        pa.types.is_integer(col.type)
        or pa.types.is_floating(col.type)
        or pa.types.is_decimal(col.type)
    ):
        f = pc.cast(col, pa.float64())
        nan = _np(pc.is_nan(f))
        inf = _np(pc.invert(pc.is_finite(f))) & ~nan
        f = pc.if_else(pa.array(nan | inf), pa.scalar(None, pa.float64()), f)
        return f, inf
    s = _norm_str(col)
    ok = pc.match_substring_regex(s, FLOAT_PATTERN)
    f = pc.cast(pc.if_else(ok, s, pa.scalar(None, pa.string())), pa.float64())
    bad = _np(pc.is_valid(s)) & ~_np(ok)
    overflow = _np(pc.is_inf(f))  # "1e400": a number's shape, but no finite value
    if overflow.any():
        f = pc.if_else(pa.array(overflow), pa.scalar(None, pa.float64()), f)
        bad |= overflow
    return f, bad


def parse_bool(col: Array, default: bool) -> tuple[Array, np.ndarray]:
    """Column -> bool (nulls = contract default) and a mask of unparseable values."""
    if pa.types.is_boolean(col.type):
        return pc.fill_null(col, default), np.zeros(len(col), dtype=bool)
    s = pc.utf8_lower(_norm_str(col))
    is_true = pc.is_in(s, value_set=pa.array(list(TRUE_TEXT)))
    is_false = pc.is_in(s, value_set=pa.array(list(FALSE_TEXT)))
    bad = _np(pc.is_valid(s)) & ~_np(is_true) & ~_np(is_false)
    out = pc.if_else(pc.is_null(s), default, is_true)
    return pc.fill_null(out, default), bad


@dataclass
class Checked:
    """One table after the column rules: typed columns, failed rules and data-quality issues.

    ``problems`` (a required column's rule, or a table rule) quarantine their rows; ``issues``
    (an optional column's rule, contract 1.1) keep them, the value already set missing in
    ``typed``. Each is ``(column, reason, mask over the rows)``.
    """

    spec: TableSpec
    n: int
    typed: dict[str, Array]
    extras: dict[str, Array]
    problems: list[tuple[str, str, np.ndarray]] = field(default_factory=list)
    issues: list[tuple[str, str, np.ndarray]] = field(default_factory=list)
    # The values as received of the columns with issues (for the data_quality rows).
    raw: dict[str, Array] = field(default_factory=dict)

    def add(self, column: str, reason: str, mask: np.ndarray) -> None:
        if mask.any():
            self.problems.append((column, reason, mask))

    def add_issue(self, column: str, reason: str, mask: np.ndarray) -> None:
        if mask.any():
            self.issues.append((column, reason, mask))

    def bad(self) -> np.ndarray:
        out = np.zeros(self.n, dtype=bool)
        for _, _, m in self.problems:
            out |= m
        return out

    def issue_counts(self) -> np.ndarray:
        """Data-quality issues per row (int64)."""
        out = np.zeros(self.n, dtype=np.int64)
        for _, _, m in self.issues:
            out += m
        return out

    def series(self, name: str) -> pd.Series:
        return pd.Series(self.typed[name].to_pandas()).reset_index(drop=True)


def _set_missing(value: Array, col: ColumnSpec, mask: np.ndarray) -> Array:
    """``value`` with the rows of ``mask`` missing (a bool column: its contract default)."""
    if not mask.any():
        return value
    fill = pa.scalar(bool(col.default)) if col.kind == "bool" else pa.scalar(None, value.type)
    return pc.if_else(pa.array(mask), fill, value)


def _column_rules(col: ColumnSpec, raw: Array, tz: str) -> tuple[Array, np.ndarray, list]:
    """One column's contract rules: typed value, "present" mask, [(reason, mask)] of failures.

    The same rules as ``features.contract.check_value`` (a test holds them to the same verdict),
    vectorised. A failed value is null in the typed column (a bool: its default), except a number
    below its bound, which the caller sets missing.
    """
    n = len(raw)
    failed: list[tuple[str, np.ndarray]] = []
    kind = col.kind
    if kind == "timestamp":
        value, bad = parse_timestamp(raw, tz)
        failed.append((R_TS, bad))
        present = (
            _np(pc.is_valid(_norm_str(raw)))
            if not pa.types.is_timestamp(raw.type)
            else _np(pc.is_valid(raw))
        )
    elif kind == "float":
        value, bad = parse_float(raw)
        failed.append((R_NUMBER, bad))
        present = _np(pc.is_valid(value)) | bad
        if col.min_value is not None:
            below = (
                pc.less_equal(value, col.min_value)
                if col.min_exclusive
                else pc.less(value, col.min_value)
            )
            failed.append((col.bound_reason, _np(below)))
    elif kind == "bool":
        value, bad = parse_bool(raw, bool(col.default))
        failed.append((R_BOOL, bad))
        present = np.ones(n, dtype=bool)  # a null bool takes the contract default
    else:
        value = _norm_str(raw)
        present = _np(pc.is_valid(value))
        if kind == "enum":
            ok = pc.is_in(value, value_set=pa.array(list(col.values)))
            failed.append((R_ENUM, present & ~_np(ok)))
        elif kind == "hs":
            digits = _np(pc.match_substring_regex(value, DIGITS_PATTERN))
            failed.append((R_HS_DIGITS, present & ~digits))
            length = pc.utf8_length(value)
            ok_len = pc.and_(
                pc.greater_equal(length, col.hs_min), pc.less_equal(length, col.hs_max)
            )
            failed.append((col.hs_length_reason, present & digits & ~_np(ok_len)))
        elif kind == "hs_list":
            ok = _np(pc.match_substring_regex(value, col.hs_list_pattern))
            failed.append((col.hs_list_reason, present & ~ok))
        elif kind == "country":
            fmt = _np(pc.match_substring_regex(value, COUNTRY_PATTERN))
            failed.append((R_COUNTRY_FMT, present & ~fmt))
            known = _np(pc.is_in(value, value_set=pa.array(sorted(COUNTRY_CODES))))
            failed.append((R_COUNTRY_UNKNOWN, present & fmt & ~known))
        elif kind == "currency":
            fmt = _np(pc.match_substring_regex(value, CURRENCY_PATTERN))
            failed.append((R_CURRENCY_FMT, present & ~fmt))
    return value, present, failed


def check_columns(
    spec: TableSpec, data: pa.Table, tz: str, attributes: dict[str, str] | None = None
) -> Checked:
    """Apply every column rule of ``spec`` to ``data``; no per-row Python.

    ``data`` holds the source columns (strings from CSV, or typed from Parquet); missing optional
    columns are treated as all null. A failed rule on a required column is a problem (the row is
    quarantined); on an optional column an issue (the value becomes missing, the row is kept).
    Extra columns are kept (numeric ``attributes`` parsed, an unparseable value an issue).
    """
    n = data.num_rows
    out = Checked(spec, n, {}, {})
    for col in spec.columns:
        raw = data.column(col.name) if col.name in data.column_names else pa.nulls(n, pa.string())
        value, present, failed = _column_rules(col, raw, tz)
        if col.required:
            for reason, mask in failed:
                out.add(col.name, reason, mask)
            out.add(col.name, R_MISSING, ~present)
        else:
            dropped = np.zeros(n, dtype=bool)
            for reason, mask in failed:
                out.add_issue(col.name, reason, mask)
                dropped |= mask
            if dropped.any():
                out.raw[col.name] = raw
                value = _set_missing(value, col, dropped)
        out.typed[col.name] = value
    for col in spec.columns:
        if col.expected_when is None:
            continue
        other, wanted = col.expected_when
        # Missing as received (a value that broke a rule already has its issue).
        absent = (
            _np(pc.is_null(_norm_str(data.column(col.name))))
            if col.name in data.column_names
            else np.ones(n, dtype=bool)
        )
        when = _np(pc.equal(out.typed[other], wanted))
        out.add_issue(col.name, expected_missing_reason(col), when & absent)
    if spec.one_of_required:
        any_subject = np.zeros(n, dtype=bool)
        for name in spec.one_of_required:
            any_subject |= _np(pc.is_valid(out.typed[name]))
        out.add(",".join(spec.one_of_required), R_NO_SUBJECT, ~any_subject)
    derived = set(spec.names) | {"declared_value_usd", DQ_ISSUE_COUNT}
    for name in data.column_names:
        if name in derived:
            continue
        attr_kind = (attributes or {}).get(name)
        if attr_kind == "numeric":
            value, bad = parse_float(data.column(name))
            out.add_issue(name, R_NUMBER, bad)
            if bad.any():
                out.raw[name] = data.column(name)
            out.extras[name] = value
        else:
            col = data.column(name)
            out.extras[name] = col if pa.types.is_string(col.type) else pc.cast(col, pa.string())
    return out


def _dup_in_file(keys: pd.DataFrame) -> np.ndarray:
    """Later repeats of a non-null key (the first occurrence in file order is kept)."""
    return (keys.duplicated(keep="first") & keys.notna().all(axis=1)).to_numpy()


def _in_store(keys: pd.DataFrame, stored: pd.DataFrame) -> np.ndarray:
    if stored.empty or keys.empty:
        return np.zeros(len(keys), dtype=bool)
    if keys.shape[1] == 1:
        c = keys.columns[0]
        return keys[c].isin(stored[c]).to_numpy()
    merged = keys.merge(stored.drop_duplicates(), how="left", indicator=True)
    return (merged["_merge"] == "both").to_numpy()


# ---------------------------------------------------------------------------------------------
# The load
# ---------------------------------------------------------------------------------------------
@dataclass
class TableInput:
    """Rows of one contract table from one source file (native or mapped)."""

    table: str
    source: RawFile
    data: pa.Table
    raw_index: np.ndarray  # data row i came from source row raw_index[i]
    coverage: dict[str, Any] | None = None  # what a mapping could not map (features.mapping)


@dataclass
class TableOutput:
    accepted: pa.Table
    quarantine: pa.Table
    data_quality: pa.Table
    report: TableReport
    checked: Checked


class _Progress:
    """A rich progress bar over load steps, or nothing."""

    def __init__(self, enabled: bool, total: int) -> None:
        self._bar = None
        if enabled:
            from rich.progress import Progress

            self._bar = Progress(transient=False)
            self._bar.start()
            self._task = self._bar.add_task("ingest", total=total)

    def step(self, what: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=what)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _quarantine_rows(
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


def _data_quality_rows(
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


def _accepted_table(checked: Checked, keep: np.ndarray, extra: dict[str, Array]) -> pa.Table:
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


def _finish(
    inp: TableInput, checked: Checked, batch: str, extra: dict[str, Array] | None = None
) -> TableOutput:
    bad = checked.bad()
    quarantine, by_reason = _quarantine_rows(inp, checked, bad, batch)
    data_quality, dq_by_reason = _data_quality_rows(inp, checked, ~bad, batch)
    counts = checked.issue_counts()
    extra = dict(extra or {})
    if checked.spec.name == "declarations":
        extra[DQ_ISSUE_COUNT] = pa.array(counts, pa.int64())
    accepted = _accepted_table(checked, ~bad, extra)
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


def _check_declarations(
    inp: TableInput, tz: str, rates: RateTable, store: Store, attributes: dict[str, str], batch: str
) -> TableOutput:
    spec = TABLES["declarations"]
    c = check_columns(spec, inp.data, tz, attributes)
    keys = pd.DataFrame({"declaration_id": c.series("declaration_id")})
    c.add("declaration_id", R_DUP_FILE, _dup_in_file(keys))
    stored = store.read("declarations", columns=["declaration_id"])
    c.add("declaration_id", R_DUP_STORE, _in_store(keys, stored))
    cur = c.typed["currency"]
    fmt_ok = _np(pc.match_substring_regex(cur, r"^[A-Z]{3}$"))
    known = _np(pc.is_in(cur, value_set=pa.array(rates.currencies or [""])))
    c.add("currency", R_CURRENCY_UNKNOWN, fmt_ok & ~known)
    values = c.typed["declared_value"].to_numpy(zero_copy_only=False).astype("float64")
    at = (
        pd.Series(c.typed["declared_at"].to_pandas())
        .dt.tz_convert(None)
        .to_numpy(dtype="datetime64[ns]")
    )
    usd, no_rate = rates.to_usd(values, cur.to_numpy(zero_copy_only=False), at)
    c.add("currency", R_NO_RATE, no_rate & fmt_ok & known)
    return _finish(inp, c, batch, {"declared_value_usd": pa.array(usd, pa.float64())})


def _check_inspections(
    inp: TableInput, tz: str, store: Store, decl_out: list[TableOutput], batch: str
) -> TableOutput:
    spec = TABLES["inspections"]
    c = check_columns(spec, inp.data, tz)
    ids = c.series("declaration_id")
    # Known declarations: accepted in this batch, or already in the store.
    known_parts = [store.read("declarations", columns=["declaration_id", "declared_at"])]
    quarantined_ids: set[str] = set()
    for d in decl_out:
        known_parts.append(d.accepted.select(["declaration_id", "declared_at"]).to_pandas())
        qd = d.checked.series("declaration_id")[d.checked.bad()]
        quarantined_ids.update(qd.dropna().tolist())
    known = pd.concat([k for k in known_parts if len(k)] or [known_parts[0]], ignore_index=True)
    known = known.drop_duplicates("declaration_id", keep="last")
    pos = pd.Index(known["declaration_id"]).get_indexer(ids)
    present = ids.notna().to_numpy()
    unknown = present & (pos < 0)
    was_quarantined = unknown & ids.isin(quarantined_ids).to_numpy()
    c.add("declaration_id", R_DECL_QUARANTINED, was_quarantined)
    c.add("declaration_id", R_UNKNOWN_DECL, unknown & ~was_quarantined)
    declared = known["declared_at"].to_numpy(dtype="datetime64[ns]") if len(known) else None
    if declared is not None and (pos >= 0).any():
        insp = (
            pd.Series(c.typed["inspected_at"].to_pandas())
            .dt.tz_convert(None)
            .to_numpy(dtype="datetime64[ns]")
        )
        d_at = np.full(len(ids), np.datetime64("NaT"), dtype="datetime64[ns]")
        d_at[pos >= 0] = declared[pos[pos >= 0]]
        with np.errstate(invalid="ignore"):
            before = (~np.isnat(insp)) & (~np.isnat(d_at)) & (insp < d_at)
        c.add("inspected_at", R_BEFORE, before)
    # Two final results for one declaration: the label is ambiguous, so every such row goes.
    c.add("declaration_id", R_TWO_RESULTS, (ids.duplicated(keep=False) & ids.notna()).to_numpy())
    stored = store.read("inspections", columns=["declaration_id"])
    c.add("declaration_id", R_RESULT_IN_STORE, ids.isin(stored["declaration_id"]).to_numpy())
    return _finish(inp, c, batch)


def _check_keyed(inp: TableInput, tz: str, store: Store, batch: str) -> TableOutput:
    spec = TABLES[inp.table]
    c = check_columns(spec, inp.data, tz)
    key_cols = [spec.key] if spec.key else ["enterprise_id", "effective_from"]
    keys = pd.DataFrame({k: c.series(k) for k in key_cols})
    label = ",".join(key_cols)
    c.add(label, R_DUP_FILE, _dup_in_file(keys))
    stored = store.read(inp.table, columns=key_cols)
    in_store = _in_store(keys, stored)
    replaced = 0
    if inp.table == "enterprises":
        # A re-delivered enterprise replaces the stored one (newest batch wins on read).
        replaced = int((in_store & ~c.bad()).sum())
    else:
        c.add(label, R_DUP_STORE, in_store)
    out = _finish(inp, c, batch)
    out.report.replaced = replaced
    return out


def _batch_id(hashes: list[str]) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{stamp}-{hashlib.sha256(''.join(hashes).encode()).hexdigest()[:8]}"


def _months(ts: Array) -> np.ndarray:
    """UTC month of each timestamp as ``YYYY-MM`` strings."""
    vals = pd.Series(ts.to_pandas()).dt.tz_convert(None).to_numpy(dtype="datetime64[ns]")
    return np.datetime_as_string(vals.astype("datetime64[M]"), unit="M")


def _write_table(staging: Path, spec: TableSpec, data: pa.Table, batch: str) -> list[Path]:
    written = []
    pdir = partition_dir(spec)
    if pdir is None:
        path = staging / spec.name / f"part-{batch}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(data, path)
        return [path]
    months = _months(data.column(spec.partition_by))
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


def _commit(store_dir: Path, staging: Path, manifest: dict[str, Any]) -> None:
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


def _collect_inputs(
    source_dir: Path, mapping: Mapping | None, tz: str, in_store: frozenset[str] = frozenset()
) -> tuple[list[TableInput], list[RawFile]]:
    """Read every source file (native or through the mapping); raise file-level errors.

    ``in_store``: tables the store already holds, so a later batch need not bring them again
    (a signal feed alone, once the declarations are loaded).
    """
    inputs: list[TableInput] = []
    files: list[RawFile] = []
    mapped_tables: set[str] = set()
    if mapping is not None:
        for src in mapping.sources:
            path = source_dir / src.file
            if not path.is_file():
                raise FileLevelError(
                    f"{src.file}: file named in the mapping not found in {source_dir}"
                )
            raw = read_source(path, src.file)
            files.append(raw)
            coverage: dict[str, Any] = {}
            try:
                derived = mapping.apply(src, raw.table, coverage)
            except MappingError as exc:
                raise FileLevelError(f"{src.file}: {exc}") from None
            for table, (data, index) in derived.items():
                inputs.append(TableInput(table, raw, data, index, coverage.get(table)))
                mapped_tables.add(table)
    for table, path in find_sources(source_dir).items():
        if table in mapped_tables:
            continue
        raw = read_source(path)
        files.append(raw)
        inputs.append(TableInput(table, raw, raw.table, np.arange(raw.table.num_rows)))
    present = {i.table for i in inputs}
    for table in REQUIRED_TABLES:
        if table not in present and table not in in_store:
            raise FileLevelError(
                f"{table}.csv: required table {table!r} not found in {source_dir} "
                f"(expected {table}.csv, {table}.csv.gz or {table}.parquet)"
            )
    for inp in inputs:
        spec = TABLES[inp.table]
        cols = set(inp.data.column_names)
        for name in spec.required:
            if name not in cols:
                raise FileLevelError(
                    f"{inp.source.name}: missing required column {name!r} of table {inp.table!r}"
                )
    return inputs, files


def ingest(
    source_dir: Path,
    store_dir: Path,
    mapping_file: Path | None = None,
    rates_file: Path | None = None,
    timezone: str = "Asia/Shanghai",
    progress: bool = False,
) -> IngestReport:
    """Validate contract tables in ``source_dir`` and append them to the store at ``store_dir``.

    Parameters
    ----------
    source_dir : Path
        Folder with ``<table>.csv`` / ``.csv.gz`` / ``.parquet`` files (``declarations``
        required), or the foreign files named by ``mapping_file``.
    store_dir : Path
        Parquet store; created if missing.
    mapping_file : Path, optional
        YAML mapping of a foreign layout (``docs/mapping.md``).
    rates_file : Path, optional
        Currency rate table; ``None`` uses the default shipped in ``features/data``.
    timezone : str
        Local time zone of timestamps without an offset.
    progress : bool
        Show a progress bar.

    Returns
    -------
    IngestReport
        Also stored as ``reports/<batch>.json``. When every source file was loaded before, the
        report says "already loaded" and nothing is written.

    Raises
    ------
    FileLevelError
        A file cannot be loaded (missing required column, undecodable, empty, unreadable); nothing
        is written.
    """
    t0 = time.perf_counter()
    source_dir, store_dir = Path(source_dir), Path(store_dir)
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {timezone!r}") from exc
    if not source_dir.is_dir():
        raise FileLevelError(f"{source_dir}: source folder not found")
    try:
        rates = load_rates(rates_file)
    except RateTableError as exc:
        raise FileLevelError(str(exc)) from None
    mapping = None
    if mapping_file is not None:
        try:
            mapping = load_mapping(Path(mapping_file))
        except MappingError as exc:
            raise FileLevelError(f"{Path(mapping_file).name}: {exc}") from None

    store = Store(store_dir)
    stored_tables = frozenset(
        t for b in store.manifest["batches"] for f in b["files"] for t in f.get("tables", [])
    )
    inputs, files = _collect_inputs(source_dir, mapping, timezone, stored_tables)
    loaded = store.loaded_hashes
    report = IngestReport(
        batch=None,
        source_dir=str(source_dir),
        store_dir=str(store_dir),
        timezone=timezone,
        rates=rates.source,
        mapping=str(mapping_file) if mapping_file else None,
    )
    new_files = []
    for f in files:
        if f.sha256 in loaded:
            report.already_loaded.append(f"{f.name} (batch {loaded[f.sha256]['batch']})")
        else:
            new_files.append(f)
    new_names = {f.name for f in new_files}
    inputs = [i for i in inputs if i.source.name in new_names]
    if not inputs:
        report.seconds = time.perf_counter() - t0
        return report

    attributes = dict(mapping.attributes) if mapping else {}
    stored_attrs = store.attributes
    for name, kind in attributes.items():
        if stored_attrs.get(name, kind) != kind:
            raise FileLevelError(
                f"{mapping_file}: attribute {name!r} declared {kind}, but the store has it as "
                f"{stored_attrs[name]}"
            )
    batch = _batch_id([f.sha256 for f in new_files])
    report.batch = batch
    report.created_at = datetime.now(UTC).isoformat()
    bar = _Progress(progress, total=len(inputs) + 2)
    outputs: dict[str, list[TableOutput]] = {}
    try:
        for table in LOAD_ORDER:
            for inp in (i for i in inputs if i.table == table):
                bar.step(f"checking {inp.table} from {inp.source.name}")
                if table == "declarations":
                    out = _check_declarations(inp, timezone, rates, store, attributes, batch)
                elif table == "inspections":
                    out = _check_inspections(
                        inp, timezone, store, outputs.get("declarations", []), batch
                    )
                else:
                    out = _check_keyed(inp, timezone, store, batch)
                outputs.setdefault(table, []).append(out)

        for table, outs in outputs.items():
            r = TableReport()
            for o in outs:
                r.merge(o.report)
            r.check(table)
            report.tables[table] = r
        for inp in inputs:
            if inp.table == "risk_signals":
                cov = dict(inp.coverage or {})
                if "rows" not in cov:  # a native file, or a mapping without an hs section
                    cov.update(native_coverage(inp.data))
                report.signal_coverage[inp.source.name] = cov
        for f in files:
            entry = {"file": f.name, "sha256": f.sha256, "encoding": f.encoding}
            entry["status"] = "loaded" if f.name in new_names else "already loaded"
            report.files.append(entry)

        bar.step("writing the store")
        store_dir.mkdir(parents=True, exist_ok=True)
        staging = store_dir / f".staging-{batch}"
        staging.mkdir()
        try:
            for table, outs in outputs.items():
                spec = TABLES[table]
                accepted = [o.accepted for o in outs if o.accepted.num_rows]
                if accepted:
                    data = pa.concat_tables(accepted, promote_options="permissive")
                    _write_table(staging, spec, data, batch)
            quarantine = [o.quarantine for outs in outputs.values() for o in outs]
            qt = pa.concat_tables(quarantine) if quarantine else QUARANTINE_SCHEMA.empty_table()
            if qt.num_rows:
                (staging / QUARANTINE).mkdir()
                pq.write_table(qt, staging / QUARANTINE / f"part-{batch}.parquet")
            dq = [
                o.data_quality for outs in outputs.values() for o in outs if o.data_quality.num_rows
            ]
            if dq:
                (staging / DATA_QUALITY).mkdir()
                pq.write_table(
                    pa.concat_tables(dq), staging / DATA_QUALITY / f"part-{batch}.parquet"
                )
            report.seconds = time.perf_counter() - t0
            (staging / "reports").mkdir()
            write_json_atomic(staging / "reports" / f"{batch}.json", report.to_dict())
            manifest = store.manifest if (store_dir / MANIFEST).exists() else empty_manifest()
            manifest["contract_version"] = CONTRACT_VERSION
            manifest.setdefault("attributes", {}).update(attributes)
            manifest["batches"].append(
                {
                    "batch": batch,
                    "created_at": report.created_at,
                    "source_dir": str(source_dir),
                    "mapping": report.mapping,
                    "files": [
                        {
                            "file": f.name,
                            "sha256": f.sha256,
                            "encoding": f.encoding,
                            "tables": sorted({i.table for i in inputs if i.source is f}),
                        }
                        for f in new_files
                    ],
                }
            )
            bar.step("committing")
            _commit(store_dir, staging, manifest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    finally:
        bar.close()
    report.seconds = time.perf_counter() - t0
    return report
