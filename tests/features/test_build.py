"""Offline build: against the slow reference, shape and dtypes, labels, the declared table."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import features.build as build
from features.build import build_labels, build_offline
from features.categorical import fit_code_maps
from features.registry import ENTITIES, feature_names, feature_specs, markdown_table
from tests.features.pit_synth import CROSSES, make_tables
from tests.features.reference import compare, reference_features

ATTRS = {"office_group": "categorical", "tax_rate": "numeric"}
DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_equals_reference(seed: int) -> None:
    tables = make_tables(220, seed=seed, days=400, attributes=True)
    fast = build_offline(tables, ATTRS)
    ref = reference_features(tables, ATTRS)
    assert compare(fast, ref) == []


@pytest.mark.parametrize("seed", [0, 1])
def test_declared_crosses_equal_reference(seed: int) -> None:
    """Any declared cross gets the whole family, point in time, like the reference computes it;
    code maps given explicitly (a value outside them is missing)."""
    tables = make_tables(220, seed=seed, days=400, attributes=True)
    decl = tables["declarations"]
    maps = {
        "decl_hs2_cat_now": sorted(decl["hs_code"].astype(str).str[:2].unique())[:3],
        "decl_hs4_cat_now": sorted(decl["hs_code"].astype(str).str[:4].unique())[1:6],
        "decl_org_cat_now": sorted(decl["origin_country"].astype(str).unique())[:2],
        "decl_port_cat_now": [],
        "attr_office_group_cat_now": sorted(decl["office_group"].dropna().astype(str).unique()),
    }
    fast = build_offline(tables, ATTRS, entities=CROSSES, categories=maps)
    names = feature_names(ATTRS, CROSSES)
    assert list(fast.columns[3:]) == names
    # Parents needed by the smoothed rates are built too; the default set's other keys are not.
    assert "hsc_nc_rate_eb_all" in names and "trd_nc_rate_eb_all" in names
    assert "dcl_x_attr_office_group_days_since_nc_all" in names
    assert not any(n.startswith(("osp_", "ent_x_hs4_")) for n in names)
    ref = reference_features(tables, ATTRS, CROSSES, maps)
    assert compare(fast, ref) == []
    assert fast["decl_org_cat_now"].isin([0.0, 1.0]).any()
    assert fast["decl_org_cat_now"].isna().any()


def test_bad_cross_names_are_refused() -> None:
    for bad, why in (
        ("org_x_hs6", "write it as 'hs6_x_org'"),
        ("hs4_x_hs6", "one HS level"),
        ("hs6_x_colour", "not a key column"),
    ):
        with pytest.raises(ValueError, match=why):
            feature_specs(entities=["ent", bad])


def test_planted_timing_bug_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Results visible at the declaration instant (<= instead of <): the reference must object."""
    tables = make_tables(220, seed=1, days=400)
    ref = reference_features(tables)
    original = build.Prepared.__init__

    def leaky(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        original(self, *args, **kwargs)
        self.rank_insp = self.rank_insp - 1

    monkeypatch.setattr(build.Prepared, "__init__", leaky)
    problems = compare(build_offline(tables), ref)
    assert any(p.startswith("ent_insp_cnt") for p in problems)


def test_columns_dtypes_and_order() -> None:
    tables = make_tables(300, seed=2, attributes=True)
    df = build_offline(tables, ATTRS)
    names = feature_names(ATTRS)
    assert list(df.columns) == ["declaration_id", "declared_at", "enterprise_id", *names]
    assert all(df[n].dtype == np.float64 for n in names)
    assert list(df["declaration_id"]) == list(tables["declarations"]["declaration_id"])
    # The first declaration in time sees nothing.
    first = df.loc[df["declared_at"].idxmin()]
    assert first["ent_decl_cnt_all"] == 0 and first["ent_is_new_all"] == 1


def test_registry_shape() -> None:
    specs = feature_specs()
    assert 120 <= len(specs) <= 250
    names = [s.name for s in specs]
    assert len(set(names)) == len(names)
    for s in specs:
        assert re.fullmatch(r"[a-z0-9_]+", s.name)
        assert s.name.endswith("_" + s.window), s.name
        assert s.dtype == "float64" and s.description_zh and s.description_en
    for e in ENTITIES:
        assert any(s.entity == e for s in specs)
    extra = feature_specs(ATTRS)
    assert {"attr_tax_rate_value_now", "attr_office_group_nc_rate_eb_365d"} <= {
        s.name for s in extra
    }
    with pytest.raises(ValueError):
        feature_specs({"x": "text"})


def test_doc_table_is_current() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert markdown_table() in text, (
        "docs/features.md is stale: paste features.registry.markdown_table()"
    )


def test_labels() -> None:
    tables = make_tables(300, seed=3)
    labels = build_labels(tables)
    insp = tables["inspections"]
    assert len(labels) == len(tables["declarations"])
    assert labels["inspected"].sum() == insp["declaration_id"].nunique()
    merged = labels[labels["inspected"]].merge(insp, on="declaration_id")
    expected = (merged["result"] == "nonconforming").astype(float)
    assert (merged["nonconforming"].to_numpy() == expected.to_numpy()).all()
    assert labels.loc[~labels["inspected"], "nonconforming"].isna().all()


def test_empty_side_tables() -> None:
    tables = make_tables(100, seed=4)
    only = {"declarations": tables["declarations"]}
    df = build_offline(only)
    assert (df["ent_insp_cnt_all"].dropna() == 0).all()
    assert (df["sig_all_cnt_365d"] == 0).all()
    assert (df["ent_credit_tier_at"] == 2).all()
    assert pd.isna(df["ent_nc_rate_eb_all"]).all()  # no result known anywhere: no rate


def test_build_restores_numpy_page_advice() -> None:
    """The build turns numpy's hugepage advice off for itself only (a process-wide setting)."""
    from numpy._core import multiarray

    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    if setter is None:
        pytest.skip("numpy without the hugepage switch")
    before = setter(True)
    try:
        build_offline(make_tables(60, seed=2))
        assert setter(True) is True  # still on after the build
    finally:
        setter(before)


def test_signal_prefixes_and_multi_field_patterns() -> None:
    """Signals naming two or three fields and HS prefixes of several lengths, vs the reference."""
    tables = make_tables(400, seed=9, days=300)
    sig = tables["risk_signals"]
    decl = tables["declarations"]
    # Add signals naming enterprise, overseas party and origin together (taken from real rows,
    # so they match), and one naming a value no declaration has.
    src = decl[decl["overseas_party_id"].notna()].iloc[::20].head(15)
    extra = sig.iloc[: len(src)].copy()
    extra["signal_id"] = [f"X{i}" for i in range(len(src))]
    for col in ("enterprise_id", "overseas_party_id", "origin_country"):
        extra[col] = src[col].to_numpy()
    extra["hs_code"] = pd.Series([None] * len(src), dtype="str").to_numpy()
    extra.iloc[0, extra.columns.get_loc("enterprise_id")] = "NO-SUCH-ENTERPRISE"
    tables["risk_signals"] = pd.concat([sig, extra], ignore_index=True)
    s = tables["risk_signals"]
    assert s["hs_code"].dropna().str.len().nunique() > 1
    assert (s["hs_code"].notna() & s["origin_country"].notna()).any()
    fast = build_offline(tables)
    assert compare(fast, reference_features(tables)) == []
    assert (fast["sig_osp_cnt_365d"] > 0).any()


def _behaviour_tables() -> dict[str, pd.DataFrame]:
    """Enterprise E0 sets the HS6 median in January (unit values 1..5 USD/kg: median 3); E1
    declares in February, two of them at the same instant; one signal names E1."""
    jan, feb = pd.Timestamp("2024-01-10", tz="UTC"), pd.Timestamp("2024-02-01 10:00", tz="UTC")
    rows = [  # enterprise, time, USD, kg, legal inspection, third-party certificate
        *[("E0", jan + pd.Timedelta(hours=i), float(i + 1), 1.0, False, False) for i in range(5)],
        ("E1", feb, 1.0, 1.0, True, True),  # unit value 1/3 of the median: low
        ("E1", feb + pd.Timedelta(days=1), 3.0, 1.0, True, False),  # at the median
        ("E1", feb + pd.Timedelta(days=1), 6.0, 1.0, False, True),  # same instant, 2x median
        ("E1", feb + pd.Timedelta(days=2), 5.0, None, False, False),  # no unit value
        ("E1", feb + pd.Timedelta(days=3), 1.0, 1.0, False, False),
    ]
    n = len(rows)
    ent, at, usd, kg, legal, cert = (list(c) for c in zip(*rows, strict=True))
    decl = pd.DataFrame(
        {
            "declaration_id": pd.Series([f"D{i}" for i in range(n)], dtype="str"),
            "declared_at": pd.Series(at).astype("datetime64[ns, UTC]"),
            "direction": pd.Series(["import"] * n, dtype="str"),
            "port_code": pd.Series(["P1"] * n, dtype="str"),
            "trade_mode": pd.Series(["general_trade"] * n, dtype="str"),
            "hs_code": pd.Series(["95030000"] * n, dtype="str"),
            "origin_country": pd.Series(["CN"] * n, dtype="str"),
            "enterprise_id": pd.Series(ent, dtype="str"),
            "net_weight_kg": pd.Series(kg, dtype="float64"),
            "declared_value": usd,
            "currency": pd.Series(["USD"] * n, dtype="str"),
            "declared_value_usd": pd.Series(usd, dtype="float64"),
            "legal_inspection": legal,
            "third_party_certificate": cert,
        }
    )
    signals = pd.DataFrame(
        {
            "signal_id": pd.Series(["S1"], dtype="str"),
            "reported_at": pd.Series([feb + pd.Timedelta(days=1, hours=2)]).astype(
                "datetime64[ns, UTC]"
            ),
            "channel": pd.Series(["recall"], dtype="str"),
            "enterprise_id": pd.Series(["E1"], dtype="str"),
            **{
                c: pd.Series([None], dtype="str")
                for c in ("overseas_party_id", "hs_code", "origin_country", "severity")
            },
        }
    )
    return {"declarations": decl, "risk_signals": signals}


def test_enterprise_behaviour_by_hand() -> None:
    """The five behaviour features of E1's declarations, worked out by hand, offline and online."""
    from features.online import OnlineFeatures
    from features.snapshot import Snapshot

    tables = _behaviour_tables()
    cols = [
        "ent_cert_share_all",
        "ent_legal_cert_share_all",
        "ent_uv_mean_all",
        "ent_uv_low_share_all",
        "ent_sig_per_decl_365d",
    ]
    low, mid, high = np.log(1 / 3), 0.0, np.log(2)
    nan = np.nan
    expected = np.array(
        [
            [nan, nan, nan, nan, nan],  # D5: nothing earlier
            [1.0, 1.0, low, 1.0, 0.0],  # D6: sees D5
            [1.0, 1.0, low, 1.0, 0.0],  # D7: same instant as D6, sees only D5 too
            [2 / 3, 1 / 2, (low + mid + high) / 3, 1 / 3, 1 / 3],  # D8: D5-D7, the signal
            [2 / 4, 1 / 2, (low + mid + high) / 3, 1 / 3, 1 / 4],  # D9: D8 has no unit value
        ]
    )
    offline = build_offline(tables)
    got = offline[cols].to_numpy()[5:]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
    # January's declarations have no ratio (nothing before their month): shares, but no mean.
    assert offline.loc[4, "ent_cert_share_all"] == 0.0 and np.isnan(
        offline.loc[4, "ent_uv_mean_all"]
    )
    names = feature_names()
    for i in (6, 8, 9):
        row = {k: (None if pd.isna(v) else v) for k, v in tables["declarations"].iloc[i].items()}
        online = OnlineFeatures(
            Snapshot.build(tables, row["declared_at"]),
            names,
            categories=fit_code_maps(tables["declarations"]),
        ).features(row)
        np.testing.assert_allclose([online[c] for c in cols], expected[i - 5], rtol=1e-12)
