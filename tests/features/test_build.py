"""Offline build: against the slow reference, shape and dtypes, labels, the declared table."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pit_synth import make_tables
from reference import compare, reference_features

import features.build as build
from features.build import build_labels, build_offline
from features.registry import ENTITIES, feature_names, feature_specs, markdown_table

ATTRS = {"office_group": "categorical", "tax_rate": "numeric"}
DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_equals_reference(seed: int) -> None:
    tables = make_tables(220, seed=seed, days=400, attributes=True)
    fast = build_offline(tables, ATTRS)
    ref = reference_features(tables, ATTRS)
    assert compare(fast, ref) == []


def test_planted_timing_bug_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Results visible at the declaration instant (<= instead of <): the reference must object."""
    tables = make_tables(220, seed=1, days=400)
    ref = reference_features(tables)
    original = build.Prepared.__init__

    def leaky(self, tables, attributes):  # type: ignore[no-untyped-def]
        original(self, tables, attributes)
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
