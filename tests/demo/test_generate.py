import hashlib
import json
import re

import numpy as np
import pandas as pd
import pytest

from demo.generate import write_demo_data
from features.contract import TABLES

N = 40_000


def _digest(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    rows = write_demo_data(out, N, seed=11)
    tables = {name: pd.read_parquet(out / f"{name}.parquet") for name in TABLES}
    truth = pd.read_parquet(out / "ground_truth" / "declaration_truth.parquet")
    outbreaks = json.loads((out / "ground_truth" / "outbreaks.json").read_text())
    return out, rows, tables, truth, outbreaks


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    calls: list[tuple] = []
    write_demo_data(a, 3000, seed=5)
    write_demo_data(b, 3000, seed=5, progress=lambda *call: calls.append(call))
    write_demo_data(c, 3000, seed=6)
    da, db, dc = _digest(a), _digest(b), _digest(c)
    assert da == db  # telling a progress callback changes nothing written
    assert [done for _, done, _ in calls] == list(range(len(calls)))
    assert {total for _, _, total in calls} == {len(calls) - 1}
    assert calls[-1][0] == "done" and calls[-2][0] == "writing tables"
    assert len(da) == 7
    assert da["declarations.parquet"] != dc["declarations.parquet"]


def test_returned_rows_and_columns_follow_the_contract(demo):
    _, rows, tables, _, _ = demo
    assert rows == {name: len(df) for name, df in tables.items()}
    assert rows["declarations"] == N
    for name, spec in TABLES.items():
        df = tables[name]
        # the demo's own signals carry single HS codes: no mapped-feed columns in its files
        feed_only = ("hs_codes", "mapping_rule") if name == "risk_signals" else ()
        assert list(df.columns) == [c for c in spec.names if c not in feed_only], name
        for col in spec.columns:
            if col.name in feed_only:
                continue
            s = df[col.name]
            if col.required:
                assert s.notna().all(), (name, col.name)
            if col.kind == "enum":
                assert set(s.dropna().unique()) <= set(col.values), (name, col.name)
            if col.kind == "country":
                assert s.dropna().str.fullmatch(r"[A-Z]{2}").all(), (name, col.name)
            if col.kind == "hs":
                pattern = rf"\d{{{col.hs_min},{col.hs_max}}}"
                assert s.dropna().str.fullmatch(pattern).all(), (name, col.name)
            if col.kind == "timestamp":
                assert str(s.dt.tz) == "Asia/Shanghai", (name, col.name)
            if col.kind in ("id", "str", "hs", "country", "currency", "enum"):
                assert pd.api.types.is_string_dtype(s), (name, col.name)
            if col.kind == "float" and col.min_value is not None:
                v = s.dropna()
                assert ((v > col.min_value) if col.min_exclusive else (v >= col.min_value)).all()
            if col.unique:
                assert s.is_unique, (name, col.name)
    spec = TABLES["risk_signals"]
    subject = [c for c in spec.one_of_required if c in tables["risk_signals"]]
    assert tables["risk_signals"][subject].notna().any(axis=1).all()


def test_declarations_look_like_trade(demo):
    _, _, t, _, _ = demo
    d = t["declarations"]
    assert set(d.hs_code.str.len().unique()) == {8, 10}
    assert d.hs_code.str.startswith("0").mean() > 0.05  # food chapters keep leading zeros
    assert d.declaration_id.str.fullmatch(r"\d{18}").all()
    assert set(d.currency.unique()) <= {"CNY", "USD", "EUR", "JPY", "KRW", "HKD"}
    assert d.port_code.nunique() >= 10
    assert set(d.trade_mode.unique()) >= {"general_trade", "cross_border_ecommerce"}
    cbec = d.trade_mode == "cross_border_ecommerce"
    assert d.loc[cbec, "transport_mode"].isin(["post", "air"]).all()
    assert d.loc[cbec, "net_weight_kg"].median() < 0.01 * d.loc[~cbec, "net_weight_kg"].median()
    exports = d.direction == "export"
    assert 0.2 < exports.mean() < 0.7
    assert d.loc[exports, "destination_country"].notna().all()
    assert d.loc[~exports, "destination_country"].isna().all()
    first = d.declared_at.min().tz_convert("Asia/Shanghai")
    last = d.declared_at.max().tz_convert("Asia/Shanghai")
    assert first >= pd.Timestamp("2023-11-01", tz="Asia/Shanghai")
    assert last < pd.Timestamp("2026-11-01", tz="Asia/Shanghai")
    assert (last - first).days > 1050
    # Growth: the last year has more trade than the first.
    year = (d.declared_at - first).dt.days // 365
    assert (year == 2).sum() > 1.08 * (year == 0).sum()
    # Heavy tail: the top 5 % of enterprises carry a large share of declarations.
    counts = d.enterprise_id.value_counts()
    assert counts.iloc[: max(1, len(counts) // 20)].sum() / len(d) > 0.3
    # New entrants keep arriving.
    first_seen = d.groupby("enterprise_id").declared_at.min()
    assert (first_seen > first + pd.Timedelta(days=365)).mean() > 0.1


def test_inspection_rates_and_selection_bias(demo):
    _, _, t, truth, _ = demo
    d, ins = t["declarations"], t["inspections"]
    share = ins.selection.value_counts() / len(d)
    assert 0.01 <= share["random"] <= 0.02
    assert 0.06 <= share["targeted"] <= 0.10
    assert 0.01 <= share["mandatory"] <= 0.03
    nc = ins.result == "nonconforming"
    assert 0.04 <= nc.mean() <= 0.10
    rate = nc.groupby(ins.selection).mean()
    assert rate["random"] < rate["targeted"]
    # The random sample is unbiased: its mean true probability is the population's.
    p = truth.set_index("declaration_id").p_true
    p_random = p.loc[ins.loc[ins.selection == "random", "declaration_id"]].mean()
    assert p_random == pytest.approx(p.mean(), rel=0.2)
    # Targeted selection follows the legacy rule.
    leg = truth.set_index("declaration_id").legacy_score
    by_sel = ins.groupby("selection").declaration_id.apply(lambda ids: leg.loc[ids].mean())
    assert by_sel["targeted"] > by_sel["random"] + 1.0


def test_inspection_rows_are_consistent(demo):
    _, _, t, _, _ = demo
    d, ins = t["declarations"], t["inspections"]
    assert ins.declaration_id.is_unique
    assert ins.declaration_id.isin(d.declaration_id).all()
    m = ins.merge(d[["declaration_id", "declared_at"]], on="declaration_id")
    lag = m.inspected_at - m.declared_at
    assert (lag >= pd.Timedelta(0)).all()
    assert lag.max() <= pd.Timedelta(days=10, hours=1)
    nc = ins.result == "nonconforming"
    assert ins.loc[nc, ["hazard_type", "severity", "disposal"]].notna().all().all()
    assert ins.loc[~nc, ["hazard_type", "severity"]].isna().all().all()
    assert (ins.loc[~nc, "disposal"] == "release").all()
    sev = ins.loc[nc, "severity"].value_counts(normalize=True)
    assert 0.0 < sev.get("critical", 0.0) < 0.15


def test_ground_truth_is_aligned_and_sane(demo):
    _, _, t, truth, _ = demo
    d = t["declarations"]
    assert truth.declaration_id.tolist() == d.declaration_id.tolist()
    assert truth.p_true.between(0, 1, inclusive="neither").all()
    assert (truth.critical_p_true <= truth.p_true).all()
    comps = [c for c in truth.columns if c.startswith("logit_")]
    np.testing.assert_allclose(truth[comps].sum(axis=1), truth.logit, atol=1e-9)
    np.testing.assert_allclose(1 / (1 + np.exp(-truth.logit)), truth.p_true, rtol=1e-9)
    # Under-declared goods are riskier.
    under = truth.logit_undervaluation > 0
    assert truth.p_true[under].mean() > 1.3 * truth.p_true[~under].mean()


def test_history_predicts_the_future(demo):
    """An enterprise's past inspection results rank its later true risk: learnable, not noise."""
    _, _, t, truth, _ = demo
    d, ins = t["declarations"], t["inspections"]
    cut = d.declared_at.quantile(0.6)
    m = ins.merge(d[["declaration_id", "enterprise_id", "declared_at"]], on="declaration_id")
    past = m[m.declared_at < cut]
    hist = past.groupby("enterprise_id").result.agg(
        n="size", bad=lambda s: (s == "nonconforming").sum()
    )
    hist = hist[hist.n >= 5]
    future = truth.assign(enterprise_id=d.enterprise_id)[d.declared_at >= cut]
    fut = future.groupby("enterprise_id").p_true.mean()
    joined = hist.join(fut, how="inner")
    assert (
        joined.loc[joined.bad > 0, "p_true"].mean()
        > 1.3 * joined.loc[joined.bad == 0, "p_true"].mean()
    )


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """200k declarations: enough inspected rows inside each outbreak window to count them."""
    out = tmp_path_factory.mktemp("big")
    write_demo_data(out, 200_000, seed=3)
    cols = ["declaration_id", "declared_at", "hs_code", "origin_country"]
    tables = {
        "declarations": pd.read_parquet(out / "declarations.parquet", columns=cols),
        "inspections": pd.read_parquet(out / "inspections.parquet"),
    }
    truth = pd.read_parquet(out / "ground_truth" / "declaration_truth.parquet")
    outbreaks = json.loads((out / "ground_truth" / "outbreaks.json").read_text())
    return out, None, tables, truth, outbreaks


def test_outbreaks_raise_the_rate_inside_their_window(big):
    _, _, t, truth, outbreaks = big
    d, ins = t["declarations"], t["inspections"]
    assert 6 <= len(outbreaks) <= 10
    assert len({o["level"] for o in outbreaks}) >= 3
    res = ins.set_index("declaration_id").result.eq("nonconforming")
    inside_nc, outside_nc = [], []
    checked = 0
    for o in outbreaks:
        assert re.fullmatch(r"\d{4}", o["hs4"]) and re.fullmatch(r"[A-Z]{2}", o["origin_country"])
        start, end = pd.Timestamp(o["start"]), pd.Timestamp(o["end"])
        pair = d.hs_code.str.startswith(o["hs4"]) & (d.origin_country == o["origin_country"])
        inside = pair & (d.declared_at >= start) & (d.declared_at < end)
        assert inside.any(), o["id"]
        # Rows the outbreak touches are exactly those the ground truth marks with its id.
        marked = truth.outbreak_id == o["id"]
        assert (marked <= inside).all() and (truth.logit_outbreak[marked] > 0).all()
        if inside.sum() >= 30:  # too few rows for a stable mean
            checked += 1
            assert truth.p_true[inside].mean() > 1.5 * truth.p_true[pair & ~inside].mean(), o["id"]
        inside_nc.append(res.reindex(d.declaration_id[inside]).dropna())
        outside_nc.append(res.reindex(d.declaration_id[pair & ~inside]).dropna())
    assert checked >= 6
    observed_in = pd.concat(inside_nc).astype(float).mean()
    observed_out = pd.concat(outside_nc).astype(float).mean()
    assert observed_in > 1.4 * observed_out


def test_signals_follow_risk_and_outbreaks(demo):
    _, _, t, truth, outbreaks = demo
    d, s = t["declarations"], t["risk_signals"]
    assert set(s.channel.unique()) == set(TABLES["risk_signals"].column("channel").values)
    # Complaints land on risky enterprises.
    ent_p = truth.assign(enterprise_id=d.enterprise_id).groupby("enterprise_id").p_true.mean()
    complained = s.loc[s.channel == "consumer_complaint", "enterprise_id"].dropna().unique()
    assert ent_p.loc[complained].mean() > 1.3 * ent_p.mean()
    # Every outbreak is reported abroad, after its start.
    alerts = s[s.channel == "foreign_alert"]
    for o in outbreaks:
        hit = alerts.hs_code.str.startswith(o["hs4"]) & (
            alerts.origin_country == o["origin_country"]
        )
        assert (alerts.loc[hit, "reported_at"] >= pd.Timestamp(o["start"])).any(), o["id"]
    assert s.loc[s.channel == "foreign_alert", "source"].isin(["RASFF", "Safety Gate"]).any()


def test_credit_ratings_history(demo):
    _, _, t, _, _ = demo
    c, e = t["credit_ratings"], t["enterprises"]
    assert c.enterprise_id.isin(e.enterprise_id).all()
    share = c.drop_duplicates("enterprise_id").rating.value_counts(normalize=True)
    assert share["regular"] > 0.8
    assert c.groupby("enterprise_id").size().max() >= 2  # ratings change over time


def test_csv_format(tmp_path):
    rows = write_demo_data(tmp_path, 2000, seed=1, fmt="csv")
    d = pd.read_csv(tmp_path / "declarations.csv", dtype=str, keep_default_na=False)
    assert len(d) == rows["declarations"]
    assert list(d.columns) == TABLES["declarations"].names
    assert d.declared_at.str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00").all()
    assert d.hs_code.str.fullmatch(r"\d{8}|\d{10}").all()
    assert d.hs_code.str.startswith("0").any()
    assert (tmp_path / "ground_truth" / "declaration_truth.parquet").exists()
    pq_dir = tmp_path / "pq"
    write_demo_data(pq_dir, 2000, seed=1)
    p = pd.read_parquet(pq_dir / "declarations.parquet")
    assert (pd.to_datetime(d.declared_at) == p.declared_at).all()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        write_demo_data(tmp_path, 1000, seed=1, fmt="xlsx")
    with pytest.raises(ValueError):
        write_demo_data(tmp_path, 10, seed=1)
