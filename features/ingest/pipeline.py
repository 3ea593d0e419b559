"""The load itself (:func:`ingest`): read, check in load order, report, stage, commit."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from features.contract import CONTRACT_VERSION, LOAD_ORDER
from features.files import write_json_atomic
from features.ingest.chunks import DEFAULT_CHUNK_ROWS, BatchDeclarations, KeyDigests, iter_chunks
from features.ingest.commit import StagingWriter, batch_id, commit_batch
from features.ingest.readers import TableInput, collect_inputs
from features.ingest.report import FileLevelError, IngestReport, TableReport
from features.ingest.table_rules import (
    check_declarations,
    check_inspections,
    check_keyed,
    remember_declarations,
)
from features.mapping import MappingError, load_mapping
from features.products import native_coverage
from features.progress import Progress, no_progress
from features.rates import RateTable, RateTableError, load_rates
from features.store import (
    MANIFEST,
    Store,
    empty_manifest,
)


def ingest(
    source_dir: Path,
    store_dir: Path,
    mapping_file: Path | None = None,
    rates_file: Path | None = None,
    timezone: str = "Asia/Shanghai",
    progress: Progress | None = None,
    chunk_rows: int | None = DEFAULT_CHUNK_ROWS,
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
    progress : Progress, optional
        Told each input file as it is checked, then the store's write (counted form).
    chunk_rows : int, optional
        The declarations are checked and staged this many rows at a time (a native Parquet
        file streamed, any other file sliced), so memory is bounded by the setting, not by the
        file (``features.ingest.chunks``); ``None`` checks each file whole. The other tables
        are checked whole (their rules compare rows across the file; they are a fraction of the
        declarations).

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
    if chunk_rows is not None and chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    lazy = frozenset({"declarations"}) if chunk_rows is not None else frozenset()
    inputs, files = collect_inputs(source_dir, mapping, timezone, stored_tables, lazy)
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
    batch = batch_id([f.sha256 for f in new_files])
    report.batch = batch
    report.created_at = datetime.now(UTC).isoformat()
    say = progress or no_progress
    steps = len(inputs) + 2  # each input, the staging write, the commit
    store_dir.mkdir(parents=True, exist_ok=True)
    staging = store_dir / f".staging-{batch}"
    staging.mkdir()
    try:
        reports = _check_and_stage(
            inputs, staging, batch, timezone, rates, store, attributes, chunk_rows, say, steps
        )
        report.tables.update(reports)
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
        say("writing the store", len(inputs), steps)
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
        say("committing", len(inputs) + 1, steps)
        commit_batch(store_dir, staging, manifest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say("committed", steps, steps)
    report.seconds = time.perf_counter() - t0
    return report


def _check_and_stage(
    inputs: list[TableInput],
    staging: Path,
    batch: str,
    timezone: str,
    rates: RateTable,
    store: Store,
    attributes: dict[str, str],
    chunk_rows: int | None,
    say: Progress,
    steps: int,
) -> dict[str, TableReport]:
    """Check every input in load order (the declarations by chunks) and stage what it gives as
    soon as it is checked; the per-table reports, their counts asserted."""
    reports: dict[str, TableReport] = {}
    known = BatchDeclarations()
    writer = StagingWriter(staging, batch)
    try:
        checked = 0
        for table in LOAD_ORDER:
            for inp in (i for i in inputs if i.table == table):
                say(f"checking {inp.table} from {inp.source.name}", checked, steps)
                checked += 1
                if table == "declarations":
                    seen = KeyDigests()  # the ids of this file's earlier chunks
                    for chunk in iter_chunks(inp, chunk_rows):
                        out = check_declarations(
                            chunk, timezone, rates, store, attributes, batch, seen
                        )
                        remember_declarations(out, known)
                        writer.add(table, out)
                        reports.setdefault(table, TableReport()).merge(out.report)
                    continue
                if table == "inspections":
                    out = check_inspections(inp, timezone, store, known, batch)
                else:
                    out = check_keyed(inp, timezone, store, batch)
                writer.add(table, out)
                reports.setdefault(table, TableReport()).merge(out.report)
    finally:
        writer.close()
    for table, r in reports.items():
        r.check(table)
    return reports
