"""The Parquet store: layout, canonical dtypes, commit point, replace rule for enterprises."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from features.contract import CONTRACT_VERSION, LOAD_ORDER, TABLES
from features.ingest import ingest
from features.store import Store
from tests.features.conftest import CORPUS

DTYPES = {
    "id": "str",
    "str": "str",
    "enum": "str",
    "hs": "str",
    "hs_list": "str",
    "country": "str",
    "currency": "str",
    "float": "float64",
    "bool": "bool",
    "timestamp": "datetime64[ns, UTC]",
}


def _check_dtypes(table: str, frame) -> None:
    for col in TABLES[table].columns:
        assert str(frame[col.name].dtype) == DTYPES[col.kind], (table, col.name)


def test_empty_store_gives_empty_typed_tables(tmp_path: Path) -> None:
    store = Store(tmp_path / "nothing")
    tables = store.tables()
    assert list(tables) == list(LOAD_ORDER)
    for name, frame in tables.items():
        assert len(frame) == 0
        _check_dtypes(name, frame)
    assert store.attributes == {}
    assert store.quarantine().columns.tolist() == [
        "batch",
        "source_file",
        "source_row",
        "table",
        "column",
        "reason",
        "raw",
    ]
    assert store.reports() == []


def test_canonical_dtypes_and_layout(tmp_path: Path) -> None:
    root = tmp_path / "s"
    report = ingest(CORPUS / "ok_all_tables", root)
    store = Store(root)
    for name, frame in store.tables().items():
        _check_dtypes(name, frame)
        assert len(frame) == report.tables[name].accepted
    assert str(store.read("declarations")["declared_value_usd"].dtype) == "float64"
    b = report.batch
    assert (root / "declarations" / "declared_month=2024-03" / f"part-{b}.parquet").is_file()
    assert (root / "declarations" / "declared_month=2024-03" / f"part-{b}.parquet").is_file()
    assert (root / "inspections" / "inspected_month=2024-03" / f"part-{b}.parquet").is_file()
    assert (root / "risk_signals" / "reported_month=2024-02" / f"part-{b}.parquet").is_file()
    assert (root / "enterprises" / f"part-{b}.parquet").is_file()
    assert (root / "reports" / f"{b}.json").is_file()
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["contract_version"] == CONTRACT_VERSION
    assert [x["batch"] for x in manifest["batches"]] == [b]
    assert len(manifest["batches"][0]["files"]) == 5
    assert not list(root.glob(".staging-*"))
    # Booleans get the contract default when empty.
    decl = store.read("declarations").set_index("declaration_id")
    assert decl.loc["D3", "legal_inspection"] is False or not decl.loc["D3", "legal_inspection"]
    assert decl.loc["D2", "legal_inspection"]


def test_uncommitted_parts_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "s"
    ingest(CORPUS / "ok_all_tables", root)
    # A part left behind by a load that died before writing the manifest.
    orphan = root / "declarations" / "declared_month=2024-03" / "part-99990101T000000Z-dead.parquet"
    pq.write_table(pa.table({"declaration_id": ["GHOST"]}), orphan)
    assert "GHOST" not in set(Store(root).read("declarations")["declaration_id"])


def test_redelivered_enterprise_replaces_the_stored_one(tmp_path: Path) -> None:
    root = tmp_path / "s"
    ingest(CORPUS / "ok_all_tables", root)
    src = tmp_path / "b2"
    shutil.copytree(CORPUS / "header_only", src)
    (src / "enterprises.csv").write_text(
        "enterprise_id,name,registered_at,enterprise_type,region\n"
        "3101000001,Shanghai Toys (renamed),2015-06-01,trader,310000\n"
    )
    report = ingest(src, root)
    assert report.tables["enterprises"].accepted == 1
    assert report.tables["enterprises"].replaced == 1
    ent = Store(root).read("enterprises").set_index("enterprise_id")
    assert len(ent) == 2
    assert ent.loc["3101000001", "name"] == "Shanghai Toys (renamed)"


def test_read_selected_columns(tmp_path: Path) -> None:
    root = tmp_path / "s"
    ingest(CORPUS / "ok_all_tables", root)
    part = Store(root).read("declarations", columns=["declaration_id", "declared_at"])
    assert part.columns.tolist() == ["declaration_id", "declared_at"]
    assert len(part) == 3
