"""Chunked ingest (``features.ingest.chunks``): a declarations file checked a few rows at a time
gives the same store, quarantine, data-quality rows and report as the file checked whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from demo.generate import write_demo_data
from features.ingest import ingest
from features.ingest.chunks import KeyDigests
from features.store import Store


@pytest.fixture(scope="module")
def dirty_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo folder spoiled the ways the cross-chunk rules must catch: repeated ids far
    apart in the file, unusable rows, bad optional values, inspections of a quarantined, an
    unknown and a repeated declaration, an inspection before its declaration."""
    root = tmp_path_factory.mktemp("chunks")
    write_demo_data(root / "demo", n_declarations=1_500, seed=3)
    decl = pd.read_parquet(root / "demo" / "declarations.parquet")
    insp = pd.read_parquet(root / "demo" / "inspections.parquet")
    n = len(decl)
    ids = decl["declaration_id"].to_numpy().copy()
    ids[[900, 1300]] = ids[[5, 10]]  # repeats of ids of the first chunk, in later chunks
    ids[1301] = ids[1300]  # and one within a chunk
    decl["declaration_id"] = ids
    decl.loc[[50, 700], "hs_code"] = "12"  # unusable: quarantined
    decl["quantity"] = decl["quantity"].astype("float64")
    decl.loc[[60, 800, 1400], "quantity"] = -1.0  # bad optional value: kept, recorded
    src = root / "src"
    src.mkdir()
    decl.to_parquet(src / "declarations.parquet", row_group_size=400)
    first = insp.index[:4]
    insp.loc[first[0], "declaration_id"] = ids[700]  # its declaration was quarantined
    insp.loc[first[1], "declaration_id"] = "NO-SUCH-DECLARATION"
    late = decl["declared_at"].iloc[n - 3]
    insp.loc[first[2], "declaration_id"] = ids[n - 3]
    insp.loc[first[2], "inspected_at"] = late - pd.Timedelta(days=2)  # before its declaration
    insp = insp.drop_duplicates("declaration_id", keep="first")
    insp.to_parquet(src / "inspections.parquet")
    for table in ("enterprises", "credit_ratings", "risk_signals"):
        (src / f"{table}.parquet").write_bytes((root / "demo" / f"{table}.parquet").read_bytes())
    return src


def _load(src: Path, store_dir: Path, chunk_rows: int | None) -> tuple[dict, Store]:
    report = ingest(src, store_dir, chunk_rows=chunk_rows)
    return report.to_dict(), Store(store_dir)


def _sorted(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return frame.drop(columns=["batch"], errors="ignore").sort_values(by).reset_index(drop=True)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_chunked_ingest_equals_the_whole_file(dirty_source: Path, tmp_path: Path, fmt: str) -> None:
    src = dirty_source
    if fmt == "csv":  # a CSV is read whole, then checked in slices
        src = tmp_path / "csv"
        src.mkdir()
        for path in dirty_source.glob("*.parquet"):
            pd.read_parquet(path).to_csv(src / f"{path.stem}.csv", index=False)
    whole, whole_store = _load(src, tmp_path / "whole", None)
    chunked, chunked_store = _load(src, tmp_path / "chunked", 250)
    for key in ("tables",):
        assert chunked[key] == whole[key]
    decl = whole["tables"]["declarations"]
    assert decl["quarantined"] == 5  # 3 repeats + 2 bad hs codes
    assert decl["by_reason"]["declaration_id: duplicate key in file"] == 3
    assert decl["dq_issues"] == 3
    insp = whole["tables"]["inspections"]["by_reason"]
    assert insp["declaration_id: declaration quarantined in this batch"] == 1
    assert insp["declaration_id: unknown declaration"] == 1
    assert insp["inspected_at: inspected before declared"] == 1
    for table, key in (("declarations", "declaration_id"), ("inspections", "declaration_id")):
        pd.testing.assert_frame_equal(
            _sorted(chunked_store.read(table), [key]), _sorted(whole_store.read(table), [key])
        )
    for frame in ("quarantine", "data_quality"):
        by = ["table", "source_row", "column", "reason"]
        pd.testing.assert_frame_equal(
            _sorted(getattr(chunked_store, frame)(), by), _sorted(getattr(whole_store, frame)(), by)
        )
    # Nothing a user sent disappears: every declaration row is accepted or quarantined.
    rows = len(pd.read_parquet(dirty_source / "declarations.parquet"))
    q = chunked_store.quarantine()
    assert len(chunked_store.read("declarations")) + (q["table"] == "declarations").sum() == rows


def test_chunked_ingest_appends_against_the_store(dirty_source: Path, tmp_path: Path) -> None:
    """A second load of the same ids in chunks: every stored id is a duplicate in the store."""
    first = tmp_path / "first"
    first.mkdir()
    decl = pd.read_parquet(dirty_source / "declarations.parquet").iloc[:600]
    decl.to_parquet(first / "declarations.parquet")
    ingest(first, tmp_path / "store", chunk_rows=100)
    again = tmp_path / "again"
    again.mkdir()
    decl.assign(declared_value=decl["declared_value"] + 1).to_parquet(
        again / "declarations.parquet"
    )
    stored = len(Store(tmp_path / "store").read("declarations"))
    assert stored == 599  # row 50's hs code was quarantined the first time
    report = ingest(again, tmp_path / "store", chunk_rows=100).tables["declarations"]
    assert report.accepted == 0 and report.quarantined == report.read == 600
    assert report.by_reason["declaration_id: duplicate key already in store"] == stored


def test_key_digests_find_exactly_the_ids_added() -> None:
    rng = np.random.default_rng(0)
    added = pd.Series([f"D{i:08d}" for i in rng.permutation(50_000)])
    seen = KeyDigests()
    seen.add(added[:30_000], np.arange(30_000))
    seen.add(pd.Series([None, "X"]), np.array([7, 8]))
    query = pd.Series([*added[25_000:35_000], None, "X", "Y"])
    found, values = seen.find(query)
    expect = np.r_[np.ones(5_000, bool), np.zeros(5_000, bool), False, True, False]
    assert (found == expect).all()
    assert (values[:5_000] == np.arange(25_000, 30_000)).all()
    assert values[-2] == 8
    assert len(seen) == 30_001
