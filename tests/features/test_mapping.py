"""Bring your own format: the YAML mapping and the flat foreign layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from demo.foreign import COLUMNS, write_foreign_flat
from features.ingest import FileLevelError, ingest
from features.mapping import MappingError, load_mapping, parse_mapping
from features.store import Store

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "foreign_flat_mapping.yaml"


@pytest.fixture
def foreign(tmp_path: Path) -> Path:
    src = tmp_path / "foreign"
    write_foreign_flat(src / "foreign_flat.csv", n=1500, seed=11, unknown_values=True)
    return src


def test_generator_layout_and_determinism(tmp_path: Path) -> None:
    write_foreign_flat(tmp_path / "a.csv", n=300, seed=5)
    write_foreign_flat(tmp_path / "b.csv", n=300, seed=5)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    df = pd.read_csv(tmp_path / "a.csv", dtype=str, keep_default_na=False)
    assert tuple(df.columns) == COLUMNS
    assert set(df["Fraud"]) <= {"0", "1"}
    assert set(df["Critical Fraud"]) <= {"0", "1", "2"}
    assert (df.loc[df["Fraud"] == "0", "Critical Fraud"] == "0").all()
    assert df["HS6 Code"].str.fullmatch(r"\d{6}").all()
    assert df["HS6 Code"].str.startswith("0").any()  # chapters 01-09 keep their zero


def test_generated_fraud_is_learnable(tmp_path: Path) -> None:
    write_foreign_flat(tmp_path / "f.csv", n=20_000, seed=1)
    df = pd.read_csv(tmp_path / "f.csv", dtype={"HS6 Code": str})
    fraud = df["Fraud"].to_numpy()
    rate = fraud.mean()
    assert 0.03 < rate < 0.3
    # Undervaluation: price per kg relative to the HS6 median is lower among frauds.
    unit = (df["Item Price"] / df["Net Mass"]).where(df["Net Mass"] > 0)  # 0 kg: unknown
    rel = np.log(unit / unit.groupby(df["HS6 Code"]).transform("median"))
    assert rel[fraud == 1].mean() < rel[fraud == 0].mean() - 0.3
    # A categorical column matters.
    by_pay = df.groupby("Payment Type")["Fraud"].mean()
    assert by_pay[43] > 1.5 * by_pay[11]
    # Importer latent risk: frequent importers' fraud rates spread wider than chance.
    counts = df.groupby("Importer ID")["Fraud"].agg(["mean", "size"])
    big = counts[counts["size"] >= 50]
    expected_sd = np.sqrt(rate * (1 - rate) / big["size"]).mean()
    assert big["mean"].std() > 1.5 * expected_sd


def test_foreign_file_loads_through_the_example_mapping(foreign: Path, tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    report = ingest(foreign, store_dir, mapping_file=EXAMPLE)
    raw = pd.read_csv(foreign / "foreign_flat.csv", dtype=str, keep_default_na=False)
    n = len(raw)
    for table in ("declarations", "inspections"):
        t = report.tables[table]
        assert t.read == n == t.accepted + t.quarantined
        assert t.quarantined == 0, t.by_reason
    store = Store(store_dir)
    assert store.attributes["payment_type"] == "categorical"
    assert store.attributes["tax_rate"] == "numeric"
    decl = store.read("declarations").set_index("declaration_id")
    insp = store.read("inspections").set_index("declaration_id")
    raw = raw.set_index("Declaration ID")
    assert str(decl["tax_rate"].dtype) == "float64"
    assert (decl["payment_type"] == raw["Payment Type"]).all()
    assert (decl["hs_code"] == raw["HS6 Code"]).all()
    assert set(decl["currency"]) == {"KRW"}
    assert set(decl["direction"]) == {"import"}
    assert (decl["declared_value_usd"] < decl["declared_value"]).all()
    sea = raw["Mode of Transport"] == "1"
    assert (decl.loc[sea[sea].index, "transport_mode"] == "sea").all()
    # Labels: Fraud -> result; Critical Fraud -> severity only on nonconforming rows.
    fraud = raw["Fraud"] == "1"
    assert ((insp["result"] == "nonconforming") == fraud).all()
    crit = raw.loc[fraud & (raw["Critical Fraud"] == "2")].index
    assert (insp.loc[crit, "severity"] == "critical").all()
    assert insp.loc[~fraud, "severity"].isna().all()
    assert insp.loc[~fraud, "hazard_type"].isna().all()
    assert (insp.loc[fraud, "hazard_type"] == "fraud_labeling").all()
    lag = insp["inspected_at"] - decl.loc[insp.index, "declared_at"]
    assert (lag == pd.Timedelta(days=7)).all()
    # A date like 2020-01-02 is local midnight in Asia/Shanghai, 16:00 UTC the day before.
    first = raw.index[0]
    local = pd.Timestamp(raw.loc[first, "Date"]).tz_localize("Asia/Shanghai")
    assert decl.loc[first, "declared_at"] == local.tz_convert("UTC")
    assert decl.loc[first, "declared_at"].hour == 16
    # Rows the export records with 0 kg or origin ZZ ("unknown") are kept (contract 1.1): the
    # weight is a data-quality issue and reads as missing, ZZ is a value of its own.
    zero = raw.index[raw["Net Mass"].astype(float) == 0]
    unknown = raw.index[raw["Country of Origin"] == "ZZ"]
    assert len(zero) and len(unknown)
    assert decl.loc[zero, "net_weight_kg"].isna().all()
    assert (decl.loc[zero, "dq_issue_count"] == 1).all()
    assert (decl.loc[unknown, "origin_country"] == "ZZ").all()
    assert report.tables["declarations"].dq_by_reason == {"net_weight_kg: must be > 0": len(zero)}
    assert report.tables["declarations"].with_dq_issues == len(zero)
    assert len(insp.loc[zero.union(unknown)]) == len(zero.union(unknown))  # their labels too
    dq = store.data_quality()
    assert sorted(dq["key"]) == sorted(zero) and set(dq["raw"]) == {"0.0"}
    assert set(dq["source_row"]) == {raw.index.get_loc(k) + 2 for k in zero}


def test_mapped_rows_are_validated_with_foreign_row_numbers(foreign: Path, tmp_path: Path) -> None:
    path = foreign / "foreign_flat.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    df.loc[3, "Date"] = "2020-13-45"  # source row 5 (header is row 1)
    df.loc[7, "Mode of Transport"] = "9"  # unmapped -> default 'other', still valid
    df.loc[9, "Country of Origin"] = "korea"
    df.loc[10, "Fraud"] = ""  # not inspected: no inspection row derived
    df.loc[11, "Fraud"] = "7"  # not a result
    df.to_csv(path, index=False)
    report = ingest(foreign, tmp_path / "s", mapping_file=EXAMPLE)
    d, i = report.tables["declarations"], report.tables["inspections"]
    assert d.by_reason == {
        "declared_at: not an ISO-8601 timestamp": 1,
        "origin_country: not an ISO 3166-1 alpha-2 code": 1,
    }
    assert i.read == len(df) - 1
    assert i.read == i.accepted + i.quarantined
    assert i.by_reason["inspected_at: not an ISO-8601 timestamp"] == 1
    assert i.by_reason["declaration_id: declaration quarantined in this batch"] == 2
    assert i.by_reason["result: not an allowed value"] == 1
    q = Store(tmp_path / "s").quarantine()
    qd = q[q["table"] == "declarations"].set_index("source_row")
    assert sorted(qd.index) == [5, 11]
    assert json.loads(qd.loc[5, "raw"])["Date"] == "2020-13-45"
    assert qd.loc[5, "source_file"] == "foreign_flat.csv"
    decl = Store(tmp_path / "s").read("declarations")
    assert (
        decl.loc[decl["declaration_id"] == df.loc[7, "Declaration ID"], "transport_mode"].item()
        == "other"
    )


def test_missing_source_column_is_a_file_level_error(foreign: Path, tmp_path: Path) -> None:
    path = foreign / "foreign_flat.csv"
    df = pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns=["Importer ID"])
    df.to_csv(path, index=False)
    with pytest.raises(FileLevelError, match=r"foreign_flat\.csv.*'Importer ID'"):
        ingest(foreign, tmp_path / "s", mapping_file=EXAMPLE)
    assert not (tmp_path / "s").exists()


def _apply(doc: dict, columns: dict[str, list]) -> dict[str, list]:
    mapping = parse_mapping(doc)
    raw = pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()})
    data, _ = mapping.apply(mapping.sources[0], raw)["declarations"]
    return data.to_pydict()


def test_operations() -> None:
    doc = {
        "sources": [
            {
                "file": "x.csv",
                "tables": {
                    "declarations": {
                        "columns": {
                            "hs_code": {"from": "HS", "zfill": 6},
                            "transport_mode": {"from": "M", "map": {1: "sea", "4": "air"}},
                            "direction": {"const": "import"},
                            "origin_country": {"from": "C", "upper": True},
                            "net_weight_kg": {"from": "G", "scale": 0.001},
                            "declared_at": {"from": "D", "date_format": "%d/%m/%Y"},
                            "goods_description": {"from": "T", "when": {"M": ["4"]}},
                        }
                    }
                },
            }
        ]
    }
    out = _apply(
        doc,
        {
            "HS": ["30389", "950300", "3O3"],
            "M": ["1", "4", "7"],
            "C": ["cn", "Jp", None],
            "G": ["1500", "x", ""],
            "D": ["02/01/2020", "31/12/2021", "2020-01-02"],
            "T": ["a", "b", "c"],
        },
    )
    assert out["hs_code"] == ["030389", "950300", "3O3"]
    assert out["transport_mode"] == ["sea", "air", "7"]  # unmapped passes through to validation
    assert out["direction"] == ["import"] * 3
    assert out["origin_country"] == ["CN", "JP", None]
    assert out["net_weight_kg"] == ["1.5", "x", None]
    assert out["declared_at"] == [
        "2020-01-02T00:00:00",
        "2021-12-31T00:00:00",
        "unparseable date: 2020-01-02",
    ]
    assert out["goods_description"] == [None, "b", None]


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            {
                "sources": [
                    {
                        "file": "x",
                        "tables": {
                            "declarations": {"columns": {"hs_code": {"from": "a", "eval": "1"}}}
                        },
                    }
                ]
            },
            "unknown operation",
        ),
        (
            {"sources": [{"file": "x", "tables": {"declarations": {"columns": {"nope": "a"}}}}]},
            "not a contract column",
        ),
        (
            {"sources": [{"file": "x", "tables": {"shipments": {"columns": {}}}}]},
            "not a contract table",
        ),
        (
            {
                "sources": [
                    {
                        "file": "x",
                        "tables": {
                            "declarations": {"columns": {"hs_code": {"from": "a", "const": "b"}}}
                        },
                    }
                ]
            },
            "exactly one",
        ),
        (
            {
                "sources": [
                    {
                        "file": "x",
                        "tables": {"declarations": {"columns": {}, "attributes": {"a": "text"}}},
                    }
                ]
            },
            "categorical or numeric",
        ),
        ({"tables": {}}, "sources"),
    ],
)
def test_malformed_mappings_are_rejected(bad: dict, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        parse_mapping(bad)


def test_yaml_python_tags_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.yaml"
    path.write_text("sources: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(MappingError, match="cannot read mapping"):
        load_mapping(path)
