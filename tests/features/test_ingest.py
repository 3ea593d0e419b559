"""Ingest: the broken-file corpus, timezones, USD conversion, appends and idempotence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.ingest import FileLevelError, ingest
from features.store import Store
from tests.features.conftest import CORPUS, tree_digest

# Every corpus case: either per-table (read, accepted, quarantined, {reason: rows}[, {data-quality
# reason: rows}]) or the substrings the FileLevelError message must contain. A bad optional value
# (contract 1.1) keeps its row: it is a data-quality issue, not a quarantine reason.
# tests/corpus/EXPECTED.md says the same.
EXPECTED_WHEN_NC = "missing, expected when result is nonconforming"
EXPECTED: dict[str, dict] = {
    "ok_all_tables": {
        "declarations": (3, 3, 0, {}),
        "inspections": (2, 2, 0, {}),
        "enterprises": (2, 2, 0, {}),
        "credit_ratings": (2, 2, 0, {}),
        "risk_signals": (2, 2, 0, {}),
    },
    "wrong_types": {
        "declarations": (
            4,
            3,
            1,
            {"declared_value: not a number": 1},
            {"quantity: not a number": 1, "legal_inspection: not a boolean": 1},
        )
    },
    "bad_enums": {
        "declarations": (
            4,
            2,
            2,
            {"direction: not an allowed value": 1, "trade_mode: not an allowed value": 1},
            {"transport_mode: not an allowed value": 1},
        )
    },
    "bad_dates": {"declarations": (5, 1, 4, {"declared_at: not an ISO-8601 timestamp": 4})},
    "negative_values": {
        "declarations": (
            4,
            3,
            1,
            {"declared_value: must be >= 0": 1},
            {"quantity: must be >= 0": 1, "net_weight_kg: must be > 0": 1},
        )
    },
    "duplicates": {"declarations": (4, 2, 2, {"declaration_id: duplicate key in file": 2})},
    "utf8_bom": {"declarations": (2, 2, 0, {})},
    "gbk_encoded": {"declarations": (2, 2, 0, {})},
    "truncated_last_line": {"declarations": (3, 2, 1, {"truncated row": 1})},
    "too_many_fields": {"declarations": (2, 1, 1, {"too many fields": 1})},
    "extra_columns": {"declarations": (2, 2, 0, {})},
    "empty_file": {"error": ["declarations.csv", "empty file"]},
    "header_only": {"declarations": (0, 0, 0, {}), "inspections": (0, 0, 0, {})},
    "missing_required_column": {"error": ["declarations.csv", "'hs_code'"]},
    "missing_required_column_inspections": {"error": ["inspections.csv", "'result'"]},
    "no_declarations": {"error": ["declarations", "required table"]},
    "undecodable": {"error": ["declarations.csv", "undecodable encoding"]},
    "unreadable_parquet": {"error": ["declarations.parquet", "unreadable Parquet"]},
    "unknown_declaration": {
        "declarations": (2, 1, 1, {"hs_code: hs code must have 6 to 10 digits": 1}),
        "inspections": (
            3,
            1,
            2,
            {
                "declaration_id: unknown declaration": 1,
                "declaration_id: declaration quarantined in this batch": 1,
            },
        ),
    },
    "inspected_before_declared": {
        "declarations": (2, 2, 0, {}),
        "inspections": (2, 1, 1, {"inspected_at: inspected before declared": 1}),
    },
    "two_results": {
        "declarations": (2, 2, 0, {}),
        "inspections": (3, 1, 2, {"declaration_id: two final results for one declaration": 2}),
    },
    "nonconforming_without_hazard": {
        "declarations": (3, 3, 0, {}),
        "inspections": (
            3,
            3,
            0,
            {},
            {f"severity: {EXPECTED_WHEN_NC}": 1, f"hazard_type: {EXPECTED_WHEN_NC}": 1},
        ),
    },
    "optional_values_kept": {
        "declarations": (
            9,
            9,
            0,
            {},
            {
                "net_weight_kg: must be > 0": 3,
                "quantity: must be >= 0": 1,
                "quantity: not a number": 1,
                "destination_country: unknown country code": 1,
                "destination_country: not an ISO 3166-1 alpha-2 code": 1,
                "transport_mode: not an allowed value": 1,
                "third_party_certificate: not a boolean": 1,
            },
        ),
        "inspections": (
            3,
            3,
            0,
            {},
            {
                f"hazard_type: {EXPECTED_WHEN_NC}": 1,
                f"severity: {EXPECTED_WHEN_NC}": 1,
                "disposal: not an allowed value": 1,
                "hazard_type: not an allowed value": 1,
            },
        ),
    },
    "bad_hs": {
        "declarations": (
            5,
            1,
            4,
            {
                "hs_code: hs code has non-digit characters": 1,
                "hs_code: hs code must have 6 to 10 digits": 3,
            },
        )
    },
    "bad_country": {
        "declarations": (
            9,
            6,
            3,
            {
                "origin_country: not an ISO 3166-1 alpha-2 code": 2,
                "origin_country: unknown country code": 1,
            },
            {
                "destination_country: not an ISO 3166-1 alpha-2 code": 1,
                "destination_country: unknown country code": 1,
            },
        )
    },
    "bad_currency": {
        "declarations": (
            3,
            1,
            2,
            {"currency: not an ISO 4217 code": 1, "currency: unknown currency": 1},
        )
    },
    "missing_required_values": {
        "declarations": (
            4,
            0,
            4,
            {
                "declaration_id: missing required value": 1,
                "enterprise_id: missing required value": 1,
                "port_code: missing required value": 1,
                "currency: missing required value": 1,
                "declared_value: missing required value": 1,
            },
        )
    },
    "risk_signals_rules": {
        "declarations": (1, 1, 0, {}),
        "risk_signals": (
            7,
            3,
            4,
            {
                "signal_id: duplicate key in file": 1,
                # S3's only subject, hs prefix "0", is invalid: read as missing, no subject left.
                "enterprise_id,overseas_party_id,hs_code,origin_country,hs_codes: no subject": 2,
                "channel: not an allowed value": 1,
            },
            {
                "severity: not an allowed value": 1,
                "origin_country: not an ISO 3166-1 alpha-2 code": 1,
            },
        ),
    },
    "enterprises_and_ratings": {
        "declarations": (1, 1, 0, {}),
        "enterprises": (
            3,
            2,
            1,
            {"enterprise_id: duplicate key in file": 1},
            {
                "registered_at: not an ISO-8601 timestamp": 1,
                "enterprise_type: not an allowed value": 1,
            },
        ),
        "credit_ratings": (
            3,
            1,
            2,
            {
                "enterprise_id,effective_from: duplicate key in file": 1,
                "rating: not an allowed value": 1,
            },
        ),
    },
    "gzip_csv": {"declarations": (2, 1, 1, {"hs_code: hs code must have 6 to 10 digits": 1})},
    "parquet_typed": {"declarations": (2, 1, 1, {"declared_value: must be >= 0": 1})},
}


def test_every_corpus_folder_has_an_expectation() -> None:
    folders = {p.name for p in CORPUS.iterdir() if p.is_dir()}
    assert folders == set(EXPECTED)


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_corpus(case: str, store_dir: Path) -> None:
    expected = EXPECTED[case]
    if "error" in expected:
        with pytest.raises(FileLevelError) as err:
            ingest(CORPUS / case, store_dir)
        for part in expected["error"]:
            assert part in str(err.value)
        assert not store_dir.exists(), "a file-level error must write nothing"
        return
    report = ingest(CORPUS / case, store_dir)
    assert set(report.tables) == set(expected)
    quarantine = Store(store_dir).quarantine()
    data_quality = Store(store_dir).data_quality()
    for table, (read, accepted, quarantined, reasons, *rest) in expected.items():
        dq_reasons = rest[0] if rest else {}
        got = report.tables[table]
        assert got.read == got.accepted + got.quarantined
        assert (got.read, got.accepted, got.quarantined) == (read, accepted, quarantined)
        assert got.by_reason == reasons
        assert got.dq_by_reason == dq_reasons
        assert len(Store(store_dir).read(table)) == accepted
        assert (quarantine["table"] == table).sum() == quarantined
        rows = data_quality[data_quality["table"] == table]
        assert len(rows) == got.dq_issues == sum(dq_reasons.values())
        assert got.with_dq_issues == rows["source_row"].nunique()
    # The stored report is the printed one.
    stored = Store(store_dir).reports()[-1]
    assert stored["batch"] == report.batch
    assert stored["tables"] == json.loads(json.dumps(report.to_dict()["tables"]))


# no_declarations is an error on a first load only: a later batch may bring results or signals
# alone (test_later_batch_needs_no_declarations)
@pytest.mark.parametrize(
    "case",
    [c for c, e in sorted(EXPECTED.items()) if "error" in e and c != "no_declarations"],
)
def test_file_level_error_leaves_existing_store_untouched(case: str, store_dir: Path) -> None:
    ingest(CORPUS / "ok_all_tables", store_dir)
    before = tree_digest(store_dir)
    with pytest.raises(FileLevelError):
        ingest(CORPUS / case, store_dir)
    assert tree_digest(store_dir) == before


def test_later_batch_needs_no_declarations(store_dir: Path) -> None:
    with pytest.raises(FileLevelError, match="required table"):
        ingest(CORPUS / "no_declarations", store_dir)  # a first load must bring them
    ingest(CORPUS / "ok_all_tables", store_dir)
    report = ingest(CORPUS / "no_declarations", store_dir)
    t = report.tables["inspections"]
    assert t.read == t.accepted + t.quarantined > 0
    assert "declarations" not in report.tables


def test_identifiers_stay_strings_and_leading_zeros_are_kept(store_dir: Path) -> None:
    ingest(CORPUS / "ok_all_tables", store_dir)
    store = Store(store_dir)
    decl = store.read("declarations").set_index("declaration_id")
    assert decl.loc["D2", "hs_code"] == "0303891000"
    assert store.read("risk_signals").set_index("signal_id").loc["S1", "hs_code"] == "0303"
    assert decl.loc["D3", "goods_description"] == 'toys, "deluxe"'
    ingest(CORPUS / "bad_hs", store_dir / "2")
    assert Store(store_dir / "2").read("declarations")["hs_code"].tolist() == ["030389"]


def test_timestamps_are_converted_to_utc(store_dir: Path) -> None:
    ingest(CORPUS / "ok_all_tables", store_dir)
    decl = Store(store_dir).read("declarations").set_index("declaration_id")["declared_at"]
    assert str(decl.dtype) == "datetime64[ns, UTC]"
    assert decl["D1"] == pd.Timestamp("2024-03-01T02:00:00Z")  # +08:00
    assert decl["D2"] == pd.Timestamp("2024-03-02T00:30:00Z")  # naive = Asia/Shanghai
    assert decl["D3"] == pd.Timestamp("2024-03-02T00:00:00Z")  # Z
    other = store_dir.parent / "utc_store"
    ingest(CORPUS / "ok_all_tables", other, timezone="Europe/Berlin")
    d2 = Store(other).read("declarations").set_index("declaration_id").loc["D2", "declared_at"]
    assert d2 == pd.Timestamp("2024-03-02T07:30:00Z")


def test_usd_uses_the_rate_in_force_at_declared_at(tmp_path: Path, store_dir: Path) -> None:
    rates = tmp_path / "rates.csv"
    rates.write_text(
        "currency,usd_per_unit,valid_from\nUSD,1,2000-01-01\nCNY,0.10,2020-01-01\n"
        "CNY,0.20,2024-03-02\n"
    )
    report = ingest(CORPUS / "ok_all_tables", store_dir, rates_file=rates)
    decl = Store(store_dir).read("declarations").set_index("declaration_id")
    # D2: 10000 CNY declared 2024-03-02 00:30 UTC -> the 2024-03-02 rate applies.
    assert decl.loc["D2", "declared_value_usd"] == pytest.approx(2000.0)
    assert decl.loc["D1", "declared_value_usd"] == pytest.approx(1800.0)
    # KRW is not in this table: quarantined, not guessed.
    assert report.tables["declarations"].by_reason == {"currency: unknown currency": 1}


def test_default_rates_convert_krw(store_dir: Path) -> None:
    ingest(CORPUS / "ok_all_tables", store_dir)
    d3 = Store(store_dir).read("declarations").set_index("declaration_id").loc["D3"]
    assert d3["declared_value_usd"] == pytest.approx(5_000_000 * 0.00077)


def test_encodings_are_recorded_and_decoded(store_dir: Path) -> None:
    r1 = ingest(CORPUS / "gbk_encoded", store_dir / "a")
    r2 = ingest(CORPUS / "utf8_bom", store_dir / "b")
    assert [f["encoding"] for f in r1.files] == ["gb18030"]
    assert [f["encoding"] for f in r2.files] == ["utf-8-sig"]
    gbk = Store(store_dir / "a").read("declarations")
    bom = Store(store_dir / "b").read("declarations")
    assert gbk["goods_description"].tolist() == ["塑料玩具", "冷冻鳕鱼片"]
    assert bom["goods_description"].tolist() == ["塑料玩具", "冷冻鳕鱼"]
    assert "declaration_id" in bom.columns  # the BOM is not part of the first column name


def test_quarantine_rows_keep_source_row_reasons_and_raw(store_dir: Path) -> None:
    ingest(CORPUS / "wrong_types", store_dir)
    q = Store(store_dir).quarantine().set_index("source_row")
    # Header is row 1, so the first data row is row 2; D4 is on row 5.
    assert q.index.tolist() == [5]
    assert json.loads(q.loc[5, "raw"])["declared_value"] == "12,5"
    # One quarantine row per source row, carrying every reason of that row.
    assert q.index.is_unique
    # D4: its required value is unusable; its bad optional weight is named, marked optional.
    assert q.loc[5, "reason"] == (
        "declared_value: not a number; net_weight_kg: not a number (optional)"
    )
    assert q.loc[5, "column"] == "declared_value; net_weight_kg"
    assert set(q["source_file"]) == {"declarations.csv"}
    ingest(CORPUS / "truncated_last_line", store_dir / "t")
    t = Store(store_dir / "t").quarantine()
    assert t["source_row"].tolist() == [4]
    assert json.loads(t["raw"].iloc[0])["_line"].startswith("D3,")


def test_extra_columns_are_kept(store_dir: Path) -> None:
    ingest(CORPUS / "extra_columns", store_dir)
    decl = Store(store_dir).read("declarations")
    assert decl["broker_note"].tolist()[0] == "call back"
    assert decl["internal_flag"].tolist() == ["7", "0"]
    assert Store(store_dir).attributes == {}


def test_same_files_twice_change_nothing(store_dir: Path) -> None:
    first = ingest(CORPUS / "ok_all_tables", store_dir)
    before = tree_digest(store_dir)
    again = ingest(CORPUS / "ok_all_tables", store_dir)
    assert first.wrote and not again.wrote
    assert len(again.already_loaded) == 5
    assert "already loaded" in again.to_text()
    assert tree_digest(store_dir) == before


def test_progress_is_told_each_file_then_the_write_counted(store_dir: Path) -> None:
    calls: list[tuple] = []
    ingest(CORPUS / "ok_all_tables", store_dir, progress=lambda *call: calls.append(call))
    steps = [step for step, _, _ in calls]
    assert [done for _, done, _ in calls] == list(range(len(calls)))
    assert {total for _, _, total in calls} == {len(calls) - 1} == {5 + 2}
    assert steps[0] == "checking declarations from declarations.csv"
    assert steps[-3:] == ["writing the store", "committing", "committed"]


def test_later_batch_appends_and_checks_against_the_store(tmp_path: Path, store_dir: Path) -> None:
    ingest(CORPUS / "ok_all_tables", store_dir)
    src = tmp_path / "batch2"
    src.mkdir()
    header = (CORPUS / "ok_all_tables" / "declarations.csv").read_text().splitlines()
    d1 = header[1]
    d10 = d1.replace("D1,", "D10,", 1)
    (src / "declarations.csv").write_text("\n".join([header[0], d1, d10]) + "\n")
    (src / "inspections.csv").write_text(
        "declaration_id,inspected_at,selection,result,hazard_type,severity,disposal\n"
        "D3,2024-03-09T10:00:00+08:00,random,conforming,,,\n"  # declaration from batch 1
        "D1,2024-03-09T10:00:00+08:00,random,conforming,,,\n"  # D1 already has a result
        "D10,2024-03-01T09:00:00+08:00,random,conforming,,,\n"  # before its declaration
    )
    report = ingest(src, store_dir)
    assert report.tables["declarations"].by_reason == {
        "declaration_id: duplicate key already in store": 1
    }
    assert report.tables["inspections"].by_reason == {
        "declaration_id: declaration already has a final result in store": 1,
        "inspected_at: inspected before declared": 1,
    }
    store = Store(store_dir)
    assert len(store.batches) == 2
    assert sorted(store.read("declarations")["declaration_id"]) == ["D1", "D10", "D2", "D3"]
    assert sorted(store.read("inspections")["declaration_id"]) == ["D1", "D2", "D3"]
    assert len(store.reports()) == 2


def test_random_corruption_keeps_every_row_accounted_for(tmp_path: Path, store_dir: Path) -> None:
    """Blank or garble random cells: every source row ends up accepted xor quarantined."""
    rng = np.random.default_rng(0)
    base = pd.read_csv(CORPUS / "ok_all_tables" / "declarations.csv", dtype=str).iloc[[0]]
    frame = pd.concat([base] * 300, ignore_index=True)
    frame["declaration_id"] = [f"R{i}" for i in range(len(frame))]
    junk = ["", "??", "-3", "2024-99-99", "0303", "cn", "1e400x"]
    for _ in range(400):
        # Column 0 (the id) stays intact so accepted rows can be traced back to their row.
        r, c = rng.integers(len(frame)), rng.integers(1, frame.shape[1])
        frame.iat[r, c] = junk[rng.integers(len(junk))]
    src = tmp_path / "src"
    src.mkdir()
    frame.to_csv(src / "declarations.csv", index=False)
    report = ingest(src, store_dir)
    t = report.tables["declarations"]
    assert t.read == len(frame) == t.accepted + t.quarantined
    store = Store(store_dir)
    accepted_rows = set(
        frame.index[frame["declaration_id"].isin(store.read("declarations")["declaration_id"])] + 2
    )
    quarantined_rows = set(store.quarantine()["source_row"])
    assert accepted_rows.isdisjoint(quarantined_rows)
    assert accepted_rows | quarantined_rows == set(range(2, len(frame) + 2))
    assert 0 < t.quarantined < t.read


def test_report_text_lists_tables_and_reasons(store_dir: Path) -> None:
    report = ingest(CORPUS / "wrong_types", store_dir)
    text = report.to_text()
    assert "declarations" in text and "quantity: not a number" in text
    assert report.to_dict()["tables"]["declarations"]["read"] == 4


def test_cli_ingest_exit_codes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from guomen.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["ingest", str(CORPUS / "bad_hs"), "--store", str(tmp_path / "s")])
    assert ok.exit_code == 0, ok.output
    assert "hs code must have 6 to 10 digits" in ok.output
    bad = runner.invoke(
        app, ["ingest", str(CORPUS / "empty_file"), "--store", str(tmp_path / "s2")]
    )
    assert bad.exit_code == 2
    assert not (tmp_path / "s2").exists()


def test_corpus_is_not_modified_by_a_load(store_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(CORPUS / "ok_all_tables", copy)
    before = tree_digest(copy)
    ingest(copy, store_dir)
    assert tree_digest(copy) == before


def test_bad_optional_values_keep_their_rows_with_the_issue_recorded(store_dir: Path) -> None:
    """Contract 1.1: the value becomes missing, the row stays, the issue is a data_quality row."""
    report = ingest(CORPUS / "optional_values_kept", store_dir)
    store = Store(store_dir)
    decl = store.read("declarations").set_index("declaration_id")
    assert list(decl.index) == [f"O{i}" for i in range(1, 10)]
    assert np.isnan(decl.loc["O2", "net_weight_kg"]) and np.isnan(decl.loc["O3", "net_weight_kg"])
    assert np.isnan(decl.loc["O4", "quantity"]) and decl.loc["O1", "net_weight_kg"] == 35.5
    assert pd.isna(decl.loc["O5", "destination_country"])
    assert pd.isna(decl.loc["O6", "transport_mode"])
    assert not decl.loc["O7", "third_party_certificate"]  # unparseable bool: its default
    # User-assigned codes are values of their own, not errors.
    assert decl.loc["O9", "origin_country"] == "ZZ"
    assert decl.loc["O9", "destination_country"] == "XX"
    assert decl["dq_issue_count"].to_dict() == {
        "O1": 0, "O2": 1, "O3": 1, "O4": 1, "O5": 1, "O6": 1, "O7": 1, "O8": 3, "O9": 0
    }  # fmt: skip
    dq = store.data_quality()
    assert set(dq.columns) == {
        "batch", "source_file", "source_row", "table", "key", "column", "reason", "raw"
    }  # fmt: skip
    o8 = dq[(dq["table"] == "declarations") & (dq["key"] == "O8")].sort_values("column")
    assert o8[["source_file", "source_row", "column", "reason", "raw"]].values.tolist() == [
        ["declarations.csv", 9, "destination_country", "not an ISO 3166-1 alpha-2 code", "Q1"],
        ["declarations.csv", 9, "net_weight_kg", "must be > 0", "0"],
        ["declarations.csv", 9, "quantity", "not a number", "n/a"],
    ]
    assert (dq["batch"] == report.batch).all()
    # The inspection is kept (its label is known) with hazard and severity missing.
    insp = store.read("inspections").set_index("declaration_id")
    assert insp.loc["O1", "result"] == "nonconforming" and pd.isna(insp.loc["O1", "hazard_type"])
    o1 = dq[(dq["table"] == "inspections") & (dq["key"] == "O1")]
    assert sorted(o1["column"]) == ["disposal", "hazard_type", "severity"]
    assert o1.set_index("column").loc["disposal", "raw"] == "burn"
    assert o1.set_index("column")["raw"].isna().sum() == 2  # missing as received
    t = report.tables["declarations"]
    assert (t.read, t.accepted, t.with_dq_issues, t.quarantined, t.dq_issues) == (9, 9, 7, 0, 9)


def test_report_shows_accepted_with_issues_and_quarantined(store_dir: Path) -> None:
    report = ingest(CORPUS / "negative_values", store_dir)
    text = report.to_text()
    assert "with DQ issues" in text.splitlines()[1 + len(report.files)]
    row = next(line for line in text.splitlines() if line.startswith("declarations"))
    assert row.split()[1:] == ["4", "3", "2", "1"]  # read, accepted, with DQ issues, quarantined
    assert "data quality (kept, value missing): net_weight_kg: must be > 0" in text
    assert "quarantined: declared_value: must be >= 0" in text
    stored = Store(store_dir).reports()[-1]["tables"]["declarations"]
    assert (stored["read"], stored["accepted"], stored["with_dq_issues"]) == (4, 3, 2)
    assert stored["read"] == stored["accepted"] + stored["quarantined"]
    assert stored["dq_by_reason"] == {"quantity: must be >= 0": 1, "net_weight_kg: must be > 0": 1}


def test_offline_features_see_the_data_quality_issues(store_dir: Path) -> None:
    from features.build import build_offline

    ingest(CORPUS / "optional_values_kept", store_dir)
    store = Store(store_dir)
    frame = build_offline(store.tables()).set_index("declaration_id")
    counts = store.read("declarations").set_index("declaration_id")["dq_issue_count"]
    assert frame["decl_dq_issue_cnt_now"].to_dict() == counts.astype(float).to_dict()
    assert frame.loc["O8", "decl_dq_issue_cnt_now"] == 3.0
    # The zero weight is missing, not ln(1 + 0).
    assert np.isnan(frame.loc["O2", "decl_log_weight_now"])
