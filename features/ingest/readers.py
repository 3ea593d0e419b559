"""Reading source files: CSV (UTF-8 or GB18030, records the parser cannot split kept as bad
rows), CSV.gz and Parquet into Arrow, before any contract rule; and the inputs of one load,
native or through a mapping."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from features.contract import LOAD_ORDER, REQUIRED_TABLES, TABLES
from features.files import sha256_file
from features.ingest.report import FileLevelError
from features.mapping import Mapping, MappingError

_SOURCE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_BOM = b"\xef\xbb\xbf"
R_TRUNCATED = "truncated row"
R_TOO_MANY = "too many fields"


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
    # A Parquet file opened lazily (only its schema read; ``table`` is empty): its rows are
    # streamed in chunks by ``features.ingest.chunks.iter_chunks``.
    path: Path | None = None


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


def _read_parquet(name: str, path: Path, lazy: bool = False) -> RawFile:
    sha = sha256_file(path)
    if path.stat().st_size == 0:
        raise FileLevelError(f"{name}: empty file (0 bytes)")
    try:
        table = pq.read_schema(path).empty_table() if lazy else pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise FileLevelError(f"{name}: unreadable Parquet file ({exc})") from None
    names = [n.strip() for n in table.column_names]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise FileLevelError(f"{name}: column {dupes[0]!r} appears twice")
    table = table.rename_columns(names)
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    return RawFile(name, table, "parquet", sha, rows, path=path if lazy else None)


def read_source(path: Path, name: str | None = None, lazy: bool = False) -> RawFile:
    """Read one CSV (``.csv``/``.csv.gz``) or Parquet file, every CSV column as a string.

    ``lazy``: a Parquet file's schema only (its rows are streamed later, in chunks).

    Raises
    ------
    FileLevelError
        Empty file, undecodable encoding, unreadable Parquet/CSV/gzip, duplicate header names.
    """
    name = name or path.name
    if path.name.endswith(".parquet"):
        return _read_parquet(name, path, lazy)
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


@dataclass
class TableInput:
    """Rows of one contract table from one source file (native or mapped)."""

    table: str
    source: RawFile
    data: pa.Table
    raw_index: np.ndarray  # data row i came from source row raw_index[i]
    coverage: dict[str, Any] | None = None  # what a mapping could not map (features.mapping)


def collect_inputs(
    source_dir: Path,
    mapping: Mapping | None,
    tz: str,
    in_store: frozenset[str] = frozenset(),
    lazy: frozenset[str] = frozenset(),
) -> tuple[list[TableInput], list[RawFile]]:
    """Read every source file (native or through the mapping); raise file-level errors.

    ``in_store``: tables the store already holds, so a later batch need not bring them again
    (a signal feed alone, once the declarations are loaded). ``lazy``: tables whose native
    Parquet file is only opened here (schema, digest), its rows streamed in chunks later.
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
        raw = read_source(path, lazy=table in lazy)
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
