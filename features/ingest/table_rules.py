"""Table rules: duplicate keys (in the file, in the store), unknown or quarantined declarations,
inspections before their declaration, currencies without a rate; each table's check ends in
:func:`features.ingest.quarantine.finish_table`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features.contract import TABLES
from features.ingest.chunks import BatchDeclarations, KeyDigests
from features.ingest.quarantine import TableOutput, finish_table
from features.ingest.readers import TableInput
from features.ingest.rules import as_mask, check_columns, duplicated_in_file, found_in_store
from features.rates import RateTable
from features.store import Store

R_CURRENCY_UNKNOWN = "unknown currency"
R_NO_RATE = "no rate in force at declared_at"
R_DUP_FILE = "duplicate key in file"
R_DUP_STORE = "duplicate key already in store"
R_UNKNOWN_DECL = "unknown declaration"
R_DECL_QUARANTINED = "declaration quarantined in this batch"
R_BEFORE = "inspected before declared"
R_TWO_RESULTS = "two final results for one declaration"
R_RESULT_IN_STORE = "declaration already has a final result in store"


def check_declarations(
    inp: TableInput,
    tz: str,
    rates: RateTable,
    store: Store,
    attributes: dict[str, str],
    batch: str,
    seen: KeyDigests | None = None,
) -> TableOutput:
    """Check one declarations file, or one chunk of it: ``seen`` holds the ids of the file's
    earlier chunks (a repeat of one of them is a later repeat in the file) and gets this
    chunk's ids added."""
    spec = TABLES["declarations"]
    c = check_columns(spec, inp.data, tz, attributes)
    ids = c.series("declaration_id")
    keys = pd.DataFrame({"declaration_id": ids})
    dup = duplicated_in_file(keys)
    if seen is not None:
        dup = dup | seen.find(ids)[0]
        seen.add(ids)
    c.add("declaration_id", R_DUP_FILE, dup)
    stored = store.read("declarations", columns=["declaration_id"])
    c.add("declaration_id", R_DUP_STORE, found_in_store(keys, stored))
    cur = c.typed["currency"]
    fmt_ok = as_mask(pc.match_substring_regex(cur, r"^[A-Z]{3}$"))
    known = as_mask(pc.is_in(cur, value_set=pa.array(rates.currencies or [""])))
    c.add("currency", R_CURRENCY_UNKNOWN, fmt_ok & ~known)
    values = c.typed["declared_value"].to_numpy(zero_copy_only=False).astype("float64")
    at = (
        pd.Series(c.typed["declared_at"].to_pandas())
        .dt.tz_convert(None)
        .to_numpy(dtype="datetime64[ns]")
    )
    usd, no_rate = rates.to_usd(values, cur.to_numpy(zero_copy_only=False), at)
    c.add("currency", R_NO_RATE, no_rate & fmt_ok & known)
    return finish_table(inp, c, batch, {"declared_value_usd": pa.array(usd, pa.float64())})


def remember_declarations(out: TableOutput, known: BatchDeclarations) -> None:
    """Add a checked declarations file (or chunk) to what this load's inspections can refer to."""
    accepted = out.accepted.select(["declaration_id", "declared_at"]).to_pandas()
    at = accepted["declared_at"].to_numpy(dtype="datetime64[ns]")  # UTC
    known.accepted.add(accepted["declaration_id"], at.astype(np.int64))
    bad = out.checked.series("declaration_id")[out.checked.bad()]
    known.quarantined.update(bad.dropna().tolist())


def check_inspections(
    inp: TableInput, tz: str, store: Store, batch_decls: BatchDeclarations, batch: str
) -> TableOutput:
    spec = TABLES["inspections"]
    c = check_columns(spec, inp.data, tz)
    ids = c.series("declaration_id")
    # Known declarations: accepted in this batch (digests), or already in the store. A stored id
    # is never accepted again (duplicate key already in store), so the two never overlap.
    stored_decl = store.read("declarations", columns=["declaration_id", "declared_at"])
    stored_decl = stored_decl.drop_duplicates("declaration_id", keep="last")
    pos = pd.Index(stored_decl["declaration_id"]).get_indexer(ids)
    in_batch, batch_at = batch_decls.accepted.find(ids)
    in_store = pos >= 0
    present = ids.notna().to_numpy()
    unknown = present & ~in_store & ~in_batch
    was_quarantined = unknown & ids.isin(batch_decls.quarantined).to_numpy()
    c.add("declaration_id", R_DECL_QUARANTINED, was_quarantined)
    c.add("declaration_id", R_UNKNOWN_DECL, unknown & ~was_quarantined)
    if (in_store | in_batch).any():
        insp = (
            pd.Series(c.typed["inspected_at"].to_pandas())
            .dt.tz_convert(None)
            .to_numpy(dtype="datetime64[ns]")
        )
        d_at = np.full(len(ids), np.datetime64("NaT"), dtype="datetime64[ns]")
        d_at[in_batch] = batch_at[in_batch].astype("datetime64[ns]")
        if in_store.any():
            declared = stored_decl["declared_at"].to_numpy(dtype="datetime64[ns]")
            d_at[in_store] = declared[pos[in_store]]
        with np.errstate(invalid="ignore"):
            before = (~np.isnat(insp)) & (~np.isnat(d_at)) & (insp < d_at)
        c.add("inspected_at", R_BEFORE, before)
    # Two final results for one declaration: the label is ambiguous, so every such row goes.
    c.add("declaration_id", R_TWO_RESULTS, (ids.duplicated(keep=False) & ids.notna()).to_numpy())
    stored = store.read("inspections", columns=["declaration_id"])
    c.add("declaration_id", R_RESULT_IN_STORE, ids.isin(stored["declaration_id"]).to_numpy())
    return finish_table(inp, c, batch)


def check_keyed(inp: TableInput, tz: str, store: Store, batch: str) -> TableOutput:
    spec = TABLES[inp.table]
    c = check_columns(spec, inp.data, tz)
    key_cols = [spec.key] if spec.key else ["enterprise_id", "effective_from"]
    keys = pd.DataFrame({k: c.series(k) for k in key_cols})
    label = ",".join(key_cols)
    c.add(label, R_DUP_FILE, duplicated_in_file(keys))
    stored = store.read(inp.table, columns=key_cols)
    in_store = found_in_store(keys, stored)
    replaced = 0
    if inp.table == "enterprises":
        # A re-delivered enterprise replaces the stored one (newest batch wins on read).
        replaced = int((in_store & ~c.bad()).sum())
    else:
        c.add(label, R_DUP_STORE, in_store)
    out = finish_table(inp, c, batch)
    out.report.replaced = replaced
    return out
